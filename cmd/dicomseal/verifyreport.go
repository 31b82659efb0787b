package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/signer"
)

const verifyReportDescription = `
Checks a chain-of-custody report (the JSON of GET /v1/custody or 'dicomseal
report --format json') offline, trusting only the keys given: the envelope's
signature (--key), every entry's inclusion proof in its log's checkpoint,
each checkpoint's signature (--log-key, --audit-log-key), and that no entry of
the subject was left out, none added, none reordered (the subject map and the
chain of every entry to the one before). Re-signing an altered report with
the attestation key does not help it: only the logs' keys vouch for entries.

It prints what it proved: the instances and events, up to which checkpoint
of each log, and whether a trusted witness (--witness-key) cosigned it. A
checkpoint proves the history up to its size: compare it with one you hold
(a witness's, or 'dicomseal log watch') to know nothing newer was withheld.

Exit status: 0 sound, 1 any problem (the first is printed), 2 usage.`

// witnessKeys collects --witness-key, repeatable.
type witnessKeys []note.Verifier

func (w *witnessKeys) String() string { return "" }
func (w *witnessKeys) Set(s string) error {
	if b, err := os.ReadFile(s); err == nil {
		s = string(b)
	}
	v, err := report.ParseWitnessKey(s)
	if err != nil {
		return err
	}
	*w = append(*w, v)
	return nil
}

func verifyReportCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "the attestation public key (PEM; use attestation in GET /v1/keys)")
	logKeyPath := fs.String("log-key", "", "the custody log's verifier key (verifier_key of use log in /v1/keys), or a file holding it")
	auditKeyPath := fs.String("audit-log-key", "", "the audit log's verifier key (use audit-log), or a file holding it; without it the access records are not checked, and not shown")
	origin := fs.String("log-origin", defaultLogOrigin, "the custody log's origin line")
	auditOrigin := fs.String("audit-origin", defaultAuditOrigin, "the audit log's origin line")
	logHeld := fs.String("log-checkpoint", "", "a custody log checkpoint you hold (a file: a witness's, or 'log watch' state): a report at an older one is refused")
	auditHeld := fs.String("audit-checkpoint", "", "an audit log checkpoint you hold, the same way")
	var witnesses witnessKeys
	fs.Var(&witnesses, "witness-key", "a witness's verifier key (vkey, or a file holding it) whose cosignature you trust; repeatable")
	fs.Usage = usage(fs, stderr, "dicomseal verify-report BUNDLE.json --key attestation.pem --log-key log.vkey [--audit-log-key audit.vkey]", verifyReportDescription)
	if err := parseWithEnv(fs, reorderArgs(fs, args)); err != nil {
		return exitUsage(err)
	}
	if *keyPath == "" || *logKeyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	bad := func(err error) int { fmt.Fprintf(stderr, "NOT VERIFIED: %s: %v\n", fs.Arg(0), err); return 1 }
	usageErr := func(err error) int { fmt.Fprintln(stderr, "dicomseal verify-report:", err); return 2 }
	pemBytes, err := os.ReadFile(*keyPath)
	if err != nil {
		return usageErr(err)
	}
	k := report.Keys{LogOrigin: *origin, AuditOrigin: *auditOrigin, Witnesses: witnesses}
	if k.Attestation, err = signer.NewVerifierFromPEM(pemBytes); err != nil {
		return usageErr(fmt.Errorf("--key: %w", err))
	}
	if k.Log, err = loadVerifierKey(*logKeyPath); err != nil {
		return usageErr(fmt.Errorf("--log-key: %w", err))
	}
	if *auditKeyPath != "" {
		if k.Audit, err = loadVerifierKey(*auditKeyPath); err != nil {
			return usageErr(fmt.Errorf("--audit-log-key: %w", err))
		}
	}
	for _, h := range []struct {
		flag, path, origin string
		v                  note.Verifier
		dst                **report.Held
	}{{"--log-checkpoint", *logHeld, *origin, k.Log, &k.HeldLog}, {"--audit-checkpoint", *auditHeld, *auditOrigin, k.Audit, &k.HeldAudit}} {
		if h.path == "" {
			continue
		}
		if h.v == nil {
			return usageErr(fmt.Errorf("%s needs the log's key", h.flag))
		}
		raw, err := os.ReadFile(h.path)
		if err != nil {
			return usageErr(err)
		}
		cp, _, _, err := log.ParseCheckpoint(raw, h.origin, h.v)
		if err != nil {
			return usageErr(fmt.Errorf("%s: %w", h.flag, err))
		}
		*h.dst = &report.Held{Size: cp.Size, Root: cp.Hash}
	}
	doc, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return usageErr(err)
	}
	d, err := report.ParseDocument(doc)
	if err != nil {
		return bad(err)
	}
	v, err := report.Verify(d, k)
	if err != nil {
		return bad(err)
	}
	fmt.Fprintf(stdout, "VERIFIED: %s\n", fs.Arg(0))
	for _, l := range v.Statement() {
		fmt.Fprintln(stdout, "  "+l)
	}
	fmt.Fprintf(stdout, "  instances (%d):\n", len(v.Instances))
	for _, in := range v.ByInstance() {
		name := in.UID
		if name == "" {
			name = "(the study as a whole)"
		}
		fmt.Fprintf(stdout, "    %s: %s\n", name, summarize(in.Events))
	}
	return 0
}

// summarize counts an instance's events by kind, failures named.
func summarize(evs []report.Event) string {
	var order []string
	count := map[string]int{}
	for _, e := range evs {
		k := e.Event
		if report.Failed(e.Verdict) {
			k += " " + e.Verdict
		}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	if len(evs) > 0 {
		parts = append(parts, "last "+evs[len(evs)-1].Time.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

// loadVerifierKey reads a log's verifier key given inline or in a file.
func loadVerifierKey(s string) (note.Verifier, error) {
	if _, err := os.Stat(s); err == nil {
		return signer.LoadLogVerifier(s)
	}
	return note.NewVerifier(strings.TrimSpace(s))
}

// reorderArgs moves positional arguments after the flags, so that
// "verify-report BUNDLE --key …" parses as "verify-report --key … BUNDLE"
// (package flag stops at the first argument that is not a flag).
func reorderArgs(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil || hasValue {
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	// "--" keeps a bundle path that starts with "-" an argument.
	return append(append(flags, "--"), rest...)
}
