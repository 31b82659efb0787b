package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/dicomseal/dicomseal/ledger"
)

// Tx implements ledger.Tx (here) and custody.Tx (custody.go) in SQL; it
// holds no logic of its own. Writes of a batch are queued and sent
// together (one round trip): by InsertBatch, by the commit, or by the next
// statement that reads.
type Tx struct {
	tx      pgx.Tx
	pending *pgx.Batch
}

func (t *Tx) queue(query string, args ...any) {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	t.pending.Queue(query, args...)
}

// flush sends the queued writes.
func (t *Tx) flush(ctx context.Context) error {
	if t.pending == nil || t.pending.Len() == 0 {
		return nil
	}
	b := t.pending
	t.pending = nil
	return t.tx.SendBatch(ctx, b).Close()
}

// errRow is a row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (t *Tx) queryRow(ctx context.Context, query string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, query, args...)
}

func (t *Tx) query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, query, args...)
}

func (t *Tx) exec(ctx context.Context, query string, args ...any) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

const entryColumns = `idx, kind, subject, file_sha256, body, leaf_hash`

func scanEntry(row pgx.Row) (ledger.Entry, error) {
	var e ledger.Entry
	var idx int64
	var kind string
	var leaf []byte
	err := row.Scan(&idx, &kind, &e.Subject, &e.FileSHA256, &e.Body, &leaf)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ledger.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("read entry: %w", err)
	}
	if len(leaf) != len(e.LeafHash) {
		return e, fmt.Errorf("entry %d has a %d-byte leaf hash", idx, len(leaf))
	}
	e.Index, e.Kind = uint64(idx), ledger.Kind(kind)
	copy(e.LeafHash[:], leaf)
	return e, nil
}

func (t *Tx) entry(ctx context.Context, where string, args ...any) (ledger.Entry, error) {
	return scanEntry(t.queryRow(ctx, `SELECT `+entryColumns+` FROM entries WHERE `+where, args...))
}

func (t *Tx) NextIndex(ctx context.Context) (uint64, error) {
	var next int64
	err := t.queryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM entries`).Scan(&next)
	return uint64(next), err
}

func (t *Tx) Entry(ctx context.Context, idx uint64) (ledger.Entry, error) {
	return t.entry(ctx, `idx = $1`, int64(idx))
}

func (t *Tx) EntryByLeafHash(ctx context.Context, leaf [32]byte) (ledger.Entry, error) {
	return t.entry(ctx, `leaf_hash = $1 ORDER BY idx LIMIT 1`, leaf[:])
}

func (t *Tx) ScanEntries(ctx context.Context, from, to uint64, fn func(ledger.Entry) error) error {
	if to > 1<<62 {
		to = 1 << 62
	}
	return each(ctx, t, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(from), int64(to))
}

// ScanSubject scans one subject's entries through the subject index.
func (t *Tx) ScanSubject(ctx context.Context, subject string, fn func(ledger.Entry) error) error {
	return each(ctx, t, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE subject = $1 ORDER BY idx`, subject)
}

// each runs a query and calls fn, in order, on every row read by scan;
// fn's error stops it and is returned unchanged.
func each[T any](ctx context.Context, tx *Tx, scan func(pgx.Row) (T, error), fn func(T) error, query string, args ...any) error {
	rows, err := tx.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AppendEntries queues the batch's entries: they go to the server with
// the index's rows and the signed batch, in one pipelined round trip.
func (t *Tx) AppendEntries(ctx context.Context, entries []ledger.Entry) error {
	for _, e := range entries {
		t.queue(`INSERT INTO entries (idx, kind, subject, file_sha256, body, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6)`,
			int64(e.Index), string(e.Kind), e.Subject, e.FileSHA256, e.Body, e.LeafHash[:])
	}
	return nil
}

// InsertBatch sends the signed batch with every write queued before it.
func (t *Tx) InsertBatch(ctx context.Context, b ledger.Batch) error {
	t.queue(`INSERT INTO batches (first_idx, leaves, signature) VALUES ($1, $2, $3)`, int64(b.First), b.PackedLeaves(), b.Signature)
	return t.flush(ctx)
}

func (t *Tx) ScanBatches(ctx context.Context, from uint64, fn func(ledger.Batch) error) error {
	return each(ctx, t, scanBatch, fn, `SELECT first_idx, leaves, signature FROM batches WHERE first_idx >= $1 ORDER BY first_idx`, int64(from))
}

func scanBatch(row pgx.Row) (ledger.Batch, error) {
	var first int64
	var packed []byte
	var b ledger.Batch
	if err := row.Scan(&first, &packed, &b.Signature); err != nil {
		return b, err
	}
	leaves, err := ledger.UnpackLeaves(packed)
	if err != nil {
		return b, fmt.Errorf("batch %d: %w", first, err)
	}
	b.First, b.Leaves = uint64(first), leaves
	return b, nil
}

func (t *Tx) Nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	keys := make([]int64, len(ids))
	for i, id := range ids {
		keys[i] = ledger.NodeKey(id)
	}
	rows, err := t.query(ctx, `SELECT id, hash FROM tree_nodes WHERE id = ANY($1)`, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[int64][]byte, len(ids))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		found[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i := range ids {
		h, ok := found[keys[i]]
		if !ok {
			return nil, fmt.Errorf("%w: tree node (level %d, index %d)", ledger.ErrNotFound, ids[i].Level, ids[i].Index)
		}
		out[i] = h
	}
	return out, nil
}

// PutNodes bulk-loads nodes with COPY.
func (t *Tx) PutNodes(ctx context.Context, nodes []ledger.Node) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{"tree_nodes"}, []string{"id", "hash"},
		pgx.CopyFromSlice(len(nodes), func(i int) ([]any, error) {
			return []any{ledger.NodeKey(nodes[i].ID), nodes[i].Hash}, nil
		}))
	return err
}

const checkpointColumns = `size, root, note, created_at`

func scanCheckpoint(row pgx.Row) (ledger.Checkpoint, error) {
	var c ledger.Checkpoint
	var size int64
	err := row.Scan(&size, &c.Root, &c.Note, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ledger.ErrNotFound
	}
	c.Size = uint64(size)
	return c, err
}

func (t *Tx) LatestCheckpoint(ctx context.Context) (ledger.Checkpoint, error) {
	return scanCheckpoint(t.queryRow(ctx, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size DESC LIMIT 1`))
}

func (t *Tx) InsertCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	return t.exec(ctx, `INSERT INTO checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
		int64(c.Size), c.Root, c.Note, c.CreatedAt.UTC())
}

func (t *Tx) ScanCheckpoints(ctx context.Context, fn func(ledger.Checkpoint) error) error {
	return each(ctx, t, scanCheckpoint, fn, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size`)
}

func (t *Tx) Cursor(ctx context.Context, name string) (uint64, error) {
	var pos int64
	err := t.queryRow(ctx, `SELECT position FROM cursors WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ledger.ErrNotFound
	}
	return uint64(pos), err
}

func (t *Tx) SaveCursor(ctx context.Context, name string, position uint64) error {
	return t.exec(ctx, `INSERT INTO cursors (name, position, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`, name, int64(position))
}
