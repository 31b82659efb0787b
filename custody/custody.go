// Package custody is the custody index over the verifiable log: the rules
// that make the log a chain of custody for DICOM instances. A SOP Instance
// UID is claimed by its first ingest, once; later versions (revisions,
// identity corrections) follow the instance's latest entry and cannot
// fork its chain; a repeated incident (a refused revision, an integrity
// failure) is recorded once and counted; the identity rows that open the
// patient commitments stay correctable, beside the log, never in it.
//
// The rules are decided in the same transaction as the append, through
// the log's per-batch hook (Index.Decide): package ledger sequences, signs
// and proves entries without knowing what they say. Backends store the
// index in their own tables (Tx).
package custody

import (
	"context"
	"errors"
	"fmt"
	"github.com/dicomseal/dicomseal/catalog"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// Entry kinds of the custody log (docs/entries.md).
const (
	KindIngest   ledger.Kind = "ingest"
	KindRevision ledger.Kind = "revision" // new bytes for an attested SOP Instance UID, judged benign
	// KindIdentityCorrection: new bytes for an attested SOP Instance UID
	// whose patient or study identity a reconciler corrected.
	KindIdentityCorrection ledger.Kind = "identity-correction"
	KindConflict           ledger.Kind = "conflict"
	KindSecurityAlert      ledger.Kind = "security-alert" // a refused revision: what changed, never the values
	KindIntegrityFailure   ledger.Kind = "integrity-failure"

	// Custody events: what happened to attested bytes after ingest. Each
	// is appended as it is, never counted or deduplicated: every move and
	// every check is its own fact.
	KindTransfer         ledger.Kind = "transfer"          // verified bytes sent to (or taken to) a destination
	KindExport           ledger.Kind = "export"            // verified bytes written out of dicomseal, to a directory
	KindStorageMigration ledger.Kind = "storage-migration" // an object copied to another store, checked on both sides
	KindFixity           ledger.Kind = "fixity"            // the signed summary of one scrub pass
	KindRepair           ledger.Kind = "repair"            // a stored copy rewritten from re-ingested attested bytes
)

// Event tells whether entries of kind k are custody events: appended as
// they come, deciding nothing about claims or incidents.
func Event(k ledger.Kind) bool {
	switch k {
	case KindTransfer, KindExport, KindStorageMigration, KindFixity, KindRepair:
		return true
	}
	return false
}

// Attests tells whether entries of kind k attest bytes: an ingest, or a
// later version of an attested instance.
func Attests(k ledger.Kind) bool { return k == KindIngest || Revises(k) }

// Revises tells whether entries of kind k follow an instance's latest
// entry (and so may not fork its chain).
func Revises(k ledger.Kind) bool { return k == KindRevision || k == KindIdentityCorrection }

// incident tells whether entries of kind k are counted incidents.
func incident(k ledger.Kind) bool {
	return k == KindConflict || k == KindSecurityAlert || k == KindIntegrityFailure
}

var (
	// ErrStaleRevision: another revision of the instance landed first.
	ErrStaleRevision = errors.New("custody: the instance was revised meanwhile")
	// ErrNotCustody: a record the custody index does not decide.
	ErrNotCustody = errors.New("custody: not a custody record")
)

// InstanceExistsError is returned by an ingest whose SOP Instance UID was
// already claimed by another entry.
type InstanceExistsError struct {
	Existing ledger.Entry
}

func (e *InstanceExistsError) Error() string {
	return fmt.Sprintf("custody: SOP Instance UID %s already attested at index %d", e.Existing.Subject, e.Existing.Index)
}

// Meta is what the index needs to decide a record beyond the record
// itself; the log never stores it (ledger.Record.Meta).
type Meta struct {
	// Identity, for attesting records, holds the salt and clear values
	// that open the patient commitments; it goes to a correctable table.
	Identity *Identity
	// Revises, for a revision, is the index of the entry it was judged
	// against; ErrStaleRevision if that is no longer the instance's latest.
	Revises uint64
	// IncidentKey, for incidents, tells repeats apart beyond kind and UID
	// (e.g. the reason and observed digest): one entry per key.
	IncidentKey string
	SeenAt      time.Time
	// Catalog, for attesting records, is the instance's row in the
	// DICOMweb search index, written in the same transaction (its
	// LedgerIndex set to the entry's): an attested instance is searchable
	// as soon as its append returns, at no commit of its own.
	Catalog *catalog.Entry
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

// IncidentKey identifies an incident: its kind, instance and key.
type IncidentKey struct {
	Kind    ledger.Kind
	Subject string
	Key     string
}

// Incident is an incident's entry, how often it was seen and when last.
type Incident struct {
	IncidentKey
	Index    uint64
	Count    int64
	LastSeen time.Time
}

// Claim is the unique claim of a SOP Instance UID by an ingest entry.
type Claim struct {
	SOPInstanceUID string
	Index          uint64
	FileSHA256     string
}

// IdentityRow is the correctable identity of an ingested file.
type IdentityRow struct {
	FileSHA256 string
	*Identity
}

// Rows are what one batch writes to the index.
type Rows struct {
	Claims     []Claim
	Identities []IdentityRow
	Incidents  []Incident
	// Catalog rows replace an instance's unless it shows a later version.
	Catalog []catalog.Entry
	// Patients are the salts of patients first seen in this batch.
	Patients []PatientSalt
}

// PatientSalt is the salt a patient's subject key is derived from
// (package subject), by Patient ID: correctable identity, never in the log.
type PatientSalt struct {
	PatientID string
	Salt      []byte
}

// Subjects are the study and patient an instance's entries are chained
// under, as its search index row names them ("" for none).
type Subjects struct {
	StudyInstanceUID string
	PatientID        string
}

// Tx is the index's storage, in the same transaction as the log's: a
// backend's ledger.Tx implements it too. Lookups return ledger.ErrNotFound.
type Tx interface {
	ledger.Tx
	// InstanceEntry is the latest attesting entry of a UID; LatestIndex
	// is only its index (no body read).
	InstanceEntry(ctx context.Context, sopInstanceUID string) (ledger.Entry, error)
	LatestIndex(ctx context.Context, sopInstanceUID string) (uint64, error)
	// IngestBySHA256 is the first attesting entry of those bytes.
	IngestBySHA256(ctx context.Context, sha256Hex string) (ledger.Entry, error)
	// Identity is the correctable identity row of an attested file.
	Identity(ctx context.Context, sha256Hex string) (*Identity, error)
	// InstanceEntries returns the ingest entries that claimed any of uids
	// (the claim, never a later version).
	InstanceEntries(ctx context.Context, uids []string) (map[string]ledger.Entry, error)
	// Incidents returns the recorded incidents among keys.
	Incidents(ctx context.Context, keys []IncidentKey) (map[IncidentKey]Incident, error)
	// InstanceSubjects returns, for those of uids the search index holds,
	// the study and patient of the instance's current version.
	InstanceSubjects(ctx context.Context, uids []string) (map[string]Subjects, error)
	// PatientSalts returns the salts of those of ids that have one.
	PatientSalts(ctx context.Context, ids []string) (map[string][]byte, error)
	// PutRows writes a batch's claims, identity rows, incident updates
	// (insert or update by key), catalog rows and new patients' salts,
	// after the batch's entries.
	PutRows(ctx context.Context, rows Rows) error
}

// TxOf is a backend transaction as the index's: a backend that stores no
// custody index is a configuration error.
func TxOf(tx ledger.Tx) (Tx, error) {
	ct, ok := tx.(Tx)
	if !ok {
		return nil, fmt.Errorf("custody: the ledger backend (%T) keeps no custody index", tx)
	}
	return ct, nil
}
