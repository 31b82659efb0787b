package attest

import (
	"encoding/json"
	"time"

	"github.com/dicomseal/dicomseal/signer"
)

// The bodies of custody events (docs/entries.md): what happened to
// attested bytes after their ingest. Each names the attesting entry it is
// about (ingest_index and its leaf hash, ingest_entry_hash) and the
// digests on either side of what it did, so an auditor follows a chain
// from the ingest to every move and check without trusting anything but
// the log.

// Transfer outcomes.
const (
	// TransferRecorded: the caller performs the move; dicomseal verified
	// the bytes first and records it.
	TransferRecorded = "recorded"
	// TransferDelivered: dicomseal sent the bytes and the destination
	// acknowledged them (its ReferencedSOPSequence item is recorded).
	TransferDelivered = "delivered"
	// TransferRefused: the destination answered, and refused the instance.
	TransferRefused = "refused"
	// TransferUnreachable: the destination could not be reached, timed
	// out or failed (5xx): nothing is known to have arrived.
	TransferUnreachable = "unreachable"
	// TransferBlocked: the stored bytes failed verification; nothing was
	// sent (integrity_failure_index names the incident).
	TransferBlocked = "blocked"
	// ExportWritten: the verified bytes were written, durably, to a
	// directory destination.
	ExportWritten = "written"
)

// transferBody (kinds transfer and export, version 1) is one instance's
// move out of dicomseal, or the attempt.
type transferBody struct {
	entryHead
	// FileSHA256 is the digest of what was (or would have been) sent: the
	// attested bytes, re-verified just before.
	FileSHA256      string `json:"file_sha256"`
	IngestIndex     uint64 `json:"ingest_index"`
	IngestEntryHash string `json:"ingest_entry_hash"`
	StudyUID        string `json:"study_instance_uid"`
	Destination     string `json:"destination"`
	Purpose         string `json:"purpose"`
	Actor           string `json:"actor"`
	Push            bool   `json:"push"`
	Outcome         string `json:"outcome"`
	// Status is the destination's HTTP status (0: none, or no answer).
	Status int `json:"status,omitempty"`
	// Acknowledgement is the destination's own word on the instance: its
	// ReferencedSOPSequence (or FailedSOPSequence) item, in DICOM JSON.
	Acknowledgement json.RawMessage `json:"acknowledgement,omitempty"`
	// Reason says why a transfer failed or was blocked.
	Reason string `json:"reason,omitempty"`
	// IntegrityFailureIndex, for a blocked transfer, is the incident entry.
	IntegrityFailureIndex *uint64   `json:"integrity_failure_index,omitempty"`
	RecordedAt            time.Time `json:"recorded_at"`
}

// storageMigrationBody (kind storage-migration, version 1): one object
// copied to another store, hashed on both sides against the attestation.
type storageMigrationBody struct {
	entryHead
	FileSHA256      string `json:"file_sha256"`
	IngestIndex     uint64 `json:"ingest_index"`
	IngestEntryHash string `json:"ingest_entry_hash"`
	Size            int64  `json:"size"`
	// FromStore and ToStore describe the stores (kind and place, never a
	// credential), as `store migrate` printed them.
	FromStore string `json:"from_store"`
	ToStore   string `json:"to_store"`
	// SourceSHA256 is what was read from the old store, DestinationSHA256
	// what was read back from the new one: both equal FileSHA256, or no
	// entry is written.
	SourceSHA256      string    `json:"source_sha256"`
	DestinationSHA256 string    `json:"destination_sha256"`
	Actor             string    `json:"actor"`
	RecordedAt        time.Time `json:"recorded_at"`
}

// repairBody (kind repair, version 1): a stored copy that failed
// verification, rewritten from re-ingested bytes that are the attested ones.
type repairBody struct {
	entryHead
	FileSHA256      string `json:"file_sha256"`
	IngestIndex     uint64 `json:"ingest_index"`
	IngestEntryHash string `json:"ingest_entry_hash"`
	// Found is what the store held: an integrity-failure reason (altered,
	// missing, unreadable); ObservedSHA256 its digest ("" when missing).
	Found          string    `json:"found"`
	ObservedSHA256 string    `json:"observed_sha256"`
	Actor          string    `json:"actor"`
	RecordedAt     time.Time `json:"recorded_at"`
}

// FixitySubject is the subject of every fixity summary: they are about
// the store, not one instance, and ScanSubject lists them all.
const FixitySubject = "fixity"

// fixityBody (kind fixity, version 1) is one scrub pass's summary, signed
// with the attestation key: Envelope's payload is an in-toto statement
// whose predicate (FixityPredicateType) is the FixitySummary, verifiable
// offline like an ingest's (OpenFixity).
type fixityBody struct {
	entryHead
	Pass     int64           `json:"pass"`
	Envelope signer.Envelope `json:"envelope"`
}
