package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// Roles names the two roles of a deployment. The owner owns the schema and
// runs migrations (it never logs in for the service); the service role may
// only SELECT and INSERT history, and SELECT, INSERT and UPDATE the
// counters and correctable tables (and DELETE from the search index).
// Names are configurable so that parallel test runs (roles are
// cluster-wide) do not collide.
type Roles struct {
	Owner   string
	Service string
	// ServicePassword, if set, is given to the service role (never logged).
	ServicePassword string
}

// DefaultRoles are the role names `dicomseal migrate` uses by default.
var DefaultRoles = Roles{Owner: "dicomseal_owner", Service: "dicomseal_service"}

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// history tables: INSERT and SELECT only; the rest may also be updated
// (cursors: a follower's position moves on, it is not history).
var (
	historyTables = map[string][]string{
		Schema:      {"entries", "instances", "batches", "tree_nodes", "checkpoints", "subject_links", "subject_map_nodes", "patients"},
		AuditSchema: {"entries", "events", "batches", "tree_nodes", "checkpoints", "subject_links", "subject_map_nodes"},
	}
	mutableTables = map[string][]string{
		Schema:      {"incidents", "identity", "tokens", "cursors", "catalog", "leases", "scrub_progress"},
		AuditSchema: {"cursors"},
	}
	// emptiable mutable tables may also be deleted from: the search index
	// is emptied before a rebuild from the instances. Nothing else is:
	// tokens are revoked and identities corrected, never removed.
	emptiable = map[string]bool{"catalog": true}
)

var migrateLock = lockKey("dicomseal.migrate")

// Migrate sets up the roles and the schema and applies every migration,
// connected through url as a role that can create roles (or as the owner,
// once the roles exist). It is idempotent and safe to run from several
// processes at once: a session advisory lock serialises them.
func Migrate(ctx context.Context, url string, roles Roles, log *slog.Logger) error {
	if !roleName.MatchString(roles.Owner) || !roleName.MatchString(roles.Service) || roles.Owner == roles.Service {
		return fmt.Errorf("postgres migrate: role names must be distinct lower-case identifiers, got %q and %q", roles.Owner, roles.Service)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("postgres migrate: lock: %w", err)
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock)

	if err := setupRoles(ctx, admin, roles); err != nil {
		return err
	}
	for _, schema := range []string{Schema, AuditSchema} {
		if err := migrateSchema(ctx, url, schema, roles, log); err != nil {
			return err
		}
	}
	return nil
}

// migrateSchema applies the migrations to one schema, as the owner, so
// that it owns everything they create, and grants the service role.
func migrateSchema(ctx context.Context, url, schema string, roles Roles, log *slog.Logger) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	cfg.RuntimeParams["role"] = roles.Owner
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schemaMigrations(schema))
	if err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("postgres migrate %s: %w", schema, err)
	}
	for _, r := range results {
		if log != nil {
			log.Info("migration applied", "schema", schema, "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		}
	}
	return grant(ctx, db, schema, roles)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func setupRoles(ctx context.Context, c *pgx.Conn, roles Roles) error {
	var user string
	var exists bool
	if err := c.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	for _, r := range []struct {
		name, attrs string
	}{{roles.Owner, "NOLOGIN"}, {roles.Service, "LOGIN"}} {
		if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, r.name).Scan(&exists); err != nil {
			return fmt.Errorf("postgres migrate: %w", err)
		}
		if !exists {
			if _, err := c.Exec(ctx, `CREATE ROLE `+ident(r.name)+` `+r.attrs); err != nil {
				return fmt.Errorf("postgres migrate: create role %s: %w", r.name, err)
			}
		}
	}
	if roles.ServicePassword != "" {
		// The password is sent as a literal: ALTER ROLE takes no parameters.
		pw, err := quoteLiteral(ctx, c, roles.ServicePassword)
		if err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `ALTER ROLE `+ident(roles.Service)+` PASSWORD `+pw); err != nil {
			return fmt.Errorf("postgres migrate: set the service role's password: %w", err)
		}
	}
	if user != roles.Owner {
		// Lets the connecting administrator act as the owner (SET ROLE).
		if _, err := c.Exec(ctx, `GRANT `+ident(roles.Owner)+` TO `+ident(user)); err != nil {
			return fmt.Errorf("postgres migrate: grant %s to %s: %w", roles.Owner, user, err)
		}
	}
	for _, schema := range []string{Schema, AuditSchema} {
		if _, err := c.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema+` AUTHORIZATION `+ident(roles.Owner)); err != nil {
			return fmt.Errorf("postgres migrate: create schema %s: %w", schema, err)
		}
	}
	return nil
}

func quoteLiteral(ctx context.Context, c *pgx.Conn, s string) (string, error) {
	var q string
	err := c.QueryRow(ctx, `SELECT quote_literal($1)`, s).Scan(&q)
	return q, err
}

// grant gives the service role exactly what it needs, as the owner.
func grant(ctx context.Context, db *sql.DB, schema string, roles Roles) error {
	svc := ident(roles.Service)
	stmts := []string{
		`REVOKE ALL ON SCHEMA ` + schema + ` FROM PUBLIC`,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + svc,
	}
	for _, t := range historyTables[schema] {
		stmts = append(stmts,
			`REVOKE ALL ON `+t+` FROM `+svc,
			`GRANT SELECT, INSERT ON `+t+` TO `+svc)
	}
	for _, t := range mutableTables[schema] {
		privileges := "SELECT, INSERT, UPDATE"
		if emptiable[t] {
			privileges += ", DELETE"
		}
		stmts = append(stmts,
			`REVOKE ALL ON `+t+` FROM `+svc,
			`GRANT `+privileges+` ON `+t+` TO `+svc)
	}
	// Reading the schema version lets serve refuse a schema older than
	// itself with a clear message.
	stmts = append(stmts, `GRANT SELECT ON goose_db_version TO `+svc, `GRANT SELECT ON compatibility TO `+svc)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("postgres migrate: %s: %w", s, err)
		}
	}
	return nil
}
