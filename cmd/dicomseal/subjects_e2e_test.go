package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/subject"
	"github.com/transparency-dev/formats/log"
)

// A study's history through the API: ingests, retrievals, a refused
// conflicting version and an integrity failure are all in the custody
// and audit proofs of its study, which verify offline with only the logs'
// verifier keys; the patient's proof goes through the correctable salt.
func TestSubjectProofsOverHTTP(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { subjectProofsOverHTTP(t) })
	t.Run("postgres", func(t *testing.T) { subjectProofsOverHTTP(t, "--database-url", pgtest.New(t).Service) })
}

func subjectProofsOverHTTP(t *testing.T, flags ...string) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, append([]string{"--checkpoint-interval", "20ms"}, flags...)...)
	ct := fixture(t, "pydicom-CT_small.dcm")
	att := srv.ingest(ct).json(t)
	uid, study := att["sop_instance_uid"].(string), att["study_instance_uid"].(string)
	srv.ingest(fixture(t, "pydicom-MR_small.dcm")) // another study: not in the proof
	for range 2 {
		if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status != http.StatusOK {
			t.Fatalf("retrieve: %d", got.status)
		}
	}
	// Reading its attestation and verifying its bytes by digest touch the
	// study too.
	if got := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil); got.status != http.StatusOK {
		t.Fatalf("attestation: %d", got.status)
	}
	if got := srv.do(http.MethodGet, "/v1/verify?sha256="+sha256Hex(ct), "", nil); got.status != http.StatusOK {
		t.Fatalf("verify: %d", got.status)
	}
	// Other bytes under the attested UID: refused, recorded as a conflict.
	altered := slices.Clone(ct)
	altered[pixelOffset(t, ct)] ^= 0xff
	assertProblem(t, srv.ingest(altered), http.StatusConflict, "instance-conflict")
	// The stored object lost: the retrieval fails and is recorded.
	if err := os.Remove(objectPath(dataDir, sha256Hex(ct))); err != nil {
		t.Fatal(err)
	}
	if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status < 500 {
		t.Fatalf("retrieve of a lost object: %d", got.status)
	}
	v, _ := srv.logVerifier()
	av, _ := srv.auditLogVerifier()

	// Wait until the latest checkpoint's proof lists the failure.
	var kinds []string
	auditor := srv.as(auth.RoleAuditor)
	// An empty result until the first checkpoint with a subject map.
	prove := func(path string, v note.Verifier, origin string, key ledger.SubjectKey) *ledger.SubjectEntries {
		t.Helper()
		// The proof is asked at the latest checkpoint, by its size: the
		// verifier refuses an answer at any other (an older one would hide
		// what came after it).
		cpPath := "/v1/log/checkpoint"
		if strings.HasPrefix(path, "/v1/audit/") {
			cpPath = "/v1/audit/checkpoint"
		}
		cp, _, _, err := log.ParseCheckpoint(auditor.do(http.MethodGet, cpPath, "", nil).body, origin, v)
		if err != nil {
			t.Fatal(err)
		}
		path = fmt.Sprintf("%s&size=%d", path, cp.Size)
		got := auditor.do(http.MethodGet, path, "", nil)
		if got.status == http.StatusNotFound && strings.Contains(string(got.body), "no-subject-map") {
			return &ledger.SubjectEntries{}
		}
		if got.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, got.status, got.body)
		}
		var p ledger.SubjectProof
		if err := json.Unmarshal(got.body, &p); err != nil {
			t.Fatal(err)
		}
		es, err := ledger.VerifySubjectProof(origin, v, key, cp.Size, &p)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return es
	}
	key := subject.Study(study)
	waitFor(t, func() bool {
		kinds = kinds[:0]
		for _, e := range prove("/v1/log/proof/subject?study="+study, v, defaultLogOrigin, key).Entries {
			var b struct{ Kind string }
			json.Unmarshal(e.Body, &b)
			kinds = append(kinds, b.Kind)
		}
		return slices.Contains(kinds, "integrity-failure")
	})
	if len(kinds) != 3 || kinds[0] != "ingest" || (kinds[1] != "conflict" && kinds[1] != "security-alert") || kinds[2] != "integrity-failure" {
		t.Fatalf("custody entries of the study: %v, want ingest, the refused version, integrity-failure", kinds)
	}

	// The audit log: the ingest and the two retrievals are the study's;
	// the other study's ingest is not. (A native request that fails
	// before the instance is read names no study: it is the SOP
	// Instance UID's, in the audit query by object.)
	var actions []string
	waitFor(t, func() bool {
		actions = actions[:0]
		for _, e := range prove("/v1/audit/proof/subject?study="+study, av, defaultAuditOrigin, key).Entries {
			var b struct{ Action, Study string }
			json.Unmarshal(e.Body, &b)
			if b.Study != study {
				t.Fatalf("an audit entry of study %q in the proof of %s", b.Study, study)
			}
			actions = append(actions, b.Action)
		}
		return strings.Count(strings.Join(actions, " "), "instance.retrieve") == 2
	})
	if !slices.Contains(actions, "instance.ingest") || !slices.Contains(actions, "instance.attestation") || !slices.Contains(actions, "verify.digest") {
		t.Fatalf("audit entries of the study: %v", actions)
	}

	// The patient: by Patient ID, through the salt; the same custody entries.
	qido := srv.do(http.MethodGet, "/dicomweb/instances?SOPInstanceUID="+uid+"&includefield=00100020", "", nil)
	var found []map[string]struct{ Value []string }
	json.Unmarshal(qido.body, &found)
	if len(found) != 1 || len(found[0]["00100020"].Value) != 1 {
		t.Fatalf("QIDO for the patient ID: %d %s", qido.status, qido.body)
	}
	patient := found[0]["00100020"].Value[0]
	got := auditor.do(http.MethodGet, "/v1/log/proof/subject?patient="+patient, "", nil)
	var p ledger.SubjectProof
	if json.Unmarshal(got.body, &p) != nil || got.status != http.StatusOK || p.Head == nil || p.Head.Count < 3 {
		t.Fatalf("patient proof: %d %s", got.status, got.body)
	}
	if _, err := ledger.VerifySubjectProof(defaultLogOrigin, v, p.Subject, 0, &p); err != nil {
		t.Fatal(err)
	}

	// Refusals, by name.
	assertProblem(t, auditor.do(http.MethodGet, "/v1/log/proof/subject?patient=NOBODY", "", nil), http.StatusNotFound, "unknown-patient")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/log/proof/subject?study="+study+"&patient="+patient, "", nil), http.StatusBadRequest, "invalid-proof-request")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/audit/proof/subject?patient="+patient, "", nil), http.StatusBadRequest, "invalid-proof-request")
	assertProblem(t, auditor.do(http.MethodGet, "/v1/log/proof/subject?study="+study+"&size=1", "", nil), http.StatusBadRequest, "invalid-proof-request")
	assertProblem(t, srv.as(auth.RoleViewer).do(http.MethodGet, "/v1/log/proof/subject?study="+study, "", nil), http.StatusForbidden, "forbidden")

	// No entry of either log names the patient (the bodies are the same
	// on every backend; the embedded files are read directly).
	srv.stop()
	if len(flags) == 0 {
		for _, db := range []string{"ledger.db", "audit.db"} {
			for _, e := range rawEntries(t, dataDir+"/"+db) {
				if strings.Contains(string(e.Body), patient) {
					t.Fatalf("%s entry %d names the patient: %.200s", db, e.Index, e.Body)
				}
			}
		}
	}
	if code, out := runCLI(append([]string{"log", "verify", "--data-dir", dataDir}, flags...)...); code != 0 || !strings.Contains(out, "subject maps") {
		t.Fatalf("log verify: exit %d\n%s", code, out)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not within 10 s")
		}
	}
}
