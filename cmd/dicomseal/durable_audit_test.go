package main

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

// No image leaves and no verdict is answered without its audit record: with
// the audit log unwritable (the service role may no longer insert into it),
// retrieval, attestation and verification answer 503 audit-unavailable and
// send nothing; once it is writable again they answer, and each answer
// that was sent has its event in the log.
func TestNoAnswerWithoutDurableAudit(t *testing.T) {
	db := pgtest.New(t)
	srv := startServer(t, t.TempDir(), "--database-url", db.Service)
	ct := fixture(t, "pydicom-CT_small.dcm")
	if r := srv.ingest(ct); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d", r.status)
	}
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	requests := []struct {
		method, path, ct string
		body             []byte
	}{
		{http.MethodGet, "/v1/instances/" + uid, "", nil},
		{http.MethodGet, "/v1/instances/" + uid + "/attestation", "", nil},
		{http.MethodGet, "/v1/verify?sha256=" + sha256Hex(ct), "", nil},
		{http.MethodPost, "/v1/verify", "application/dicom", ct},
	}
	service := pgtest.Roles.Service
	db.Exec(t, `REVOKE INSERT ON dicomseal_audit.entries FROM `+service)
	for _, q := range requests {
		r := srv.do(q.method, q.path, q.ct, q.body)
		assertProblem(t, r, http.StatusServiceUnavailable, "audit-unavailable")
		if bytes.Contains(r.body, ct[200:400]) || r.header.Get("Repr-Digest") != "" {
			t.Fatalf("%s %s: bytes or their digest left without an audit record", q.method, q.path)
		}
	}
	db.Exec(t, `GRANT INSERT ON dicomseal_audit.entries TO `+service)
	for _, q := range requests {
		if r := srv.do(q.method, q.path, q.ct, q.body); r.status != http.StatusOK {
			t.Fatalf("%s %s after the audit log came back: %d %s", q.method, q.path, r.status, r.body)
		}
	}
	// The four answers sent are in the audit log already: durable before
	// the answer, not queued.
	entries := auditEntries(t, srv, "actor="+srv.tokenName(roleFor(http.MethodGet, "/v1/instances/x")), 0)
	counts := map[string]int{}
	for _, e := range entries {
		if e["status"] == float64(http.StatusOK) {
			counts[e["action"].(string)]++
		}
	}
	for _, a := range []string{"instance.retrieve", "instance.attestation", "verify.digest", "verify.file"} {
		if counts[a] != 1 {
			t.Fatalf("audit events of answered requests: %v, want one 200 of %s", counts, a)
		}
	}
}
