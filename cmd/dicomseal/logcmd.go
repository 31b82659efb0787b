package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
	"github.com/dicomseal/dicomseal/witness"
)

const logUsage = `Usage: dicomseal log <command> [flags]

Commands:
  verify   audit a whole ledger: every entry, batch, checkpoint and tree node
  watch    check a server's checkpoint against the last one seen (a witness)
`

func logCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, logUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return logVerify(ctx, args[1:], stdout, stderr)
	case "watch":
		return logWatch(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, logUsage)
		return 0
	}
	fmt.Fprintf(stderr, "dicomseal log: unknown command %q\n\n%s", args[0], logUsage)
	return 2
}

const logVerifyDescription = `
Audits a whole ledger without trusting it: recomputes every leaf hash and the
Merkle tree from the entries, checks every signed batch and every stored
checkpoint (signature and root) and every stored tree node, and reports the
first index at which anything disagrees. The log's public key comes from the
key files (or --log-key), never from the database being audited.

It catches edits by anyone without the log key (a database superuser who
disables the triggers). Someone who also holds the log key can rewrite history
consistently; only an older checkpoint held elsewhere ('dicomseal log watch', a
witness) catches that.

Both logs are audited, the custody log and the audit log (--log custody or
--log audit for one), each with one result line: "custody: OK, N entries …" or
"audit: FAILED at index N: …" followed by every finding.

Exit status: 0 all sound, 1 findings (each printed), 2 usage or a log cannot be read.`

func logVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("log verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./dicomseal-data", "data directory of the embedded ledger (and of the key files)")
	var lc ledgerConfig
	lc.flags(fs)
	keyPath := fs.String("log-key", "", "the custody log's verifier key (as in /v1/keys `verifier_key`) or its key file; default <data-dir>/keys/log.key")
	auditKeyPath := fs.String("audit-log-key", "", "the audit log's verifier key (/v1/keys, `use: audit-log`) or its key file; default <data-dir>/keys/audit-log.key. "+
		"Audit checkpoints the custody log key signed before the audit log had a key of its own are accepted up to the first one its own key signed")
	origin := fs.String("log-origin", defaultLogOrigin, "the custody log's origin line")
	auditOrigin := fs.String("audit-origin", defaultAuditOrigin, "the audit log's origin line")
	which := fs.String("log", "all", "which log to audit: custody, audit or all")
	fs.Usage = usage(fs, stderr, "dicomseal log verify [flags]", logVerifyDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	type target struct {
		name, origin string
		open         func(context.Context, string) (ledger.Backend, error)
		formats      ledger.Formats
		// key and previous verify the log's signatures (see AuditOptions).
		key, previous note.Verifier
	}
	var targets []target
	switch *which {
	case "custody", "audit", "all":
		if *which != "audit" {
			targets = append(targets, target{name: "custody", origin: *origin, open: lc.open, formats: attest.EntryFormats})
		}
		if *which != "custody" {
			targets = append(targets, target{name: "audit", origin: *auditOrigin, open: lc.openAudit, formats: audit.EntryFormats})
		}
	default:
		fmt.Fprintf(stderr, "dicomseal log verify: --log must be custody, audit or all, got %q\n", *which)
		return 2
	}
	if *keyPath == "" {
		*keyPath = filepath.Join(*dataDir, "keys", "log.key")
	}
	v, err := signer.LoadLogVerifier(*keyPath)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal log verify:", err)
		return 2
	}
	for i := range targets {
		targets[i].key = v
		if targets[i].name != "audit" {
			continue
		}
		path := *auditKeyPath
		if path == "" {
			path = filepath.Join(*dataDir, "keys", auditKeyFile)
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				continue // a log from before the audit log's own key: the custody key signed it all
			}
		}
		av, err := signer.LoadLogVerifier(path)
		if err != nil {
			fmt.Fprintln(stderr, "dicomseal log verify:", err)
			return 2
		}
		targets[i].key, targets[i].previous = av, v
	}
	findings, unreadable := false, false
	for _, tg := range targets {
		if tg.name == "audit" && lc.DatabaseURL == "" {
			// Opening would create an empty audit.db: a deleted audit log
			// must read as missing, not as a sound empty one.
			if _, err := os.Stat(filepath.Join(*dataDir, "audit.db")); err != nil {
				fmt.Fprintf(stdout, "audit: MISSING: %v\n", err)
				unreadable = true
				continue
			}
		}
		switch verifyOneLog(ctx, tg.name, tg.origin, tg.key, tg.previous, tg.formats, func(ctx context.Context) (ledger.Backend, error) { return tg.open(ctx, *dataDir) },
			stdout, stderr) {
		case 1:
			findings = true
		case 2:
			unreadable = true
		}
	}
	switch {
	case findings: // tampering outranks a log that could not be read
		return 1
	case unreadable:
		return 2
	}
	return 0
}

// verifyOneLog audits one log and prints its result line: "NAME: OK, …" or
// "NAME: FAILED at index N: …" with every finding after it.
func verifyOneLog(ctx context.Context, name, origin string, v, previous note.Verifier, formats ledger.Formats,
	open func(context.Context) (ledger.Backend, error), stdout, stderr io.Writer) int {
	backend, err := open(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "%s: UNREADABLE: %v\n", name, err)
		return 2
	}
	defer backend.Close()
	start := time.Now()
	progress := func(done, total uint64) {
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(stderr, "log verify: %s: %d/%d entries checked (%.0f%%)\n", name, done, total, pct)
	}
	opts := ledger.AuditOptions{Formats: formats, Previous: previous, Progress: progress}
	if name == "audit" {
		opts.Index = audit.CheckIndex
	}
	rep, err := ledger.Audit(ctx, backend, origin, v, opts)
	if err != nil {
		fmt.Fprintf(stdout, "%s: UNREADABLE: %v\n", name, err)
		return 2
	}
	summary := fmt.Sprintf("%d entries, %d signed batches, %d checkpoints (latest verified: size %d), %d subject maps of %d subjects rebuilt, checked in %s",
		rep.Entries, rep.Batches, rep.Checkpoints, rep.TreeSize, rep.SubjectMaps, rep.Subjects, time.Since(start).Round(time.Millisecond))
	if rep.OK() {
		fmt.Fprintf(stdout, "%s: OK, %s: every entry, batch, checkpoint, tree node and subject map verifies\n", name, summary)
		return 0
	}
	fmt.Fprintf(stdout, "%s: FAILED at index %d: %s (%d findings; %s)\n", name, rep.Findings[0].Index, rep.Findings[0], len(rep.Findings), summary)
	for _, f := range rep.Findings {
		fmt.Fprintln(stdout, "  "+f.String())
	}
	return 1
}

const logWatchDescription = `
Checks a dicomseal server's log from the outside, as a witness: fetches the
latest checkpoint, verifies its signature with the pinned log key, and proves
that it is consistent with the last checkpoint seen (stored in --state). The new
checkpoint replaces the old one atomically. A shrinking log or a fork — history
rewritten, even by someone holding the log key — fails loudly.

Run it from a machine the log's operators do not control, from cron or with
--every. Exit status: 0 consistent, 1 fork, shrink or bad signature, 2 usage or
the server cannot be reached.`

func logWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("log watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "base URL of the dicomseal server, e.g. https://dicomseal.example:8080")
	state := fs.String("state", "", "file holding the last checkpoint seen (created on the first run)")
	keyPath := fs.String("log-key", "", "file with the log's verifier key (`verifier_key` in /v1/keys: `use` log, or audit-log for --log audit), pinned out of band")
	which := fs.String("log", "custody", "which log to watch: custody (/v1/log) or audit (/v1/audit)")
	origin := fs.String("log-origin", "", "the log's origin line (default: "+defaultLogOrigin+", or "+defaultAuditOrigin+" with --log audit)")
	every := fs.Duration("every", 0, "check again at this interval until interrupted (0: once)")
	fs.Usage = usage(fs, stderr, "dicomseal log watch --server URL --state FILE --log-key FILE", logWatchDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	if *server == "" || *state == "" || *keyPath == "" {
		fs.Usage()
		return 2
	}
	client := &witness.Client{BaseURL: *server, HTTP: &http.Client{Timeout: 30 * time.Second}}
	switch *which {
	case "custody":
		if *origin == "" {
			*origin = defaultLogOrigin
		}
	case "audit":
		client.Log = "/v1/audit"
		if *origin == "" {
			*origin = defaultAuditOrigin
		}
	default:
		fmt.Fprintf(stderr, "dicomseal log watch: --log must be custody or audit, got %q\n", *which)
		return 2
	}
	v, err := signer.LoadLogVerifier(*keyPath)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal log watch:", err)
		return 2
	}
	for {
		if code := watchOnce(ctx, client, v, *origin, *state, stdout, stderr); code != 0 || *every == 0 {
			return code
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(*every):
		}
	}
}

func watchOnce(ctx context.Context, c *witness.Client, v note.Verifier, origin, state string, stdout, stderr io.Writer) int {
	prev, err := witness.LoadState(state)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal log watch: state:", err)
		return 2
	}
	res, err := witness.Check(ctx, c, v, origin, prev)
	switch {
	case errors.Is(err, witness.ErrFork), errors.Is(err, witness.ErrShrunk), errors.Is(err, witness.ErrBadCheckpoint):
		fmt.Fprintf(stderr, "ALERT: %s: %v\nThe saved checkpoint in %s is kept as evidence.\n", origin, err, state)
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "dicomseal log watch:", err)
		return 2
	}
	if err := witness.SaveState(state, res.Note); err != nil {
		fmt.Fprintln(stderr, "dicomseal log watch: saving state:", err)
		return 2
	}
	if prev == nil {
		fmt.Fprintf(stdout, "%s: first checkpoint saved: size %d\n", origin, res.Checkpoint.Size)
	} else {
		fmt.Fprintf(stdout, "%s: consistent: size %d → %d\n", origin, res.Previous, res.Checkpoint.Size)
	}
	return 0
}

// exitUsage maps a flag parsing error to an exit status (--help is 0).
func exitUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
