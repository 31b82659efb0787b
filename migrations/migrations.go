// Package migrations holds the ledger schema as SQL files, embedded so that
// the binary carries its own schema. Files follow goose's format and are
// applied by `dicomseal migrate` (and, for the embedded ledger, on open).
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

// SQLite returns the SQLite migrations as a filesystem rooted at their directory.
func SQLite() fs.FS {
	sub, err := fs.Sub(sqliteFiles, "sqlite")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
