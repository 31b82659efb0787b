// Package ledger defines the custody ledger: what an entry is, how its leaf
// hash is computed, and the errors backends return. Backends (ledger/sqlite,
// later ledger/postgres) store entries; they never rewrite or delete one.
package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Kind names what an entry records.
type Kind string

// Entry kinds in the custody ledger.
const (
	KindIngest   Kind = "ingest"
	KindRevision Kind = "revision" // new bytes for an attested SOP Instance UID, judged benign
	// KindIdentityCorrection: new bytes for an attested SOP Instance UID
	// whose patient or study identity a reconciler corrected.
	KindIdentityCorrection Kind = "identity-correction"
	KindConflict           Kind = "conflict"
	KindSecurityAlert      Kind = "security-alert" // a refused revision: what changed, never the values
	KindIntegrityFailure   Kind = "integrity-failure"
	// KindAudit entries make up the audit log: who accessed what. They
	// are plain appends (no claim, no deduplication).
	KindAudit Kind = "audit"
)

// Attests tells whether entries of kind k attest bytes: an ingest, or a
// later version of an attested instance.
func (k Kind) Attests() bool { return k == KindIngest || k.Revises() }

// Revises tells whether entries of kind k follow an instance's latest
// entry (and so may not fork its chain).
func (k Kind) Revises() bool { return k == KindRevision || k == KindIdentityCorrection }

var (
	// ErrNotFound: no entry matches.
	ErrNotFound = errors.New("ledger: not found")
	// ErrUnavailable: the database cannot be reached or refused the write.
	ErrUnavailable = errors.New("ledger: unavailable")
	// ErrStaleRevision: another revision of the instance landed first.
	ErrStaleRevision = errors.New("ledger: the instance was revised meanwhile")
)

// InstanceExistsError is returned by an ingest append whose SOP Instance
// UID was already claimed by another entry.
type InstanceExistsError struct {
	Existing Entry
}

func (e *InstanceExistsError) Error() string {
	return fmt.Sprintf("ledger: SOP Instance UID %s already attested at index %d", e.Existing.Subject, e.Existing.Index)
}

// Record is an entry to append.
type Record struct {
	Kind    Kind
	Subject string
	// FileSHA256 is the digest the entry is about: the stored object for
	// ingest, the attempted bytes for a conflict, the observed bytes for an
	// integrity failure ("" when the object was missing).
	FileSHA256 string
	// Body is the canonical entry: the bytes the leaf hash covers.
	Body []byte
	// IncidentKey, for incidents, tells repeats apart beyond kind and UID
	// (e.g. the reason and observed digest): one entry per key, repeats counted.
	IncidentKey string
	// Identity, for ingest, holds the salt and clear values that open the
	// patient commitments; it goes to a correctable table, never the log.
	Identity *Identity
	// Revises, for a revision, is the index of the entry it was judged
	// against; the append fails with ErrStaleRevision if that is no longer
	// the instance's latest, so the revision chain cannot fork.
	Revises uint64
}

// Identity is the correctable side of a record's patient commitments.
type Identity struct {
	Salt             []byte
	PatientName      string
	PatientID        string
	PatientBirthDate string
	// CorrectionReason, for an identity correction, is the reconciler's
	// stated reason: free text, so it lives here, never in the log.
	CorrectionReason string
}

// Entry is a record as the log holds it.
type Entry struct {
	Index      uint64
	Kind       Kind
	Subject    string
	FileSHA256 string
	Body       []byte
	LeafHash   [32]byte
}

// LeafHashHex is the leaf hash in lower-case hex.
func (e Entry) LeafHashHex() string { return hex.EncodeToString(e.LeafHash[:]) }

// LeafHash is the RFC 6962 leaf hash of canonical entry bytes:
// SHA-256(0x00 ‖ body).
func LeafHash(body []byte) [32]byte {
	var h [sha256.Size]byte
	copy(h[:], rfc6962.DefaultHasher.HashLeaf(body))
	return h
}
