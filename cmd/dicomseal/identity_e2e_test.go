package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
)

// An identity change, real file by real file (issue 11): through ingest it
// is refused whatever the file's Original Attributes Sequence says; through
// a reconciler's correction it is accepted only when the sequence states
// the attested previous values, and then both versions stay verifiable.

// original holds a fixture's attested identity, from dcmdump.
type original struct {
	file, uid                   string
	patientID, patientName, sex string
	studyUID                    string
}

var identityFixtures = []original{
	{"pydicom-CT_small.dcm", "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", "1CT1", "CompressedSamples^CT1", "O",
		"1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"},
	{"pydicom-MR_small.dcm", "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", "4MR1", "CompressedSamples^MR1", "F",
		"1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"},
}

// identityCase is one change of identity, as dcmodify arguments built from
// the fixture's attested values.
type identityCase struct {
	name    string
	args    func(o original) []string
	changed []string // attribute keywords the change touches
	// truthful: the sequence lists every change with its attested value.
	truthful bool
}

// oas documents a modification in an Original Attributes Sequence item.
func oas(prev map[string]string) []string {
	tags := map[string]string{"PatientID": "(0010,0020)", "PatientName": "(0010,0010)", "PatientBirthDate": "(0010,0030)",
		"PatientSex": "(0010,0040)", "StudyInstanceUID": "(0020,000D)"}
	args := []string{"-i", "(0400,0561)[0].(0400,0563)=HOSPITAL-MPI", "-i", "(0400,0561)[0].(0400,0565)=CORRECT",
		"-i", "(0400,0561)[0].(0400,0562)=20261201120000"}
	keys := make([]string, 0, len(prev))
	for k := range prev {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-i", "(0400,0561)[0].(0400,0550)[0]."+tags[k]+"="+prev[k])
	}
	return args
}

var identityCases = []identityCase{
	{"PatientID only, undocumented", func(o original) []string {
		return []string{"-m", "(0010,0020)=MRN-77001"}
	}, []string{"PatientID"}, false},
	{"PatientID and PatientName, truthful sequence", func(o original) []string {
		return append([]string{"-m", "(0010,0020)=MRN-77001", "-m", "(0010,0010)=Doe^Jane"},
			oas(map[string]string{"PatientID": o.patientID, "PatientName": o.patientName})...)
	}, []string{"PatientID", "PatientName"}, true},
	{"PatientID and PatientName, false sequence", func(o original) []string {
		return append([]string{"-m", "(0010,0020)=MRN-77001", "-m", "(0010,0010)=Doe^Jane"},
			oas(map[string]string{"PatientID": "NOT-" + o.patientID, "PatientName": "Someone^Else"})...)
	}, []string{"PatientID", "PatientName"}, false},
	{"ID, name, birth date and sex, truthful sequence", func(o original) []string {
		return append([]string{"-m", "(0010,0020)=MRN-77002", "-m", "(0010,0010)=Roe^Richard",
			"-m", "(0010,0030)=19700101", "-m", "(0010,0040)=M"},
			oas(map[string]string{"PatientID": o.patientID, "PatientName": o.patientName, "PatientBirthDate": "",
				"PatientSex": o.sex})...)
	}, []string{"PatientBirthDate", "PatientID", "PatientName", "PatientSex"}, true},
	{"Study Instance UID, truthful sequence", func(o original) []string {
		return append([]string{"-m", "(0020,000D)=1.2.826.0.1.3680043.10.99.77"},
			oas(map[string]string{"StudyInstanceUID": o.studyUID})...)
	}, []string{"StudyInstanceUID"}, true},
	// The true previous value hidden inside a sequence of the Modified
	// Attributes item is not a previous value of PatientID.
	{"PatientID, the attested value only nested deeper in the sequence", func(o original) []string {
		return []string{"-m", "(0010,0020)=MRN-77003", "-i", "(0400,0561)[0].(0400,0563)=HOSPITAL-MPI",
			"-i", "(0400,0561)[0].(0400,0550)[0].(0010,0020)=WRONG-PREVIOUS",
			"-i", "(0400,0561)[0].(0400,0550)[0].(0010,1002)[0].(0010,0020)=" + o.patientID}
	}, []string{"PatientID"}, false},
	// The newest item of the sequence is what states the previous value.
	{"PatientID, newest sequence item false", func(o original) []string {
		return []string{"-m", "(0010,0020)=MRN-77004",
			"-i", "(0400,0561)[0].(0400,0550)[0].(0010,0020)=" + o.patientID,
			"-i", "(0400,0561)[1].(0400,0550)[0].(0010,0020)=WRONG-PREVIOUS"}
	}, []string{"PatientID"}, false},
}

// ingestOnlyCases change identity in ways no correction supports.
var ingestOnlyCases = []identityCase{
	{"an Other Patient IDs Sequence item", func(o original) []string {
		return []string{"-i", "(0010,1002)[0].(0010,0020)=MRN-OF-SOMEONE-ELSE"}
	}, []string{"OtherPatientIDsSequence"}, false},
	{"Other Patient Names", func(o original) []string {
		return []string{"-i", "(0010,1001)=Someone^Else"}
	}, []string{"OtherPatientNames"}, false},
}

func TestIdentityChangesThroughIngestAreRefused(t *testing.T) {
	tools := newDcmtk(t)
	for _, o := range identityFixtures {
		srv := startServer(t, t.TempDir())
		orig := fixture(t, o.file)
		if r := srv.ingest(orig); r.status != http.StatusCreated {
			t.Fatalf("%s: ingest: %d %s", o.file, r.status, r.body)
		}
		for _, tc := range append(slices.Clone(identityCases), ingestOnlyCases...) {
			t.Run(o.file+"/"+tc.name, func(t *testing.T) {
				changed := tools.convert(orig, "dcmodify", append(append([]string{"-nb"}, tc.args(o)...), "IN")...)
				p := assertProblem(t, srv.ingest(changed), http.StatusConflict, "identity-change-refused")
				if p["security_alert"] != true {
					t.Fatalf("not recorded as a security alert: %v", p)
				}
				if got := problemChanges(p); !slices.Equal(got, tc.changed) {
					t.Fatalf("changes %v, want %v", got, tc.changed)
				}
				// The alert names the attributes, never their values.
				entry := srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/log/entries/"+jsonNumber(p["conflict_ledger_index"]), "", nil)
				body := entryBody(t, entry)
				if !strings.Contains(body, `"security-alert"`) || strings.Contains(body, "MRN-770") ||
					strings.Contains(body, "Doe^Jane") || strings.Contains(body, o.patientName) {
					t.Fatalf("security-alert entry: %s", body)
				}
				if got := srv.do(http.MethodGet, "/v1/instances/"+o.uid, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, orig) {
					t.Fatalf("the original is no longer served: %d", got.status)
				}
			})
		}
	}
}

func TestIdentityCorrections(t *testing.T) {
	tools := newDcmtk(t)
	for _, o := range identityFixtures {
		for _, tc := range identityCases {
			t.Run(o.file+"/"+tc.name, func(t *testing.T) {
				srv := startServer(t, t.TempDir(), "--checkpoint-interval", "20ms")
				orig := fixture(t, o.file)
				first := srv.ingest(orig)
				if first.status != http.StatusCreated {
					t.Fatalf("ingest: %d", first.status)
				}
				changed := tools.convert(orig, "dcmodify", append(append([]string{"-nb"}, tc.args(o)...), "IN")...)
				route := "/v1/instances/" + o.uid + "/identity-corrections"
				r := srv.correct(route, changed, "MPI merge of duplicate registration (ticket 4711)")
				if !tc.truthful {
					p := assertProblem(t, r, http.StatusConflict, "identity-correction-refused")
					if p["security_alert"] != true {
						t.Fatalf("a false correction must be a security alert: %v", p)
					}
					if got := srv.do(http.MethodGet, "/v1/instances/"+o.uid, "", nil); !bytes.Equal(got.body, orig) {
						t.Fatal("a refused correction changed what is served")
					}
					return
				}
				if r.status != http.StatusCreated {
					t.Fatalf("correction: %d %s", r.status, r.body)
				}
				att := r.json(t)
				ic, _ := att["identity_correction"].(map[string]any)
				if ic == nil || ic["actor"] != srv.tokenName(auth.RoleReconciler) || !slices.Equal(anyStrings(ic["changed"]), tc.changed) {
					t.Fatalf("identity_correction %v, want the reconciler and %v", ic, tc.changed)
				}
				// The entry names the reconciler and the attributes, with
				// commitments; never the reason or a value.
				entry := entryBody(t, srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/log/entries/"+jsonNumber(att["ledger_index"]), "", nil))
				if !strings.Contains(entry, `"kind":"identity-correction"`) || !strings.Contains(entry, srv.tokenName(auth.RoleReconciler)) ||
					strings.Contains(entry, "ticket 4711") || strings.Contains(entry, "MRN-770") || strings.Contains(entry, o.patientName) {
					t.Fatalf("identity-correction entry: %s", entry)
				}
				// Served afterwards; the original by its revision; a retry is idempotent.
				if got := srv.do(http.MethodGet, "/v1/instances/"+o.uid, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, changed) {
					t.Fatalf("the correction is not served: %d", got.status)
				}
				if got := srv.do(http.MethodGet, "/v1/instances/"+o.uid+"?revision=0", "", nil); !bytes.Equal(got.body, orig) {
					t.Fatal("the original is not served by its revision")
				}
				if again := srv.correct(route, changed, "retry"); again.status != http.StatusOK ||
					again.json(t)["ledger_index"] != att["ledger_index"] {
					t.Fatalf("the same correction again: %d %s", again.status, again.body)
				}
				// The old bytes are no longer the patient's: verify says so.
				ver := srv.do(http.MethodPost, "/v1/verify", "application/dicom", orig).json(t)
				if ver["status"] != "superseded" || ver["superseded_by"] != att["ledger_index"] {
					t.Fatalf("verify of the corrected-away original: %v", ver)
				}
				// Both versions verify offline, signature and log inclusion.
				v, _ := srv.logVerifier()
				srv.waitForCheckpoint(v, uint64(att["ledger_index"].(float64))+1)
				srv.verifyOffline(orig, srv.attestationAt(o.uid, 0))
				srv.verifyOffline(changed, srv.attestationAt(o.uid, uint64(att["ledger_index"].(float64))))
			})
		}
	}
}

func TestIdentityCorrectionRequests(t *testing.T) {
	tools := newDcmtk(t)
	o := identityFixtures[0]
	srv := startServer(t, t.TempDir())
	orig := fixture(t, o.file)
	if r := srv.ingest(orig); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d", r.status)
	}
	changed := tools.convert(orig, "dcmodify", append(append([]string{"-nb"}, identityCases[1].args(o)...), "IN")...)
	route := "/v1/instances/" + o.uid + "/identity-corrections"
	for _, role := range auth.Roles {
		if role == auth.RoleReconciler {
			continue
		}
		assertProblem(t, srv.as(role).do(http.MethodPost, route, "application/dicom", changed), http.StatusForbidden, "forbidden")
	}
	assertProblem(t, srv.correct(route, changed, ""), http.StatusBadRequest, "invalid-request")
	assertProblem(t, srv.correct(route, changed, strings.Repeat("x", 1025)), http.StatusBadRequest, "invalid-request")
	assertProblem(t, srv.correct("/v1/instances/1.2.3.4/identity-corrections", changed, "wrong instance"), http.StatusNotFound, "not-found")
	// A benign re-encoding is not a correction, and a pixel change never is.
	reencoded := tools.convert(orig, "dcmconv", "+ti", "IN", "OUT")
	assertProblem(t, srv.correct(route, reencoded, "nothing"), http.StatusConflict, "identity-correction-refused")
	pix := bytes.Clone(changed)
	pix[pixelOffset(t, changed)+1] ^= 0x01
	assertProblem(t, srv.correct(route, pix, "pixels too"), http.StatusConflict, "identity-correction-refused")
	// The PACS's reconciliation account, set up as the README says, with
	// `tokens create --role reconciler` beside the running server.
	mpi := srv.as(auth.RoleReconciler)
	mpi.tokens = map[auth.Role]string{auth.RoleReconciler: cliToken(t, auth.RoleReconciler, "--data-dir", srv.dataDir)}
	r := mpi.doWithHeader(http.MethodPost, route, "application/dicom", changed, "Correction-Reason", "MPI merge")
	if r.status != http.StatusCreated {
		t.Fatalf("the truthful correction after the refusals: %d %s", r.status, r.body)
	}
	if actor := r.json(t)["identity_correction"].(map[string]any)["actor"].(string); !strings.HasPrefix(actor, "reconciler-") {
		t.Fatalf("the correction names %q, want the CLI-made reconciler token", actor)
	}
}

// correct sends a corrected file with a reason as the reconciler.
func (s *testServer) correct(path string, body []byte, reason string) response {
	s.t.Helper()
	c := *s
	c.asRole = auth.RoleReconciler
	if reason == "" {
		return c.do(http.MethodPost, path, "application/dicom", body)
	}
	return c.doWithHeader(http.MethodPost, path, "application/dicom", body, "Correction-Reason", reason)
}

func (s *testServer) tokenName(role auth.Role) string {
	s.t.Helper()
	toks, err := s.main.Tokens().ListTokens(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Role == role && strings.HasPrefix(tk.Name, "test-"+string(role)+"-") {
			return tk.Name
		}
	}
	s.t.Fatalf("no %s token", role)
	return ""
}

// attestationAt returns the attestation of the revision at idx, with its
// inclusion proof, as an offline verifier would be handed it.
func (s *testServer) attestationAt(uid string, idx uint64) []byte {
	s.t.Helper()
	r := s.do(http.MethodGet, "/v1/instances/"+uid+"/attestation?revision="+jsonNumber(float64(idx)), "", nil)
	if r.status != http.StatusOK {
		s.t.Fatalf("attestation of revision %d: %d %s", idx, r.status, r.body)
	}
	return r.body
}

// verifyOffline runs `dicomseal verify` with the public keys only.
func (s *testServer) verifyOffline(file, att []byte) {
	s.t.Helper()
	_, vkeyPath := s.logVerifier()
	_, pub := s.attestationKey()
	dir := s.t.TempDir()
	fp, ap := filepath.Join(dir, "f.dcm"), filepath.Join(dir, "a.json")
	os.WriteFile(fp, file, 0o644)
	os.WriteFile(ap, att, 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"verify", "--key", pub, "--log-key", vkeyPath, "--attestation", ap, fp}, &stdout, &stderr); code != 0 {
		s.t.Fatalf("offline verify: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

func problemChanges(p map[string]any) []string {
	var out []string
	for _, c := range p["changes"].([]any) {
		out = append(out, c.(map[string]any)["attribute"].(string))
	}
	slices.Sort(out)
	return out
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// entryBody decodes a /v1/log/entries answer's canonical entry.
func entryBody(t *testing.T, r response) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("log entry: %d %s", r.status, r.body)
	}
	e := r.json(t)
	b, err := base64.StdEncoding.DecodeString(e["entry"].(string))
	if err != nil {
		t.Fatalf("log entry %v: %v", e, err)
	}
	return string(b)
}

// An identity change is named as one, and is a security alert, whatever
// else changed with it: a new encoding, or another character set for the
// same bytes of a name.
func TestIdentityChangeAmongOtherChanges(t *testing.T) {
	tools := newDcmtk(t)
	srv := startServer(t, t.TempDir())
	ct := fixture(t, "pydicom-CT_small.dcm")
	if r := srv.ingest(ct); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d", r.status)
	}
	reencoded := tools.convert(tools.convert(ct, "dcmodify", "-nb", "-m", "(0010,0020)=MRN-77005", "IN"), "dcmcjpls", "+el", "IN", "OUT")
	p := assertProblem(t, srv.ingest(reencoded), http.StatusConflict, "identity-change-refused")
	if p["security_alert"] != true {
		t.Fatalf("identity change with a re-encoding: not a security alert: %v", p)
	}

	// Greek, then the same bytes declared Hebrew: a different name.
	mr := tools.convert(fixture(t, "pydicom-MR_small.dcm"), "dcmodify", "-nb", "-gin",
		"-i", "(0008,0005)=ISO_IR 126", "-m", "(0010,0010)=\xd0\xe1\xf0\xe1", "IN")
	if r := srv.ingest(mr); r.status != http.StatusCreated {
		t.Fatalf("ingest of the Greek file: %d %s", r.status, r.body)
	}
	hebrew := tools.convert(mr, "dcmodify", "-nb", "-m", "(0008,0005)=ISO_IR 138", "IN")
	p = assertProblem(t, srv.ingest(hebrew), http.StatusConflict, "identity-change-refused")
	if got := problemChanges(p); !slices.Contains(got, "PatientName") {
		t.Fatalf("changes %v, want PatientName", got)
	}
}
