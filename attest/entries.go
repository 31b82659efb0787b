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
	if (b.Kind != ledger.KindIngest && b.Kind != ledger.KindRevision) || b.Kind != e.Kind ||
		b.SOPInstanceUID != e.SOPInstanceUID || b.FileSHA256 != e.FileSHA256 {
		return b, fmt.Errorf("entry %d: body does not match its indexed columns", e.Index)
	}
	return b, nil
}
