// Package sqlite is the embedded custody ledger: one SQLite file in WAL mode
// with synchronous=FULL, so that an append that returns is on disk. Every
// write transaction starts with BEGIN IMMEDIATE and reads the log head
// inside it, so another process appending to the same file (a CLI, a second
// server) can never make two entries share an index.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/migrations"
)

// DB is an open embedded ledger.
type DB struct {
	db *sql.DB
}

// Open opens (creating and migrating if needed) the ledger file at path.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger: open %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return &DB{db: db}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite())
	if err != nil {
		return fmt.Errorf("sqlite ledger: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite ledger: migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", ledger.ErrUnavailable, err)
	}
	return nil
}

// AppendIngest appends an ingest entry and claims its SOP Instance UID in
// one transaction. If the UID is already claimed it appends nothing and
// returns *ledger.InstanceExistsError naming the existing entry.
func (d *DB) AppendIngest(ctx context.Context, rec ledger.Record) (ledger.Entry, error) {
	var out ledger.Entry
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		existing, err := instanceEntry(ctx, tx, rec.SOPInstanceUID)
		if err == nil {
			return &ledger.InstanceExistsError{Existing: existing}
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		if out, err = appendEntry(ctx, tx, rec); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO instances (sop_instance_uid, entry_idx, file_sha256) VALUES (?, ?, ?)`,
			rec.SOPInstanceUID, out.Index, rec.FileSHA256); err != nil {
			return fmt.Errorf("claim instance: %w", err)
		}
		if id := rec.Identity; id != nil {
			if _, err := tx.ExecContext(ctx,
				`INSERT OR REPLACE INTO identity (file_sha256, salt, patient_name, patient_id, patient_birth_date) VALUES (?, ?, ?, ?, ?)`,
				rec.FileSHA256, id.Salt, id.PatientName, id.PatientID, id.PatientBirthDate); err != nil {
				return fmt.Errorf("record identity: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// RecordIncident appends an incident entry (a conflict or an integrity
// failure) the first time one is seen for its kind, SOP Instance UID and
// incident key; repeats only raise its count. It returns the entry and
// how often the incident has now been seen.
func (d *DB) RecordIncident(ctx context.Context, rec ledger.Record, seenAt time.Time) (ledger.Entry, int64, error) {
	var out ledger.Entry
	var count int64
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		var idx int64
		err := tx.QueryRowContext(ctx,
			`SELECT entry_idx, count FROM incidents WHERE kind = ? AND sop_instance_uid = ? AND incident_key = ?`,
			string(rec.Kind), rec.SOPInstanceUID, rec.IncidentKey).Scan(&idx, &count)
		switch {
		case err == nil:
			count++
			if _, err := tx.ExecContext(ctx,
				`UPDATE incidents SET count = ?, last_seen = ? WHERE kind = ? AND sop_instance_uid = ? AND incident_key = ?`,
				count, seenAt.UTC().Format(time.RFC3339Nano), string(rec.Kind), rec.SOPInstanceUID, rec.IncidentKey); err != nil {
				return fmt.Errorf("count incident: %w", err)
			}
			out, err = entryAt(ctx, tx, uint64(idx))
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("find incident: %w", err)
		}
		if out, err = appendEntry(ctx, tx, rec); err != nil {
			return err
		}
		count = 1
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO incidents (kind, sop_instance_uid, incident_key, entry_idx, count, last_seen) VALUES (?, ?, ?, ?, 1, ?)`,
			string(rec.Kind), rec.SOPInstanceUID, rec.IncidentKey, out.Index, seenAt.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("record incident: %w", err)
		}
		return nil
	})
	return out, count, err
}

// InstanceBySOP returns the ingest entry that claimed uid.
func (d *DB) InstanceBySOP(ctx context.Context, uid string) (ledger.Entry, error) {
	return instanceEntry(ctx, d.db, uid)
}

// IngestBySHA256 returns the ingest entry for the object with that digest.
func (d *DB) IngestBySHA256(ctx context.Context, sha256Hex string) (ledger.Entry, error) {
	return scanEntry(d.db.QueryRowContext(ctx,
		`SELECT `+entryColumns+` FROM entries WHERE file_sha256 = ? AND kind = ? ORDER BY idx LIMIT 1`,
		sha256Hex, string(ledger.KindIngest)))
}

// Entry returns the entry at index idx.
func (d *DB) Entry(ctx context.Context, idx uint64) (ledger.Entry, error) {
	return entryAt(ctx, d.db, idx)
}

// inTx runs fn in a BEGIN IMMEDIATE transaction and commits it; the commit
// is durable (synchronous=FULL) when inTx returns nil.
func (d *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", ledger.ErrUnavailable, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %v", ledger.ErrUnavailable, err)
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const entryColumns = `idx, kind, sop_instance_uid, file_sha256, body, leaf_hash`

func scanEntry(row *sql.Row) (ledger.Entry, error) {
	var e ledger.Entry
	var idx int64
	var kind string
	var leaf []byte
	err := row.Scan(&idx, &kind, &e.SOPInstanceUID, &e.FileSHA256, &e.Body, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ledger.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("%w: read entry: %v", ledger.ErrUnavailable, err)
	}
	if len(leaf) != len(e.LeafHash) {
		return e, fmt.Errorf("sqlite ledger: entry %d has a %d-byte leaf hash", idx, len(leaf))
	}
	e.Index, e.Kind = uint64(idx), ledger.Kind(kind)
	copy(e.LeafHash[:], leaf)
	return e, nil
}

func entryAt(ctx context.Context, q queryer, idx uint64) (ledger.Entry, error) {
	return scanEntry(q.QueryRowContext(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx = ?`, int64(idx)))
}

func instanceEntry(ctx context.Context, q queryer, uid string) (ledger.Entry, error) {
	return scanEntry(q.QueryRowContext(ctx,
		`SELECT e.idx, e.kind, e.sop_instance_uid, e.file_sha256, e.body, e.leaf_hash
		 FROM instances i JOIN entries e ON e.idx = i.entry_idx WHERE i.sop_instance_uid = ?`, uid))
}

// appendEntry writes rec at the next index. The head is read inside the
// caller's IMMEDIATE transaction, which holds SQLite's write lock, so the
// index is gap-free and unique even across processes.
func appendEntry(ctx context.Context, tx *sql.Tx, rec ledger.Record) (ledger.Entry, error) {
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM entries`).Scan(&next); err != nil {
		return ledger.Entry{}, fmt.Errorf("read log head: %w", err)
	}
	leaf := ledger.LeafHash(rec.Body)
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO entries (idx, kind, sop_instance_uid, file_sha256, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)`,
		next, string(rec.Kind), rec.SOPInstanceUID, rec.FileSHA256, rec.Body, leaf[:]); err != nil {
		return ledger.Entry{}, fmt.Errorf("append entry: %w", err)
	}
	return ledger.Entry{
		Index: uint64(next), Kind: rec.Kind, SOPInstanceUID: rec.SOPInstanceUID,
		FileSHA256: rec.FileSHA256, Body: rec.Body, LeafHash: leaf,
	}, nil
}
