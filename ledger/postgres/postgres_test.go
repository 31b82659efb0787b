package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/postgres"
)

// These tests need a real PostgreSQL: DICOMSEAL_TEST_DATABASE_URL is a
// superuser URL (scripts/test.sh starts the server and sets it). Each test
// gets its own database; the two roles are unique to this run, because
// roles are cluster-wide.

var (
	adminURL string
	runID    = randomHex(4)
	roles    = postgres.Roles{
		Owner:           "dicomseal_owner_" + runID,
		Service:         "dicomseal_service_" + runID,
		ServicePassword: randomHex(16),
	}
	dbCount atomic.Int64
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestMain(m *testing.M) {
	adminURL = os.Getenv("DICOMSEAL_TEST_DATABASE_URL")
	code := m.Run()
	for _, name := range lasting {
		dropDatabase(name)
	}
	if adminURL != "" {
		if c, err := pgx.Connect(context.Background(), adminURL); err == nil {
			for _, r := range []string{roles.Service, roles.Owner} {
				c.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{r}.Sanitize())
			}
			c.Close(context.Background())
		}
	}
	os.Exit(code)
}

func needPostgres(t testing.TB) {
	t.Helper()
	if adminURL != "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run the PostgreSQL tests: DICOMSEAL_TEST_DATABASE_URL is not set (run scripts/test.sh)")
	}
	t.Skip("DICOMSEAL_TEST_DATABASE_URL is not set; scripts/test.sh (make test) starts PostgreSQL and sets it")
}

func dropDatabase(name string) {
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, adminURL); err == nil {
		c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		c.Close(ctx)
	}
}

// withUser returns u pointing at database db as user (password optional).
func withUser(u, db, user, password string) string {
	p, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	p.Path = "/" + db
	if user != "" {
		p.User = url.UserPassword(user, password)
	}
	return p.String()
}

// newDatabase creates a migrated database for one test, dropped after it,
// and returns its admin and service URLs.
func newDatabase(t testing.TB) (admin, service string) {
	t.Helper()
	return createDatabase(t, true)
}

// lasting are databases that outlive one test (benchmark fixtures); TestMain drops them.
var (
	lastingMu sync.Mutex
	lasting   []string
)

func createDatabase(t testing.TB, dropAfterTest bool) (admin, service string) {
	t.Helper()
	needPostgres(t)
	ctx := context.Background()
	name := fmt.Sprintf("dicomseal_%s_%d", runID, dbCount.Add(1))
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	if dropAfterTest {
		t.Cleanup(func() { dropDatabase(name) })
	} else {
		lastingMu.Lock()
		lasting = append(lasting, name)
		lastingMu.Unlock()
	}
	admin = withUser(adminURL, name, "", "")
	if err := postgres.Migrate(ctx, admin, roles, nil); err != nil {
		t.Fatal(err)
	}
	return admin, withUser(adminURL, name, roles.Service, roles.ServicePassword)
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
	return func(stmt string, args ...any) {
		t.Helper()
		ctx := context.Background()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, s := range []string{`SET session_replication_role = replica`, `SET search_path = dicomseal`} {
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
	needPostgres(t)
	ledgertest.Run(t, harness)
}

// The service role may only read and append history; even the owner is
// stopped by the triggers.
func TestHistoryIsAppendOnly(t *testing.T) {
	admin, service := newDatabase(t)
	ctx := context.Background()
	s, v := ledgertest.LogKey(t)
	l := ledger.New(open(t, service), ledgertest.Origin, s, v)
	if _, err := l.AppendIngest(ctx, ledger.Record{Kind: ledger.KindIngest, SOPInstanceUID: "1.2",
		FileSHA256: strings.Repeat("a", 64), Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	statements := []string{}
	for _, table := range []string{"entries", "instances", "batches", "tree_nodes", "checkpoints"} {
		statements = append(statements,
			`UPDATE `+table+` SET `+map[string]string{"entries": "body", "instances": "file_sha256", "batches": "signature",
				"tree_nodes": "hash", "checkpoints": "note"}[table]+` = NULL`,
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
	if rep, err := ledger.Audit(ctx, open(t, service), ledgertest.Origin, v, nil); err != nil || !rep.OK() || rep.Entries != 1 {
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
	if applied != 2 {
		t.Fatalf("%d migrations recorded, want 2", applied)
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
	if _, err := postgres.Open(ctx, withUser(adminURL, "postgres", "", "")); err != postgres.ErrNotMigrated {
		t.Fatalf("Open on an unmigrated database: %v, want ErrNotMigrated", err)
	}
}
