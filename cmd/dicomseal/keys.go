package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/signer"
)

// Default origins of the custody log and the audit log.
const (
	defaultLogOrigin   = "dicomseal.local/custody"
	defaultAuditOrigin = "dicomseal.local/audit"
	// auditKeyFile, under <data-dir>/keys, is the audit log's own key.
	auditKeyFile = "audit-log.key"
)

// serviceKeys are the keys with their jobs: the attestation key signs
// DSSE envelopes, each log key its log's checkpoints and batches.
type serviceKeys struct {
	attestation *signer.Attestor
	log         *signer.LogKey // the custody log's
	audit       *signer.LogKey // the audit log's own (openAuditKey)
}

// openKeys loads both keys; paths default to <dataDir>/keys/. A missing
// key is generated only when mayCreate (a ledger that holds nothing yet,
// keys at their default paths): a key silently replaced would make every
// stored image fail verification, or every checkpoint fail to verify.
// expect describes what the ledger was signed with, for the error.
//
// The attestation key signs custody entries only: it may be generated while
// the custody log is empty (attestationFresh). The log key signs the custody
// log's batches and checkpoints (and signed the audit log's before it had a
// key of its own, see openAuditKey): only while both are empty (logFresh).
func openKeys(dataDir, attestationFile, logFile, origin string, log *slog.Logger, attestationFresh, logFresh bool, expect ledgerState) (*serviceKeys, error) {
	defaulted := attestationFile == "" && logFile == ""
	if attestationFile == "" {
		attestationFile = filepath.Join(dataDir, "keys", "attestation.pem")
	}
	if logFile == "" {
		logFile = filepath.Join(dataDir, "keys", "log.key")
	}
	if err := requireKey(attestationFile, attestationFresh && defaulted, "attestation key", expect.entries,
		"the ledger's attestations are signed by key id "+orUnknown(expect.keyID)); err != nil {
		return nil, err
	}
	l, err := openLogKey(logFile, origin, log, logFresh && defaulted, expect)
	if err != nil {
		return nil, err
	}
	a, created, err := signer.LoadOrCreate(attestationFile)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("generated a new attestation key", "path", attestationFile, "key_id", a.KeyID())
	}
	if expect.keyID != "" && a.KeyID() != expect.keyID && log != nil {
		log.Warn("the attestation key differs from the one that signed the latest attestation: earlier attestations "+
			"answer 503 attestation-key-unavailable until their key is configured", "key_id", a.KeyID(), "latest_signed_by", expect.keyID)
	}
	return &serviceKeys{attestation: a, log: l}, nil
}

// openLogKey loads the log key under openKeys' rule, and checks that it
// verifies the ledger's latest checkpoint.
func openLogKey(logFile, origin string, log *slog.Logger, create bool, expect ledgerState) (*signer.LogKey, error) {
	if err := requireKey(logFile, create, "log key", expect.entries,
		"its checkpoints are signed by "+orUnknown(expect.logSigner)); err != nil {
		return nil, err
	}
	l, created, err := signer.LoadOrCreateLogKey(logFile, origin)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("generated a new log key", "path", logFile, "verifier_key", l.VerifierKey())
	}
	for _, cp := range append([][]byte{expect.checkpoint}, expect.others...) {
		if cp == nil {
			continue
		}
		if _, err := note.Open(cp, note.VerifierList(l.Verifier())); err != nil {
			_, signer := noteSigner(cp)
			return nil, &configError{fmt.Sprintf("the log key in %s does not verify a log's latest checkpoint, signed by %s: "+
				"restore the log key it was signed with", logFile, orUnknown(signer))}
		}
	}
	return l, nil
}

// requireKey fails, naming the file and what the ledger expects, when a
// key file is missing and may not be created.
func requireKey(path string, create bool, what string, entries uint64, expected string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || create {
		return nil
	}
	return &configError{fmt.Sprintf("%s %s is missing, and the ledger holds %d entries (%s): restore the file, or name it with its flag; "+
		"a new key is generated only for an empty ledger", what, path, entries, expected)}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown key"
	}
	return s
}

// configError is a configuration that serve refuses to start with (exit 2).
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// ledgerState is what a ledger says about the keys and origin it was
// written with.
type ledgerState struct {
	entries    uint64
	keyID      string // the attestation key of the latest attesting entry
	checkpoint []byte // the latest checkpoint, a signed note
	logSigner  string // its signature's key name and hash
	origin     string // its origin line
	// others are the latest checkpoints of the other logs the same log
	// key signs (the audit log's, beside the custody log's).
	others [][]byte
	// firstBatch is the log's first signed batch not yet integrated (nil:
	// none): it shows the key and origin the log is being written with,
	// before a checkpoint covers it.
	firstBatch *ledger.Batch
}

var errStop = errors.New("stop")

// checkFirstBatch refuses a log key or origin that did not sign the log's
// first batch.
func checkFirstBatch(name, origin, flag string, st ledgerState, key *signer.LogKey) error {
	if st.firstBatch == nil || ledger.VerifyBatch(origin, key.Verifier(), *st.firstBatch) {
		return nil
	}
	return &configError{fmt.Sprintf("the %s log's next batch to integrate (first batch after its checkpoint) is not signed by this log key under origin %q (%s): "+
		"the origin or the key differs from the ones the log was written with", name, origin, flag)}
}

// readLedgerState reads a ledger's size, latest checkpoint and the key id of
// its latest attestation (among the last entries).
func readLedgerState(ctx context.Context, b ledger.Backend) (ledgerState, error) {
	var st ledgerState
	err := b.Read(ctx, func(tx ledger.Tx) error {
		next, err := tx.NextIndex(ctx)
		if err != nil {
			return err
		}
		st.entries = next
		cp, err := tx.LatestCheckpoint(ctx)
		switch {
		case err == nil:
			st.checkpoint = cp.Note
			st.origin, st.logSigner = noteSigner(cp.Note)
		case !errors.Is(err, ledger.ErrNotFound):
			return err
		}
		// The first batch not yet integrated: the one integration will
		// check next (and few rows to read: those after the checkpoint).
		var from uint64
		if err == nil {
			from = cp.Size
		}
		err = tx.ScanBatches(ctx, from, func(b ledger.Batch) error {
			st.firstBatch = &b
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		return tx.ScanEntries(ctx, max(next, 256)-256, next, func(e ledger.Entry) error {
			var body struct {
				Envelope struct {
					Signatures []struct {
						KeyID string `json:"keyid"`
					} `json:"signatures"`
				} `json:"envelope"`
			}
			if custody.Attests(e.Kind) && json.Unmarshal(e.Body, &body) == nil && len(body.Envelope.Signatures) > 0 {
				st.keyID = body.Envelope.Signatures[0].KeyID
			}
			return nil
		})
	})
	return st, err
}

// noteSigner reads a signed note's first line and its first signature's
// key name and hash, without verifying it.
func noteSigner(msg []byte) (origin, signer string) {
	text, sigs, _ := strings.Cut(string(msg), "\n\n")
	origin, _, _ = strings.Cut(text, "\n")
	for _, line := range strings.Split(sigs, "\n") {
		name, sig, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		if !ok || !strings.HasPrefix(line, "— ") {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && len(b) >= 4 {
			return origin, fmt.Sprintf("%s+%08x", name, binary.BigEndian.Uint32(b))
		}
	}
	return origin, ""
}

// logKeyInfo describes a log key for /v1/keys: use "log" (the custody
// log's) or "audit-log".
func logKeyInfo(k *signer.LogKey, use string) attest.Key {
	pub := k.PublicKey()
	der, _ := cryptoutils.MarshalPublicKeyToDER(pub)
	pemBytes, _ := cryptoutils.MarshalPublicKeyToPEM(pub)
	sum := sha256.Sum256(der)
	return attest.Key{
		KeyID:       hex.EncodeToString(sum[:]),
		Algorithm:   "ed25519",
		Use:         use,
		PublicKey:   string(pemBytes),
		VerifierKey: k.VerifierKey(),
	}
}

// handOver records the audit log's new key in the audit log itself and
// publishes at once the checkpoint both keys sign, so that nothing reads
// the log between two keys (a witness holding the custody key follows it
// across, and audit queries verify from the first request).
func handOver(ctx context.Context, auditBackend ledger.Backend, origin string, key, previous *signer.LogKey, logger *slog.Logger) error {
	l := ledger.New(auditBackend, origin, key, key.Verifier())
	l.Handover = previous
	a := audit.New(l, logger)
	err := a.RecordDurable(ctx, audit.Event{Time: time.Now().UTC(), Actor: "serve", Action: "audit-log.key",
		Object: key.VerifierKey(), Outcome: "allowed"})
	a.Close()
	if err != nil {
		return fmt.Errorf("record the audit log's new key: %w", err)
	}
	if _, _, err := l.Integrate(ctx); err != nil {
		return fmt.Errorf("publish the audit log's handover checkpoint: %w", err)
	}
	return nil
}

// verifiesNote tells whether k signed the note msg.
func verifiesNote(msg []byte, k *signer.LogKey) bool {
	_, err := note.Open(msg, note.VerifierList(k.Verifier()))
	return err == nil
}

// signedByKeyNamed tells whether a signed note's first signature is by a
// key named name.
func signedByKeyNamed(msg []byte, name string) bool {
	_, signer := noteSigner(msg)
	keyName, _, _ := strings.Cut(signer, "+")
	return msg != nil && keyName == name
}

// openAuditKey opens the audit log's own key, named for its origin. The
// release that gave the audit log a key of its own found audit logs the
// custody log key signed: for such a log (and for a new one) serve creates
// the key once, after folding every batch the custody key signed into a
// checkpoint of that key; the next audit checkpoint is co-signed by both
// (ledger.Log.Handover), and log verify accepts the custody key's up to it.
// Once an audit checkpoint is the audit key's, a missing key file is an
// error, never a new key.
func (m *Main) openAuditKey(ctx context.Context, auditBackend ledger.Backend, logKey *signer.LogKey) (*signer.LogKey, error) {
	path := m.AuditLogKeyFile
	if path == "" {
		if m.LogKeyFile != "" {
			// Replicas sharing named key files would each make their own
			// audit key in their own data directory, and split the log.
			return nil, &configError{"--log-key-file is given, so give --audit-log-key-file too (the audit log's key, shared by every replica like the log key)"}
		}
		path = filepath.Join(m.DataDir, "keys", auditKeyFile)
	}
	as, err := readLedgerState(ctx, auditBackend)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	// Signed by the custody key so far: a log of the release before the
	// audit key, or one whose handover a crash interrupted.
	legacy := signedByKeyNamed(as.checkpoint, m.LogOrigin) ||
		(as.checkpoint == nil && as.firstBatch != nil && ledger.VerifyBatch(m.AuditOrigin, logKey.Verifier(), *as.firstBatch))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !legacy && as.checkpoint != nil {
		return nil, &configError{fmt.Sprintf("the audit log key %s is missing, and the audit log's checkpoints are signed by %s: "+
			"restore the file, or name it with --audit-log-key-file", path, orUnknown(as.logSigner))}
	}
	k, created, err := signer.LoadOrCreateLogKey(path, m.AuditOrigin)
	if err != nil {
		return nil, err
	}
	switch {
	case created && legacy:
		m.log.Info("generated the audit log's own key: the custody log key signed it until now, and co-signs the checkpoint that hands over",
			"path", path, "verifier_key", k.VerifierKey(), "audit_entries", as.entries)
	case created:
		m.log.Info("generated the audit log key", "path", path, "verifier_key", k.VerifierKey())
	}
	if legacy {
		// Fold what the custody key signed into a checkpoint of it (a halt
		// at a batch of the audit key, left by an interrupted handover, is
		// where its part begins), then hand over.
		old := ledger.New(auditBackend, m.AuditOrigin, logKey, logKey.Verifier())
		var halt *ledger.HaltError
		if _, _, err := old.Integrate(ctx); err != nil && !errors.As(err, &halt) {
			return nil, fmt.Errorf("integrate the audit log under the custody log key before it gets its own: %w", err)
		}
		if err := handOver(ctx, auditBackend, m.AuditOrigin, k, logKey, m.log); err != nil {
			return nil, err
		}
		if as, err = readLedgerState(ctx, auditBackend); err != nil {
			return nil, fmt.Errorf("read the audit log: %w", err)
		}
	}
	// The latest checkpoint is the audit key's; the next batch to
	// integrate is too.
	if as.checkpoint != nil && !verifiesNote(as.checkpoint, k) {
		return nil, &configError{fmt.Sprintf("the audit log key in %s does not verify the audit log's latest checkpoint, signed by %s: "+
			"restore the key it was signed with", path, orUnknown(as.logSigner))}
	}
	if err := checkFirstBatch("audit", m.AuditOrigin, "--audit-origin", as, k); err != nil {
		return nil, err
	}
	return k, nil
}
