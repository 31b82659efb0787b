package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/dicomseal/dicomseal/ledger"
)

// Tx implements ledger.Tx (here) and custody.Tx (custody.go) in SQL; it
// holds no logic of its own.
type Tx struct {
	tx    *sql.Tx
	stmts *stmts
}

const entryColumns = `idx, kind, subject, file_sha256, body, leaf_hash`

func scanEntry(sc interface{ Scan(...any) error }) (ledger.Entry, error) {
	var e ledger.Entry
	var idx int64
	var kind string
	var leaf []byte
	err := sc.Scan(&idx, &kind, &e.Subject, &e.FileSHA256, &e.Body, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
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
	return t.entry(ctx, `idx = ?`, int64(idx))
}

func (t *Tx) EntryByLeafHash(ctx context.Context, leaf [32]byte) (ledger.Entry, error) {
	return t.entry(ctx, `leaf_hash = ? ORDER BY idx LIMIT 1`, leaf[:])
}

func (t *Tx) ScanEntries(ctx context.Context, from, to uint64, fn func(ledger.Entry) error) error {
	if to > 1<<62 {
		to = 1 << 62
	}
	return each(ctx, t.tx, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(from), int64(to))
}

// ScanSubject scans one subject's entries through the subject index.
func (t *Tx) ScanSubject(ctx context.Context, subject string, fn func(ledger.Entry) error) error {
	return each(ctx, t.tx, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE subject = ? ORDER BY idx`, subject)
}

// each runs a query and calls fn, in order, on every row read by scan;
// fn's error stops it and is returned unchanged.
func each[T any](ctx context.Context, tx *sql.Tx, scan func(interface{ Scan(...any) error }) (T, error), fn func(T) error, query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
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

// AppendEntries writes through one prepared statement: in an embedded
// database a statement is a function call, not a round trip.
func (t *Tx) AppendEntries(ctx context.Context, entries []ledger.Entry) error {
	return execEach(ctx, t.tx, `INSERT INTO entries (idx, kind, subject, file_sha256, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)`,
		len(entries), func(i int) []any {
			e := entries[i]
			return []any{int64(e.Index), string(e.Kind), e.Subject, e.FileSHA256, e.Body, e.LeafHash[:]}
		})
}

// execEach runs one prepared statement n times, with arg(i)'s arguments.
func execEach(ctx context.Context, tx *sql.Tx, query string, n int, arg func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := 0; i < n; i++ {
		if _, err := stmt.ExecContext(ctx, arg(i)...); err != nil {
			return err
		}
	}
	return stmt.Close()
}

func (t *Tx) InsertBatch(ctx context.Context, b ledger.Batch) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO batches (first_idx, leaves, signature) VALUES (?, ?, ?)`, int64(b.First), b.PackedLeaves(), b.Signature)
	return err
}

func (t *Tx) ScanBatches(ctx context.Context, from uint64, fn func(ledger.Batch) error) error {
	return each(ctx, t.tx, scanBatch, fn, `SELECT first_idx, leaves, signature FROM batches WHERE first_idx >= ? ORDER BY first_idx`, int64(from))
}

func scanBatch(row interface{ Scan(...any) error }) (ledger.Batch, error) {
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
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = ledger.NodeKey(id)
	}
	rows, err := t.tx.QueryContext(ctx,
		`SELECT id, hash FROM tree_nodes WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
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
		h, ok := found[args[i].(int64)]
		if !ok {
			return nil, fmt.Errorf("%w: tree node (level %d, index %d)", ledger.ErrNotFound, ids[i].Level, ids[i].Index)
		}
		out[i] = h
	}
	return out, nil
}

func (t *Tx) PutNodes(ctx context.Context, nodes []ledger.Node) error {
	stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO tree_nodes (id, hash) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, n := range nodes {
		if _, err := stmt.ExecContext(ctx, ledger.NodeKey(n.ID), n.Hash); err != nil {
			return fmt.Errorf("tree node (level %d, index %d): %w", n.ID.Level, n.ID.Index, err)
		}
	}
	return nil
}

const checkpointColumns = `size, root, note, created_at`

func scanCheckpoint(sc interface{ Scan(...any) error }) (ledger.Checkpoint, error) {
	var c ledger.Checkpoint
	var size int64
	var created string
	err := sc.Scan(&size, &c.Root, &c.Note, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ledger.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	c.Size = uint64(size)
	c.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return c, nil
}

func (t *Tx) LatestCheckpoint(ctx context.Context) (ledger.Checkpoint, error) {
	return scanCheckpoint(t.queryRow(ctx, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size DESC LIMIT 1`))
}

func (t *Tx) InsertCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)`,
		int64(c.Size), c.Root, c.Note, c.CreatedAt.UTC().Format(time.RFC3339Nano))
	return err
}

func (t *Tx) ScanCheckpoints(ctx context.Context, fn func(ledger.Checkpoint) error) error {
	return each(ctx, t.tx, scanCheckpoint, fn, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size`)
}

func (t *Tx) Cursor(ctx context.Context, name string) (uint64, error) {
	var pos int64
	err := t.queryRow(ctx, `SELECT position FROM cursors WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ledger.ErrNotFound
	}
	return uint64(pos), err
}

// SaveCursor stamps updated_at with SQLite's clock, as RFC 3339 UTC like
// the other timestamps of the file.
func (t *Tx) SaveCursor(ctx context.Context, name string, position uint64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`, name, int64(position))
	return err
}
