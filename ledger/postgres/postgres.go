// Package postgres is the production ledger backend: PostgreSQL through a
// pgx pool, in schema dicomseal. Every write transaction first takes one
// transaction-scoped advisory lock, then reads the log head: appends from
// any number of dicomseal processes are serialised and gap-free, and the
// lock cannot leak through a pooler or outlive its transaction (a session
// lock would). Reads run in read-only repeatable-read snapshots. The
// package holds SQL only — the log's contract (tx.go), the custody index's
// (custody.go), the token store (tokens.go), the DICOMweb search index
// (catalog.go) and the migrations with their
// roles and grants (migrate.go); the logic is in packages ledger and
// custody.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/migrations"
)

// Schema holds the custody ledger; AuditSchema the audit log, the same
// tables under their own origin.
const (
	Schema      = "dicomseal"
	AuditSchema = "dicomseal_audit"
)

// writeLock is the advisory lock key all ledger writers share.
var writeLock = lockKey("dicomseal.ledger.write")

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// ErrNotMigrated: the database has no dicomseal schema yet.
var ErrNotMigrated = errors.New("the database has no dicomseal schema: run `dicomseal migrate` with the owner's credentials")

// ErrSchemaOutdated: the schema is older than this binary (an upgrade
// whose `dicomseal migrate` has not run yet). A newer schema is accepted,
// so replicas can be upgraded one at a time after migrating.
var ErrSchemaOutdated = errors.New("the dicomseal schema is older than this binary: run `dicomseal migrate` with the owner's credentials")

// DB is an open PostgreSQL ledger backend.
type DB struct {
	pool *pgxpool.Pool
}

var _ ledger.Backend = (*DB)(nil)

// Open connects to url (a postgres:// URL or key=value DSN) and checks that
// the schema is migrated. It never migrates: that is `dicomseal migrate`.
func Open(ctx context.Context, url string) (*DB, error) { return OpenSchema(ctx, url, Schema) }

// OpenSchema is Open for one of the two schemas.
func OpenSchema(ctx context.Context, url, schema string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres ledger: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "dicomseal"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres ledger: %w", err)
	}
	var migrated bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+".checkpoints").Scan(&migrated); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ledger: %w", err)
	}
	if !migrated {
		pool.Close()
		return nil, ErrNotMigrated
	}
	var version int64
	if err := pool.QueryRow(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ledger: reading the schema version (was it migrated by an older dicomseal? run `dicomseal migrate`): %w", err)
	}
	if need := migrations.Latest(schemaMigrations(schema)); version < need {
		pool.Close()
		return nil, fmt.Errorf("%w: schema %s is at version %d, this dicomseal needs %d", ErrSchemaOutdated, schema, version, need)
	}
	var requires int64
	if err := pool.QueryRow(ctx, `SELECT MAX(requires) FROM compatibility`).Scan(&requires); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ledger: reading the schema's compatibility: %w", err)
	}
	if err := migrations.CheckCompatible(schemaMigrations(schema), version, requires); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ledger: %s: %w", schema, err)
	}
	return &DB{pool: pool}, nil
}

// schemaMigrations are the migrations of one of the two schemas.
func schemaMigrations(schema string) fs.FS {
	if schema == AuditSchema {
		return migrations.AuditPostgres()
	}
	return migrations.Postgres()
}

// Close closes the pool.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// Write runs fn in a read-committed transaction that holds the ledger's
// write lock from its first statement; every later statement sees what
// writers before it committed.
func (d *DB) Write(ctx context.Context, fn func(ledger.Tx) error) error {
	return d.run(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, true, fn)
}

// Read runs fn in a read-only repeatable-read snapshot.
func (d *DB) Read(ctx context.Context, fn func(ledger.Tx) error) error {
	return d.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, false, fn)
}

func (d *DB) run(ctx context.Context, opts pgx.TxOptions, lock bool, fn func(ledger.Tx) error) error {
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres ledger: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if lock {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLock); err != nil {
			return fmt.Errorf("postgres ledger: write lock: %w", err)
		}
	}
	t := &Tx{tx: tx}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flush(ctx); err != nil {
		return fmt.Errorf("postgres ledger: write: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres ledger: commit: %w", err)
	}
	return nil
}

// Privileges tells whether the connection is a superuser or owns the
// ledger tables: both work, but a service connected so could disable the
// triggers that refuse to rewrite history, so serve warns loudly.
func (d *DB) Privileges(ctx context.Context) (user string, superuser, owner bool, err error) {
	err = d.pool.QueryRow(ctx, `
		SELECT current_user, r.rolsuper,
		       pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = 'dicomseal' AND tablename = 'entries'), 'USAGE')
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &superuser, &owner)
	return user, superuser, owner, err
}

// SyncStandbys returns synchronous_standby_names: empty when commits do not
// wait for any standby, so a failover may lose what a checkpoint covers.
func (d *DB) SyncStandbys(ctx context.Context) (string, error) {
	var names string
	err := d.pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names')`).Scan(&names)
	return names, err
}
