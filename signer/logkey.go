package signer

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// LogKey is the Ed25519 key that signs the log's checkpoints (C2SP signed
// notes, the form witnesses accept) and its committed batches. It is kept
// apart from the attestation key: the two have different jobs and, in
// production, different homes.
type LogKey struct {
	note.Signer
	verifier    note.Verifier
	verifierKey string
	public      ed25519.PublicKey
}

// PublicKey is the raw Ed25519 public key.
func (k *LogKey) PublicKey() ed25519.PublicKey { return k.public }

// Verifier verifies this key's signatures.
func (k *LogKey) Verifier() note.Verifier { return k.verifier }

// VerifierKey is the public key in note form ("<name>+<hash>+<base64>"),
// what auditors and witnesses pin (see /v1/keys and `log verify --log-key`).
func (k *LogKey) VerifierKey() string { return k.verifierKey }

// LoadOrCreateLogKey loads the note signer key at path, creating one named
// name (mode 0600) when the file does not exist. created reports whether a
// new key was generated.
func LoadOrCreateLogKey(path, name string) (k *LogKey, created bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		skey, _, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return nil, false, fmt.Errorf("signer: generate log key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("signer: key directory: %w", err)
		}
		switch err := writeFileAtomic(path, []byte(skey+"\n"), 0o600); {
		case err == nil:
			created = true
		case !errors.Is(err, errKeyExists):
			return nil, false, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("signer: read log key: %w", err)
	}
	k, err = ParseLogKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, false, fmt.Errorf("signer: log key %s: %w", path, err)
	}
	return k, created, nil
}

// ParseLogKey reads a note signer key ("PRIVATE+KEY+<name>+<hash>+<base64>").
func ParseLogKey(skey string) (*LogKey, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, errors.New("malformed note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &LogKey{Signer: s, verifier: v, verifierKey: vkey, public: pub}, nil
}

// LoadLogVerifier reads a note verifier key from a file (as written by
// `dicomseal keys` or copied from /v1/keys): the trust anchor of log
// audits, which must never come from the database being audited.
func LoadLogVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signer: read log verifier key: %w", err)
	}
	vkey := strings.TrimSpace(string(b))
	if strings.HasPrefix(vkey, "PRIVATE+KEY+") {
		k, err := ParseLogKey(vkey)
		if err != nil {
			return nil, err
		}
		return k.Verifier(), nil
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("signer: log verifier key %s: %w", path, err)
	}
	return v, nil
}
