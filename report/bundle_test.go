package report_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
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
// and B, interleaved, integrated twice: checkpoints of size 5 (4 entries
// and the subject map) and 10.
func newLog(t *testing.T, origin string) *testLog {
	t.Helper()
	return newLogOf(t, origin, func(study string) string { return "P-" + study })
}

// newLogOf is newLog with the patient of each study's instances.
func newLogOf(t *testing.T, origin string, patient func(study string) string) *testLog {
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
			Body:     []byte(fmt.Sprintf(`{"v":2,"kind":"ingest","subject":%q,"file_sha256":%q,"study_instance_uid":%q}`, uid, sha, study)),
			Identity: &custody.Identity{Salt: make([]byte, 32), PatientID: patient(study)},
			Catalog:  &catalog.Entry{SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: study + ".1", PatientID: patient(study)}}
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
	return l.proveAt(t, key, 0)
}

func (l *testLog) proveAt(t *testing.T, key ledger.SubjectKey, size uint64) *ledger.SubjectProof {
	t.Helper()
	p, err := l.SubjectProof(context.Background(), key, size)
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
	if err := json.Unmarshal(raw, &altered); err != nil || len(altered.Bundle) == 0 {
		t.Fatalf("altered document: %v", err)
	}
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
	for name, c := range map[string]struct {
		b    *report.Bundle
		want string
	}{
		"a study and a patient":             {&report.Bundle{V: 1, Query: report.Query{Study: studyA, Patient: "P"}, Custody: p, Audit: audit}, "a report is about"},
		"no subject":                        {&report.Bundle{V: 1, Custody: p, Audit: audit}, "a report is about"},
		"a patient and an instance":         {&report.Bundle{V: 1, Query: report.Query{Patient: "P", SOP: studyA + ".1.0"}, Custody: patient, Audit: audit}, "a report is about"},
		"a patient without its study proof": {&report.Bundle{V: 1, Query: report.Query{Patient: "P"}, Custody: patient}, "chained under 1 studies, the bundle proves 0"},
		"a patient with its own key proven": {&report.Bundle{V: 1, Query: report.Query{Patient: "P"}, Custody: patient, Audit: []*ledger.SubjectProof{patient}}, "is not of subject"},
		"an unknown version":                {&report.Bundle{V: 2, Query: report.Query{Study: studyA}, Custody: p, Audit: audit}, "version 2"},
		// A key-holding issuer's lies the content gives away:
		"a patient with no entry (any key's absence proof)": {&report.Bundle{V: 1, Query: report.Query{Patient: "P-" + studyA},
			Custody: l.proveKey(t, subject.Study("1.2.3.999")), Audit: nil}, "proves no entry"},
		"a study's chain named a patient's": {&report.Bundle{V: 1, Query: report.Query{Patient: "P-" + studyA}, Custody: p,
			Audit: []*ledger.SubjectProof{patient}}, "study " + studyA + "'s, not a patient's"},
		"a study UID that only looks like it": {&report.Bundle{V: 1, Query: report.Query{Study: studyA + "\u200b"},
			Custody: l.proveKey(t, subject.Study(studyA+"\u200b")), Audit: []*ledger.SubjectProof{l.proveKey(t, subject.Study(studyA+"\u200b"))}}, "the report's query"},
	} {
		env, err := report.Sign(ctx, issuer, c.b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := report.Verify(env, keys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
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
	if err != nil || len(got.Instances) != 1 {
		t.Fatalf("an instance's report: %v, %v", got, err)
	}
	mine := 0
	for _, e := range got.Events {
		switch e.Instance {
		case uid:
			mine++
		case "": // study-level: kept
		default:
			t.Errorf("an instance's report shows an event of %s", e.Instance)
		}
	}
	if mine != 1 {
		t.Errorf("an instance's report: %d of its events, want 1", mine)
	}
}

// A report at an older checkpoint is sound as far as it goes: it is
// refused against a newer checkpoint the verifier holds; a patient's
// audit proofs must share one checkpoint (each at its own, one could be
// old); a checkpoint of another tree at the same size is a fork.
func TestReportFreshness(t *testing.T) {
	ctx := context.Background()
	both := func(string) string { return "P-both" }
	custodyLog, auditLog := newLogOf(t, "dicomseal.test/custody", both), newLogOf(t, "dicomseal.test/audit", both)
	issuer, _ := signer.NewEphemeral()
	keys := report.Keys{Attestation: issuer.Verifier, LogOrigin: custodyLog.origin, Log: custodyLog.v,
		AuditOrigin: auditLog.origin, Audit: auditLog.v}
	verify := func(b *report.Bundle, k report.Keys) (*report.Verified, error) {
		t.Helper()
		doc, err := report.Sign(ctx, issuer, b)
		if err != nil {
			t.Fatal(err)
		}
		return report.Verify(doc, k)
	}
	// The study at the first checkpoint (size 5): 2 of its 4 entries.
	old := &report.Bundle{V: 1, Query: report.Query{Study: studyA}, Custody: custodyLog.proveAt(t, subject.Study(studyA), 5),
		Audit: []*ledger.SubjectProof{auditLog.prove(t, studyA)}}
	got, err := verify(old, keys)
	if err != nil || got.Custody.Size != 5 || len(got.Custody.Entries) != 2 {
		t.Fatalf("an older checkpoint's report: %v", err)
	}
	latest := verifyLatest(t, custodyLog)
	held := keys
	held.HeldLog = &report.Held{Size: latest.Size, Root: latest.Hash}
	if _, err := verify(old, held); err == nil || !strings.Contains(err.Error(), "older than the one you hold (10)") {
		t.Errorf("an older checkpoint than the one held: %v", err)
	}
	held.HeldLog = &report.Held{Size: 5, Root: make([]byte, 32)}
	if _, err := verify(old, held); err == nil || !strings.Contains(err.Error(), "forked") {
		t.Errorf("another root at the held size: %v", err)
	}
	// A patient of both studies: two audit proofs, at one checkpoint.
	salt, err := custodyLog.PatientSalt(ctx, "P-both")
	if err != nil {
		t.Fatal(err)
	}
	patient := custodyLog.proveKey(t, subject.Patient(salt))
	audits := []*ledger.SubjectProof{auditLog.prove(t, studyA), auditLog.prove(t, studyB)}
	if bytes.Compare(audits[0].Subject[:], audits[1].Subject[:]) > 0 {
		audits[0], audits[1] = audits[1], audits[0]
	}
	b := &report.Bundle{V: 1, Query: report.Query{Patient: "P-both"}, Custody: patient, Audit: audits}
	if got, err := verify(b, keys); err != nil || len(got.Audit) != 2 || len(got.Instances) != 8 {
		t.Fatalf("a patient of two studies: %v", err)
	}
	b.Audit[1] = auditLog.proveAt(t, b.Audit[1].Subject, 5)
	if _, err := verify(b, keys); err == nil || !strings.Contains(err.Error(), "share one") {
		t.Errorf("audit proofs at two checkpoints: %v", err)
	}
}

func verifyLatest(t *testing.T, l *testLog) *log.Checkpoint {
	t.Helper()
	cp, err := l.LatestCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, _, _, err := log.ParseCheckpoint(cp.Note, l.origin, l.v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An instance revised into another study is chained under both: the
// study it left holds its history only up to the move. That chain is not
// a patient's, and not the instance's study any more.
func TestMovedInstance(t *testing.T) {
	ctx := context.Background()
	const studyC = "1.2.826.0.1.3680043.10.3"
	mk := func(origin string) *testLog {
		backend, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "log.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { backend.Close() })
		skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
		s, _ := note.NewSigner(skey)
		v, _ := note.NewVerifier(vkey)
		l := custody.New(ledger.New(backend, origin, s, v))
		rec := func(kind ledger.Kind, uid, study string, i int, revises uint64) custody.Record {
			sha := fmt.Sprintf("%064x", i)
			return custody.Record{Kind: kind, Subject: uid, FileSHA256: sha, Revises: revises,
				Body:     []byte(fmt.Sprintf(`{"v":2,"kind":%q,"subject":%q,"file_sha256":%q,"study_instance_uid":%q}`, kind, uid, sha, study)),
				Identity: &custody.Identity{Salt: make([]byte, 32), PatientID: "P"},
				Catalog:  &catalog.Entry{SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: study + ".1", PatientID: "P"}}
		}
		first, err := l.AppendIngest(ctx, rec(custody.KindIngest, studyA+".1.1", studyA, 1, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendIngest(ctx, rec(custody.KindRevision, studyA+".1.1", studyC, 2, first.Index)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
		return &testLog{Log: l, origin: origin, v: v}
	}
	custodyLog, auditLog := mk("dicomseal.test/custody"), mk("dicomseal.test/audit")
	issuer, _ := signer.NewEphemeral()
	keys := report.Keys{Attestation: issuer.Verifier, LogOrigin: custodyLog.origin, Log: custodyLog.v,
		AuditOrigin: auditLog.origin, Audit: auditLog.v}
	verify := func(b *report.Bundle) error {
		doc, err := report.Sign(ctx, issuer, b)
		if err != nil {
			t.Fatal(err)
		}
		_, err = report.Verify(doc, keys)
		return err
	}
	a := custodyLog.prove(t, studyA)
	if len(a.Entries) != 2 {
		t.Fatalf("study A's chain: %d entries, want the ingest and the move", len(a.Entries))
	}
	// The study's own report, and the instance's in its study now, verify.
	if err := verify(&report.Bundle{V: 1, Query: report.Query{Study: studyA}, Custody: a, Audit: []*ledger.SubjectProof{auditLog.prove(t, studyA)}}); err != nil {
		t.Fatal(err)
	}
	if err := verify(&report.Bundle{V: 1, Query: report.Query{Study: studyC, SOP: studyA + ".1.1"}, Custody: custodyLog.prove(t, studyC),
		Audit: []*ledger.SubjectProof{auditLog.prove(t, studyC)}}); err != nil {
		t.Fatal(err)
	}
	// The instance's report in the study it left.
	err := verify(&report.Bundle{V: 1, Query: report.Query{Study: studyA, SOP: studyA + ".1.1"}, Custody: a, Audit: []*ledger.SubjectProof{auditLog.prove(t, studyA)}})
	if err == nil || !strings.Contains(err.Error(), "is of study "+studyC+" now") {
		t.Errorf("an instance's report in the study it left: %v", err)
	}
	// Study A's chain as a patient's: its latest entry names study C only,
	// its first names A.
	salt, _ := custodyLog.PatientSalt(ctx, "P")
	audits := []*ledger.SubjectProof{auditLog.proveKey(t, subject.Patient(salt)), auditLog.prove(t, studyC)}
	if bytes.Compare(audits[0].Subject[:], audits[1].Subject[:]) > 0 {
		audits[0], audits[1] = audits[1], audits[0]
	}
	err = verify(&report.Bundle{V: 1, Query: report.Query{Patient: "P"}, Custody: a, Audit: audits})
	if err == nil || !strings.Contains(err.Error(), "not a patient's") {
		t.Errorf("a moved study's chain as a patient's: %v", err)
	}
}
