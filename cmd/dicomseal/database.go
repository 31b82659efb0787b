package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/postgres"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/problem"
)

// ledgerConfig selects the ledger backend, the same way on serve, migrate
// and log verify: PostgreSQL with --database-url, else the embedded SQLite
// file in the data directory.
type ledgerConfig struct {
	DatabaseURL string
	OwnerRole   string
	ServiceRole string
}

func (c *ledgerConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL of the ledger (postgres://user:pass@host:5432/db); empty: the embedded SQLite ledger in <data-dir>")
	fs.StringVar(&c.OwnerRole, "owner-role", postgres.DefaultRoles.Owner, "PostgreSQL role that owns the schema (migrate)")
	fs.StringVar(&c.ServiceRole, "service-role", postgres.DefaultRoles.Service, "PostgreSQL role the service connects as: SELECT and INSERT on history only (migrate)")
}

// open opens the backend; PostgreSQL is never migrated here.
func (c *ledgerConfig) open(ctx context.Context, dataDir string) (ledger.Backend, error) {
	if c.DatabaseURL == "" {
		return sqlite.Open(ctx, filepath.Join(dataDir, "ledger.db"))
	}
	return postgres.Open(ctx, c.DatabaseURL)
}

// openAudit opens the audit log's backend: <data-dir>/audit.db, or the
// dicomseal_audit schema of the same PostgreSQL database.
func (c *ledgerConfig) openAudit(ctx context.Context, dataDir string) (ledger.Backend, error) {
	if c.DatabaseURL == "" {
		return sqlite.OpenAudit(ctx, filepath.Join(dataDir, "audit.db"))
	}
	return postgres.OpenSchema(ctx, c.DatabaseURL, postgres.AuditSchema)
}

// warnPrivileges logs loudly when the service connects to PostgreSQL as a
// superuser or as the tables' owner: it works, but such a connection can
// disable the triggers that refuse to rewrite history.
func warnPrivileges(ctx context.Context, b ledger.Backend, log *slog.Logger) {
	db, ok := b.(*postgres.DB)
	if !ok {
		return
	}
	user, super, owner, err := db.Privileges(ctx)
	switch {
	case err != nil:
		log.Warn("could not read the database role's privileges", "err", err)
	case super || owner:
		log.Warn("SECURITY: the service is connected to PostgreSQL as a superuser or as the owner of the ledger tables; "+
			"it could disable the triggers that refuse to rewrite history. Connect as the service role created by `dicomseal migrate`.",
			"user", user, "superuser", super, "owner", owner)
	}
}

// syncReplicaCheck reports, for PostgreSQL, whether commits wait for a
// synchronous standby: without one, a failover can lose entries that a
// published checkpoint already covers (a fork, and acknowledged writes
// lost). It warns, and fails readiness only when required.
func syncReplicaCheck(b ledger.Backend, require bool) api.ReadinessCheck {
	db, ok := b.(*postgres.DB)
	if !ok {
		return nil
	}
	return func(ctx context.Context) (string, error) {
		names, err := db.SyncStandbys(ctx)
		if err != nil {
			return "", &attest.Error{Code: attest.EUnavailable, Problem: attest.ProblemLedgerUnavailable,
				Message: "cannot read synchronous_standby_names", Err: err}
		}
		if names != "" {
			return "", nil
		}
		msg := "no synchronous standby is configured (synchronous_standby_names is empty): a failover can lose entries that a published checkpoint already covers"
		if require {
			return "", attest.Errorf(attest.EUnavailable, problem.NoSyncReplica, "%s (--require-sync-replica)", msg)
		}
		return msg, nil
	}
}

// migrateCommand applies the schema: to PostgreSQL with the owner's (or an
// administrator's) credentials, setting up both roles; to the embedded
// ledger in --data-dir.
func migrateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lc ledgerConfig
	lc.flags(fs)
	dataDir := fs.String("data-dir", "./dicomseal-data", "data directory of the embedded ledger (without --database-url)")
	password := fs.String("service-role-password", "", "password to set for the service role (PostgreSQL); never logged")
	fs.Usage = usage(fs, stderr, "dicomseal migrate [--database-url URL] [flags]", migrateDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if lc.DatabaseURL == "" {
		b, err := sqlite.Open(ctx, filepath.Join(*dataDir, "ledger.db"))
		if err != nil {
			fmt.Fprintln(stderr, "dicomseal migrate:", err)
			return 1
		}
		b.Close()
		fmt.Fprintf(stdout, "embedded ledger in %s is up to date\n", *dataDir)
		return 0
	}
	roles := postgres.Roles{Owner: lc.OwnerRole, Service: lc.ServiceRole, ServicePassword: *password}
	if err := postgres.Migrate(ctx, lc.DatabaseURL, roles, log); err != nil {
		fmt.Fprintln(stderr, "dicomseal migrate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "schema %s is up to date; the service connects as role %s (owner: %s)\n", postgres.Schema, lc.ServiceRole, lc.OwnerRole)
	return 0
}

const migrateDescription = `
Creates or upgrades the ledger schema. For PostgreSQL, connect with the owner's
credentials or as an administrator who may create roles: it creates the owner
role (NOLOGIN; owns schema dicomseal and runs the migrations) and the service
role (LOGIN; may only SELECT and INSERT history, and SELECT/INSERT/UPDATE the
incident counters and the correctable identity table), then applies every
migration. It is idempotent and safe to run from several processes at once.
The service itself never migrates unless given --migrate-database-url.`
