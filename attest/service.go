// Package attest is dicomseal's domain: it turns DICOM instances into
// signed, logged attestations and refuses to hand out bytes that no longer
// match them: ingest and its verdicts, revisions and identity corrections,
// retrieval and verification, the offline checks, and the log's read side.
// It declares the small interfaces it needs from the custody log, the
// object store and the signer, and knows nothing of HTTP.
package attest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/diskspace"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
)

// DigestFile names the SHA-256 of the exact file bytes in Digests maps.
const DigestFile = "file"

// Ledger is the custody ledger as the service uses it.
type Ledger interface {
	// AppendIngest appends an ingest entry and claims its SOP Instance UID;
	// *custody.InstanceExistsError when the UID is already claimed.
	AppendIngest(ctx context.Context, rec custody.Record) (ledger.Entry, error)
	// RecordIncident appends a conflict or integrity failure once per kind,
	// UID and observed digest, counting repeats.
	RecordIncident(ctx context.Context, rec custody.Record, seenAt time.Time) (ledger.Entry, int64, error)
	// InstanceBySOP and IngestBySHA256 return ledger.ErrNotFound when absent.
	InstanceBySOP(ctx context.Context, uid string) (ledger.Entry, error)
	IngestBySHA256(ctx context.Context, sha256Hex string) (ledger.Entry, error)
	// IngestBySHA256WithLatest also returns the instance's latest version.
	IngestBySHA256WithLatest(ctx context.Context, sha256Hex string) (e, latest ledger.Entry, err error)
	// Identity returns the salt of attested bytes (ledger.ErrNotFound once erased).
	Identity(ctx context.Context, sha256Hex string) (*custody.Identity, error)
	Ping(ctx context.Context) error
	// Queued is how many appends wait for a commit.
	Queued() int
	// ProveIncluded checks that leaf is at idx in the latest signed
	// checkpoint's tree (ledger.ErrNotFound: not integrated yet).
	ProveIncluded(ctx context.Context, idx uint64, leaf [32]byte) error
	// AppendEvents appends custody events (transfers, migrations, fixity
	// summaries, repairs) in one commit.
	AppendEvents(ctx context.Context, recs []custody.Record) ([]ledger.Entry, error)
	// Size is the number of entries; ScanAttesting lists up to max
	// attesting entries in [from, to) and where to continue.
	Size(ctx context.Context) (uint64, error)
	ScanAttesting(ctx context.Context, from, to uint64, max int) ([]ledger.Entry, uint64, error)
	// ScanSubject calls fn for every entry about subject, in order.
	ScanSubject(ctx context.Context, subject string, fn func(ledger.Entry) error) error
	// PatientSalt is the salt of a patient's subject key (ledger.ErrNotFound:
	// none, or deleted); SubjectProof proves a subject's entries.
	PatientSalt(ctx context.Context, patientID string) ([]byte, error)
	SubjectProof(ctx context.Context, key ledger.SubjectKey, size uint64) (*ledger.SubjectProof, error)
	LogReader
}

// LogReader is the verifiable side of the ledger: entries by index and
// leaf hash, checkpoints and proofs. Bad proof parameters are
// *ledger.BadParameterError; absent things ledger.ErrNotFound.
type LogReader interface {
	Entry(ctx context.Context, idx uint64) (ledger.Entry, error)
	EntryByLeafHash(ctx context.Context, leaf [32]byte) (ledger.Entry, error)
	LatestCheckpoint(ctx context.Context) (ledger.Checkpoint, error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, uint64, error)
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, uint64, error)
}

// ObjectStore holds the attested bytes under their SHA-256.
type ObjectStore interface {
	// Put is idempotent; it rejects bytes that do not hash to sha256Hex.
	Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	// Get returns store.ErrNotFound when the object is absent.
	Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error)
	// Replace overwrites whatever is stored under sha256Hex (a repair);
	// like Put it rejects bytes that do not hash to it.
	Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Ping(ctx context.Context) error
}

// Attestor signs statements and opens its own envelopes.
type Attestor interface {
	Sign(ctx context.Context, payload []byte) (signer.Envelope, error)
	Open(env signer.Envelope) ([]byte, error)
	KeyID() string
	PublicKeyPEM() []byte
}

// Service is the attestation service.
type Service struct {
	ledger   Ledger
	store    ObjectStore
	attestor Attestor
	log      *slog.Logger
	// verified remembers entries that verified (entrycache.go).
	verified *entryCache

	// LogKey describes the key that signs checkpoints, published beside the
	// attestation key (zero when there is none).
	LogKey Key
	// AuditLogKey is the audit log's own key ("use": "audit-log").
	AuditLogKey Key

	// SpoolDir and SpoolMemory bound how request and object bytes are
	// buffered: up to SpoolMemory bytes in memory, the rest in 0600
	// temporary files in SpoolDir.
	SpoolDir    string
	SpoolMemory int64
	// ChunkSize is the chunk size of new attestations' chunk trees
	// (package chunks; 0: chunks.Size). Retrieval streams one chunk at a
	// time, each verified before it is sent.
	ChunkSize int64
	// Limits bound what parsing one uploaded file may cost.
	Limits dicomfile.Limits
	// MinFreeSpace is the free space SpoolDir's file system must keep:
	// below it ingest refuses with ENoSpace before reading a byte.
	MinFreeSpace int64
	// Now is the clock (injected for deterministic tests).
	Now func() time.Time
	// Rand supplies salts.
	Rand io.Reader
	// Catalog, when set, indexes every attested instance for DICOMweb
	// searches.
	Catalog Catalog
	// SeriesCheck, when set, is asked (without waiting) to check every
	// other stored object of the series of instance uid, whose retrieval
	// found its stored copy failing (Scrubber.CheckSeries).
	SeriesCheck func(study, series, uid string)
	// Destinations are where push transfers may go, by name.
	Destinations map[string]Destination
}

func (s *Service) chunkSize() int64 {
	if s.ChunkSize > 0 {
		return s.ChunkSize
	}
	return chunks.Size
}

// AppendQueue is how many ledger appends wait for a commit: a gauge of
// the load on the ledger's sequencer.
func (s *Service) AppendQueue() int { return s.ledger.Queued() }

// NewService wires a service; SpoolDir must be set by the caller.
func NewService(l Ledger, s ObjectStore, a Attestor, log *slog.Logger) *Service {
	return &Service{
		ledger: l, store: s, attestor: a, log: log, verified: newEntryCache(entryCacheSize),
		SpoolMemory: 16 << 20,
		Limits:      dicomfile.DefaultLimits,
		Now:         time.Now,
		Rand:        rand.Reader,
	}
}

// Key describes a public key that verifies attestations.
type Key struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	Use       string `json:"use"`
	PublicKey string `json:"public_key"`
	// VerifierKey, for the log key, is its signed-note verifier key
	// ("<name>+<hash>+<base64>"), what `log watch` and witnesses pin.
	VerifierKey string `json:"verifier_key,omitempty"`
}

// Keys lists the keys that verify this service's attestations.
func (s *Service) Keys() []Key {
	keys := []Key{{
		KeyID:     s.attestor.KeyID(),
		Algorithm: signer.Algorithm,
		Use:       "attestation",
		PublicKey: string(s.attestor.PublicKeyPEM()),
	}}
	for _, k := range []Key{s.LogKey, s.AuditLogKey} {
		if k.KeyID != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// PingLedger reports whether the ledger answers.
func (s *Service) PingLedger(ctx context.Context) error {
	if err := s.ledger.Ping(ctx); err != nil {
		return unavailable(ProblemLedgerUnavailable, err)
	}
	return nil
}

// PingStore reports whether the object store answers.
func (s *Service) PingStore(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return unavailable(ProblemStorageUnavailable, err)
	}
	return nil
}

// CheckSpace refuses with ENoSpace while SpoolDir's file system has less
// than MinFreeSpace free: an ingest must not start what a full disk would
// leave half done.
func (s *Service) CheckSpace() error {
	if s.MinFreeSpace <= 0 {
		return nil
	}
	free, err := diskspace.Free(s.SpoolDir)
	if err != nil {
		return internal(err)
	}
	if free < uint64(s.MinFreeSpace) {
		// The numbers go to the log only: /readyz, which says this too, is public.
		return &Error{Code: ENoSpace, Problem: ProblemInsufficientStorage,
			Message: "the data directory's free space is below --min-free-space; nothing was recorded",
			Err:     fmt.Errorf("%d bytes free, %d required", free, s.MinFreeSpace)}
	}
	return nil
}
