package signer

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// PayloadType is the DSSE payload type of an in-toto Statement.
const PayloadType = "application/vnd.in-toto+json"

// ErrBadSignature: an envelope does not verify under the expected key.
var ErrBadSignature = errors.New("envelope signature does not verify")

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

func signEnvelope(ctx context.Context, s signature.Signer, keyID string, payload []byte) (Envelope, error) {
	raw, err := dsse.WrapSigner(s, PayloadType).SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return Envelope{}, fmt.Errorf("signer: sign envelope: %w", err)
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Envelope{}, fmt.Errorf("signer: decode envelope: %w", err)
	}
	// sigstore's wrapper leaves keyid empty; it is not covered by the
	// signature (DSSE PAE signs type and payload only), so setting it after
	// signing is what DSSE intends: a hint for choosing the key.
	for i := range env.Signatures {
		env.Signatures[i].KeyID = keyID
	}
	return env, nil
}

// Verifier opens envelopes signed by one public key.
type Verifier struct {
	v      signature.Verifier
	keyID  string
	pubPEM []byte
}

func newVerifier(v signature.Verifier, pub crypto.PublicKey) (*Verifier, error) {
	keyID, err := KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("signer: encode public key: %w", err)
	}
	return &Verifier{v: v, keyID: keyID, pubPEM: pemBytes}, nil
}

// NewVerifierFromPEM loads a PEM public key, as served by /v1/keys.
func NewVerifierFromPEM(pemBytes []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("signer: parse public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signer: load verifier: %w", err)
	}
	return newVerifier(v, pub)
}

// KeyID is this key's id (see KeyIDOf).
func (v *Verifier) KeyID() string { return v.keyID }

// PublicKeyPEM is the PEM-encoded public key.
func (v *Verifier) PublicKeyPEM() []byte { return bytes.Clone(v.pubPEM) }

// Open checks that env carries a valid signature by this key over its
// payload type and payload, and returns the decoded payload. Signatures
// naming another key id are ignored; at least one must verify.
func (v *Verifier) Open(env Envelope) ([]byte, error) {
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrBadSignature, env.PayloadType, PayloadType)
	}
	var mine []Signature
	for _, s := range env.Signatures {
		if s.KeyID == "" || s.KeyID == v.keyID {
			// The keyid has done its job (choosing the key); sigstore's
			// verifier would compare it with an SSH-style fingerprint.
			mine = append(mine, Signature{Sig: s.Sig})
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("%w: no signature by key %s", ErrBadSignature, v.keyID)
	}
	raw, err := json.Marshal(Envelope{PayloadType: env.PayloadType, Payload: env.Payload, Signatures: mine})
	if err != nil {
		return nil, fmt.Errorf("signer: encode envelope: %w", err)
	}
	var payload []byte
	dv := dsse.WrapVerifier(v.v, dsse.WithExpectedPayloadType(PayloadType), dsse.WithDecodedPayload(&payload))
	if err := dv.VerifySignature(bytes.NewReader(raw), nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return payload, nil
}
