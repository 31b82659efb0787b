// Package sqlitetest helps tests open an embedded ledger and act on its
// file behind the service's back.
package sqlitetest

import (
	"context"
	"database/sql"
	"testing"

	_ "modernc.org/sqlite" // the driver the ledger uses

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
)

// Tamper runs stmt against the database file at path the way someone
// holding the file can: its append-only triggers dropped first.
func Tamper(t testing.TB, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		triggers = append(triggers, n)
	}
	rows.Close()
	for _, n := range triggers {
		if _, err := db.Exec(`DROP TRIGGER ` + n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("tamper %q: %v", stmt, err)
	}
}

// Log opens a log on a new embedded audit log file at path (the log's
// tables and the audit index), signed with a test key, through wrap (nil:
// the backend itself), closed with the test.
func Log(t testing.TB, path string, wrap func(ledger.Backend) ledger.Backend) *ledger.Log {
	t.Helper()
	db, err := sqlite.OpenAudit(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var b ledger.Backend = db
	if wrap != nil {
		b = wrap(db)
	}
	s, v := ledgertest.LogKey(t)
	l := ledger.New(b, ledgertest.Origin, s, v)
	t.Cleanup(func() { l.Close() })
	return l
}
