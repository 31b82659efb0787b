// Package migrations holds the ledger schema as SQL files, embedded so that
// the binary carries its own schema. Files follow goose's format and are
// applied by `dicomseal migrate` (and, for the embedded ledger, on open).
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing/fstest"
)

//go:embed sqlite/*.sql postgres/*.sql audit-sqlite/*.sql audit-postgres/*.sql
var files embed.FS

// SQLite returns the SQLite migrations as a filesystem rooted at their directory.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres returns the PostgreSQL migrations, for schema dicomseal.
func Postgres() fs.FS { return sub("postgres") }

// The audit log's schema shares the custody log's history up to the
// migration that gave it its own (audit.db and schema dicomseal_audit were
// made with the custody migrations until then), and goes its own way after.
var (
	auditSQLite   = overlay(sub("sqlite"), 7, sub("audit-sqlite"))
	auditPostgres = overlay(sub("postgres"), 9, sub("audit-postgres"))
)

// AuditSQLite returns the migrations of the embedded audit log (audit.db).
func AuditSQLite() fs.FS { return auditSQLite }

// AuditPostgres returns the migrations of schema dicomseal_audit.
func AuditPostgres() fs.FS { return auditPostgres }

// overlay is shared's migrations up to version upTo, then own's: one
// directory as goose reads it.
func overlay(shared fs.FS, upTo int64, own fs.FS) fs.FS {
	m := fstest.MapFS{} // a map-backed fs.FS; nothing of package testing
	add := func(fsys fs.FS, keep func(int64) bool) {
		names, _ := fs.Glob(fsys, "*.sql")
		for _, name := range names {
			if !keep(version(name)) {
				continue
			}
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				panic(err) // embedded at build time
			}
			m[name] = &fstest.MapFile{Data: b, Mode: 0o444}
		}
	}
	add(shared, func(v int64) bool { return v <= upTo })
	add(own, func(v int64) bool { return v > upTo })
	return m
}

func version(name string) int64 {
	digits, _, _ := strings.Cut(name, "_")
	v, _ := strconv.ParseInt(digits, 10, 64)
	return v
}

// Latest is the highest migration version in fsys: the schema version a
// binary needs.
func Latest(fsys fs.FS) int64 {
	var latest int64
	names, _ := fs.Glob(fsys, "*.sql")
	for _, name := range names {
		latest = max(latest, version(name))
	}
	return latest
}

// ErrTooNew: the database's schema can only be used by a newer dicomseal.
var ErrTooNew = errors.New("the dicomseal schema is newer than this binary can use")

// CheckCompatible tells whether a binary with the migrations fsys may use
// a schema at version whose compatibility table says requires (0: the
// schema predates that table). A newer schema is fine as long as it does
// not require more than this binary knows: replicas roll one at a time.
func CheckCompatible(fsys fs.FS, version, requires int64) error {
	if latest := Latest(fsys); requires > latest {
		return fmt.Errorf("%w: schema version %d can only be used by a dicomseal that knows migration %d, and this one knows up to %d: upgrade this binary (it would misread entries written by the newer one)",
			ErrTooNew, version, requires, latest)
	}
	return nil
}

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded directories are fixed at build time
	}
	return s
}
