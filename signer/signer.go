// Package signer owns dicomseal's attestation keys: it loads or creates them,
// names them (key ids) and signs and opens DSSE envelopes through sigstore.
// It never logs key material and never writes a private key readable by
// anyone but its owner.
package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Algorithm names the attestation signature scheme, as published in /v1/keys.
const Algorithm = "ecdsa-p256-sha256"

// Attestor signs DSSE envelopes with one key.
type Attestor struct {
	sv signature.SignerVerifier
	*Verifier
}

// New wraps a sigstore SignerVerifier (a file key, an in-memory key, or a KMS key).
func New(sv signature.SignerVerifier) (*Attestor, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer: public key: %w", err)
	}
	v, err := newVerifier(sv, pub)
	if err != nil {
		return nil, err
	}
	return &Attestor{sv: sv, Verifier: v}, nil
}

// NewEphemeral returns an attestor with a fresh in-memory ECDSA P-256 key, for tests.
func NewEphemeral() (*Attestor, error) {
	sv, _, err := signature.NewECDSASignerVerifier(elliptic.P256(), rand.Reader, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signer: generate key: %w", err)
	}
	return New(sv)
}

// LoadOrCreate loads the ECDSA P-256 private key PEM at path, creating it
// (mode 0600, directory 0700) when it does not exist. created reports
// whether a new key was generated.
func LoadOrCreate(path string) (a *Attestor, created bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		switch err := createKeyFile(path); {
		case err == nil:
			created = true
		case !errors.Is(err, errKeyExists):
			return nil, false, err
		}
	}
	sv, err := signature.LoadSignerVerifierFromPEMFile(path, crypto.SHA256, cryptoutils.SkipPassword)
	if err != nil {
		return nil, false, fmt.Errorf("signer: load key %s: %w", path, err)
	}
	a, err = New(sv)
	return a, created, err
}

func createKeyFile(path string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("signer: generate key: %w", err)
	}
	pemBytes, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return fmt.Errorf("signer: encode key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("signer: key directory: %w", err)
	}
	return writeFileAtomic(path, pemBytes, 0o600)
}

// Sign wraps payload (an in-toto Statement) in a DSSE envelope whose single
// signature carries this key's id.
func (a *Attestor) Sign(ctx context.Context, payload []byte) (Envelope, error) {
	return signEnvelope(ctx, a.sv, a.keyID, payload)
}

// errKeyExists: the key file appeared meanwhile (writeFileAtomic).
var errKeyExists = errors.New("signer: the key file exists")

// writeFileAtomic writes data to path through a synced temporary file, so
// that a crash never leaves a half-written key behind, and never replaces
// a file already there: two processes creating the same key at once (on a
// shared key directory) end with the one key both then load.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("signer: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("signer: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("signer: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return errKeyExists // another process made it first: its key is the key
	} else if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	return nil
}

// KeyIDOf is the key id dicomseal uses: lower-case hex SHA-256 of the
// PKIX (SubjectPublicKeyInfo) DER encoding of the public key.
func KeyIDOf(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("signer: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
