package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
)

// Files under testdata/dicom that must ingest, with the Patient Name each
// carries (which must never reach the ledger in clear).
var ingestible = map[string]string{
	"pydicom-CT_small.dcm":           "CompressedSamples^CT1",
	"pydicom-MR_small.dcm":           "CompressedSamples^MR1",
	"pydicom-MR_small_implicit.dcm":  "CompressedSamples^MR1",
	"pydicom-MR_small_bigendian.dcm": "CompressedSamples^MR1",
	"pydicom-JPEG2000.dcm":           "CompressedSamples^NM1",
	"pydicom-rtplan.dcm":             "Last^First^mid^pre",
	"suyashkumar-1-pet.dcm":          "ACRIN-FLT-Breast_029",
	"suyashkumar-3-mr.dcm":           "",
	"suyashkumar-6-deflated.dcm":     "",
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestIngestRetrieveVerify(t *testing.T) {
	srv := startServer(t, t.TempDir())
	keys := srv.do(http.MethodGet, "/v1/keys", "", nil)
	if keys.status != http.StatusOK {
		t.Fatalf("keys: %d", keys.status)
	}
	var keyDoc struct {
		Keys []struct {
			KeyID       string `json:"key_id"`
			Use         string `json:"use"`
			PublicKey   string `json:"public_key"`
			VerifierKey string `json:"verifier_key"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(keys.body, &keyDoc); err != nil || len(keyDoc.Keys) != 3 ||
		keyDoc.Keys[0].Use != "attestation" || keyDoc.Keys[1].Use != "log" || keyDoc.Keys[1].VerifierKey == "" ||
		keyDoc.Keys[2].Use != "audit-log" || !strings.HasPrefix(keyDoc.Keys[2].VerifierKey, defaultAuditOrigin+"+") {
		t.Fatalf("keys: want the attestation key, the log key and the audit log's key, named for its origin: %v %s", err, keys.body)
	}
	pubPath := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(pubPath, []byte(keyDoc.Keys[0].PublicKey), 0o644)

	seen := map[float64]bool{}
	uids := map[string]bool{}
	for name := range ingestible {
		// MR_small in three transfer syntaxes shares one SOP Instance UID:
		// the first to arrive is attested, the others are revisions of it
		// (same pixels, same attributes: a transfer syntax conversion).
		t.Run(name, func(t *testing.T) {
			data := fixture(t, name)
			r := srv.ingest(data)
			att := r.json(t)
			uid, _ := att["sop_instance_uid"].(string)
			if uids[uid] {
				if r.status != http.StatusCreated || att["revises"] == nil {
					t.Fatalf("same UID, another transfer syntax: %d, revises %v; want a 201 revision", r.status, att["revises"])
				}
				return
			}
			uids[uid] = true
			if r.status != http.StatusCreated {
				t.Fatalf("ingest: %d %s", r.status, r.body)
			}
			digests := att["digests"].(map[string]any)
			if digests["file"] != sha256Hex(data) || att["size"] != float64(len(data)) {
				t.Fatalf("digests %v size %v, want %s %d", digests, att["size"], sha256Hex(data), len(data))
			}
			if att["key_id"] != keyDoc.Keys[0].KeyID {
				t.Fatalf("key_id %v, want %s", att["key_id"], keyDoc.Keys[0].KeyID)
			}
			idx := att["ledger_index"].(float64)
			if seen[idx] {
				t.Fatalf("ledger index %v reused", idx)
			}
			seen[idx] = true

			again := srv.ingest(data)
			if again.status != http.StatusOK || again.json(t)["ledger_index"] != idx {
				t.Fatalf("re-ingest: %d %s", again.status, again.body)
			}

			got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
			if got.status != http.StatusOK || !bytes.Equal(got.body, data) {
				t.Fatalf("retrieve: %d, %d bytes (want %d)", got.status, len(got.body), len(data))
			}
			sum := sha256.Sum256(data)
			if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; got.header.Get("Repr-Digest") != want {
				t.Fatalf("Repr-Digest %q, want %q", got.header.Get("Repr-Digest"), want)
			}

			a := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil)
			if a.status != http.StatusOK || a.json(t)["entry_hash"] != att["entry_hash"] {
				t.Fatalf("attestation: %d %s", a.status, a.body)
			}
			for _, v := range []response{
				srv.do(http.MethodPost, "/v1/verify", "application/dicom", data),
				srv.do(http.MethodGet, "/v1/verify?sha256="+sha256Hex(data), "", nil),
			} {
				if v.status != http.StatusOK || v.json(t)["status"] != "verified" {
					t.Fatalf("verify: %d %s", v.status, v.body)
				}
			}

			// Offline, with only the public key.
			dir := t.TempDir()
			attPath, filePath := filepath.Join(dir, "a.json"), filepath.Join(dir, "f.dcm")
			os.WriteFile(attPath, r.body, 0o644)
			os.WriteFile(filePath, data, 0o644)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"verify", "--key", pubPath, "--attestation", attPath, filePath}, &stdout, &stderr); code != 0 {
				t.Fatalf("offline verify exit %d: %s", code, stderr.String())
			}
			altered := bytes.Clone(data)
			altered[len(altered)-1] ^= 1
			os.WriteFile(filePath, altered, 0o644)
			if code := run(context.Background(), []string{"verify", "--key", pubPath, "--attestation", attPath, filePath}, &stdout, &stderr); code != 1 {
				t.Fatalf("offline verify of an altered file: exit %d, want 1", code)
			}
		})
	}
	assertNoClearPatientData(t, srv.dataDir)
}

// assertNoClearPatientData reads every ledger entry straight from the
// database: patient names must appear only in the correctable identity
// table, never in the append-only entries (which embed the envelopes).
func assertNoClearPatientData(t *testing.T, dataDir string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "ledger.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT body FROM entries`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var body []byte
		rows.Scan(&body)
		n++
		var e struct {
			Envelope struct{ Payload string } `json:"envelope"`
		}
		json.Unmarshal(body, &e)
		payload, _ := base64.StdEncoding.DecodeString(e.Envelope.Payload)
		for _, name := range ingestible {
			if name != "" && (bytes.Contains(body, []byte(name)) || bytes.Contains(payload, []byte(name))) {
				t.Fatalf("ledger entry holds patient name %q in clear", name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ledger entries to check")
	}
}

func TestConflictKeepsTheOriginal(t *testing.T) {
	srv := startServer(t, t.TempDir())
	orig := fixture(t, "pydicom-CT_small.dcm")
	first := srv.ingest(orig)
	if first.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", first.status, first.body)
	}
	att := first.json(t)
	altered := bytes.Clone(orig)
	altered[pixelOffset(t, orig)] ^= 0xff // a pixel value, same SOP Instance UID

	var conflictIndex any
	for i := 1; i <= 3; i++ {
		p := assertProblem(t, srv.ingest(altered), http.StatusConflict, "instance-conflict")
		if p["existing_ledger_index"] != att["ledger_index"] || p["existing_entry_hash"] != att["entry_hash"] ||
			p["attempted_sha256"] != sha256Hex(altered) {
			t.Fatalf("conflict does not name the existing entry: %v", p)
		}
		if i == 1 {
			conflictIndex = p["conflict_ledger_index"]
		}
		// A retrying client is counted, not logged again.
		if p["conflict_ledger_index"] != conflictIndex || p["conflict_count"] != float64(i) {
			t.Fatalf("attempt %d: conflict entry %v count %v, want entry %v count %d", i, p["conflict_ledger_index"], p["conflict_count"], conflictIndex, i)
		}
	}
	got := srv.do(http.MethodGet, "/v1/instances/"+att["sop_instance_uid"].(string), "", nil)
	if got.status != http.StatusOK || !bytes.Equal(got.body, orig) {
		t.Fatalf("original not served intact after a conflict: %d", got.status)
	}
	v := srv.do(http.MethodPost, "/v1/verify", "application/dicom", altered)
	if v.status != http.StatusOK || v.json(t)["status"] != "tampered" {
		t.Fatalf("verify altered: %d %s", v.status, v.body)
	}
}

func TestConcurrentFirstIngestsOfOneUID(t *testing.T) {
	srv := startServer(t, t.TempDir())
	orig := fixture(t, "pydicom-MR_small.dcm")
	variants := [][]byte{orig, orig, orig}
	for i := 0; i < 5; i++ {
		v := bytes.Clone(orig)
		v[pixelOffset(t, orig)+2*i] ^= 0x55 // a different pixel each
		variants = append(variants, v)
	}
	statuses := make([]int, len(variants))
	var wg sync.WaitGroup
	for i, body := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/instances", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/dicom")
			req.Header.Set("Authorization", "Bearer "+srv.tokens[auth.RoleIngest])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusOK, http.StatusConflict:
		default:
			t.Fatalf("unexpected status %d among %v", s, statuses)
		}
	}
	if created != 1 {
		t.Fatalf("%d ingests created an attestation, want exactly 1: %v", created, statuses)
	}
	// Whoever won, the attested bytes are the ones served.
	uid := "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
	a := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil).json(t)
	got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
	if sha256Hex(got.body) != a["digests"].(map[string]any)["file"] {
		t.Fatal("served bytes are not the attested ones")
	}
}

func objectPath(dataDir, sha string) string {
	return filepath.Join(dataDir, "objects", "sha256", sha[:2], sha[2:4], sha)
}

func TestTamperedObjectIsNeverServed(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--spool-memory", "4KiB")
	data := fixture(t, "suyashkumar-1-pet.dcm")
	att := srv.ingest(data).json(t)
	uid := att["sop_instance_uid"].(string)
	sha := sha256Hex(data)

	// Flip one byte of the stored object behind dicomseal's back.
	p := objectPath(dataDir, sha)
	stored, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 1
	if err := os.WriteFile(p, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	var incident any
	for i := 1; i <= 2; i++ {
		r := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
		prob := assertProblem(t, r, http.StatusBadGateway, "integrity-violation")
		if bytes.Contains(r.body, []byte("DICM")) || len(r.body) > 2000 {
			t.Fatal("object bytes leaked into the error answer")
		}
		if prob["reason"] != "altered" || prob["observed_sha256"] != sha256Hex(stored) || prob["expected_sha256"] != sha {
			t.Fatalf("problem does not say what failed: %v", prob)
		}
		if i == 1 {
			incident = prob["incident_ledger_index"]
		}
		if prob["incident_ledger_index"] != incident || prob["incident_count"] != float64(i) {
			t.Fatalf("retry %d: incident %v count %v; want one entry, counted", i, prob["incident_ledger_index"], prob["incident_count"])
		}
	}

	// Missing is reported as missing, not as altered.
	os.Remove(p)
	prob := assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusBadGateway, "integrity-violation")
	if prob["reason"] != "missing" || prob["incident_ledger_index"] == incident {
		t.Fatalf("missing object: %v", prob)
	}

	m := srv.do(http.MethodGet, "/metrics", "", nil)
	for _, want := range []string{
		`dicomseal_integrity_violations_total{reason="altered"} 2`,
		"dicomseal_ledger_append_queue 0",
		`dicomseal_integrity_violations_total{reason="missing"} 1`,
		`dicomseal_http_requests_total{code="502",method="GET",route="/v1/instances/{sopInstanceUID}"} 3`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Spool files of the retrievals (over 4 KiB each) are all gone.
	if left, _ := os.ReadDir(filepath.Join(dataDir, "spool")); len(left) != 0 {
		t.Fatalf("%d spool files left behind", len(left))
	}
}

func TestBadInputIsAClearProblem(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--max-body", "64KiB")
	ct := fixture(t, "pydicom-CT_small.dcm")
	noSOP := bytes.Clone(ct)
	i := bytes.Index(noSOP, []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I'})
	noSOP[i+2] = 0x19
	tests := []struct {
		name, method, path, contentType string
		body                            []byte
		status                          int
		slug                            string
	}{
		{"wrong content type", "POST", "/v1/instances", "application/json", ct, 415, "unsupported-media-type"},
		{"no content type", "POST", "/v1/instances", "", ct, 415, "unsupported-media-type"},
		{"verify with wrong content type", "POST", "/v1/verify", "text/plain", ct, 415, "unsupported-media-type"},
		{"empty body", "POST", "/v1/instances", "application/dicom", []byte{}, 400, "invalid-dicom"},
		{"not DICOM", "POST", "/v1/instances", "application/dicom", []byte(strings.Repeat("hello ", 100)), 400, "invalid-dicom"},
		{"no preamble (raw data set)", "POST", "/v1/instances", "application/dicom", fixture(t, "pydicom-no_meta.dcm"), 400, "invalid-dicom"},
		{"truncated", "POST", "/v1/instances", "application/dicom", ct[:len(ct)/2], 400, "invalid-dicom"},
		{"real truncated file", "POST", "/v1/instances", "application/dicom", fixture(t, "pydicom-MR_truncated.dcm"), 400, "invalid-dicom"},
		{"no SOP Instance UID", "POST", "/v1/instances", "application/dicom", noSOP, 400, "invalid-dicom"},
		{"over the body limit", "POST", "/v1/instances", "application/dicom", bytes.Repeat([]byte{0}, 65*1024), 413, "body-too-large"},
		{"verify over the body limit", "POST", "/v1/verify", "application/dicom", bytes.Repeat([]byte{0}, 65*1024), 413, "body-too-large"},
		{"never attested", "GET", "/v1/instances/1.2.3.4", "", nil, 404, "not-found"},
		{"attestation never made", "GET", "/v1/instances/1.2.3.4/attestation", "", nil, 404, "not-found"},
		{"digest not hex", "GET", "/v1/verify?sha256=xyz", "", nil, 400, "invalid-request"},
		{"digest missing", "GET", "/v1/verify", "", nil, 400, "invalid-request"},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404, "route-not-found"},
		{"wrong method", "DELETE", "/v1/instances", "", nil, 405, "method-not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertProblem(t, srv.do(tt.method, tt.path, tt.contentType, tt.body), tt.status, tt.slug)
		})
	}
	// Nothing of the above entered the ledger.
	if v := srv.do("GET", "/v1/verify?sha256="+sha256Hex(ct[:len(ct)/2]), "", nil).json(t); v["status"] != "unknown" {
		t.Fatalf("a refused file is known: %v", v)
	}
	if r := srv.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
}

// Streaming a body larger than the limit without Content-Length still ends in 413.
func TestChunkedOversizedBody(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--max-body", "1KiB")
	pr, pw := ioPipe()
	go func() {
		for i := 0; i < 10; i++ {
			pw.Write(bytes.Repeat([]byte{1}, 512))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.url+"/v1/instances", pr)
	req.Header.Set("Content-Type", "application/dicom")
	req.Header.Set("Authorization", "Bearer "+srv.tokens[auth.RoleIngest])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	var atts []map[string]any
	for _, name := range []string{"pydicom-CT_small.dcm", "suyashkumar-3-mr.dcm"} {
		r := srv.ingest(fixture(t, name))
		if r.status != http.StatusCreated {
			t.Fatalf("%s: %d", name, r.status)
		}
		atts = append(atts, r.json(t))
	}
	keyID := atts[0]["key_id"]
	srv.stop()

	srv2 := startServer(t, dataDir)
	for i, name := range []string{"pydicom-CT_small.dcm", "suyashkumar-3-mr.dcm"} {
		uid := atts[i]["sop_instance_uid"].(string)
		got := srv2.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
		if got.status != http.StatusOK || !bytes.Equal(got.body, fixture(t, name)) {
			t.Fatalf("%s after restart: %d", name, got.status)
		}
	}
	next := srv2.ingest(fixture(t, "pydicom-rtplan.dcm")).json(t)
	// After the two ingests, only the subject maps of the checkpoints
	// between (one may also fall between the two ingests).
	idx, _ := next["ledger_index"].(float64)
	last := uint64(atts[1]["ledger_index"].(float64))
	if next["key_id"] != keyID || uint64(idx) <= last {
		t.Fatalf("after restart: key %v index %v, want the same key and an index past %d", next["key_id"], next["ledger_index"], last)
	}
	srv2.onlySubjectMaps(t, last+1, uint64(idx))
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	for _, want := range []string{"--addr", "DICOMSEAL_ADDR", "--data-dir", "DICOMSEAL_DATA_DIR", "--max-body", "--tls-cert", "--spool-memory"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	if code := run(context.Background(), []string{"bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("DICOMSEAL_MAX_BODY", "3MiB")
	t.Setenv("DICOMSEAL_DATA_DIR", "/tmp/from-env")
	m := NewMain()
	if err := m.ParseFlags([]string{"--data-dir", "/tmp/from-flag"}); err != nil {
		t.Fatal(err)
	}
	if m.MaxBody != 3<<20 || m.DataDir != "/tmp/from-flag" {
		t.Fatalf("MaxBody %d DataDir %q: env must set, flags must win", m.MaxBody, m.DataDir)
	}
	t.Setenv("DICOMSEAL_MAX_BODY", "lots")
	if err := NewMain().ParseFlags(nil); err == nil || !strings.Contains(err.Error(), "DICOMSEAL_MAX_BODY") {
		t.Fatalf("bad env value: error %v should name the variable", err)
	}
}

var _ = fmt.Sprint

// An object store fault answers 503 with Retry-After and records nothing;
// once the store is back, ingest works again without a restart.
func TestStorageFaultRecordsNothing(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	objects := filepath.Join(dataDir, "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	// A file where the store's directory should be: every write fails.
	if err := os.WriteFile(objects, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := fixture(t, "pydicom-CT_small.dcm")
	r := srv.ingest(data)
	assertProblem(t, r, http.StatusServiceUnavailable, "storage-unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	assertProblem(t, srv.readyzUntil(http.StatusServiceUnavailable), http.StatusServiceUnavailable, "storage-unavailable")
	if v := srv.do("GET", "/v1/verify?sha256="+sha256Hex(data), "", nil).json(t); v["status"] != "unknown" {
		t.Fatalf("a failed ingest left a ledger entry: %v", v)
	}

	os.Remove(objects)
	os.Mkdir(objects, 0o700)
	if r := srv.ingest(data); r.status != http.StatusCreated || r.json(t)["ledger_index"] != float64(0) {
		t.Fatalf("after recovery: %d %s", r.status, r.body)
	}
}

// Re-ingesting bytes whose object was lost behind dicomseal's back
// restores it: a 2xx always means the bytes are stored.
func TestReingestRestoresALostObject(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	data := fixture(t, "pydicom-MR_small.dcm")
	uid := srv.ingest(data).json(t)["sop_instance_uid"].(string)
	os.Remove(objectPath(dataDir, sha256Hex(data)))
	if r := srv.ingest(data); r.status != http.StatusOK {
		t.Fatalf("re-ingest: %d", r.status)
	}
	if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, data) {
		t.Fatalf("retrieve after re-ingest: %d", got.status)
	}
}
