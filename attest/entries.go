package attest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
)

// The canonical bodies of ledger entries (docs/entries.md). Each is
// encoded once with encoding/json (fixed field order, no insignificant
// white space); the stored bytes are what the leaf hash covers and are
// never re-encoded for verification.

// entryVersion is the body version this release writes: 2 appended the
// subject chain (ledger/chain.go) to every kind's version-1 members.
const entryVersion = 2

// attestingVersion is the body version of attesting kinds (ingest,
// revision, identity correction): 3 added "chunks", the chunk leaves of
// an object of more than one chunk, which the v3 predicate's chunk root
// commits to.
const attestingVersion = 3

// EntryFormats are the custody log's kinds and the body versions this
// release reads: version 0 (no "v"; the subject is "sop_instance_uid")
// from the first releases, version 1, and version 2 since subject chains;
// and the subject map's entries.
var EntryFormats = ledger.Formats{
	custody.KindIngest:             {0, 1, 2, 3},
	custody.KindRevision:           {0, 1, 2, 3},
	custody.KindIdentityCorrection: {0, 1, 2, 3},
	custody.KindConflict:           {0, 1, 2},
	custody.KindSecurityAlert:      {0, 1, 2},
	custody.KindIntegrityFailure:   {0, 1, 2},
	// Custody events, new in version 1 (events.go).
	custody.KindTransfer:         {1, 2},
	custody.KindExport:           {1, 2},
	custody.KindStorageMigration: {1, 2},
	custody.KindFixity:           {1, 2},
	custody.KindRepair:           {1, 2},
	ledger.KindSubjectMap:        ledger.SubjectMapFormats,
}

// entryHead starts every custody body: version, kind and the SOP Instance
// UID it is about ("subject" from version 1, "sop_instance_uid" before).
type entryHead struct {
	V              int         `json:"v,omitempty"`
	Kind           ledger.Kind `json:"kind"`
	Subject        string      `json:"subject,omitempty"`
	SOPInstanceUID string      `json:"sop_instance_uid,omitempty"` // version 0 only
}

func head(kind ledger.Kind, uid string) entryHead {
	v := entryVersion
	if custody.Attests(kind) {
		v = attestingVersion
	}
	return entryHead{V: v, Kind: kind, Subject: uid}
}

// uid is the SOP Instance UID the body names, under either version's field.
func (h entryHead) uid() string {
	if h.V == 0 {
		return h.SOPInstanceUID
	}
	return h.Subject
}

// wellFormed checks that a body's head names its subject under its
// version's field only.
func (h entryHead) wellFormed() bool {
	if h.V == 0 {
		return h.Subject == "" && h.SOPInstanceUID != ""
	}
	return h.SOPInstanceUID == "" && h.Subject != ""
}

type ingestBody struct {
	entryHead
	FileSHA256 string          `json:"file_sha256"`
	Envelope   signer.Envelope `json:"envelope"`
	// Chunks (version 3) are the leaves under the predicate's chunk root
	// (chunks.Encode), absent for an object of one chunk, whose root is
	// its only leaf.
	Chunks string `json:"chunks,omitempty"`
}

type conflictBody struct {
	entryHead
	AttemptedSHA256   string `json:"attempted_sha256"`
	AttemptedSize     int64  `json:"attempted_size"`
	ExistingIndex     uint64 `json:"existing_index"`
	ExistingSHA256    string `json:"existing_sha256"`
	ExistingEntryHash string `json:"existing_entry_hash"`
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
	ReasonUnreadable         = "unreadable"          // the store holds the object but reading it fails (the scrubber's READ_ERROR)
)

type integrityFailureBody struct {
	entryHead
	Reason         string    `json:"reason"`
	ExpectedSHA256 string    `json:"expected_sha256"`
	ObservedSHA256 string    `json:"observed_sha256"`
	IngestIndex    uint64    `json:"ingest_index"`
	RecordedAt     time.Time `json:"recorded_at"`
}

func encodeBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only fixed struct types above are encoded; failure is a bug.
		panic(fmt.Sprintf("attest: encode entry body: %v", err))
	}
	return b
}

// decodeIngestBody reads an attesting entry (ingest, revision or identity
// correction) of any version this release knows; a *ledger.FormatError
// for one it does not.
func decodeIngestBody(e ledger.Entry) (identityCorrectionBody, error) {
	var b identityCorrectionBody
	if _, err := EntryFormats.Check(e); err != nil {
		return b, err
	}
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return b, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	if !custody.Attests(b.Kind) || b.Kind != e.Kind || !b.wellFormed() ||
		b.uid() != e.Subject || b.FileSHA256 != e.FileSHA256 {
		return b, fmt.Errorf("entry %d: body does not match its indexed columns", e.Index)
	}
	// Version 0 corrections carried their own layout number, 1.
	if b.Kind == custody.KindIdentityCorrection && b.V == 0 && b.Version != 1 ||
		(b.V > 0 || b.Kind != custody.KindIdentityCorrection) && b.Version != 0 {
		return b, fmt.Errorf("entry %d: %s body of version %d has layout %d", e.Index, b.Kind, b.V, b.Version)
	}
	if b.Chunks != "" && b.V < 3 {
		return b, fmt.Errorf("entry %d: a version %d body has chunks", e.Index, b.V)
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
	entryHead
	// Version, in version-0 bodies only, was the correction's own layout
	// number (1); version-1 bodies have "v" instead.
	Version    int             `json:"version,omitempty"`
	FileSHA256 string          `json:"file_sha256"`
	Envelope   signer.Envelope `json:"envelope"`
	Chunks     string          `json:"chunks,omitempty"` // as ingestBody's
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

// decodeCorrection reads what an identity-correction entry records.
func decodeCorrection(e ledger.Entry) (*IdentityCorrection, error) {
	b, err := decodeIngestBody(e)
	if err != nil {
		return nil, err
	}
	if b.Kind != custody.KindIdentityCorrection {
		return nil, fmt.Errorf("entry %d: a %s entry is not an identity correction", e.Index, b.Kind)
	}
	return &b.IdentityCorrection, nil
}
