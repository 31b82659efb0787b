package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/signer"
)

const reportDescription = `
Writes the chain-of-custody report of a study, of one instance (its study's
report, showing that instance's events) or of a patient, from the data
directory or --database-url, as GET /v1/custody answers it:

  json  the signed bundle (DSSE, attestation key) that 'dicomseal
        verify-report' checks offline: every entry of both logs about the
        subject, with inclusion and completeness proofs and checkpoints
  csv   one row per event: time (UTC), instance, event, actor, source,
        destination, purpose, digest, verdict, log, index
  html  one self-contained page: what was proven, the checkpoints and keys,
        each instance's chain of custody, how to verify
  pdf   the same, for print

Both logs are integrated first, so the report covers every entry recorded so
far. Every report is itself recorded, durably and before anything is written,
as a custody.export event of the audit trail (actor: --actor), chained under
the study (a patient's, under none: its object is the patient's key), so the
next report of the study lists it. csv, html and pdf are written from the
bundle after verifying it with the service's public keys, so they show only
what the bundle proves. Patient names are not in the logs (only commitments
are): --names adds each instance's patient to html and pdf from the identity
table, marked as not proven, for an operator who may read it anyway (the
export is then recorded as custody.export.names).

Exit status: 0 written, 1 the report could not be made (unknown study,
patient or instance, a log that cannot be read), 2 usage.`

func reportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := NewMain()
	m.Stderr = stderr
	m.LogLevel = "warn"
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.storageFlags(fs)
	var q report.Query
	fs.StringVar(&q.Study, "study", "", "the study's Study Instance UID")
	fs.StringVar(&q.Patient, "patient", "", "the patient's Patient ID")
	fs.StringVar(&q.SOP, "sop", "", "an instance's SOP Instance UID")
	from := fs.String("from", "", "show events at or after this time (RFC 3339); what is proven is the whole history")
	to := fs.String("to", "", "show events before this time (RFC 3339)")
	format := fs.String("format", "json", "json, csv, html or pdf")
	output := fs.String("output", "", "file to write (default: standard output); written whole or not at all")
	actor := fs.String("actor", defaultActor("dicomseal report"), "who is exporting the report, as the audit trail records it")
	names := fs.Bool("names", false, "html and pdf: show each instance's patient (name, ID, birth date) from the identity table, marked as not proven; the logs never hold them, and GET /v1/custody never shows them")
	fs.Usage = usage(fs, stderr, "dicomseal report (--study UID | --sop UID | --patient ID) [--format json|csv|html|pdf] [--output FILE] [flags]", reportDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dicomseal report: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("no arguments expected, got %q", fs.Args())
	}
	n := 0
	for _, s := range []string{q.Study, q.Patient, q.SOP} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usageErr("give one of --study, --sop or --patient")
	}
	switch *format {
	case "json", "csv", "html", "pdf":
	default:
		return usageErr("--format must be json, csv, html or pdf, got %q", *format)
	}
	if *names && *format != "html" && *format != "pdf" {
		return usageErr("--names is for html and pdf: the bundle and the CSV hold only what the logs prove")
	}
	for _, t := range []struct {
		flag string
		raw  string
		dst  **time.Time
	}{{"--from", *from, &q.From}, {"--to", *to, &q.To}} {
		if t.raw == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.raw)
		if err != nil {
			return usageErr("%s must be an RFC 3339 time, got %q", t.flag, t.raw)
		}
		v = v.UTC()
		*t.dst = &v
	}
	if m.Ledger.DatabaseURL == "" {
		// Opening would create an empty ledger (and keys) in a mistyped directory.
		if _, err := os.Stat(filepath.Join(m.DataDir, "ledger.db")); err != nil {
			return usageErr("no ledger in %s (--data-dir, or --database-url)", m.DataDir)
		}
	}
	m.Objects.s3.CreateBucket = false
	defer m.Close()
	fail := func(err error) int { fmt.Fprintln(stderr, "dicomseal report:", err); return 1 }
	svc, _, err := m.open(ctx)
	if err != nil {
		var cfg *configError
		if errors.As(err, &cfg) {
			return usageErr("%v", err)
		}
		return fail(err)
	}
	for _, l := range []interface {
		Integrate(context.Context) (ledger.Checkpoint, bool, error)
	}{m.ledger, m.auditLog} {
		if _, _, err := l.Integrate(ctx); err != nil {
			return fail(fmt.Errorf("integrate the logs: %w", err))
		}
	}
	doc, q, err := svc.CustodyReport(ctx, q, m.auditLog)
	if err != nil {
		return fail(err)
	}
	// The export is on record before a byte of the report is written.
	object := q.Study
	if q.SOP != "" {
		object = q.SOP
	} else if q.Patient != "" {
		object = "patient:" + doc.Subject.String() // the key, never the Patient ID
	}
	action := "custody.export"
	if *names {
		action = "custody.export.names" // patient data left too
	}
	if err := m.audit.RecordDurable(ctx, audit.Event{Time: time.Now().UTC(), Actor: *actor, Role: auth.RoleAuditor,
		Action: action, Object: object, Study: q.Study, Outcome: "allowed"}); err != nil {
		return fail(fmt.Errorf("the audit trail could not record the export (nothing was written): %w", err))
	}
	if _, _, err := m.auditLog.Integrate(ctx); err != nil {
		fmt.Fprintln(stderr, "dicomseal report: integrate the audit log:", err)
	}
	write := func(w io.Writer) error {
		if *format == "json" {
			raw, err := doc.MarshalJSON()
			if err == nil {
				_, err = w.Write(append(raw, '\n'))
			}
			return err
		}
		keys, err := publicKeys(svc.Keys(), m.LogOrigin, m.AuditOrigin)
		if err != nil {
			return err
		}
		v, err := report.Verify(doc, keys)
		if err != nil {
			return fmt.Errorf("the report does not verify with this service's own keys: %w", err)
		}
		if *names {
			ids, err := svc.Identities(ctx, v.Digests())
			if err != nil {
				return err
			}
			v.Names = map[string]string{}
			for _, uid := range v.Instances {
				v.Names[uid] = "(identity erased)"
				if id, ok := ids[uid]; ok {
					v.Names[uid] = patientLine(id)
				}
			}
		}
		switch *format {
		case "csv":
			return v.WriteCSV(w)
		case "html":
			return v.WriteHTML(w)
		}
		return v.WritePDF(w)
	}
	if err := writeOutput(*output, stdout, write); err != nil {
		return fail(err)
	}
	return 0
}

// patientLine is a patient as a report shows them to a reader allowed to.
func patientLine(id custody.Identity) string {
	// The alphabetic form: a PN's ideographic and phonetic ones follow "=".
	alphabetic, _, _ := strings.Cut(id.PatientName, "=")
	s := strings.Join(strings.Fields(strings.ReplaceAll(alphabetic, "^", " ")), " ")
	if id.PatientID != "" {
		s += ", ID " + id.PatientID
	}
	if id.PatientBirthDate != "" {
		s += ", born " + id.PatientBirthDate
	}
	return strings.TrimPrefix(s, ", ")
}

// publicKeys are the service's public keys as an offline verifier holds them.
func publicKeys(keys []attest.Key, logOrigin, auditOrigin string) (report.Keys, error) {
	k := report.Keys{LogOrigin: logOrigin, AuditOrigin: auditOrigin}
	for _, key := range keys {
		var err error
		switch key.Use {
		case "attestation":
			if k.Attestation == nil {
				k.Attestation, err = signer.NewVerifierFromPEM([]byte(key.PublicKey))
			}
		case "log":
			k.Log, err = note.NewVerifier(key.VerifierKey)
		case "audit-log":
			k.Audit, err = note.NewVerifier(key.VerifierKey)
		}
		if err != nil {
			return k, fmt.Errorf("the service's %s key: %w", key.Use, err)
		}
	}
	return k, nil
}

// writeOutput writes to path through a temporary file renamed into place
// (a failed report leaves no partial file), or to stdout when path is "".
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" {
		w := bufio.NewWriterSize(stdout, 1<<20)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriterSize(f, 1<<20)
	if err := write(w); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// defaultActor names a command's user as the audit trail records it.
func defaultActor(command string) string {
	if u, err := user.Current(); err == nil {
		return command + " (" + u.Username + ")"
	}
	return command
}
