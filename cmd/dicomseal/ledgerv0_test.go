package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/migrations"
	"github.com/dicomseal/dicomseal/signer"
)

// The instances of testdata/ledger-v0 (see its README).
const (
	v0CT  = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	v0MR  = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
	v0J2K = "1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457"
)

// copyV0 copies the data directory written by the release before
// versioned entries: it is never opened in place.
func copyV0(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "ledger-v0")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if d.Name() == "README.md" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// openLogFile opens a data directory's ledger.db or audit.db.
func openLogFile(path string) (*sqlite.DB, error) {
	if filepath.Base(path) == "audit.db" {
		return sqlite.OpenAudit(context.Background(), path)
	}
	return sqlite.Open(context.Background(), path)
}

// rawEntries reads a stopped server's log file directly.
func rawEntries(t *testing.T, path string) []ledger.Entry {
	t.Helper()
	db, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []ledger.Entry
	err = db.Read(context.Background(), func(tx ledger.Tx) error {
		return tx.ScanEntries(context.Background(), 0, 1<<62, func(e ledger.Entry) error { out = append(out, e); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLedgerOfThePreviousReleaseStillVerifies(t *testing.T) {
	dir := copyV0(t)
	if code, out := runCLI("log", "verify", "--data-dir", dir); code != 0 ||
		!strings.Contains(out, "custody: OK, 8 entries") || !strings.Contains(out, "audit: OK, 12 entries") {
		t.Fatalf("log verify of the previous release's logs: exit %d\n%s", code, out)
	}
	srv := startServer(t, dir, "--checkpoint-interval", "20ms")
	ct := fixture(t, "pydicom-CT_small.dcm")
	// Every instance is served and its attestation verifies offline:
	// ingest, revision, identity correction, and one restored after an
	// integrity failure.
	for _, uid := range []string{v0CT, v0MR, v0J2K} {
		got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
		if got.status != http.StatusOK {
			t.Fatalf("%s: %d %s", uid, got.status, got.body)
		}
		srv.verifyOffline(got.body, srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil).body)
	}
	if got := srv.do(http.MethodGet, "/v1/instances/"+v0CT+"?revision=0", "", nil); !bytes.Equal(got.body, ct) {
		t.Fatalf("revision 0 of CT_small: %d", got.status)
	}
	att := srv.do(http.MethodGet, "/v1/instances/"+v0MR+"/attestation", "", nil).json(t)
	if ic, _ := att["identity_correction"].(map[string]any); ic == nil || ic["corrects"] != float64(4) {
		t.Fatalf("the version-0 identity correction is not read: %v", att["identity_correction"])
	}
	if v := srv.do(http.MethodPost, "/v1/verify", "application/dicom", fixture(t, "pydicom-MR_small.dcm")).json(t); v["status"] != "superseded" {
		t.Fatalf("verify of the corrected-away MR: %v", v)
	}
	// The version-0 audit events read as they were written.
	found := false
	for _, ev := range srv.as("auditor").do(http.MethodGet, "/v1/audit?from=0&limit=12", "", nil).json(t)["entries"].([]any) {
		if m := ev.(map[string]any); m["actor"] == "test-ingest-939ed81b" && m["action"] == "instance.ingest" {
			found = true
		}
	}
	if !found {
		t.Fatal("the version-0 audit events lost their actor")
	}
	// The migration indexed them by object and time.
	byObject := srv.as("auditor").do(http.MethodGet, "/v1/audit?object="+v0CT, "", nil).json(t)["entries"].([]any)
	byTime := srv.as("auditor").do(http.MethodGet, "/v1/audit?since=2026-12-01T23:28:41Z&until=2026-12-01T23:28:42Z", "", nil).json(t)["entries"].([]any)
	if len(byObject) < 3 || len(byTime) != 12 {
		t.Fatalf("the version-0 audit events through the index: %d by object, %d by time", len(byObject), len(byTime))
	}

	// New entries are of the current versions (3 for an ingest, 2 for an
	// audit event), after the version-0 ones, in both logs, and each
	// checkpoint ends with a subject map.
	pet := srv.ingest(fixture(t, "suyashkumar-1-pet.dcm"))
	if pet.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", pet.status, pet.body)
	}
	v, _ := srv.logVerifier()
	srv.waitForCheckpoint(v, 9)
	srv.stop()
	custody := rawEntries(t, filepath.Join(dir, "ledger.db"))
	if len(custody) != 10 || !bytes.HasPrefix(custody[0].Body, []byte(`{"kind":"ingest","sop_instance_uid":`)) ||
		!bytes.HasPrefix(custody[8].Body, []byte(`{"v":3,"kind":"ingest","subject":"`)) || custody[8].Subject == "" ||
		!bytes.Contains(custody[8].Body, []byte(`,"chain":[{"subject":"`)) || custody[9].Kind != ledger.KindSubjectMap {
		t.Fatalf("custody entries: %d; first %.60s; last %.60s", len(custody), custody[0].Body, custody[len(custody)-1].Body)
	}
	auditLog := rawEntries(t, filepath.Join(dir, "audit.db"))
	last := auditLog[len(auditLog)-1]
	if last.Kind == ledger.KindSubjectMap {
		last = auditLog[len(auditLog)-2]
	}
	if !bytes.HasPrefix(last.Body, []byte(`{"v":2,"kind":"audit","subject":"`+last.Subject+`","time":`)) || bytes.Contains(last.Body, []byte(`"actor"`)) {
		t.Fatalf("a new audit entry: %s", last.Body)
	}
	if code, out := runCLI("log", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("log verify of a log holding both versions: exit %d\n%s", code, out)
	}
}

// TestUnknownEntryVersionIsRefusedByName appends, with the log's own key,
// a revision whose body is of a version this release does not know (as a
// newer release would): retrieval, log verify and the offline verifier
// each refuse it by name, and none reads it as something else.
func TestUnknownEntryVersionIsRefusedByName(t *testing.T) {
	dir := copyV0(t)
	srv := startServer(t, dir, "--checkpoint-interval", "20ms")
	pet := fixture(t, "suyashkumar-1-pet.dcm")
	first := srv.ingest(pet)
	if first.status != http.StatusCreated {
		t.Fatalf("ingest: %d", first.status)
	}
	doc := first.json(t)
	v, vkeyPath := srv.logVerifier()
	_, pub := srv.attestationKey()
	srv.waitForCheckpoint(v, 9)
	srv.stop()

	// A newer writer: the same envelope, under "v": 4.
	var body map[string]any
	json.Unmarshal(rawEntries(t, filepath.Join(dir, "ledger.db"))[8].Body, &body)
	uid, sha := body["subject"].(string), body["file_sha256"].(string)
	body["v"], body["kind"] = 4, "revision"
	delete(body, "chain")
	newer, _ := json.Marshal(body)
	key, _, err := signer.LoadOrCreateLogKey(filepath.Join(dir, "keys", "log.key"), defaultLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	l := custody.New(ledger.New(db, defaultLogOrigin, key, key.Verifier()))
	e, err := l.AppendIngest(context.Background(), custody.Record{Kind: custody.KindRevision, Subject: uid, FileSHA256: sha, Body: newer, Revises: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// Retrieval: the signed tree proves the entry genuine, so it is an
	// upgrade to make, not an integrity failure; nothing is served.
	srv = startServer(t, dir, "--checkpoint-interval", "20ms")
	p := assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusServiceUnavailable, "entry-format-unknown")
	if detail, _ := p["detail"].(string); !strings.Contains(detail, `kind "revision" version 4 is unknown`) {
		t.Fatalf("the problem does not name the format: %v", p)
	}
	inc := srv.do(http.MethodGet, fmt.Sprintf("/v1/log/proof/inclusion?index=%d", e.Index), "", nil).json(t)
	cp := srv.do(http.MethodGet, "/v1/log/checkpoint", "", nil)
	srv.stop()

	// log verify names the index and the version.
	code, out := runCLI("log", "verify", "--data-dir", dir, "--log", "custody")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("FAILED at index %d", e.Index)) || !strings.Contains(out, "version 4 is unknown") {
		t.Fatalf("log verify: exit %d\n%s", code, out)
	}

	// The offline verifier, given an attestation document that embeds it.
	doc["entry"] = base64.StdEncoding.EncodeToString(e.Body) // with the chain the log appended
	doc["entry_hash"] = e.LeafHashHex()
	doc["ledger_index"] = e.Index
	doc["inclusion"] = map[string]any{"checkpoint": string(cp.body), "tree_size": inc["tree_size"], "leaf_index": e.Index, "hashes": inc["hashes"]}
	attDoc, _ := json.Marshal(doc)
	tmp := t.TempDir()
	os.WriteFile(filepath.Join(tmp, "a.json"), attDoc, 0o600)
	os.WriteFile(filepath.Join(tmp, "f.dcm"), pet, 0o600)
	code, out = runCLI("verify", "--key", pub, "--log-key", vkeyPath, "--attestation", filepath.Join(tmp, "a.json"), filepath.Join(tmp, "f.dcm"))
	if code == 0 || !strings.Contains(out, `kind "revision" version 4 is unknown`) {
		t.Fatalf("offline verify: exit %d\n%s", code, out)
	}
}

// TestSchemaCompatibilityAcrossReleases runs two releases against one
// ledger: this binary after the next release migrated it (serves while
// the schema does not require more than it knows: replicas roll), and
// after the next release raised the floor (refuses to start, naming the
// versions, rather than misread entries it does not know).
func TestSchemaCompatibilityAcrossReleases(t *testing.T) {
	dir := copyV0(t)
	if code, out := runCLI("migrate", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	next := migrations.Latest(migrations.SQLite()) + 1
	raw := func(stmt string, args ...any) {
		t.Helper()
		db, err := sql.Open("sqlite", filepath.Join(dir, "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(stmt, args...); err != nil {
			t.Fatal(err)
		}
	}
	raw(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, next)
	srv := startServer(t, dir)
	if got := srv.do(http.MethodGet, "/v1/instances/"+v0J2K, "", nil); got.status != http.StatusOK {
		t.Fatalf("a compatible newer schema: %d", got.status)
	}
	srv.stop()
	raw(`UPDATE compatibility SET requires = ?`, next)
	code, out := serveOnce("--data-dir", dir)
	if code == 0 || !strings.Contains(out, "upgrade this binary") || !strings.Contains(out, fmt.Sprintf("knows migration %d", next)) {
		t.Fatalf("serve on a schema that needs a newer binary: exit %d\n%s", code, out)
	}
	if code, out := runCLI("log", "verify", "--data-dir", dir, "--log", "custody"); code != 2 || !strings.Contains(out, "upgrade this binary") {
		t.Fatalf("log verify on a schema that needs a newer binary: exit %d\n%s", code, out)
	}
}
