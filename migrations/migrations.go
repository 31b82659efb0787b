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
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite returns the SQLite migrations as a filesystem rooted at their directory.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres returns the PostgreSQL migrations, for schema dicomseal.
func Postgres() fs.FS { return sub("postgres") }

// Latest is the highest migration version in fsys: the schema version a
// binary needs.
func Latest(fsys fs.FS) int64 {
	var latest int64
	names, _ := fs.Glob(fsys, "*.sql")
	for _, name := range names {
		digits, _, _ := strings.Cut(name, "_")
		if v, err := strconv.ParseInt(digits, 10, 64); err == nil && v > latest {
			latest = v
		}
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
