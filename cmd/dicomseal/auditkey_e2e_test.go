package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/signer"
)

// waitForAuditCheckpoint polls the public audit checkpoint until it has at
// least size entries and verifies with v.
func (s *testServer) waitForAuditCheckpoint(v note.Verifier, size uint64) (*log.Checkpoint, []byte) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.as(anonymous).do(http.MethodGet, "/v1/audit/checkpoint", "", nil)
		if r.status == http.StatusOK {
			// Until the handover, the latest may be the custody key's alone.
			if cp, _, _, err := log.ParseCheckpoint(r.body, defaultAuditOrigin, v); err == nil && cp.Size >= size {
				return cp, r.body
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no audit checkpoint of size %d within 10s (last: %d %s)", size, r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An audit log the previous release wrote, signed with the custody log
// key, gets a key of its own: serve creates it once, says so, and the
// next checkpoint is signed by both keys, so a witness holding either
// follows the log across the change; log verify accepts the custody key's
// checkpoints up to there, and never after.
func TestAuditLogGetsAKeyOfItsOwn(t *testing.T) {
	dir := copyV0(t)
	custodyKey, _, err := signer.LoadOrCreateLogKey(filepath.Join(dir, "keys", "log.key"), defaultLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, "--checkpoint-interval", "20ms")
	if !strings.Contains(srv.logs.String(), "generated the audit log's own key") {
		t.Fatal("serve did not say it created the audit log's key")
	}
	auditV, auditKeyPath := srv.auditLogVerifier()
	if strings.Split(auditKeyPathContents(t, auditKeyPath), "+")[0] != defaultAuditOrigin {
		t.Fatal("the audit log key is not named for its origin")
	}
	// The checkpoint of the change, published before the first request:
	// both keys sign it, and the audit log records its new key.
	handover, note1 := srv.waitForAuditCheckpoint(auditV, 14)
	if handover.Size != 14 {
		t.Fatalf("the handover checkpoint is at size %d, want 14 (12 entries, the key's and the subject map)", handover.Size)
	}
	if keyEvents := auditEntries(t, srv, "actor=serve", 1); keyEvents[0]["action"] != "audit-log.key" ||
		!strings.HasPrefix(keyEvents[0]["object"].(string), defaultAuditOrigin+"+") {
		t.Fatalf("the key change in the audit log: %v", keyEvents[0])
	}
	if _, _, _, err := log.ParseCheckpoint(note1, defaultAuditOrigin, custodyKey.Verifier()); err != nil {
		t.Fatalf("the handover checkpoint is not co-signed by the custody log key: %v\n%s", err, note1)
	}
	// Later ones: the audit key alone.
	srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/log/entries/0", "", nil)
	_, note2 := srv.waitForAuditCheckpoint(auditV, handover.Size+1)
	if _, _, _, err := log.ParseCheckpoint(note2, defaultAuditOrigin, custodyKey.Verifier()); err == nil {
		t.Fatal("the custody log key still signs the audit log after the handover")
	}
	// Public, like the custody log's: a witness proves the new tree
	// extends the one the previous release published (size 12).
	latest, _, _, _ := log.ParseCheckpoint(note2, defaultAuditOrigin, auditV)
	p := srv.as(anonymous).do(http.MethodGet, fmt.Sprintf("/v1/audit/proof/consistency?from=12&to=%d", latest.Size), "", nil).json(t)
	old := rawCheckpoint(t, filepath.Join(dir, "audit.db"), 12)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 12, latest.Size, unhex(t, p["hashes"].([]any)), old.Root, latest.Hash); err != nil {
		t.Fatalf("audit consistency 12 → %d: %v", latest.Size, err)
	}
	state := filepath.Join(t.TempDir(), "audit.state")
	for i := 0; i < 2; i++ {
		if code, out := runCLI("log", "watch", "--log", "audit", "--server", srv.url, "--state", state, "--log-key", auditKeyPath); code != 0 {
			t.Fatalf("log watch --log audit: exit %d\n%s", code, out)
		}
	}
	srv.stop()
	if code, out := runCLI("log", "verify", "--data-dir", dir); code != 0 || !strings.Contains(out, "audit: OK") {
		t.Fatalf("log verify across the handover: exit %d\n%s", code, out)
	}

	// A checkpoint the custody key alone signs after the handover is not
	// the audit log's: log verify names it.
	db, err := sqlite.OpenAudit(context.Background(), filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	forged := audit.New(ledger.New(db, defaultAuditOrigin, custodyKey, custodyKey.Verifier()), nil)
	if err := forged.RecordDurable(context.Background(), audit.Event{Time: time.Now(), Actor: "mallory", Action: "token.create", Outcome: "allowed"}); err != nil {
		t.Fatal(err)
	}
	forged.Close()
	l := ledger.New(db, defaultAuditOrigin, custodyKey, custodyKey.Verifier())
	cp, _, err := l.Integrate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out := runCLI("log", "verify", "--data-dir", dir, "--log", "audit")
	if code != 1 || !strings.Contains(out, "audit: FAILED") || !strings.Contains(out, "batch of 1 entries: signature does not verify") ||
		!strings.Contains(out, fmt.Sprintf("checkpoint at tree size %d: failed to verify", cp.Size)) {
		t.Fatalf("log verify of a post-handover custody-key checkpoint (size %d): exit %d\n%s", cp.Size, code, out)
	}
}

func auditKeyPathContents(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// rawCheckpoint reads the stored checkpoint of a size from a log file.
func rawCheckpoint(t *testing.T, path string, size uint64) ledger.Checkpoint {
	t.Helper()
	db, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var found ledger.Checkpoint
	db.Read(context.Background(), func(tx ledger.Tx) error {
		return tx.ScanCheckpoints(context.Background(), func(c ledger.Checkpoint) error {
			if c.Size == size {
				found = c
			}
			return nil
		})
	})
	if found.Note == nil {
		t.Fatalf("no checkpoint of size %d in %s", size, path)
	}
	return found
}
