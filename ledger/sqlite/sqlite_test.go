package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/auth/authtest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func harness(t testing.TB) ledgertest.Instance {
	path := filepath.Join(t.TempDir(), "ledger.db")
	return ledgertest.Instance{
		Backend: open(t, path),
		Reopen:  func() ledger.Backend { return open(t, path) },
		Tamper:  func(stmt string, args ...any) { sqlitetest.Tamper(t, path, stmt, args...) },
	}
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, harness)
}

func TestTokenStoreConformance(t *testing.T) {
	authtest.Run(t, func(t *testing.T) auth.Store { return open(t, filepath.Join(t.TempDir(), "ledger.db")) })
}

// The triggers refuse to rewrite history through an ordinary connection.
func TestTablesAreAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	b := open(t, path)
	s, v := ledgertest.LogKey(t)
	l := custody.New(ledger.New(b, ledgertest.Origin, s, v))
	if _, err := l.AppendIngest(context.Background(), custody.Record{Kind: custody.KindIngest, Subject: "1.2",
		FileSHA256: strings.Repeat("a", 64), Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, stmt := range []string{
		`UPDATE entries SET body = x'00' WHERE idx = 0`,
		`DELETE FROM entries WHERE idx = 0`,
		`UPDATE instances SET file_sha256 = 'b' WHERE sop_instance_uid = '1.2'`,
		`DELETE FROM instances`,
		`UPDATE batches SET signature = x'00'`,
		`DELETE FROM batches`,
		`UPDATE tree_nodes SET hash = x'00'`,
		`DELETE FROM tree_nodes`,
		`UPDATE checkpoints SET note = x'00'`,
		`DELETE FROM checkpoints`,
	} {
		if _, err := raw.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want the append-only trigger", stmt, err)
		}
	}
}

// A data directory whose name holds URI characters opens the file it names.
func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run#1?x=%41")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	open(t, filepath.Join(dir, "ledger.db"))
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Fatalf("the ledger was not created where asked: %v", err)
	}
}

// The database holds the identity table (patient names): owner-only.
func TestNewFileIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	open(t, path)
	for _, p := range []string{path, path + "-wal"} {
		info, err := os.Stat(p)
		if err != nil {
			continue // the WAL appears with the first write
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, info.Mode().Perm())
		}
	}
}
