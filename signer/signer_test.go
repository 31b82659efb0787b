package signer_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/signer"
)

func TestLoadOrCreateKeepsOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "attestation.pem")
	a, created, err := signer.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	b, created, err := signer.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if a.KeyID() != b.KeyID() {
		t.Errorf("reloaded key id %s, want %s", b.KeyID(), a.KeyID())
	}
}

func TestSignAndOpen(t *testing.T) {
	ctx := context.Background()
	a, err := signer.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	other, err := signer.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	env, err := a.Sign(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Signatures) != 1 || env.Signatures[0].KeyID != a.KeyID() || env.PayloadType != signer.PayloadType {
		t.Fatalf("envelope = %+v", env)
	}
	v, err := signer.NewVerifierFromPEM(a.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Open(env)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	otherEnv, err := other.Sign(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	tampered := env
	tampered.Payload = base64.StdEncoding.EncodeToString([]byte(`{"_type":"forged"}`))
	wrongType := env
	wrongType.PayloadType = "text/plain"
	unnamed := otherEnv
	unnamed.Signatures = []signer.Signature{{Sig: otherEnv.Signatures[0].Sig}}
	badSig := env
	badSig.Signatures = []signer.Signature{{KeyID: a.KeyID(), Sig: "AAAA"}}
	for name, e := range map[string]signer.Envelope{
		"payload changed":           tampered,
		"payload type changed":      wrongType,
		"signed by another key":     otherEnv,
		"another key, keyid erased": unnamed,
		"garbage signature":         badSig,
		"no signatures":             {PayloadType: env.PayloadType, Payload: env.Payload},
	} {
		if _, err := v.Open(e); !errors.Is(err, signer.ErrBadSignature) {
			t.Errorf("%s: Open error = %v, want ErrBadSignature", name, err)
		}
	}
}
