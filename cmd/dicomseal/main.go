// Command dicomseal attests DICOM instances: it signs what it ingests, logs
// it in a tamper-evident ledger, and serves bytes only after re-verifying them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const topUsage = `dicomseal — signed, logged, verifiable DICOM instances

Usage: dicomseal <command> [flags]

Commands:
  serve    run the service (embedded defaults: ./dicomseal-data, 127.0.0.1:8080)
  verify   check a file against an attestation offline, with only the public keys
  report   write a study's, instance's or patient's chain-of-custody report (json, csv, html, pdf)
  verify-report  check a chain-of-custody report offline, with only the public keys
  log      audit a ledger ('log verify') or witness a server's log ('log watch')
  migrate  create or upgrade the ledger schema (PostgreSQL: also its two roles)
  tokens   create, list and revoke API tokens (roles: ingest, viewer, auditor, admin, reconciler)
  reconcile  list (and with --remove-orphans delete) stored objects no entry references, and attested objects gone
  index    rebuild the DICOMweb search index from the stored objects ('index rebuild')
  scrub    re-read every stored object and check it against its signed attestation (fixity)
  store    copy every object to another store, verified on both sides ('store migrate')
  health   exit 0 when a running dicomseal is ready (for container health checks)
  bench    load a running server (or Orthanc, raw S3, SHA-256) with unique copies of real files; rates, latency, CPU
  version  print the version

Run 'dicomseal <command> --help' for a command's flags. Every flag can also be
set with an environment variable: --data-dir is DICOMSEAL_DATA_DIR.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(code)
}

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "verify":
		return verifyCommand(args[1:], stdout, stderr)
	case "report":
		return reportCommand(ctx, args[1:], stdout, stderr)
	case "verify-report":
		return verifyReportCommand(args[1:], stdout, stderr)
	case "log":
		return logCommand(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, args[1:], stdout, stderr)
	case "health":
		return healthCommand(args[1:], stdout, stderr)
	case "bench":
		return benchCommand(ctx, args[1:], stdout, stderr)
	case "reconcile":
		return reconcileCommand(ctx, args[1:], stdout, stderr)
	case "tokens":
		return tokensCommand(ctx, args[1:], stdout, stderr)
	case "index":
		return indexCommand(ctx, args[1:], stdout, stderr)
	case "scrub":
		return scrubCommand(ctx, args[1:], stdout, stderr)
	case "store":
		return storeCommand(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "dicomseal", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, topUsage)
	default:
		fmt.Fprintf(stderr, "dicomseal: unknown command %q\n\n%s", args[0], topUsage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var cfg *configError
	if errors.As(err, &cfg) {
		fmt.Fprintln(stderr, "dicomseal:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	m := NewMain()
	m.Stderr = stderr
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	// Libraries that print through the standard log package (the DICOM
	// parser does) end up as structured records too.
	slog.SetDefault(m.log)
	select {
	case <-ctx.Done():
		m.log.Info("shutting down")
		return m.Close()
	case err := <-m.Done():
		m.Close()
		return err
	}
}
