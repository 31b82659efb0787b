// Package sqlite is the embedded ledger backend: one SQLite file in WAL mode
// with synchronous=FULL, so that a commit that returns is on disk. Writes go
// through one connection and start with BEGIN IMMEDIATE, which takes
// SQLite's write lock before the log head is read, so another process
// appending to the same file (a CLI, a second server) can never make two
// entries share an index. Reads use a separate pool and never block writes.
// It implements the log's contract (ledger.Tx, tx.go), the custody index's
// (custody.Tx, custody.go), the token store (auth.Store, tokens.go) and the
// DICOMweb search index (catalog.Store, catalog.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/migrations"
)

// DB is an open embedded ledger backend.
type DB struct {
	write *sql.DB
	read  *sql.DB
	// readStmts caches prepared statements of the read pool. The write
	// pool has one connection, held by the transaction that would prepare:
	// it runs its (bulk, batched) statements directly.
	readStmts *stmts
}

var _ ledger.Backend = (*DB)(nil)

func dsn(path, txlock string, extra ...string) string {
	q := url.Values{}
	for _, p := range append([]string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"}, extra...) {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", txlock)
	// The path is part of a URI: '%', '?' and '#' in a directory name
	// would otherwise cut it short (and open another file).
	escaped := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.Encode()
}

// Open opens (creating and migrating if needed) the custody ledger file at
// path. A new file is created 0600 (SQLite gives its WAL and shared-memory
// files the same mode): it holds the correctable identity table.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, migrations.SQLite(), "events", "an audit log")
}

// OpenAudit opens (creating and migrating if needed) the audit log's file:
// the log's tables and the audit events index, nothing of custody.
func OpenAudit(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, migrations.AuditSQLite(), "catalog", "a custody ledger")
}

// open opens a file of schema. A file with table foreign is the other
// kind of log (what): refused before anything is migrated. Version numbers
// alone cannot tell them apart, since the two schemas share their first
// seven migrations and number their own from 8.
func open(ctx context.Context, path string, schema fs.FS, foreign, what string) (*DB, error) {
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
	w, err := sql.Open("sqlite", dsn(path, "immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger: open %s: %w", path, err)
	}
	// One writer connection: this process's writers queue in Go rather
	// than spin on SQLite's busy handler.
	w.SetMaxOpenConns(1)
	var other bool
	if err := w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`, foreign).Scan(&other); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite ledger: open %s: %w", path, err)
	}
	if other {
		w.Close()
		return nil, fmt.Errorf("sqlite ledger: %s is %s (it has table %s), not this log", path, what, foreign)
	}
	if err := migrate(ctx, w, schema); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, "deferred", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite ledger: open %s: %w", path, err)
	}
	// As many idle readers as open ones: database/sql keeps two idle by
	// default, so under concurrency every other read opened a connection,
	// applied its pragmas and parsed the schema anew, and the prepared
	// statements died with it. Bounded, but well above the cores: a scan
	// (an audit query, log verify) holds its connection for as long as it
	// runs, and must not leave token checks waiting.
	n := max(32, 8*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{write: w, read: r, readStmts: newStmts(r)}, nil
}

func migrate(ctx context.Context, db *sql.DB, schema fs.FS) error {
	if err := compatible(ctx, db, schema); err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, schema)
	if err != nil {
		return fmt.Errorf("sqlite ledger: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite ledger: migrate: %w", err)
	}
	return nil
}

// compatible refuses, before migrating, a file a newer dicomseal wrote
// entries into that this binary would misread.
func compatible(ctx context.Context, db *sql.DB, schema fs.FS) error {
	var version, requires int64
	var hasCompat bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'compatibility')`).Scan(&hasCompat)
	if err != nil {
		return fmt.Errorf("sqlite ledger: %w", err)
	}
	if !hasCompat {
		return nil // new, or older than the table: migrating is what it needs
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil {
		return fmt.Errorf("sqlite ledger: reading the schema version: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT MAX(requires) FROM compatibility`).Scan(&requires); err != nil {
		return fmt.Errorf("sqlite ledger: reading the schema's compatibility: %w", err)
	}
	if err := migrations.CheckCompatible(schema, version, requires); err != nil {
		return fmt.Errorf("sqlite ledger: %w", err)
	}
	return nil
}

// Close closes both pools.
func (d *DB) Close() error {
	d.readStmts.close()
	return errors.Join(d.write.Close(), d.read.Close())
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.read.PingContext(ctx) }

// Write runs fn in a BEGIN IMMEDIATE transaction and commits it; the
// commit is durable (synchronous=FULL) when Write returns nil.
func (d *DB) Write(ctx context.Context, fn func(ledger.Tx) error) error {
	return run(ctx, d.write, nil, nil, fn)
}

// Read runs fn in a read transaction: a consistent WAL snapshot.
func (d *DB) Read(ctx context.Context, fn func(ledger.Tx) error) error {
	return run(ctx, d.read, d.readStmts, &sql.TxOptions{ReadOnly: true}, fn)
}

func run(ctx context.Context, db *sql.DB, cache *stmts, opts *sql.TxOptions, fn func(ledger.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlite ledger: begin: %w", err)
	}
	if err := fn(&Tx{tx: tx, stmts: cache}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite ledger: commit: %w", err)
	}
	return nil
}
