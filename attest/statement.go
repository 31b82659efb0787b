package attest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// In-toto and predicate type URIs. PredicateType is dicomseal's own; its
// version changes whenever the predicate's meaning does.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://dicomseal.dev/attestation/dicom-instance/v1"
)

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
	SOPClassUID         string            `json:"sop_class_uid"`
	SOPInstanceUID      string            `json:"sop_instance_uid"`
	StudyInstanceUID    string            `json:"study_instance_uid"`
	SeriesInstanceUID   string            `json:"series_instance_uid"`
	Modality            string            `json:"modality"`
	TransferSyntaxUID   string            `json:"transfer_syntax_uid"`
	Digests             map[string]string `json:"digests"`
	Size                int64             `json:"size"`
	IdentityCommitments map[string]string `json:"identity_commitments"`
	AttestedAt          time.Time         `json:"attested_at"`
	KeyID               string            `json:"key_id"`
}

// Identity attribute keywords committed to in every attestation.
const (
	AttrPatientName      = "PatientName"
	AttrPatientID        = "PatientID"
	AttrPatientBirthDate = "PatientBirthDate"
)

// Commit returns the commitment to one identity attribute:
// hex(HMAC-SHA-256(key = salt, message = keyword ‖ 0x00 ‖ value)).
// Keyed by a random per-record salt, it reveals nothing about a low-entropy
// value (a birth date, a record number) without the salt, and deleting the
// salt severs the link for good.
func Commit(salt []byte, keyword, value string) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(keyword))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

func identityCommitments(salt []byte, inst *dicomfile.Instance) map[string]string {
	return map[string]string{
		AttrPatientName:      Commit(salt, AttrPatientName, inst.PatientName),
		AttrPatientID:        Commit(salt, AttrPatientID, inst.PatientID),
		AttrPatientBirthDate: Commit(salt, AttrPatientBirthDate, inst.PatientBirthDate),
	}
}

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
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return st, fmt.Errorf("statement: unexpected type %q / predicate type %q", st.Type, st.PredicateType)
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
