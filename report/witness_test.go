package report_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/signer"
)

// cosign adds signers' signatures to a checkpoint the log signed.
func cosign(t *testing.T, cp []byte, logKey note.Verifier, signers ...note.Signer) []byte {
	t.Helper()
	n, err := note.Open(cp, note.VerifierList(logKey))
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.Sign(n, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A report says which trusted witnesses cosigned each checkpoint:
// timestamped cosignatures (c2sp.org/tlog-cosignature, made here by
// torchwood, as litewitness makes them) and plain note signatures; an
// untrusted witness's cosignature counts for nothing.
func TestWitnessedCheckpoint(t *testing.T) {
	ctx := context.Background()
	custodyLog, auditLog := newLog(t, "dicomseal.test/custody"), newLog(t, "dicomseal.test/audit")
	issuer, _ := signer.NewEphemeral()

	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	cosigner, err := torchwood.NewCosignatureSigner("witness.example/w1", wkey)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := report.ParseWitnessKey(cosigner.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "witness.example/plain")
	plain, _ := note.NewSigner(skey)
	plainV, err := report.ParseWitnessKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := torchwood.NewCosignatureSigner("witness.example/unknown", strangerKey)

	c, a := custodyLog.prove(t, studyA), auditLog.prove(t, studyA)
	c.Checkpoint = cosign(t, c.Checkpoint, custodyLog.v, cosigner, plain, stranger)
	env, err := report.Sign(ctx, issuer, &report.Bundle{V: 1, Query: report.Query{Study: studyA}, Generated: time.Now(),
		Custody: c, Audit: []*ledger.SubjectProof{a}})
	if err != nil {
		t.Fatal(err)
	}
	keys := report.Keys{Attestation: issuer.Verifier, LogOrigin: custodyLog.origin, Log: custodyLog.v,
		AuditOrigin: auditLog.origin, Audit: auditLog.v, Witnesses: []note.Verifier{trusted, plainV}}
	got, err := report.Verify(env, keys)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(got.Custody.Witnesses, ","); w != "witness.example/w1,witness.example/plain" {
		t.Errorf("custody checkpoint witnessed by %q", w)
	}
	if len(got.Audit[0].Witnesses) != 0 {
		t.Errorf("audit checkpoint witnessed by %v", got.Audit[0].Witnesses)
	}
	if s := strings.Join(got.Statement(), "\n"); !strings.Contains(s, "witnessed by witness.example/w1") || !strings.Contains(s, "not witnessed") {
		t.Errorf("statement:\n%s", s)
	}
	// Without the witnesses' keys the same report is sound, and unwitnessed.
	keys.Witnesses = nil
	if got, err = report.Verify(env, keys); err != nil || len(got.Custody.Witnesses) != 0 {
		t.Errorf("no witness trusted: %v, %v", got.Custody.Witnesses, err)
	}
}

func TestParseWitnessKey(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := torchwood.NewCosignatureSigner("w.example", k)
	good := s.Verifier().String()
	for _, bad := range []string{"", "w.example", "w.example+12345678", "w.example+zz+AAAA",
		strings.Replace(good, "w.example", "x.example", 1), good[:len(good)-4] + "AAAA"} {
		if _, err := report.ParseWitnessKey(bad); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
	if v, err := report.ParseWitnessKey(good + "\n"); err != nil || v.Name() != "w.example" {
		t.Errorf("%q: %v", good, err)
	}
}
