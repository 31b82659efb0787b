// Package pgtest gives tests a real, migrated PostgreSQL database of their
// own. DICOMSEAL_TEST_DATABASE_URL is a superuser URL (scripts/test.sh
// starts the server and sets it); without it tests skip, and under CI
// they fail, because CI must run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/ledger/postgres"
)

// EnvURL names the variable that holds the superuser URL.
const EnvURL = "DICOMSEAL_TEST_DATABASE_URL"

var (
	runID = randomHex(4)
	// Roles are unique to this test process: roles are cluster-wide, and
	// parallel runs must not collide.
	Roles = postgres.Roles{
		Owner:           "dicomseal_owner_" + runID,
		Service:         "dicomseal_service_" + runID,
		ServicePassword: randomHex(16),
	}
	count   atomic.Int64
	mu      sync.Mutex
	lasting []string
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// AdminURL returns the superuser URL, skipping (or, under CI, failing) the
// test when there is none.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u != "" {
		return u
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run the PostgreSQL tests: %s is not set (run scripts/test.sh)", EnvURL)
	}
	t.Skipf("%s is not set; scripts/test.sh (make test) starts PostgreSQL and sets it", EnvURL)
	return ""
}

// WithUser returns u pointing at database db as user (keeping u's user when "").
func WithUser(u, db, user, password string) string {
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

// Database is one test's database.
type Database struct {
	Name string
	// Admin connects as the superuser, Service as the service role.
	Admin, Service string
}

// New creates a database, migrated with Roles, dropped after the test.
func New(t testing.TB) Database { return create(t, true) }

// NewLasting is New for fixtures that outlive one test (benchmarks); Cleanup drops them.
func NewLasting(t testing.TB) Database { return create(t, false) }

// NewEmpty creates a database without migrating it, dropped after the test.
func NewEmpty(t testing.TB) Database {
	t.Helper()
	admin := AdminURL(t)
	name := fmt.Sprintf("dicomseal_%s_%d", runID, count.Add(1))
	exec(t, admin, `CREATE DATABASE `+name)
	t.Cleanup(func() { drop(admin, name) })
	return Database{Name: name, Admin: WithUser(admin, name, "", ""),
		Service: WithUser(admin, name, Roles.Service, Roles.ServicePassword)}
}

func create(t testing.TB, dropAfter bool) Database {
	t.Helper()
	admin := AdminURL(t)
	name := fmt.Sprintf("dicomseal_%s_%d", runID, count.Add(1))
	exec(t, admin, `CREATE DATABASE `+name)
	if dropAfter {
		t.Cleanup(func() { drop(admin, name) })
	} else {
		mu.Lock()
		lasting = append(lasting, name)
		mu.Unlock()
	}
	db := Database{Name: name, Admin: WithUser(admin, name, "", ""),
		Service: WithUser(admin, name, Roles.Service, Roles.ServicePassword)}
	if err := postgres.Migrate(context.Background(), db.Admin, Roles, nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// Exec runs a statement as the database's administrator (d.Admin), for
// tests that change the database behind the service's back.
func (d Database) Exec(t testing.TB, stmt string) {
	t.Helper()
	exec(t, d.Admin, stmt)
}

func exec(t testing.TB, u, stmt string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func drop(admin, name string) {
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, admin); err == nil {
		c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		c.Close(ctx)
	}
}

// Cleanup drops lasting databases and this run's roles; call it from TestMain.
func Cleanup() {
	admin := os.Getenv(EnvURL)
	if admin == "" {
		return
	}
	for _, name := range lasting {
		drop(admin, name)
	}
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, admin); err == nil {
		for _, r := range []string{Roles.Service, Roles.Owner} {
			c.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{r}.Sanitize())
		}
		c.Close(ctx)
	}
}
