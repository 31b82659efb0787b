package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/signer"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
)

const tokensUsage = `Usage: dicomseal tokens <command> [--server URL --token-file FILE] [flags]

Commands:
  create --role ROLE --name NAME [--expires 720h] [--max-body 64MiB]
                                                    make a token; it is printed once, alone on the last line
  list                                              list tokens (never their secrets)
  revoke NAME                                       revoke a token, at once, in every running server

With --server, the command is a client of the server's admin API
(POST/GET /v1/tokens, DELETE /v1/tokens/{name}) and needs an admin token
(--token-file, or DICOMSEAL_TOKEN) and nothing else: the server writes the
audit record, signed with the audit log's key. Without --server it works on
the data directory or database directly and needs the audit log's key file
at hand (--audit-log-key-file); it never creates a key, and where the key is
missing it fails and changes nothing.

Roles: ingest (store only), viewer (retrieve and verify), auditor (log, proofs,
audit trail; no pixel data), admin (tokens, keys; no images), reconciler
(patient and study identity corrections, nothing else). Every create and
revoke is itself recorded in the audit log, naming who did it (--actor, or the
operating-system user). The commands work while serve runs on the same data
directory or database.

Each token has its own request rate budget (serve's --rate-limit) and may
have its own request size limit (--max-body), which can only lower the
server's: a viewer that only verifies small files need not be able to push
2 GiB bodies.
`

func tokensCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, tokensUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet("tokens "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./dicomseal-data", "data directory (embedded database and key files)")
	var lc ledgerConfig
	lc.flags(fs)
	auditKey := fs.String("audit-log-key-file", "", "without --server: the audit log's key, which signs the audit entries; default <data-dir>/keys/audit-log.key")
	auditOrigin := fs.String("audit-origin", defaultAuditOrigin, "origin of the audit log")
	actor := fs.String("actor", "", "who is doing this, for the audit log (default: cli:<operating-system user>)")
	role := fs.String("role", "", "create: ingest, viewer, auditor, admin or reconciler")
	name := fs.String("name", "", "create: the token's name, e.g. orthanc-1 (it names the actor in the audit log)")
	expires := fs.Duration("expires", 0, "create: lifetime, e.g. 720h (0: no expiry)")
	var maxBody byteSize
	fs.Var(&maxBody, "max-body", "create: largest request body this token may send (e.g. 64MiB); default: the server's --max-body, which it can only lower")
	server := fs.String("server", "", "a running server's URL (https://dicomseal.example:8443): use its admin API instead of the data directory")
	tokenFile := fs.String("token-file", "", "with --server: file holding an admin token (default: $DICOMSEAL_TOKEN)")
	fs.Usage = func() { fmt.Fprint(stderr, tokensUsage); fs.PrintDefaults() }
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return exitUsage(err)
	}
	if *server != "" {
		return tokensRemote(ctx, cmd, *server, *tokenFile, *role, *name, *expires, int64(maxBody), fs.Args(), stdout, stderr)
	}
	if *actor == "" {
		*actor = "cli:unknown"
		if u, err := user.Current(); err == nil {
			*actor = "cli:" + u.Username
		}
	}
	auditKeyPath := *auditKey
	if auditKeyPath == "" {
		auditKeyPath = filepath.Join(*dataDir, "keys", auditKeyFile)
	}
	if cmd == "create" || cmd == "revoke" {
		// Before anything is opened: opening would create the databases.
		if _, err := os.Stat(auditKeyPath); err != nil {
			fmt.Fprintf(stderr, "dicomseal tokens %s: the audit log key %s is missing: run where serve's keys are (--audit-log-key-file), or use --server (nothing was changed)\n",
				cmd, auditKeyPath)
			return 2
		}
	}
	backend, err := lc.open(ctx, *dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal tokens:", err)
		return 1
	}
	defer backend.Close()
	store, ok := backend.(auth.Store)
	if !ok {
		fmt.Fprintln(stderr, "dicomseal tokens: this backend keeps no tokens")
		return 1
	}
	// openTrail opens the audit log and its key before anything changes:
	// a token is never created or revoked without its durable audit record.
	var trail *audit.Log
	var trailBackend ledger.Backend
	openTrail := func() error {
		ab, err := lc.openAudit(ctx, *dataDir)
		if err != nil {
			return err
		}
		// Only serve generates keys: a command that made one here, beside
		// a log another key signs, would halt its integration for ever.
		keyFile := auditKeyPath
		as, err := readLedgerState(ctx, ab)
		switch {
		case err != nil:
		case signedByKeyNamed(as.checkpoint, defaultLogOrigin):
			err = &configError{"the audit log has no key of its own yet: start this release's serve once (it creates it), or use --server"}
		default:
			if _, serr := os.Stat(keyFile); serr != nil {
				err = &configError{fmt.Sprintf("the audit log key %s is missing: run where serve's keys are (--audit-log-key-file), or use --server", keyFile)}
				break
			}
			var key *signer.LogKey
			if key, _, err = signer.LoadOrCreateLogKey(keyFile, *auditOrigin); err != nil {
				break
			}
			switch {
			// Written under another origin, or a key that did not sign
			// the log, the event would halt its integration.
			case as.origin != "" && as.origin != *auditOrigin:
				err = &configError{fmt.Sprintf("--audit-origin is %q but the audit log's checkpoints say %q", *auditOrigin, as.origin)}
			case as.checkpoint != nil && !verifiesNote(as.checkpoint, key):
				err = &configError{fmt.Sprintf("the audit log key in %s does not verify the audit log's latest checkpoint", keyFile)}
			default:
				if err = checkFirstBatch("audit", *auditOrigin, "--audit-origin", as, key); err == nil {
					trail, trailBackend = audit.New(ledger.New(ab, *auditOrigin, key, key.Verifier()), nil), ab
					return nil
				}
			}
		}
		ab.Close()
		return err
	}
	defer func() {
		if trail != nil {
			trail.Close()
			trailBackend.Close()
		}
	}()
	record := func(action, object string) error {
		return trail.RecordDurable(ctx, audit.Event{Time: time.Now().UTC(), Actor: *actor, Role: auth.RoleAdmin,
			Action: action, Object: object, Outcome: "allowed"})
	}
	if cmd == "create" || cmd == "revoke" {
		if err := openTrail(); err != nil {
			fmt.Fprintf(stderr, "dicomseal tokens %s: %v (nothing was changed)\n", cmd, err)
			var cfg *configError
			if errors.As(err, &cfg) {
				return 2
			}
			return 1
		}
	}
	return runTokens(ctx, cmd, &localTokens{store: store, record: record, actor: *actor}, *role, *name, *expires, int64(maxBody),
		fs.Args(), stdout, stderr)
}

// tokenAdmin is what the tokens commands do, on the data directory
// (localTokens) or through a server's admin API (tokensClient).
type tokenAdmin interface {
	create(ctx context.Context, role auth.Role, name string, expires time.Duration, maxBody int64) (api.CreatedToken, error)
	list(ctx context.Context) ([]auth.Token, error)
	revoke(ctx context.Context, name string) error
}

// localTokens changes the token store directly, each change recorded in
// the audit log, durably, before it is made.
type localTokens struct {
	store  auth.Store
	record func(action, object string) error
	actor  string
}

func (l *localTokens) create(ctx context.Context, role auth.Role, name string, expires time.Duration, maxBody int64) (api.CreatedToken, error) {
	secret, t, err := auth.NewToken(name, role, l.actor, time.Now(), expires)
	if err != nil {
		return api.CreatedToken{}, err
	}
	t.MaxBody = maxBody
	object := name + " (" + string(role) + ")"
	if maxBody > 0 {
		object += ", max body " + (*byteSize)(&maxBody).String()
	}
	if err := l.record("token.create", object); err != nil {
		return api.CreatedToken{}, fmt.Errorf("%w (nothing was changed)", err)
	}
	if err := l.store.CreateToken(ctx, t); err != nil {
		return api.CreatedToken{}, err
	}
	return api.CreatedToken{Name: name, Role: role, Token: secret, ExpiresAt: t.ExpiresAt}, nil
}

func (l *localTokens) list(ctx context.Context) ([]auth.Token, error) { return l.store.ListTokens(ctx) }

func (l *localTokens) revoke(ctx context.Context, name string) error {
	if err := l.record("token.revoke", name); err != nil {
		return fmt.Errorf("%w (nothing was changed)", err)
	}
	return l.store.RevokeToken(ctx, name, time.Now())
}

// runTokens runs one tokens command.
func runTokens(ctx context.Context, cmd string, a tokenAdmin, role, name string, expires time.Duration, maxBody int64,
	args []string, stdout, stderr io.Writer) int {
	switch cmd {
	case "create":
		r, err := auth.ParseRole(role)
		if err != nil || name == "" {
			fmt.Fprintln(stderr, "dicomseal tokens create: --role (ingest, viewer, auditor, admin or reconciler) and --name are required")
			return 2
		}
		t, err := a.create(ctx, r, name, expires, maxBody)
		if err != nil {
			fmt.Fprintln(stderr, "dicomseal tokens create:", err)
			return 1
		}
		fmt.Fprintf(stdout, "token %s (role %s) created; it is shown once, below:\n%s\n", t.Name, t.Role, t.Token)
		return 0
	case "list":
		tokens, err := a.list(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "dicomseal tokens list:", err)
			return 1
		}
		printTokens(stdout, tokens)
		return 0
	case "revoke":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "dicomseal tokens revoke: give the token's name")
			return 2
		}
		if err := a.revoke(ctx, args[0]); err != nil {
			fmt.Fprintln(stderr, "dicomseal tokens revoke:", err)
			return 1
		}
		fmt.Fprintf(stdout, "token %s revoked\n", args[0])
		return 0
	}
	fmt.Fprintf(stderr, "dicomseal tokens: unknown command %q\n\n%s", cmd, tokensUsage)
	return 2
}

func printTokens(stdout io.Writer, tokens []auth.Token) {
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tBY\tEXPIRES\tMAX BODY\tSTATE")
	for _, t := range tokens {
		exp, state, limit := "never", "active", "server's"
		if t.MaxBody > 0 {
			limit = (*byteSize)(&t.MaxBody).String()
		}
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Format(time.RFC3339)
			if !time.Now().Before(*t.ExpiresAt) {
				state = "expired"
			}
		}
		if t.RevokedAt != nil {
			state = "revoked " + t.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.Format(time.RFC3339), t.CreatedBy, exp, limit, state)
	}
	tw.Flush()
}

// tokensRemote runs a tokens command against a server's admin API.
func tokensRemote(ctx context.Context, cmd, server, tokenFile, role, name string, expires time.Duration, maxBody int64,
	args []string, stdout, stderr io.Writer) int {
	c, err := newTokensClient(server, tokenFile)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal tokens:", err)
		return 2
	}
	return runTokens(ctx, cmd, c, role, name, expires, maxBody, args, stdout, stderr)
}
