package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
)

// logVerifier fetches the log's verifier key from /v1/keys, as an auditor
// would once, out of band, and writes it to a file for the CLI.
func (s *testServer) logVerifier() (note.Verifier, string) { return s.verifierOf("log") }

// auditLogVerifier is the audit log's own key, from /v1/keys.
func (s *testServer) auditLogVerifier() (note.Verifier, string) { return s.verifierOf("audit-log") }

// keyOf is the key of that use in /v1/keys.
func (s *testServer) keyOf(use string) (k attest.Key, ok bool) {
	s.t.Helper()
	var doc struct{ Keys []attest.Key }
	json.Unmarshal(s.do(http.MethodGet, "/v1/keys", "", nil).body, &doc)
	for _, k := range doc.Keys {
		if k.Use == use {
			return k, true
		}
	}
	return k, false
}

func (s *testServer) verifierOf(use string) (note.Verifier, string) {
	s.t.Helper()
	k, ok := s.keyOf(use)
	if !ok {
		s.t.Fatalf("no %s key in /v1/keys", use)
	}
	v, err := note.NewVerifier(k.VerifierKey)
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.t.TempDir(), "log.vkey")
	os.WriteFile(path, []byte(k.VerifierKey+"\n"), 0o644)
	return v, path
}

// waitForCheckpoint polls until a checkpoint of at least size is published.
func (s *testServer) waitForCheckpoint(v note.Verifier, size uint64) (*log.Checkpoint, []byte) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.do(http.MethodGet, "/v1/log/checkpoint", "", nil)
		if r.status == http.StatusOK {
			cp, _, _, err := log.ParseCheckpoint(r.body, defaultLogOrigin, v)
			if err != nil {
				s.t.Fatalf("checkpoint does not verify: %v\n%s", err, r.body)
			}
			if cp.Size >= size {
				return cp, r.body
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no checkpoint of size %d within 10s (last: %d %s)", size, r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unhex(t *testing.T, hs []any) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		b, err := hex.DecodeString(h.(string))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func TestVerifiableLogOverHTTP(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--checkpoint-interval", "20ms")
	v, vkeyPath := srv.logVerifier()
	// A new log has published its empty tree: a witness can start on day one.
	// It is there before the first request, not after an integrator's tick.
	fresh := srv.do(http.MethodGet, "/v1/log/checkpoint", "", nil)
	if cp, _, _, err := log.ParseCheckpoint(fresh.body, defaultLogOrigin, v); fresh.status != http.StatusOK || err != nil ||
		cp.Size != 0 || !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatalf("a fresh log's checkpoint: %d %v\n%s", fresh.status, err, fresh.body)
	}

	files := []string{"pydicom-CT_small.dcm", "pydicom-MR_small.dcm", "pydicom-JPEG2000.dcm", "pydicom-rtplan.dcm"}
	atts := map[string][]byte{}
	for _, f := range files {
		r := srv.ingest(fixture(t, f))
		if r.status != http.StatusCreated {
			t.Fatalf("%s: %d", f, r.status)
		}
	}
	altered := fixture(t, "pydicom-CT_small.dcm")
	altered[pixelOffset(t, altered)] ^= 1
	assertProblem(t, srv.ingest(altered), http.StatusConflict, "instance-conflict") // entry 4
	cp1, _ := srv.waitForCheckpoint(v, 5)

	r := srv.do(http.MethodGet, "/v1/log/checkpoint", "", nil)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("checkpoint Content-Type %q", r.header.Get("Content-Type"))
	}
	for i := uint64(0); i < cp1.Size; i++ {
		e := srv.do(http.MethodGet, fmt.Sprintf("/v1/log/entries/%d", i), "", nil).json(t)
		body, _ := base64.StdEncoding.DecodeString(e["entry"].(string))
		leaf := rfc6962.DefaultHasher.HashLeaf(body)
		if hex.EncodeToString(leaf) != e["leaf_hash"] {
			t.Fatalf("entry %d: leaf_hash is not SHA-256(0x00 ‖ entry)", i)
		}
		for _, q := range []string{
			fmt.Sprintf("index=%d&size=%d", i, cp1.Size),
			fmt.Sprintf("leaf_hash=%x&size=%d", leaf, cp1.Size),
		} {
			p := srv.do(http.MethodGet, "/v1/log/proof/inclusion?"+q, "", nil).json(t)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp1.Size, leaf, unhex(t, p["hashes"].([]any)), cp1.Hash); err != nil {
				t.Fatalf("inclusion of %d (%s): %v", i, q, err)
			}
		}
	}

	srv.ingest(fixture(t, "suyashkumar-3-mr.dcm"))
	cp2, _ := srv.waitForCheckpoint(v, cp1.Size+1)
	p := srv.do(http.MethodGet, fmt.Sprintf("/v1/log/proof/consistency?from=%d&to=%d", cp1.Size, cp2.Size), "", nil).json(t)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, unhex(t, p["hashes"].([]any)), cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("consistency %d→%d: %v", cp1.Size, cp2.Size, err)
	}

	// Attestations now carry their inclusion proof; check them offline.
	for _, f := range files[:2] {
		data := fixture(t, f)
		uid := srv.ingest(data).json(t)["sop_instance_uid"].(string)
		a := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil)
		if _, ok := a.json(t)["inclusion"]; !ok {
			t.Fatalf("%s: integrated attestation without inclusion proof", f)
		}
		atts[f] = a.body
	}
	_, attPub := srv.attestationKey()
	dir := t.TempDir()
	filePath := filepath.Join(dir, "ct.dcm")
	os.WriteFile(filePath, fixture(t, files[0]), 0o644)
	verifyCLI := func(doc []byte) (int, string) {
		attPath := filepath.Join(dir, "a.json")
		os.WriteFile(attPath, doc, 0o644)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"verify", "--key", attPub, "--log-key", vkeyPath, "--attestation", attPath, filePath}, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := verifyCLI(atts[files[0]]); code != 0 || !strings.Contains(out, "proven against its signed checkpoint") {
		t.Fatalf("offline verify with inclusion: exit %d\n%s", code, out)
	}
	// A malicious server's answers must all be refused.
	var good, other attest.Attestation
	json.Unmarshal(atts[files[0]], &good)
	json.Unmarshal(atts[files[1]], &other)
	forger, _, _ := note.GenerateKey(rand.Reader, defaultLogOrigin)
	forgerSigner, _ := note.NewSigner(forger)
	cases := map[string]func(a *attest.Attestation){
		"a proof hash altered": func(a *attest.Attestation) {
			h := []byte(a.Inclusion.Hashes[0])
			h[0] = map[byte]byte{'0': '1'}[h[0]] | '0'
			a.Inclusion.Hashes[0] = string(h)
		},
		"checkpoint signed by another key": func(a *attest.Attestation) {
			text := a.Inclusion.Checkpoint[:strings.Index(a.Inclusion.Checkpoint, "\n\n")+1]
			signed, _ := note.Sign(&note.Note{Text: text}, forgerSigner)
			a.Inclusion.Checkpoint = string(signed)
		},
		"a valid proof of another entry": func(a *attest.Attestation) {
			a.Entry, a.EntryHash, a.LedgerIndex, a.Inclusion = other.Entry, other.EntryHash, other.LedgerIndex, other.Inclusion
		},
		"no inclusion proof": func(a *attest.Attestation) { a.Inclusion = nil },
	}
	for name, mutate := range cases {
		bad := good
		inc := *good.Inclusion
		inc.Hashes = append([]string(nil), good.Inclusion.Hashes...)
		bad.Inclusion = &inc
		mutate(&bad)
		doc, _ := json.Marshal(bad)
		if code, out := verifyCLI(doc); code != 1 {
			t.Errorf("%s: offline verify exit %d, want 1\n%s", name, code, out)
		}
	}

	for _, tc := range []struct{ path, slug string }{
		{"/v1/log/entries/abc", "invalid-proof-request"},
		{"/v1/log/entries/-1", "invalid-proof-request"},
		{"/v1/log/proof/inclusion", "invalid-proof-request"},
		{"/v1/log/proof/inclusion?index=x", "invalid-proof-request"},
		{"/v1/log/proof/inclusion?index=999", "invalid-proof-request"},
		{"/v1/log/proof/inclusion?index=0&size=999", "invalid-proof-request"},
		{"/v1/log/proof/inclusion?index=0&leaf_hash=00", "invalid-proof-request"},
		{"/v1/log/proof/inclusion?leaf_hash=zz", "invalid-proof-request"},
		{"/v1/log/proof/consistency", "invalid-proof-request"},
		{"/v1/log/proof/consistency?from=a", "invalid-proof-request"},
		{"/v1/log/proof/consistency?from=5&to=2", "invalid-proof-request"},
		{"/v1/log/proof/consistency?from=1&to=999", "invalid-proof-request"},
	} {
		assertProblem(t, srv.do(http.MethodGet, tc.path, "", nil), http.StatusBadRequest, tc.slug)
	}
	assertProblem(t, srv.do(http.MethodGet, "/v1/log/entries/999", "", nil), http.StatusNotFound, "not-found")
	assertProblem(t, srv.do(http.MethodGet, fmt.Sprintf("/v1/log/proof/inclusion?leaf_hash=%064x", 7), "", nil), http.StatusNotFound, "not-found")
}

// attestationKey writes the attestation public key to a file.
func (s *testServer) attestationKey() (string, string) {
	s.t.Helper()
	var doc struct {
		Keys []struct {
			Use       string `json:"use"`
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	json.Unmarshal(s.do(http.MethodGet, "/v1/keys", "", nil).body, &doc)
	path := filepath.Join(s.t.TempDir(), "attestation.pub")
	os.WriteFile(path, []byte(doc.Keys[0].PublicKey), 0o644)
	return doc.Keys[0].PublicKey, path
}

// tamperLedger edits a stopped server's ledger file as its owner can:
// triggers dropped first.
func tamperLedger(t *testing.T, dataDir string, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		sqlitetest.Tamper(t, filepath.Join(dataDir, "ledger.db"), stmt)
	}
}

func runCLI(args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

func TestLogVerifyCommand(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--checkpoint-interval", "20ms")
	v, vkeyPath := srv.logVerifier()
	for _, f := range []string{"pydicom-CT_small.dcm", "pydicom-MR_small.dcm", "pydicom-rtplan.dcm"} {
		srv.ingest(fixture(t, f))
	}
	srv.waitForCheckpoint(v, 3)
	srv.stop()

	if code, out := runCLI("log", "verify", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "OK") || !regexp.MustCompile(`(\d+)/(\d+) entries checked`).MatchString(out) {
		t.Fatalf("log verify of a sound ledger: exit %d\n%s", code, out)
	}
	// The auditor's own copy of the verifier key works the same.
	if code, out := runCLI("log", "verify", "--data-dir", dataDir, "--log-key", vkeyPath); code != 0 {
		t.Fatalf("log verify --log-key: exit %d\n%s", code, out)
	}
	// A key that is not the log's finds every checkpoint unverifiable.
	other, _, _ := note.GenerateKey(rand.Reader, defaultLogOrigin)
	otherPath := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(otherPath, []byte(other), 0o600)
	if code, out := runCLI("log", "verify", "--data-dir", dataDir, "--log-key", otherPath); code != 1 {
		t.Fatalf("log verify with the wrong key: exit %d\n%s", code, out)
	}

	// The second ingest (subject maps fall between ingests where the
	// timing puts them).
	second := -1
	for _, e := range rawEntries(t, filepath.Join(dataDir, "ledger.db")) {
		if e.Kind == "ingest" && e.Index > 0 {
			second = int(e.Index)
			break
		}
	}
	tamperLedger(t, dataDir, fmt.Sprintf(`UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), '"ingest"', '"ingesT"') AS BLOB) WHERE idx = %d`, second))
	code, out := runCLI("log", "verify", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("custody: FAILED at index %d", second)) || !strings.Contains(out, "audit: OK") {
		t.Fatalf("log verify after an edit: exit %d, want 1 naming custody index %d\n%s", code, second, out)
	}
	if code, out := runCLI("log", "verify", "--data-dir", dataDir, "--log", "audit"); code != 0 || strings.Contains(out, "custody") {
		t.Fatalf("log verify --log audit: exit %d\n%s", code, out)
	}
}

// The audit log is audited like the custody log, and /v1/audit serves
// nothing from an audit log that fails verification.
func TestAuditLogTamperIsCaught(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stmts []string
		index string // "" where the finding's index depends on timing
		// serveRefuses: the tampered log makes serve refuse to start.
		serveRefuses bool
	}{
		{"an event edited", []string{`UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), '"allowed"', '"denied!"') AS BLOB) WHERE idx = {e1}`}, "{e1}", false},
		{"an event deleted", []string{`DELETE FROM entries WHERE idx = {e1}`}, "{e1}", false},
		{"the tail truncated", []string{`DELETE FROM entries WHERE idx >= 2`}, "2", false},
		// The index of events hides nothing either: queries by object and
		// time read it.
		{"an index row deleted", []string{`DELETE FROM events WHERE idx = {e3}`}, "{e3}", false},
		{"an index row edited", []string{`UPDATE events SET object = 'elsewhere' WHERE idx = {e2}`}, "{e2}", false},
		{"a checkpoint's signature forged", []string{`UPDATE checkpoints SET note = CAST(replace(CAST(note AS TEXT), '— dicomseal', '— dicomseaL') AS BLOB)`}, "", true},
		{"a checkpoint's origin forged", []string{`UPDATE checkpoints SET note = CAST(replace(CAST(note AS TEXT), 'dicomseal.local/audit', 'dicomseal.local/audiT') AS BLOB)`}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			srv := startServer(t, dataDir, "--checkpoint-interval", "20ms")
			ct := fixture(t, "pydicom-CT_small.dcm")
			srv.ingest(ct)
			for range 3 {
				srv.do(http.MethodGet, "/v1/verify?sha256="+sha256Hex(ct), "", nil) // durable audit events
			}
			auditEntries(t, srv, "limit=100", 5)
			waitAuditCheckpoint(t, dataDir, 5)
			srv.stop()
			// {eN} is the index of the Nth event: checkpoints' subject maps
			// fall between events where the timing puts them.
			var events []string
			for _, e := range rawEntries(t, filepath.Join(dataDir, "audit.db")) {
				if e.Kind == audit.KindAudit {
					events = append(events, fmt.Sprint(e.Index))
				}
			}
			resolve := func(s string) string {
				for i := len(events) - 1; i >= 0; i-- {
					s = strings.ReplaceAll(s, fmt.Sprintf("{e%d}", i), events[i])
				}
				return s
			}
			for _, stmt := range tc.stmts {
				sqlitetest.Tamper(t, filepath.Join(dataDir, "audit.db"), resolve(stmt))
			}
			index := resolve(tc.index)
			code, out := runCLI("log", "verify", "--data-dir", dataDir)
			if code != 1 || !strings.Contains(out, "custody: OK") || !strings.Contains(out, "audit: FAILED at index "+index) {
				t.Fatalf("log verify: exit %d, want 1 with audit FAILED at index %s\n%s", code, index, out)
			}
			if tc.serveRefuses {
				// A checkpoint its log key does not verify, or under
				// another origin: serve refuses to start on it.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var stderr bytes.Buffer
				if code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, &stderr, &stderr); code != 2 {
					out := stderr.String()
					t.Fatalf("serve on a log whose checkpoint origin was forged: exit %d\n%s", code, out)
				}
				return
			}
			if strings.Contains(tc.stmts[0], "events") {
				// The entries themselves are sound: a full query serves
				// them; what the index hides, log verify names.
				return
			}
			again := startServer(t, dataDir)
			assertProblem(t, again.as(auth.RoleAuditor).do(http.MethodGet, "/v1/audit?limit=100", "", nil), http.StatusBadGateway, "audit-log-tampered")
		})
	}
}

// waitAuditCheckpoint waits until the stopped-or-running server's audit log
// has a checkpoint of at least size entries (read from audit.db).
func waitAuditCheckpoint(t *testing.T, dataDir string, size int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out := runCLI("log", "verify", "--data-dir", dataDir, "--log", "audit")
		var n int
		if i := strings.Index(out, "latest verified: size "); i >= 0 {
			fmt.Sscanf(out[i+len("latest verified: size "):], "%d", &n)
		}
		if code == 0 && n >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit checkpoint of size %d within 5 s:\n%s", size, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Someone holding the log key truncates entries, batches, tree and
// checkpoints together: the result is self-consistent, so log verify passes,
// but a witness holding an older checkpoint must catch it.
func TestLogWatchCatchesRewrittenHistory(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--checkpoint-interval", "20ms")
	v, vkeyPath := srv.logVerifier()
	state := filepath.Join(t.TempDir(), "witness.state")
	watch := func() (int, string) {
		return runCLI("log", "watch", "--server", srv.url, "--state", state, "--log-key", vkeyPath)
	}
	srv.ingest(fixture(t, "pydicom-CT_small.dcm"))
	srv.ingest(fixture(t, "pydicom-MR_small.dcm"))
	// Sizes count the checkpoints' subject maps, which fall where the
	// timing puts them: 2 ingests make a checkpoint of 3 to 4 entries.
	srv.waitForCheckpoint(v, 3)
	if code, out := watch(); code != 0 || !strings.Contains(out, "first checkpoint saved: size ") {
		t.Fatalf("first watch: exit %d\n%s", code, out)
	}
	srv.ingest(fixture(t, "pydicom-rtplan.dcm"))
	srv.waitForCheckpoint(v, 5)
	code, out := watch()
	var from, to uint64
	if i := strings.Index(out, "consistent: size "); code != 0 || i < 0 {
		t.Fatalf("second watch: exit %d\n%s", code, out)
	} else {
		fmt.Sscanf(out[i:], "consistent: size %d → %d", &from, &to)
	}
	saved, _ := os.ReadFile(state)
	srv.stop()

	tamperLedger(t, dataDir,
		`DELETE FROM instances WHERE entry_idx >= 1`, `DELETE FROM subject_links WHERE idx >= 1`, `DELETE FROM subject_map_nodes`,
		`DELETE FROM entries WHERE idx >= 1`,
		`DELETE FROM batches WHERE first_idx >= 1`, `DELETE FROM tree_nodes`, `DELETE FROM checkpoints`)
	srv = startServer(t, dataDir, "--checkpoint-interval", "20ms")
	srv.waitForCheckpoint(v, 1)
	if code, out := runCLI("log", "verify", "--data-dir", dataDir); code != 0 {
		t.Fatalf("log verify should not see a consistent rewrite (that is the witness's job): exit %d\n%s", code, out)
	}
	if code, out := watch(); code != 1 || !strings.Contains(out, "log shrank") {
		t.Fatalf("watch after truncation: exit %d, want 1 and 'log shrank'\n%s", code, out)
	}
	if now, _ := os.ReadFile(state); !bytes.Equal(now, saved) {
		t.Fatal("the evidence (the saved checkpoint) was overwritten")
	}
	// History grows past the old size again: now it is a fork.
	// Four ingests on the one entry left outgrow the watched size (at most
	// 3 ingests and 3 maps).
	for _, f := range []string{"pydicom-JPEG2000.dcm", "suyashkumar-3-mr.dcm", "suyashkumar-1-pet.dcm", "pydicom-MR_small.dcm"} {
		srv.ingest(fixture(t, f))
	}
	srv.waitForCheckpoint(v, to+1)
	if code, out := watch(); code != 1 || !strings.Contains(out, "forked") {
		t.Fatalf("watch after rewrite: exit %d, want 1 and 'forked'\n%s", code, out)
	}
}
