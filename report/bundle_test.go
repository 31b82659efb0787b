package report_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/signer"
	"github.com/dicomseal/dicomseal/subject"
)

const studyA, studyB = "1.2.826.0.1.3680043.10.1", "1.2.826.0.1.3680043.10.2"

type testLog struct {
	*custody.Log
	origin string
	v      note.Verifier
}

// newLog is a real embedded log of origin holding ingests of studies A
// and B, interleaved, integrated twice.
func newLog(t *testing.T, origin string) *testLog {
	t.Helper()
	ctx := context.Background()
	backend, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l := custody.New(ledger.New(backend, origin, s, v))
	for i := range 8 {
		study := []string{studyA, studyB}[i%2]
		uid := fmt.Sprintf("%s.1.%d", study, i)
		sha := fmt.Sprintf("%064x", i)
		rec := custody.Record{Kind: custody.KindIngest, Subject: uid, FileSHA256: sha,
			Body:     []byte(fmt.Sprintf(`{"v":2,"kind":"ingest","subject":%q,"file_sha256":%q}`, uid, sha)),
			Identity: &custody.Identity{Salt: make([]byte, 32), PatientID: "P-" + study},
			Catalog:  &catalog.Entry{SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: study + ".1", PatientID: "P-" + study}}
		if _, err := l.AppendIngest(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if i == 3 || i == 7 {
			if _, _, err := l.Integrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &testLog{Log: l, origin: origin, v: v}
}

func (l *testLog) prove(t *testing.T, study string) *ledger.SubjectProof {
	t.Helper()
	return l.proveKey(t, subject.Study(study))
}

func (l *testLog) proveKey(t *testing.T, key ledger.SubjectKey) *ledger.SubjectProof {
	t.Helper()
	p, err := l.SubjectProof(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A study's report verifies offline, and every change to it fails, by
// name, even re-signed with the issuer's own attestation key: the
// signature names the issuer, the logs' proofs carry the trust.
func TestStudyReport(t *testing.T) {
	ctx := context.Background()
	custodyLog, auditLog := newLog(t, "dicomseal.test/custody"), newLog(t, "dicomseal.test/audit")
	issuer, err := signer.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	keys := report.Keys{Attestation: issuer.Verifier, LogOrigin: custodyLog.origin, Log: custodyLog.v,
		AuditOrigin: auditLog.origin, Audit: auditLog.v}
	bundle := func() *report.Bundle {
		return &report.Bundle{V: 1, Query: report.Query{Study: studyA}, Generated: time.Now().UTC(),
			Custody: custodyLog.prove(t, studyA), Audit: []*ledger.SubjectProof{auditLog.prove(t, studyA)}}
	}
	sign := func(b *report.Bundle) *report.Document {
		env, err := report.Sign(ctx, issuer, b)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	got, err := report.Verify(sign(bundle()), keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Custody.Entries) != 4 || len(got.Audit) != 1 || len(got.Audit[0].Entries) != 4 || got.Custody.Size == 0 {
		t.Fatalf("verified: %d custody entries (tree %d), %d audit proofs", len(got.Custody.Entries), got.Custody.Size, len(got.Audit))
	}
	if len(got.Instances) != 4 || len(got.Events) != 8 || got.Instances[0] != studyA+".1.0" {
		t.Fatalf("verified: instances %v, %d events", got.Instances, len(got.Events))
	}
	other := custodyLog.prove(t, studyB)
	// A log of the same origin under another key: its checkpoints are forged.
	forged := newLog(t, custodyLog.origin).prove(t, studyA)
	for name, c := range map[string]struct {
		mutate func(*report.Bundle)
		want   string
	}{
		"a changed byte in an entry": {func(b *report.Bundle) {
			b.Custody.Entries[1].Body = []byte(strings.Replace(string(b.Custody.Entries[1].Body), "ingest", "ingesT", 1))
		}, "not in the tree"},
		"a dropped entry":             {func(b *report.Bundle) { b.Custody.Entries = slices.Delete(b.Custody.Entries, 1, 2) }, "counts 4 entries"},
		"the newest entry dropped":    {func(b *report.Bundle) { b.Audit[0].Entries = b.Audit[0].Entries[:3] }, "audit log"},
		"the audit proof left out":    {func(b *report.Bundle) { b.Audit = nil }, "proves 0 in the audit log"},
		"another study's audit proof": {func(b *report.Bundle) { b.Audit[0] = auditLog.prove(t, studyB) }, "audit log: proof 0 is not of subject"},
		"two entries reordered": {func(b *report.Bundle) {
			b.Custody.Entries[1], b.Custody.Entries[2] = b.Custody.Entries[2], b.Custody.Entries[1]
		}, "listed as"},
		"an entry of another study slipped in": {func(b *report.Bundle) { b.Custody.Entries[2] = other.Entries[2] }, "not chained under this subject"},
		"a proof against a forged checkpoint":  {func(b *report.Bundle) { b.Custody = forged }, "checkpoint"},
		"another study's proofs":               {func(b *report.Bundle) { b.Custody = other }, "not of study"},
		"an instance not of the study":         {func(b *report.Bundle) { b.Query.SOP = studyB + ".1.1" }, "not attested in study"},
	} {
		b := bundle()
		c.mutate(b)
		if _, err := report.Verify(sign(b), keys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, re-signed: %v, want an error naming %q", name, err, c.want)
		}
	}

	// A report signed by another key, or altered after signing, is not
	// the issuer's.
	stranger, _ := signer.NewEphemeral()
	env, _ := report.Sign(ctx, stranger, bundle())
	if _, err := report.Verify(env, keys); err == nil || !strings.Contains(err.Error(), "envelope") {
		t.Errorf("signed by another key: %v", err)
	}
	env = sign(bundle())
	raw, _ := json.Marshal(env)
	raw = []byte(strings.Replace(string(raw), `"payload":"ey`, `"payload":"eX`, 1))
	var altered report.Document
	json.Unmarshal(raw, &altered)
	if _, err := report.Verify(&altered, keys); err == nil {
		t.Error("an envelope altered after signing verifies")
	}
	// The bundle's bytes are what the statement names: one byte changed,
	// even where JSON would not care, is another bundle.
	env = sign(bundle())
	env.Bundle = append([]byte(" "), env.Bundle...)
	if _, err := report.Verify(env, keys); err == nil || !strings.Contains(err.Error(), "other bytes") {
		t.Errorf("a bundle whose bytes changed after signing: %v", err)
	}
	// Written and read back as a file, the document verifies.
	raw, _ = json.Marshal(sign(bundle()))
	var read report.Document
	if err := json.Unmarshal(raw, &read); err != nil {
		t.Fatal(err)
	}
	if _, err := report.Verify(&read, keys); err != nil {
		t.Errorf("read back: %v", err)
	}
}

// A report is about one study (or one of its instances) or one patient;
// a patient's holds the audit proof of every other subject its entries
// are chained under, and those only.
func TestReportQueryShape(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, "dicomseal.test/custody")
	issuer, _ := signer.NewEphemeral()
	keys := report.Keys{Attestation: issuer.Verifier, LogOrigin: l.origin, Log: l.v, AuditOrigin: l.origin, Audit: l.v}
	p := l.prove(t, studyA)
	audit := []*ledger.SubjectProof{p}
	salt, err := l.PatientSalt(ctx, "P-"+studyA)
	if err != nil {
		t.Fatal(err)
	}
	patient := l.proveKey(t, subject.Patient(salt))
	for name, b := range map[string]*report.Bundle{
		"a study and a patient":             {V: 1, Query: report.Query{Study: studyA, Patient: "P"}, Custody: p, Audit: audit},
		"no subject":                        {V: 1, Custody: p, Audit: audit},
		"a patient and an instance":         {V: 1, Query: report.Query{Patient: "P", SOP: studyA + ".1.0"}, Custody: patient, Audit: audit},
		"a patient without its study proof": {V: 1, Query: report.Query{Patient: "P"}, Custody: patient},
		"a patient with its own key proven": {V: 1, Query: report.Query{Patient: "P"}, Custody: patient, Audit: []*ledger.SubjectProof{patient}},
		"an unknown version":                {V: 2, Query: report.Query{Study: studyA}, Custody: p, Audit: audit},
	} {
		env, err := report.Sign(ctx, issuer, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := report.Verify(env, keys); err == nil {
			t.Errorf("%s: verifies", name)
		}
	}
	env, _ := report.Sign(ctx, issuer, &report.Bundle{V: 1, Query: report.Query{Patient: "P-" + studyA}, Custody: patient, Audit: audit})
	if got, err := report.Verify(env, keys); err != nil || len(got.Custody.Entries) != 4 || len(got.Instances) != 4 {
		t.Fatalf("a patient's report: %v, %v", got.Instances, err)
	}
	// One instance: the study's proofs, that instance's rows (the audit
	// stand-in's entries name no object).
	uid := studyA + ".1.2"
	env, _ = report.Sign(ctx, issuer, &report.Bundle{V: 1, Query: report.Query{Study: studyA, SOP: uid}, Custody: p, Audit: audit})
	got, err := report.Verify(env, keys)
	if err != nil || len(got.Events) != 1 || got.Events[0].Instance != uid || len(got.Instances) != 1 {
		t.Fatalf("an instance's report: %v, %v", got.Events, err)
	}
}
