package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/auth/authtest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/catalog/catalogtest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity/fixitytest"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/postgres"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/migrations"
)

var roles = pgtest.Roles

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

func newDatabase(t testing.TB) (admin, service string) {
	t.Helper()
	db := pgtest.New(t)
	return db.Admin, db.Service
}

func open(t testing.TB, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// placeholders turns ? into $1, $2, … for the shared tamper statements.
func placeholders(stmt string) string {
	var b strings.Builder
	n := 0
	for _, r := range stmt {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tamperer acts as a superuser who disables the triggers first.
func tamperer(t testing.TB, admin string) func(stmt string, args ...any) {
	return schemaTamperer(t, admin, postgres.Schema)
}

func schemaTamperer(t testing.TB, admin, schema string) func(stmt string, args ...any) {
	return func(stmt string, args ...any) {
		t.Helper()
		ctx := context.Background()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, s := range []string{`SET session_replication_role = replica`, `SET search_path = ` + schema} {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Exec(ctx, placeholders(stmt), args...); err != nil {
			t.Fatalf("tamper %q: %v", stmt, err)
		}
	}
}

func harness(t testing.TB) ledgertest.Instance {
	admin, service := newDatabase(t)
	return ledgertest.Instance{
		Backend: open(t, service),
		Reopen:  func() ledger.Backend { return open(t, service) },
		Tamper:  tamperer(t, admin),
	}
}

func TestConformance(t *testing.T) {
	pgtest.AdminURL(t)
	ledgertest.Run(t, harness)
}

func TestTokenStoreConformance(t *testing.T) {
	pgtest.AdminURL(t)
	authtest.Run(t, func(t *testing.T) auth.Store {
		_, service := newDatabase(t)
		return open(t, service)
	})
}

func TestCatalogConformance(t *testing.T) {
	pgtest.AdminURL(t)
	catalogtest.Run(t, func(t *testing.T) catalog.Store {
		_, service := newDatabase(t)
		return open(t, service)
	})
}

func TestFixityStoreConformance(t *testing.T) {
	pgtest.AdminURL(t)
	_, service := newDatabase(t)
	fixitytest.Run(t, open(t, service))
}

// The search index is the one table the service may empty (before a
// rebuild): the other correctable tables are corrected, never removed. It
// is the custody schema's alone: the audit log indexes no instances.
func TestOnlyTheCatalogIsEmptiable(t *testing.T) {
	_, service := newDatabase(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `SET search_path = dicomseal`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"catalog", "tokens", "identity", "incidents", "cursors"} {
		_, err := c.Exec(ctx, `DELETE FROM `+table)
		if table == "catalog" && err != nil {
			t.Errorf("the service cannot empty the catalog: %v", err)
		}
		if table != "catalog" && (err == nil || !strings.Contains(err.Error(), "42501")) {
			t.Errorf("DELETE FROM %s: error %v, want permission denied", table, err)
		}
	}
	var inAudit bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('dicomseal_audit.catalog') IS NOT NULL`).Scan(&inAudit); err != nil || inAudit {
		t.Fatalf("schema dicomseal_audit has a catalog table (%v)", err)
	}
}

// The audit log lives in a schema of its own: every tamper case there is
// caught too.
func TestAuditSchemaTamperMatrix(t *testing.T) {
	pgtest.AdminURL(t)
	ledgertest.RunTamperMatrix(t, func(t testing.TB) ledgertest.Instance {
		admin, service := newDatabase(t)
		openAudit := func() ledger.Backend {
			db, err := postgres.OpenSchema(context.Background(), service, postgres.AuditSchema)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
		return ledgertest.Instance{Backend: openAudit(), Reopen: openAudit, Tamper: schemaTamperer(t, admin, postgres.AuditSchema), Plain: true}
	})
}

// The service role may only read and append history; even the owner is
// stopped by the triggers.
func TestHistoryIsAppendOnly(t *testing.T) {
	admin, service := newDatabase(t)
	ctx := context.Background()
	s, v := ledgertest.LogKey(t)
	l := custody.New(ledger.New(open(t, service), ledgertest.Origin, s, v))
	// Catalogued under a study and a patient: chained, so that the
	// subject tables hold rows too.
	if _, err := l.AppendIngest(ctx, custody.Record{Kind: custody.KindIngest, Subject: "1.2",
		FileSHA256: strings.Repeat("a", 64), Body: []byte("{}"),
		Catalog: &catalog.Entry{SOPInstanceUID: "1.2", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", PatientID: "P"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	statements := []string{}
	for _, table := range []string{"entries", "instances", "batches", "tree_nodes", "checkpoints", "subject_links", "subject_map_nodes"} {
		statements = append(statements,
			`UPDATE `+table+` SET `+map[string]string{"entries": "body", "instances": "file_sha256", "batches": "signature",
				"tree_nodes": "hash", "checkpoints": "note", "subject_links": "leaf_hash", "subject_map_nodes": "hash"}[table]+` = NULL`,
			`DELETE FROM `+table, `TRUNCATE `+table+` CASCADE`)
	}
	statements = append(statements, `CREATE TABLE sneaky (x int)`, `DROP TRIGGER entries_append_only ON entries`)

	for _, who := range []struct {
		name, url, setRole, want string
	}{
		{"service role", service, "", "42501"}, // insufficient_privilege: permission denied, must be owner
		{"owner", admin, roles.Owner, "append-only"},
	} {
		for _, stmt := range statements {
			if who.name == "owner" && (strings.HasPrefix(stmt, "CREATE") || strings.HasPrefix(stmt, "DROP")) {
				continue // the owner may change the schema: that is what migrations are
			}
			c, err := pgx.Connect(ctx, who.url)
			if err != nil {
				t.Fatal(err)
			}
			c.Exec(ctx, `SET search_path = dicomseal`)
			if who.setRole != "" {
				if _, err := c.Exec(ctx, `SET ROLE `+pgx.Identifier{who.setRole}.Sanitize()); err != nil {
					t.Fatal(err)
				}
			}
			_, err = c.Exec(ctx, stmt)
			c.Close(ctx)
			if err == nil || !strings.Contains(err.Error(), who.want) {
				t.Errorf("%s: %s: error %v, want %q", who.name, stmt, err, who.want)
			}
		}
	}
	if rep, err := ledger.Audit(ctx, open(t, service), ledgertest.Origin, v, ledger.AuditOptions{}); err != nil || !rep.OK() || rep.Entries != 2 || rep.Subjects != 2 {
		t.Fatalf("history changed: %v %+v", err, rep)
	}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	admin, service := newDatabase(t) // migrated once already
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- postgres.Migrate(ctx, admin, roles, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var applied int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM dicomseal.goose_db_version WHERE version_id > 0 AND is_applied`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations.Postgres(), "*.sql")
	if applied != len(files) {
		t.Fatalf("%d migrations recorded, want %d", applied, len(files))
	}
	var owner string
	c.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE schemaname = 'dicomseal' AND tablename = 'entries'`).Scan(&owner)
	if owner != roles.Owner {
		t.Fatalf("entries owned by %q, want %q", owner, roles.Owner)
	}
	db := open(t, service)
	user, super, isOwner, err := db.Privileges(ctx)
	if err != nil || user != roles.Service || super || isOwner {
		t.Fatalf("service connection: user %q superuser %v owner %v err %v", user, super, isOwner, err)
	}
	if _, err := postgres.Open(ctx, pgtest.NewEmpty(t).Admin); err != postgres.ErrNotMigrated {
		t.Fatalf("Open on an unmigrated database: %v, want ErrNotMigrated", err)
	}
}

// A subject's entries come in log order straight from an index, in both
// schemas, so a scan stopped after `limit` entries reads about that many
// rather than fetching and sorting all of a busy actor's entries.
func TestSubjectScanNeedsNoSort(t *testing.T) {
	admin, _ := newDatabase(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, schema := range []string{"dicomseal", "dicomseal_audit"} {
		// Small test tables favour sequential and bitmap scans; forbid them to see
		// which index the planner can use.
		if _, err := c.Exec(ctx, `SET search_path = `+schema+`; SET enable_seqscan = off; SET enable_bitmapscan = off`); err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		rows, err := c.Query(ctx, `EXPLAIN SELECT * FROM entries WHERE subject = 'alice' ORDER BY idx LIMIT 100`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if p := plan.String(); strings.Contains(p, "Sort") || !strings.Contains(p, "entries_by_subject") {
			t.Errorf("%s: the subject scan sorts or misses the index:\n%s", schema, p)
		}
	}
}

// A schema older than the binary (an upgrade whose migrate has not run)
// is refused with a pointer to `dicomseal migrate`, not met later as a
// missing column.
func TestOpenRefusesAnOutdatedSchema(t *testing.T) {
	admin, service := newDatabase(t)
	ctx := context.Background()
	open(t, service) // up to date: opens
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DELETE FROM dicomseal.goose_db_version WHERE version_id = (SELECT max(version_id) FROM dicomseal.goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, service)
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, postgres.ErrSchemaOutdated) || !strings.Contains(err.Error(), "dicomseal migrate") {
		t.Fatalf("open on a schema one version behind: %v, want ErrSchemaOutdated", err)
	}
}

// A newer schema is used by an older binary only while it does not
// require more than that binary knows: a release that writes entries
// older binaries would misread raises `compatibility`, and they refuse
// to start instead.
func TestOpenRefusesASchemaThatNeedsANewerBinary(t *testing.T) {
	admin, service := newDatabase(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	next := migrations.Latest(migrations.Postgres()) + 1
	// The next release's migration, as it would be applied.
	if _, err := c.Exec(ctx, `INSERT INTO dicomseal.goose_db_version (version_id, is_applied) VALUES ($1, true)`, next); err != nil {
		t.Fatal(err)
	}
	open(t, service) // newer, still compatible: a rolling upgrade
	if _, err := c.Exec(ctx, `UPDATE dicomseal.compatibility SET requires = $1`, next); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, service)
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, migrations.ErrTooNew) || !strings.Contains(err.Error(), "upgrade this binary") ||
		!strings.Contains(err.Error(), fmt.Sprintf("knows migration %d", next)) {
		t.Fatalf("open on a schema that needs a newer binary: %v, want ErrTooNew", err)
	}
}

// What a request named goes to the audit index whatever it is: a NUL, bytes
// that are not UTF-8, kilobytes (PostgreSQL's text and btree refuse all
// three raw); the event is still found by what it named.
func TestAuditIndexTakesAnyObject(t *testing.T) {
	_, service := newDatabase(t)
	ctx := context.Background()
	db, err := postgres.OpenSchema(ctx, service, postgres.AuditSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, v := ledgertest.LogKey(t)
	a := audit.New(ledger.New(db, ledgertest.Origin, s, v), nil)
	defer a.Close()
	for _, object := range []string{"1.2\x003", "1.2.\xff\xfe", strings.Repeat("9", 3200), "1.2.3"} {
		if err := a.RecordDurable(ctx, audit.Event{Time: time.Now(), Actor: "viewer-1", Action: "instance.retrieve",
			Object: object, Outcome: "failed", Status: 400}); err != nil {
			t.Fatalf("object %.20q: %v", object, err)
		}
		found, err := a.Query(ctx, audit.Filter{Object: object})
		if err != nil || len(found) != 1 || found[0].Object != strings.ToValidUTF8(object, "\uFFFD\uFFFD") && found[0].Object != object {
			t.Fatalf("by object %.20q: %d found, %v", object, len(found), err)
		}
	}
}
