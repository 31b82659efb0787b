package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/auth/authtest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/catalog/catalogtest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity/fixitytest"
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

func TestCatalogConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Store { return open(t, filepath.Join(t.TempDir(), "ledger.db")) })
}

func TestFixityStoreConformance(t *testing.T) {
	fixitytest.Run(t, open(t, filepath.Join(t.TempDir(), "ledger.db")))
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

// The audit log's file has its own schema: the log's tables and its index
// of events, nothing of custody; a query by time reads the index of times.
func TestAuditSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := sqlite.OpenAudit(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if got := strings.Join(tables, " "); got != "batches checkpoints compatibility cursors entries events goose_db_version subject_links subject_map_nodes tree_nodes" {
		t.Fatalf("audit.db tables: %s", got)
	}
	var plan, detail string
	var id, parent, notused int
	if err := raw.QueryRow(`EXPLAIN QUERY PLAN SELECT idx FROM events WHERE time_ms >= 1 AND time_ms <= 2 AND idx >= 0 ORDER BY idx LIMIT 10`).Scan(&id, &parent, &notused, &detail); err != nil {
		t.Fatal(err)
	}
	plan = detail
	if !strings.Contains(plan, "events_by_time") {
		t.Fatalf("a query by time does not use the index of times: %s", plan)
	}
}

// A log whose key changed (the audit log, once signed by the custody log
// key): the previous key's batches and checkpoints are accepted up to the
// first batch or checkpoint the log's own key signed, and never after.
func TestAuditAcrossAKeyChange(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	b := open(t, path)
	oldS, oldV := ledgertest.LogKey(t)
	newS, newV := ledgertest.LogKey(t)
	rec := func(n int) []ledger.Record {
		return []ledger.Record{{Kind: "audit", Subject: "a", Body: []byte(fmt.Sprintf(`{"v":1,"kind":"audit","n":%d}`, n))}}
	}
	before := ledger.New(b, ledgertest.Origin, oldS, oldV)
	if _, err := before.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := before.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	own := ledger.New(b, ledgertest.Origin, newS, newV)
	own.Handover = oldS
	if _, err := own.Append(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	audit := func() *ledger.AuditReport {
		rep, err := ledger.Audit(ctx, b, ledgertest.Origin, newV, ledger.AuditOptions{Previous: oldV})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// The own key's batch is there but no checkpoint of it yet: serve
	// publishes the handover at once, so that reads as a rewrite.
	if rep := audit(); rep.OK() || !strings.Contains(rep.Findings[len(rep.Findings)-1].What, "no checkpoint is signed by the log's own key") {
		t.Fatalf("before the handover checkpoint: %v", rep.Findings)
	}
	if _, _, err := own.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	if rep := audit(); !rep.OK() {
		t.Fatalf("the change itself: %v", rep.Findings)
	}
	// A holder of the previous key signs on after the handover: caught,
	// batch and checkpoint.
	if _, err := before.Append(ctx, rec(2)); err != nil {
		t.Fatal(err)
	}
	before.Integrate(ctx)
	rep := audit()
	var found []string
	for _, f := range rep.Findings {
		found = append(found, f.String())
	}
	if all := strings.Join(found, "; "); rep.OK() || rep.Findings[0].Index != 2 ||
		!strings.Contains(all, "batch of 1 entries: signature does not verify") || !strings.Contains(all, "checkpoint at tree size 3") {
		t.Fatalf("a batch of the previous key after the own key's: %v", rep.Findings)
	}
}

// The custody ledger and the audit log number their own migrations from 8
// alike, so a version cannot tell one file from the other: each open
// refuses the other kind's file, before migrating anything into it.
func TestCustodyAndAuditFilesAreNotMistaken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	custody, audit := filepath.Join(dir, "ledger.db"), filepath.Join(dir, "audit.db")
	for _, open := range []func() (*sqlite.DB, error){
		func() (*sqlite.DB, error) { return sqlite.Open(ctx, custody) },
		func() (*sqlite.DB, error) { return sqlite.OpenAudit(ctx, audit) },
	} {
		db, err := open()
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if db, err := sqlite.OpenAudit(ctx, custody); err == nil || !strings.Contains(err.Error(), "custody ledger") {
		db.Close()
		t.Fatalf("the custody ledger opened as an audit log: %v", err)
	}
	if db, err := sqlite.Open(ctx, audit); err == nil || !strings.Contains(err.Error(), "audit log") {
		db.Close()
		t.Fatalf("the audit log opened as the custody ledger: %v", err)
	}
}
