package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/signer"
)

// ErrFileMismatch: a file's bytes are not the ones an attestation names.
var ErrFileMismatch = errors.New("file does not match the attestation")

// DecodeEnvelope accepts either an attestation document (the JSON that
// ingest and /attestation answer, holding "envelope") or a bare DSSE envelope.
func DecodeEnvelope(doc []byte) (signer.Envelope, error) {
	var wrapped struct {
		Envelope *signer.Envelope `json:"envelope"`
	}
	if err := json.Unmarshal(doc, &wrapped); err != nil {
		return signer.Envelope{}, fmt.Errorf("attestation: %w", err)
	}
	if wrapped.Envelope != nil {
		return *wrapped.Envelope, nil
	}
	var env signer.Envelope
	if err := json.Unmarshal(doc, &env); err != nil || env.Payload == "" {
		return signer.Envelope{}, errors.New("attestation: neither an attestation with an \"envelope\" nor a DSSE envelope")
	}
	return env, nil
}

// VerifyOffline checks file against env using only the public key: the
// envelope's signature, the statement's form, and the file's SHA-256. It
// trusts nothing from the server that produced them.
func VerifyOffline(v *signer.Verifier, env signer.Envelope, file io.Reader) (Statement, error) {
	payload, err := v.Open(env)
	if err != nil {
		return Statement{}, err
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return st, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return st, fmt.Errorf("read file: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != st.SubjectSHA256() {
		return st, fmt.Errorf("%w: file SHA-256 %s, attested %s", ErrFileMismatch, got, st.SubjectSHA256())
	}
	return st, nil
}
