package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/dicomseal/dicomseal/ledger"
)

// Tx implements ledger.Tx in SQL; it holds no logic of its own.
type Tx struct {
	tx pgx.Tx
}

var _ ledger.Tx = (*Tx)(nil)

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
	return scanEntry(t.tx.QueryRow(ctx, `SELECT `+entryColumns+` FROM entries WHERE `+where, args...))
}

func (t *Tx) NextIndex(ctx context.Context) (uint64, error) {
	var next int64
	err := t.tx.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM entries`).Scan(&next)
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
	return each(ctx, t.tx, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(from), int64(to))
}

// ScanSubject scans one subject's entries through the subject index.
func (t *Tx) ScanSubject(ctx context.Context, subject string, fn func(ledger.Entry) error) error {
	return each(ctx, t.tx, scanEntry, fn, `SELECT `+entryColumns+` FROM entries WHERE subject = $1 ORDER BY idx`, subject)
}

// each runs a query and calls fn, in order, on every row read by scan;
// fn's error stops it and is returned unchanged.
func each[T any](ctx context.Context, tx pgx.Tx, scan func(pgx.Row) (T, error), fn func(T) error, query string, args ...any) error {
	rows, err := tx.Query(ctx, query, args...)
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

// InstanceEntry returns the latest entry attesting bytes of uid (see Kind.Attests).
func (t *Tx) InstanceEntry(ctx context.Context, uid string) (ledger.Entry, error) {
	return t.entry(ctx, `subject = $1 AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx DESC LIMIT 1`, uid)
}

func (t *Tx) Identity(ctx context.Context, sha string) (*ledger.Identity, error) {
	var id ledger.Identity
	err := t.tx.QueryRow(ctx, `SELECT salt, patient_name, patient_id, patient_birth_date, correction_reason FROM identity WHERE file_sha256 = $1`, sha).
		Scan(&id.Salt, &id.PatientName, &id.PatientID, &id.PatientBirthDate, &id.CorrectionReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.ErrNotFound
	}
	return &id, err
}

func (t *Tx) IngestBySHA256(ctx context.Context, sha string) (ledger.Entry, error) {
	return t.entry(ctx, `file_sha256 = $1 AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx LIMIT 1`, sha)
}

func (t *Tx) InstanceEntries(ctx context.Context, uids []string) (map[string]ledger.Entry, error) {
	out := make(map[string]ledger.Entry, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(ctx,
		`SELECT e.idx, e.kind, e.subject, e.file_sha256, e.body, e.leaf_hash
		 FROM instances i JOIN entries e ON e.idx = i.entry_idx WHERE i.sop_instance_uid = ANY($1)`, uids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out[e.Subject] = e
	}
	return out, rows.Err()
}

func (t *Tx) Incidents(ctx context.Context, keys []ledger.IncidentKey) (map[ledger.IncidentKey]ledger.Incident, error) {
	out := make(map[ledger.IncidentKey]ledger.Incident, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	kinds, uids, ks := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		kinds[i], uids[i], ks[i] = string(k.Kind), k.Subject, k.Key
	}
	rows, err := t.tx.Query(ctx,
		`SELECT i.kind, i.sop_instance_uid, i.incident_key, i.entry_idx, i.count, i.last_seen
		 FROM incidents i JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(kind, uid, key)
		   ON i.kind = k.kind AND i.sop_instance_uid = k.uid AND i.incident_key = k.key`, kinds, uids, ks)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var in ledger.Incident
		var kind string
		var idx int64
		if err := rows.Scan(&kind, &in.Subject, &in.Key, &idx, &in.Count, &in.LastSeen); err != nil {
			return nil, err
		}
		in.Kind, in.Index = ledger.Kind(kind), uint64(idx)
		out[in.IncidentKey] = in
	}
	return out, rows.Err()
}

// AppendRows sends every write of a batch in one pipelined round trip.
func (t *Tx) AppendRows(ctx context.Context, rows ledger.Rows) error {
	b := &pgx.Batch{}
	for _, e := range rows.Entries {
		b.Queue(`INSERT INTO entries (idx, kind, subject, file_sha256, body, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6)`,
			int64(e.Index), string(e.Kind), e.Subject, e.FileSHA256, e.Body, e.LeafHash[:])
	}
	for _, c := range rows.Claims {
		b.Queue(`INSERT INTO instances (sop_instance_uid, entry_idx, file_sha256) VALUES ($1, $2, $3)`,
			c.SOPInstanceUID, int64(c.Index), c.FileSHA256)
	}
	for _, id := range rows.Identities {
		b.Queue(`INSERT INTO identity (file_sha256, salt, patient_name, patient_id, patient_birth_date, correction_reason) VALUES ($1, $2, $3, $4, $5, $6)
		         ON CONFLICT (file_sha256) DO UPDATE SET salt = excluded.salt, patient_name = excluded.patient_name,
		           patient_id = excluded.patient_id, patient_birth_date = excluded.patient_birth_date,
		           correction_reason = excluded.correction_reason`,
			id.FileSHA256, id.Salt, id.PatientName, id.PatientID, id.PatientBirthDate, id.CorrectionReason)
	}
	for _, in := range rows.Incidents {
		b.Queue(`INSERT INTO incidents (kind, sop_instance_uid, incident_key, entry_idx, count, last_seen) VALUES ($1, $2, $3, $4, $5, $6)
		         ON CONFLICT (kind, sop_instance_uid, incident_key) DO UPDATE SET count = excluded.count, last_seen = excluded.last_seen`,
			string(in.Kind), in.Subject, in.Key, int64(in.Index), in.Count, in.LastSeen.UTC())
	}
	if b.Len() == 0 {
		return nil
	}
	return t.tx.SendBatch(ctx, b).Close()
}

func (t *Tx) InsertBatch(ctx context.Context, b ledger.Batch) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO batches (first_idx, leaves, signature) VALUES ($1, $2, $3)`, int64(b.First), b.PackedLeaves(), b.Signature)
	return err
}

func (t *Tx) ScanBatches(ctx context.Context, from uint64, fn func(ledger.Batch) error) error {
	return each(ctx, t.tx, scanBatch, fn, `SELECT first_idx, leaves, signature FROM batches WHERE first_idx >= $1 ORDER BY first_idx`, int64(from))
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
	rows, err := t.tx.Query(ctx, `SELECT id, hash FROM tree_nodes WHERE id = ANY($1)`, keys)
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
	return scanCheckpoint(t.tx.QueryRow(ctx, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size DESC LIMIT 1`))
}

func (t *Tx) InsertCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
		int64(c.Size), c.Root, c.Note, c.CreatedAt.UTC())
	return err
}

func (t *Tx) ScanCheckpoints(ctx context.Context, fn func(ledger.Checkpoint) error) error {
	return each(ctx, t.tx, scanCheckpoint, fn, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY size`)
}
