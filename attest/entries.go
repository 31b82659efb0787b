package attest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
)

// The canonical bodies of ledger entries. Each is encoded once with
// encoding/json (fixed field order, no insignificant white space); the
// stored bytes are what the leaf hash covers and are never re-encoded for
// verification.

type ingestBody struct {
	Kind           ledger.Kind     `json:"kind"`
	SOPInstanceUID string          `json:"sop_instance_uid"`
	FileSHA256     string          `json:"file_sha256"`
	Envelope       signer.Envelope `json:"envelope"`
}

type conflictBody struct {
	Kind              ledger.Kind `json:"kind"`
	SOPInstanceUID    string      `json:"sop_instance_uid"`
	AttemptedSHA256   string      `json:"attempted_sha256"`
	AttemptedSize     int64       `json:"attempted_size"`
	ExistingIndex     uint64      `json:"existing_index"`
	ExistingSHA256    string      `json:"existing_sha256"`
	ExistingEntryHash string      `json:"existing_entry_hash"`
	// For a judged refusal: the verdict, why, and what changed (attribute
	// names and classes, never values) and which frames.
	Verdict    string    `json:"verdict,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Changes    []Change  `json:"changes,omitempty"`
	Frames     []int     `json:"frames,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Integrity failure reasons.
const (
	ReasonAltered            = "altered"             // the store returned other bytes
	ReasonMissing            = "missing"             // the store has no object
	ReasonAttestationInvalid = "attestation-invalid" // the entry or its signature fails
)

type integrityFailureBody struct {
	Kind           ledger.Kind `json:"kind"`
	SOPInstanceUID string      `json:"sop_instance_uid"`
	Reason         string      `json:"reason"`
	ExpectedSHA256 string      `json:"expected_sha256"`
	ObservedSHA256 string      `json:"observed_sha256"`
	IngestIndex    uint64      `json:"ingest_index"`
	RecordedAt     time.Time   `json:"recorded_at"`
}

func encodeBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only fixed struct types above are encoded; failure is a bug.
		panic(fmt.Sprintf("attest: encode entry body: %v", err))
	}
	return b
}

func decodeIngestBody(e ledger.Entry) (ingestBody, error) {
	var b ingestBody
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return b, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	if !b.Kind.Attests() || b.Kind != e.Kind ||
		b.SOPInstanceUID != e.SOPInstanceUID || b.FileSHA256 != e.FileSHA256 {
		return b, fmt.Errorf("entry %d: body does not match its indexed columns", e.Index)
	}
	return b, nil
}

// identityCorrectionBody (kind identity-correction, version 1) is a
// reconciler's correction of an attested instance's identity. Like an
// ingest body it holds the envelope attesting the corrected bytes; it also
// names who corrected which attributes, with their commitments before (the
// corrected entry's, under its salt) and after (this entry's, under a fresh
// salt): never a value, and never the free-text reason, which stays in the
// correctable identity table.
type identityCorrectionBody struct {
	Kind           ledger.Kind     `json:"kind"`
	Version        int             `json:"version"`
	SOPInstanceUID string          `json:"sop_instance_uid"`
	FileSHA256     string          `json:"file_sha256"`
	Envelope       signer.Envelope `json:"envelope"`
	IdentityCorrection
}

// IdentityCorrection is what an identity-correction entry records beyond
// the attestation of the corrected bytes.
type IdentityCorrection struct {
	// Corrects is the ledger index (and entry hash) of the version corrected.
	Corrects          uint64 `json:"corrects"`
	CorrectsEntryHash string `json:"corrects_entry_hash"`
	// Actor is the reconciler's token name.
	Actor string `json:"actor"`
	// Changed lists the corrected attributes, sorted.
	Changed []string `json:"changed"`
	// Before and After are each changed attribute's commitment in the
	// corrected version and in this one ("" where it was absent).
	Before      map[string]string `json:"before"`
	After       map[string]string `json:"after"`
	CorrectedAt time.Time         `json:"corrected_at"`
}

const identityCorrectionVersion = 1

func decodeCorrection(e ledger.Entry) (*IdentityCorrection, error) {
	var b identityCorrectionBody
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	if b.Version != identityCorrectionVersion {
		return nil, fmt.Errorf("entry %d: identity-correction body version %d, want %d", e.Index, b.Version, identityCorrectionVersion)
	}
	return &b.IdentityCorrection, nil
}
