package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/signer"
)

// A study's chain of custody, end to end, on both deployments: ingest a
// study, retrieve two instances, transfer one, tamper with one in storage
// and scrub. The report (over HTTP and from the CLI) lists exactly those
// events in order and verify-report passes; every tampering with it fails
// by name even re-signed with the server's own attestation key; the PDF's
// text and the HTML as Chromium renders it hold the study, every instance
// and every verdict; every report is itself an export event.
func TestCustodyReport(t *testing.T) {
	for _, name := range []string{"embedded", "postgres+minio"} {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			custodyReport(t, dataDir, newDeployment(t, name, dataDir))
		})
	}
}

func custodyReport(t *testing.T, dataDir string, dep deployment) {
	flags := append([]string{"--checkpoint-interval", "20ms"}, dep.flags...)
	var patientName string // from QIDO, below
	srv := startServer(t, dataDir, flags...)
	study := newCTStudy(t)
	var sops []string
	for sop := range study.files {
		sops = append(sops, sop)
	}
	slices.Sort(sops)
	for _, sop := range sops {
		if r := srv.ingest(study.files[sop]); r.status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
	}
	other := srv.ingest(fixture(t, "pydicom-MR_small.dcm")).json(t)["study_instance_uid"].(string) // not in the report
	a, b, c, d := sops[0], sops[1], sops[2], sops[3]
	for _, sop := range []string{a, b} {
		if r := srv.do(http.MethodGet, "/v1/instances/"+sop, "", nil); r.status != http.StatusOK {
			t.Fatalf("retrieve: %d", r.status)
		}
	}
	if r := srv.transfer("/v1/instances/"+c+"/transfers", "courier-dvd", false); r.status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.status, r.body)
	}
	keyDir := t.TempDir()
	_, logKey := srv.logVerifier()
	_, auditKey := srv.auditLogVerifier()
	attKey := filepath.Join(keyDir, "attestation.pem")
	os.WriteFile(attKey, attestationPEM(t, srv), 0o644)
	// A checkpoint from before the tampering: a proof at it is sound, and
	// hides what came after.
	lv, _ := srv.logVerifier()
	oldCheckpoint, _ := srv.waitForCheckpoint(lv, 1)
	srv.stop()

	// d's stored copy altered; the offline scrub finds it.
	altered := slices.Clone(study.files[d])
	altered[pixelOffset(t, altered)] ^= 0xff
	dep.put(t, study.files[d], altered)
	if code, out := runCLI(append([]string{"scrub", "--data-dir", dataDir}, dep.flags...)...); code != 1 || !strings.Contains(out, d+" DIGEST_MISMATCH") {
		t.Fatalf("scrub: exit %d\n%s", code, out)
	}

	srv = startServer(t, dataDir, flags...)
	auditor := srv.as(auth.RoleAuditor)
	bundle := filepath.Join(t.TempDir(), "report.json")
	var v *report.Verified
	keys := reportKeys(t, attKey, logKey, auditKey)
	// The audit entries of the first run are integrated once the server is
	// back: the first report holding all of them.
	waitFor(t, func() bool {
		r := auditor.do(http.MethodGet, "/v1/custody?study="+study.uid, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/custody: %d %s", r.status, r.body)
		}
		os.WriteFile(bundle, r.body, 0o644)
		var doc report.Document
		json.Unmarshal(r.body, &doc)
		var err error
		if v, err = report.Verify(&doc, keys); err != nil {
			t.Fatal(err)
		}
		return len(v.Audit) == 1 && slices.ContainsFunc(v.Audit[0].Entries, func(e ledger.Entry) bool { return bytes.Contains(e.Body, []byte(`"instance.transfer"`)) })
	})
	// The checkpoint the auditor holds (here: the server's latest, fetched
	// just before the report).
	heldCheckpoint := filepath.Join(t.TempDir(), "custody.checkpoint")
	os.WriteFile(heldCheckpoint, auditor.do(http.MethodGet, "/v1/log/checkpoint", "", nil).body, 0o644)
	code, out := runCLI("verify-report", bundle, "--key", attKey, "--log-key", logKey, "--audit-log-key", auditKey, "--log-checkpoint", heldCheckpoint)
	if code != 0 || !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "not witnessed") || !strings.Contains(out, "instances (4)") {
		t.Fatalf("verify-report: exit %d\n%s", code, out)
	}

	t.Logf("verify-report:\n%s", out)
	// Exactly those events, in order.
	var custodyEvents, auditEvents []string
	for _, e := range v.Events {
		row := e.Event + " " + e.Instance
		if e.Log == report.LogCustody {
			custodyEvents = append(custodyEvents, row)
		} else {
			auditEvents = append(auditEvents, row)
		}
	}
	want := []string{"ingest " + a, "ingest " + b, "ingest " + c, "ingest " + d, "transfer " + c, "integrity-failure " + d}
	if !slices.Equal(custodyEvents, want) {
		t.Errorf("custody events:\n%s\nwant\n%s", strings.Join(custodyEvents, "\n"), strings.Join(want, "\n"))
	}
	want = []string{"instance.ingest " + a, "instance.ingest " + b, "instance.ingest " + c, "instance.ingest " + d,
		"instance.retrieve " + a, "instance.retrieve " + b, "instance.transfer " + c}
	if !slices.Equal(auditEvents, want) {
		t.Errorf("audit events:\n%s\nwant\n%s", strings.Join(auditEvents, "\n"), strings.Join(want, "\n"))
	}
	for i, e := range v.Events {
		if e.Study != study.uid || e.Study == other {
			t.Errorf("event %d is of study %q", i, e.Study)
		}
		if i > 0 && e.Time.Before(v.Events[i-1].Time) {
			t.Errorf("event %d (%s) is before the one listed above it", i, e.Event)
		}
	}
	verdicts := map[string]string{}
	for _, e := range v.Events {
		verdicts[e.Event] = e.Verdict
	}
	if verdicts["ingest"] != "attested" || verdicts["transfer"] != "recorded" || verdicts["integrity-failure"] != "FAILED: altered" || verdicts["instance.retrieve"] != "allowed 200" {
		t.Errorf("verdicts: %v", verdicts)
	}

	// Tampering, re-signed with the server's own attestation key.
	issuer, _, err := signer.LoadOrCreate(filepath.Join(dataDir, "keys", "attestation.pem"))
	if err != nil {
		t.Fatal(err)
	}
	otherStudy := auditor.do(http.MethodGet, "/v1/log/proof/subject?study="+other, "", nil)
	var otherProof ledger.SubjectProof
	if err := json.Unmarshal(otherStudy.body, &otherProof); err != nil || len(otherProof.Entries) == 0 {
		t.Fatalf("the other study's proof: %d %s", otherStudy.status, otherStudy.body)
	}
	forgedKey, _, _ := note.GenerateKey(nil, defaultLogOrigin)
	forger, _ := note.NewSigner(forgedKey)
	for name, c := range map[string]struct {
		mutate func(*report.Bundle)
		want   string
	}{
		"a changed byte in an entry": {func(b *report.Bundle) {
			b.Custody.Entries[4].Body = bytes.Replace(b.Custody.Entries[4].Body, []byte("courier-dvd"), []byte("courier-DVD"), 1)
		}, "custody log: entry"},
		"a dropped entry":          {func(b *report.Bundle) { b.Custody.Entries = slices.Delete(b.Custody.Entries, 4, 5) }, "counts 6 entries of the subject, the proof lists 5"},
		"the newest entry dropped": {func(b *report.Bundle) { b.Custody.Entries = b.Custody.Entries[:5]; b.Custody.Head.Count = 5 }, "the map does not hold this head"},
		"two entries reordered": {func(b *report.Bundle) {
			b.Custody.Entries[4], b.Custody.Entries[5] = b.Custody.Entries[5], b.Custody.Entries[4]
		}, "listed as"},
		"an entry of another study slipped in": {func(b *report.Bundle) { b.Custody.Entries[3] = otherProof.Entries[0] }, "not chained under this subject"},
		"a proof against a forged checkpoint": {func(b *report.Bundle) {
			n, _ := note.Open(b.Custody.Checkpoint, note.VerifierList(keys.Log))
			b.Custody.Checkpoint, _ = note.Sign(&note.Note{Text: n.Text}, forger)
		}, "custody log: checkpoint"},
		"an access record dropped": {func(b *report.Bundle) { b.Audit[0].Entries = slices.Delete(b.Audit[0].Entries, 5, 6) }, "audit log:"},
		"a proof at a checkpoint older than the one held": {func(b *report.Bundle) {
			r := auditor.do(http.MethodGet, fmt.Sprintf("/v1/log/proof/subject?study=%s&size=%d", study.uid, oldCheckpoint.Size), "", nil)
			b.Custody = new(ledger.SubjectProof)
			if err := json.Unmarshal(r.body, b.Custody); err != nil {
				t.Fatal(err)
			}
		}, "older than the one you hold"},
	} {
		bb := bundleOf(t, readDocument(t, bundle))
		c.mutate(bb)
		doc, err := report.Sign(context.Background(), issuer, bb)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "tampered.json")
		raw, _ := json.Marshal(doc)
		os.WriteFile(path, raw, 0o644)
		code, out := runCLI("verify-report", path, "--key", attKey, "--log-key", logKey, "--audit-log-key", auditKey, "--log-checkpoint", heldCheckpoint)
		if code != 1 || !strings.HasPrefix(out, "NOT VERIFIED") || !strings.Contains(out, c.want) {
			t.Errorf("%s, re-signed by the server's key: exit %d, want 1 naming %q:\n%s", name, code, c.want, out)
		}
	}
	if code, out := runCLI("verify-report", bundle, "--log-key", logKey); code != 2 {
		t.Errorf("verify-report without --key: exit %d\n%s", code, out)
	}
	// Without the audit log's key: sound, and said to be unchecked.
	if code, out := runCLI("verify-report", bundle, "--key", attKey, "--log-key", logKey); code != 0 || !strings.Contains(out, "NOT CHECKED") {
		t.Errorf("verify-report without --audit-log-key: exit %d\n%s", code, out)
	}

	// Other queries and refusals.
	r := auditor.do(http.MethodGet, "/v1/custody?sop="+d+"&from=2000-01-01T00:00:00Z", "", nil)
	if got := verifyBody(t, r, keys); got.Query.Study != study.uid || len(got.Instances) != 1 || len(got.Events) < 3 {
		t.Errorf("an instance's report: %v", got.Events)
	}
	r = auditor.do(http.MethodGet, "/v1/custody?study="+study.uid+"&from=2999-01-01T00:00:00Z", "", nil)
	if got := verifyBody(t, r, keys); len(got.Events) != 0 || len(got.Custody.Entries) != 6 {
		t.Errorf("a window after everything: %d events, %d entries proven", len(got.Events), len(got.Custody.Entries))
	}
	patient := srv.do(http.MethodGet, "/dicomweb/instances?SOPInstanceUID="+a+"&includefield=00100020&includefield=00100010", "", nil)
	var found []map[string]struct{ Value []json.RawMessage }
	json.Unmarshal(patient.body, &found)
	var pn struct{ Alphabetic string }
	json.Unmarshal(found[0]["00100010"].Value[0], &pn)
	patientName = strings.ReplaceAll(pn.Alphabetic, "^", " ")
	var patientID string
	json.Unmarshal(found[0]["00100020"].Value[0], &patientID)
	r = auditor.do(http.MethodGet, "/v1/custody?patient="+patientID, "", nil)
	got := verifyBody(t, r, keys)
	if len(got.Instances) != 4 || len(got.Audit) != 1 {
		t.Errorf("the patient's report: %d instances, %d audit proofs", len(got.Instances), len(got.Audit))
	}
	// Its export names the patient's key, never the Patient ID.
	found2 := auditor.do(http.MethodGet, "/v1/audit?object=patient:"+got.Custody.Subject.String(), "", nil)
	if !bytes.Contains(found2.body, []byte(`"custody.export"`)) || bytes.Contains(found2.body, []byte(patientID)) {
		t.Errorf("the patient report's audit event: %s", found2.body)
	}
	assertProblem(t, srv.as(auth.RoleViewer).do(http.MethodGet, "/v1/custody?study="+study.uid, "", nil), http.StatusForbidden, "forbidden")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/custody", "", nil), http.StatusBadRequest, "invalid-proof-request")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/custody?study=not-a-uid", "", nil), http.StatusBadRequest, "invalid-proof-request")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/custody?sop=1.2.3.4", "", nil), http.StatusNotFound, "not-found")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/custody?patient=NOBODY", "", nil), http.StatusNotFound, "unknown-patient")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/custody?study="+study.uid+"&to=yesterday", "", nil), http.StatusBadRequest, "invalid-request")
	srv.stop()

	// Offline, from the data directory: every format; each report is an
	// export event, so the next one lists the reports made before it.
	out = reportCLI(t, dataDir, dep.flags, "json", study.uid)
	os.WriteFile(bundle, []byte(out), 0o644)
	v = verifyBody(t, response{status: http.StatusOK, body: []byte(out)}, keys)
	exports := 0
	for _, e := range v.Events {
		if e.Event == "custody.export" {
			exports++
		}
	}
	if exports < 3 { // the HTTP reports of the study, before this one
		t.Errorf("%d custody.export events in the report", exports)
	}
	rows, err := csv.NewReader(strings.NewReader(reportCLI(t, dataDir, dep.flags, "csv", study.uid))).ReadAll()
	if err != nil || len(rows) < 2 || !slices.Equal(rows[0], report.CSVHeader) {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	if len(rows)-1 != len(v.Events)+1 { // this report's own export came since
		t.Errorf("csv: %d rows, the report before it had %d events", len(rows)-1, len(v.Events))
	}
	pdfText := pdfToText(t, []byte(reportCLI(t, dataDir, dep.flags, "pdf", study.uid)))
	htmlFile := filepath.Join(t.TempDir(), "report.html")
	os.WriteFile(htmlFile, []byte(reportCLI(t, dataDir, dep.flags, "html", study.uid)), 0o644)
	htmlText := pdfToText(t, chromiumPrint(t, htmlFile))
	for what, text := range map[string]string{"pdf": pdfText, "html": htmlText} {
		for _, s := range append([]string{study.uid, "attested", "recorded", "FAILED: altered", "allowed 200", "What was proven"}, sops...) {
			if !strings.Contains(text, s) {
				t.Errorf("the %s's text lacks %q", what, s)
			}
		}
		if strings.Contains(text, other) {
			t.Errorf("the %s names the other study", what)
		}
		if strings.Contains(text, patientName) {
			t.Errorf("the %s names the patient without --names", what)
		}
	}
	// --names, for the operator: the patient from the identity table.
	named := pdfToText(t, []byte(reportCLI(t, dataDir, dep.flags, "pdf", study.uid, "--names")))
	if !strings.Contains(named, patientName) || !strings.Contains(named, "not proven") {
		t.Errorf("the PDF with --names lacks the patient %q:\n%.2000s", patientName, named)
	}
	if code, out := runCLI(append([]string{"report", "--data-dir", dataDir, "--study", study.uid, "--format", "csv", "--names"}, dep.flags...)...); code != 2 {
		t.Errorf("--names with csv: exit %d\n%s", code, out)
	}
}

func reportCLI(t *testing.T, dataDir string, flags []string, format, study string, extra ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report."+format)
	args := append([]string{"report", "--data-dir", dataDir, "--study", study, "--format", format, "--output", path, "--actor", "e2e"}, extra...)
	code, out := runCLI(append(args, flags...)...)
	if code != 0 {
		t.Fatalf("report --format %s: exit %d\n%s", format, code, out)
	}
	b, _ := os.ReadFile(path)
	return string(b)
}

func attestationPEM(t *testing.T, s *testServer) []byte {
	t.Helper()
	k, ok := s.keyOf("attestation")
	if !ok {
		t.Fatal("no attestation key in /v1/keys")
	}
	return []byte(k.PublicKey)
}

func reportKeys(t *testing.T, att, logKey, auditKey string) report.Keys {
	t.Helper()
	pemBytes, _ := os.ReadFile(att)
	av, err := signer.NewVerifierFromPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := signer.LoadLogVerifier(logKey)
	if err != nil {
		t.Fatal(err)
	}
	auv, err := signer.LoadLogVerifier(auditKey)
	if err != nil {
		t.Fatal(err)
	}
	return report.Keys{Attestation: av, LogOrigin: defaultLogOrigin, Log: lv, AuditOrigin: defaultAuditOrigin, Audit: auv}
}

func verifyBody(t *testing.T, r response, keys report.Keys) *report.Verified {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	var doc report.Document
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	v, err := report.Verify(&doc, keys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readDocument(t *testing.T, path string) *report.Document {
	t.Helper()
	raw, _ := os.ReadFile(path)
	doc, err := report.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// bundleOf reads a report's bundle without checking it, as a forger would.
func bundleOf(t *testing.T, doc *report.Document) *report.Bundle {
	t.Helper()
	var b report.Bundle
	if err := json.Unmarshal(doc.Bundle, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// pdfToText is the text of a PDF as poppler's pdftotext reads it.
func pdfToText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	requireOrSkip(t, err == nil, "pdftotext is not installed; scripts/report-tools.sh installs poppler-utils")
	cmd := exec.Command(bin, "-layout", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// chromiumPrint renders an HTML file in headless Chromium and prints it
// to PDF: what a reader's browser shows.
func chromiumPrint(t *testing.T, htmlFile string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	requireOrSkip(t, err == nil, "chromium is not installed; scripts/report-tools.sh installs it")
	out := filepath.Join(t.TempDir(), "printed.pdf")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--no-pdf-header-footer", "--print-to-pdf="+out, "file://"+htmlFile)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	pdf, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}
