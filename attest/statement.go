package attest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/dicomfile"
)

// In-toto and predicate type URIs. PredicateType is dicomseal's own; its
// version changes whenever the predicate's meaning does.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is what new attestations carry: version 2 of the
	// digests (dicomfile.DigestVersion) and, new in v3, the chunk tree
	// that lets retrieval verify the bytes as they stream (Predicate.Chunks).
	// PredicateTypeV2 and PredicateTypeV1 attestations, made before, stay
	// valid: they are verified whole, and judged by their own digests.
	PredicateType   = "https://dicomseal.dev/attestation/dicom-instance/v3"
	PredicateTypeV2 = "https://dicomseal.dev/attestation/dicom-instance/v2"
	PredicateTypeV1 = "https://dicomseal.dev/attestation/dicom-instance/v1"
)

// digestVersions maps each predicate type to its digests' version.
var digestVersions = map[string]int{PredicateTypeV1: 1, PredicateTypeV2: 2, PredicateType: 2}

// Statement is an in-toto Statement v1 whose subject is one DICOM file.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject names the attested file by its digests.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what dicomseal asserts about the file. Patient identifiers
// appear only as commitments (see Commit).
type Predicate struct {
	SOPClassUID       string `json:"sop_class_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	StudyInstanceUID  string `json:"study_instance_uid"`
	SeriesInstanceUID string `json:"series_instance_uid"`
	Modality          string `json:"modality"`
	TransferSyntaxUID string `json:"transfer_syntax_uid"`
	// Digests: "file" (SHA-256 of the bytes), "pixel", "metadata",
	// "identity" (see dicomfile.Digests).
	Digests map[string]string `json:"digests"`
	// PixelEncoding is "native" or the encapsulated transfer syntax.
	PixelEncoding string `json:"pixel_encoding,omitempty"`
	// Frames are per-frame pixel digests where frames are separable.
	Frames []string `json:"frames,omitempty"`
	// Attributes holds one salted digest per allow-listed attribute
	// (HMAC-SHA-256 keyed by the record's salt): a verdict can name what
	// changed without the log holding any value, patient data included.
	Attributes map[string]string `json:"attributes"`
	// OriginalAttributes lists allow-listed attributes documented in an
	// Original Attributes Sequence (a reconciliation).
	OriginalAttributes []string  `json:"original_attributes,omitempty"`
	Size               int64     `json:"size"`
	AttestedAt         time.Time `json:"attested_at"`
	KeyID              string    `json:"key_id"`
	// Revises is the ledger index of the entry this one revises (0 for none
	// is ambiguous, so it is a pointer).
	Revises *uint64 `json:"revises,omitempty"`
	// Chunks (v3) is the Merkle tree over the file's chunks (package
	// chunks): its root commits to every chunk, so each is verified before
	// a byte of it is sent.
	Chunks *chunks.Tree `json:"chunks,omitempty"`

	// digestVersion is the version of the digests above, from the
	// statement's predicate type (not part of the predicate's JSON).
	digestVersion int
}

// DigestVersion is the version of the predicate's digests.
func (p Predicate) DigestVersion() int {
	if p.digestVersion == 0 {
		return dicomfile.DigestVersion
	}
	return p.digestVersion
}

// Digest names in Predicate.Digests.
const (
	DigestPixel    = "pixel"
	DigestMetadata = "metadata"
	DigestIdentity = "identity"
)

func newStatement(p Predicate) Statement {
	return Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: p.SOPInstanceUID, Digest: map[string]string{"sha256": p.Digests[DigestFile]}}},
		PredicateType: PredicateType,
		Predicate:     p,
	}
}

// ParseStatement decodes a DSSE payload and checks that it is a dicomseal
// statement about exactly one file.
func ParseStatement(payload []byte) (Statement, error) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return st, fmt.Errorf("statement: %w", err)
	}
	version, ok := digestVersions[st.PredicateType]
	if st.Type != StatementType || !ok {
		return st, fmt.Errorf("statement: unexpected type %q / predicate type %q", st.Type, st.PredicateType)
	}
	st.Predicate.digestVersion = version
	if (st.PredicateType == PredicateType) != (st.Predicate.Chunks != nil) {
		return st, fmt.Errorf("statement: a %s predicate with chunks %v", st.PredicateType, st.Predicate.Chunks != nil)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] == "" {
		return st, fmt.Errorf("statement: want one subject with a sha256 digest, got %d subjects", len(st.Subject))
	}
	if st.Subject[0].Digest["sha256"] != st.Predicate.Digests[DigestFile] {
		return st, fmt.Errorf("statement: subject digest and predicate file digest differ")
	}
	return st, nil
}

// SubjectSHA256 is the attested file's SHA-256 (lower-case hex).
func (st Statement) SubjectSHA256() string { return st.Subject[0].Digest["sha256"] }
