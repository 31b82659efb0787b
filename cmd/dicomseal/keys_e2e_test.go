package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
	"github.com/dicomseal/dicomseal/signer"
)

// A key is never silently replaced: once the ledger holds entries, serve
// refuses to start without the keys that signed them (exit 2, naming the
// file and what the log expects), and with an origin other than the
// stored checkpoints'. An attestation signed by a key the server does not
// hold is a configuration error, never evidence against the image.
func TestKeysAndOriginAreNeverSilentlyReplaced(t *testing.T) {
	dataDir, srv, ct, att := oneCheckpointedIngest(t)
	keyID := att["key_id"].(string)
	verifierName := strings.SplitN(srv.logVerifierKey(), "+", 3)
	srv.stop()

	serve := func(extra ...string) (int, string) {
		var stderr bytes.Buffer
		// A serve that does start (wrongly) stops after a while and exits 0.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...), &bytes.Buffer{}, &stderr)
		return code, stderr.String()
	}
	keys := filepath.Join(dataDir, "keys")
	for _, tc := range []struct {
		name, file string
		extra      []string
		want       []string
	}{
		{"attestation key deleted", "attestation.pem", nil, []string{"attestation.pem is missing", keyID}},
		{"log key deleted", "log.key", nil, []string{"log.key is missing", verifierName[0] + "+" + verifierName[1]}},
		{"another origin", "", []string{"--log-origin", "dicomseal.local/custody-typo"}, []string{"dicomseal.local/custody-typo", "dicomseal.local/custody"}},
		{"another log key", "", []string{"--log-key-file", otherLogKey(t)}, []string{"does not verify a log's latest checkpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file != "" {
				path := filepath.Join(keys, tc.file)
				saved, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				os.Remove(path)
				defer os.WriteFile(path, saved, 0o600)
			}
			code, out := serve(tc.extra...)
			if code != 2 {
				t.Fatalf("serve: exit %d, want 2\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("serve's refusal does not say %q:\n%s", w, out)
				}
			}
			if tc.file != "" {
				if _, err := os.Stat(filepath.Join(keys, tc.file)); !errors.Is(err, os.ErrNotExist) {
					t.Fatal("a refused start created a key anyway")
				}
			}
		})
	}

	// Another attestation key, named by flag: it serves, but what the old
	// key signed answers 503 attestation-key-unavailable, records nothing.
	other := filepath.Join(t.TempDir(), "other.pem")
	if _, _, err := signer.LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, dataDir, "--key-file", other)
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	for range 2 {
		p := assertProblem(t, again.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusServiceUnavailable, "attestation-key-unavailable")
		if !strings.Contains(p["detail"].(string), "nothing is wrong with the image") {
			t.Fatalf("detail: %v", p["detail"])
		}
	}
	// Entry 0 and the subject maps of checkpoints: nothing else.
	for i := uint64(1); ; i++ {
		e, err := again.main.ledger.Entry(context.Background(), i)
		if errors.Is(err, ledger.ErrNotFound) {
			break
		}
		if err != nil || e.Kind != ledger.KindSubjectMap {
			t.Fatalf("a key configuration error was recorded against the image: entry %d %s %v", i, e.Kind, err)
		}
	}
	again.stop()
	restored := startServer(t, dataDir)
	if r := restored.do(http.MethodGet, "/v1/instances/"+uid, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, ct) {
		t.Fatalf("with the right key again: %d", r.status)
	}
}

// logVerifierKey is the log key's verifier key from /v1/keys.
func (s *testServer) logVerifierKey() string {
	s.t.Helper()
	for _, k := range s.do(http.MethodGet, "/v1/keys", "", nil).json(s.t)["keys"].([]any) {
		if m := k.(map[string]any); m["use"] == "log" {
			return m["verifier_key"].(string)
		}
	}
	s.t.Fatal("no log key in /v1/keys")
	return ""
}

func otherLogKey(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "log.key")
	if _, _, err := signer.LoadOrCreateLogKey(path, defaultLogOrigin); err != nil {
		t.Fatal(err)
	}
	return path
}

// A key id rewritten in a stored envelope, with the leaf hash recomputed to
// match, is evidence of tampering, not a configuration error: the signed
// tree does not prove that leaf, so it is refused as an integrity failure.
func TestForeignKeyIDBehindTheLogsBackIsTampering(t *testing.T) {
	dataDir, srv, _, att := oneCheckpointedIngest(t)
	srv.stop()
	body, err := base64.StdEncoding.DecodeString(att["entry"].(string))
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.ReplaceAll(body, []byte(att["key_id"].(string)), []byte(strings.Repeat("ab", 32)))
	leaf := ledger.LeafHash(forged)
	sqlitetest.Tamper(t, filepath.Join(dataDir, "ledger.db"), `UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = 0`, forged, leaf[:])
	again := startServer(t, dataDir)
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	p := assertProblem(t, again.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusBadGateway, "integrity-violation")
	if p["reason"] != "attestation-invalid" {
		t.Fatalf("reason %v, want attestation-invalid", p["reason"])
	}
}

// A deleted audit log is missing, never a sound empty one.
func TestDeletedAuditLogIsNoticed(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	srv.ingest(fixture(t, "pydicom-CT_small.dcm"))
	srv.stop()
	for _, f := range []string{"audit.db", "audit.db-wal", "audit.db-shm"} {
		os.Remove(filepath.Join(dataDir, f))
	}
	if code, out := runCLI("log", "verify", "--data-dir", dataDir); code != 2 || !strings.Contains(out, "audit: MISSING") {
		t.Fatalf("log verify without audit.db: exit %d\n%s", code, out)
	}
	if code, out := serveOnce("--data-dir", dataDir); code != 2 || !strings.Contains(out, "audit.db is missing") {
		t.Fatalf("serve without audit.db: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "audit.db")); err == nil {
		t.Fatal("a refused start created an empty audit log")
	}
}

// Before any checkpoint (a log a crash left without one), the first signed
// batch tells the origin and key a log was written with: a mistyped origin
// is refused even then.
func TestOriginCheckedBeforeTheFirstCheckpoint(t *testing.T) {
	dataDir := t.TempDir()
	keys := filepath.Join(dataDir, "keys")
	if _, _, err := signer.LoadOrCreate(filepath.Join(keys, "attestation.pem")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.LoadOrCreateLogKey(filepath.Join(keys, "log.key"), defaultLogOrigin); err != nil {
		t.Fatal(err)
	}
	ak, _, err := signer.LoadOrCreateLogKey(filepath.Join(keys, auditKeyFile), defaultAuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenAudit(context.Background(), filepath.Join(dataDir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	a := audit.New(ledger.New(db, defaultAuditOrigin, ak, ak.Verifier()), nil)
	if err := a.RecordDurable(context.Background(), audit.Event{Time: time.Now(), Actor: "cli:test", Action: "token.create", Outcome: "allowed"}); err != nil {
		t.Fatal(err) // one audit event, signed, not integrated
	}
	a.Close()
	db.Close()
	if code, out := serveOnce("--data-dir", dataDir, "--audit-origin", "hospital/audit"); code != 2 ||
		!strings.Contains(out, "first batch") {
		t.Fatalf("serve with another audit origin before the first checkpoint: exit %d\n%s", code, out)
	}
	// tokens, too, refuses to write under another origin, and changes nothing.
	code, out := runCLI("tokens", "create", "--role", "viewer", "--name", "late", "--data-dir", dataDir, "--audit-origin", "hospital/audit")
	if code != 2 || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("tokens create with another audit origin: exit %d\n%s", code, out)
	}
	if _, list := runCLI("tokens", "list", "--data-dir", dataDir); strings.Contains(list, "late") {
		t.Fatalf("a refused tokens create made the token anyway:\n%s", list)
	}
}

// serveOnce runs serve, which a test expects to refuse to start; one that
// starts after all is stopped after 10 s (and exits 0, failing the test).
func serveOnce(args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	code := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), &out, &out)
	return code, out.String()
}

// oneCheckpointedIngest serves a new data directory, ingests CT_small and
// waits until a checkpoint covers it; the server is still running.
func oneCheckpointedIngest(t *testing.T) (dataDir string, srv *testServer, ct []byte, att map[string]any) {
	t.Helper()
	dataDir = t.TempDir()
	srv = startServer(t, dataDir, "--checkpoint-interval", "20ms")
	ct = fixture(t, "pydicom-CT_small.dcm")
	att = srv.ingest(ct).json(t)
	v, _ := srv.logVerifier()
	srv.waitForCheckpoint(v, 1)
	return dataDir, srv, ct, att
}
