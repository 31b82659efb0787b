package main

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/signer"
)

// Default origins of the custody log and the audit log.
const (
	defaultLogOrigin   = "dicomseal.local/custody"
	defaultAuditOrigin = "dicomseal.local/audit"
)

// serviceKeys are the two keys with two jobs: the attestation key signs
// DSSE envelopes, the log key signs checkpoints and batches.
type serviceKeys struct {
	attestation *signer.Attestor
	log         *signer.LogKey
}

// openKeys loads (or, on first start, creates) both keys; paths default
// to <dataDir>/keys/.
func openKeys(dataDir, attestationFile, logFile, origin string, log *slog.Logger) (*serviceKeys, error) {
	if attestationFile == "" {
		attestationFile = filepath.Join(dataDir, "keys", "attestation.pem")
	}
	if logFile == "" {
		logFile = filepath.Join(dataDir, "keys", "log.key")
	}
	a, created, err := signer.LoadOrCreate(attestationFile)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("generated a new attestation key", "path", attestationFile, "key_id", a.KeyID())
	}
	l, created, err := signer.LoadOrCreateLogKey(logFile, origin)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("generated a new log key", "path", logFile, "verifier_key", l.VerifierKey())
	}
	return &serviceKeys{attestation: a, log: l}, nil
}

// logKeyInfo describes the log key for /v1/keys.
func (k *serviceKeys) logKeyInfo() attest.Key {
	pub := k.log.PublicKey()
	der, _ := cryptoutils.MarshalPublicKeyToDER(pub)
	pemBytes, _ := cryptoutils.MarshalPublicKeyToPEM(pub)
	sum := sha256.Sum256(der)
	return attest.Key{
		KeyID:       hex.EncodeToString(sum[:]),
		Algorithm:   "ed25519",
		Use:         "log",
		PublicKey:   string(pemBytes),
		VerifierKey: k.log.VerifierKey(),
	}
}
