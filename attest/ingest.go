package attest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
	"github.com/dicomseal/dicomseal/spool"
)

// Attestation is the public form of an ingest entry: what was attested,
// where it sits in the ledger, and the signed envelope that proves it.
type Attestation struct {
	SOPInstanceUID    string            `json:"sop_instance_uid"`
	StudyInstanceUID  string            `json:"study_instance_uid"`
	SeriesInstanceUID string            `json:"series_instance_uid"`
	SOPClassUID       string            `json:"sop_class_uid"`
	Modality          string            `json:"modality"`
	TransferSyntaxUID string            `json:"transfer_syntax_uid"`
	Digests           map[string]string `json:"digests"`
	Size              int64             `json:"size"`
	LedgerIndex       uint64            `json:"ledger_index"`
	EntryHash         string            `json:"entry_hash"`
	KeyID             string            `json:"key_id"`
	Envelope          signer.Envelope   `json:"envelope"`
	AttestedAt        time.Time         `json:"attested_at"`
	// Entry is the canonical ledger entry (base64) whose RFC 6962 leaf hash
	// is EntryHash: with Inclusion it lets anyone check, offline, that this
	// attestation is in the log a signed checkpoint commits to.
	Entry string `json:"entry"`
	// Inclusion is present once the entry is integrated into a checkpoint.
	Inclusion *Inclusion `json:"inclusion,omitempty"`
}

// IngestResult is an attestation and whether this call created it.
type IngestResult struct {
	*Attestation
	Created bool
}

// saltLen is the length of a record's random salt: 256 bits.
const saltLen = 32

// Ingest reads one DICOM Part 10 file from body, stores it, signs an
// attestation and appends it to the ledger, in that order: the ledger
// append is the commit point, so a failure before it leaves at most an
// unreferenced content-addressed object, never an entry pointing at nothing.
//
// Errors: EInvalid (not DICOM, malformed, missing SOP Instance UID),
// ETooLarge (passed through from body), EConflict (different bytes under an
// attested UID; recorded as a conflict entry), EUnavailable.
func (s *Service) Ingest(ctx context.Context, body io.Reader) (*IngestResult, error) {
	sp, err := spool.Fill(s.SpoolDir, s.SpoolMemory, body)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidRequest, Message: "could not read the request body", Err: err}
	}
	defer sp.Close()

	inst, err := dicomfile.Parse(sp, sp.Size())
	if err != nil {
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidDICOM, Message: err.Error(), Err: err}
	}
	sha, size := sp.SHA256Hex(), sp.Size()

	existing, err := s.ledger.InstanceBySOP(ctx, inst.SOPInstanceUID)
	switch {
	case err == nil:
		return s.resolveExisting(ctx, existing, sha, size)
	case !errors.Is(err, ledger.ErrNotFound):
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}

	if err := s.store.Put(ctx, sha, sp.Reader(), size); err != nil {
		return nil, unavailable(ProblemStorageUnavailable, err)
	}

	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(s.Rand, salt); err != nil {
		return nil, internal(fmt.Errorf("salt: %w", err))
	}
	pred := Predicate{
		SOPClassUID:         inst.SOPClassUID,
		SOPInstanceUID:      inst.SOPInstanceUID,
		StudyInstanceUID:    inst.StudyInstanceUID,
		SeriesInstanceUID:   inst.SeriesInstanceUID,
		Modality:            inst.Modality,
		TransferSyntaxUID:   inst.TransferSyntaxUID,
		Digests:             map[string]string{DigestFile: sha},
		Size:                size,
		IdentityCommitments: identityCommitments(salt, inst),
		AttestedAt:          s.Now().UTC(),
		KeyID:               s.attestor.KeyID(),
	}
	payload, err := json.Marshal(newStatement(pred))
	if err != nil {
		return nil, internal(fmt.Errorf("encode statement: %w", err))
	}
	env, err := s.attestor.Sign(ctx, payload)
	if err != nil {
		return nil, internal(err)
	}
	entry, err := s.ledger.AppendIngest(ctx, ledger.Record{
		Kind:           ledger.KindIngest,
		SOPInstanceUID: inst.SOPInstanceUID,
		FileSHA256:     sha,
		Body:           encodeBody(ingestBody{Kind: ledger.KindIngest, SOPInstanceUID: inst.SOPInstanceUID, FileSHA256: sha, Envelope: env}),
		Identity: &ledger.Identity{
			Salt: salt, PatientName: inst.PatientName, PatientID: inst.PatientID, PatientBirthDate: inst.PatientBirthDate,
		},
	})
	var exists *ledger.InstanceExistsError
	switch {
	case errors.As(err, &exists):
		// A concurrent first ingest of the same UID won the claim.
		return s.resolveExisting(ctx, exists.Existing, sha, size)
	case err != nil:
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	s.log.InfoContext(ctx, "instance attested",
		"sop_instance_uid", inst.SOPInstanceUID, "sha256", sha, "size", size, "ledger_index", entry.Index)
	return &IngestResult{Attestation: newAttestation(entry, pred, env), Created: true}, nil
}

// resolveExisting answers an ingest whose UID is already attested: the same
// bytes get the existing attestation; other bytes are a conflict, recorded
// in the ledger, and the original stays untouched.
func (s *Service) resolveExisting(ctx context.Context, existing ledger.Entry, sha string, size int64) (*IngestResult, error) {
	att, err := s.openEntry(existing)
	if err != nil {
		return nil, &Error{Code: EIntegrity, Problem: ProblemIntegrity,
			Message: fmt.Sprintf("the existing attestation at ledger index %d fails verification", existing.Index), Err: err}
	}
	if existing.FileSHA256 == sha {
		return &IngestResult{Attestation: att}, nil
	}
	now := s.Now().UTC()
	conflict, count, err := s.ledger.RecordIncident(ctx, ledger.Record{
		Kind:           ledger.KindConflict,
		SOPInstanceUID: existing.SOPInstanceUID,
		FileSHA256:     sha,
		IncidentKey:    sha,
		Body: encodeBody(conflictBody{
			Kind: ledger.KindConflict, SOPInstanceUID: existing.SOPInstanceUID,
			AttemptedSHA256: sha, AttemptedSize: size,
			ExistingIndex: existing.Index, ExistingSHA256: existing.FileSHA256, ExistingEntryHash: existing.LeafHashHex(),
			RecordedAt: now,
		}),
	}, now)
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	s.log.WarnContext(ctx, "ingest conflict: different bytes under an attested SOP Instance UID",
		"sop_instance_uid", existing.SOPInstanceUID, "existing_index", existing.Index,
		"attempted_sha256", sha, "conflict_index", conflict.Index, "count", count)
	return nil, &Error{
		Code: EConflict, Problem: ProblemInstanceConflict,
		Message: fmt.Sprintf("SOP Instance UID %s is already attested at ledger index %d with different bytes; the original is kept",
			existing.SOPInstanceUID, existing.Index),
		Details: map[string]any{
			"sop_instance_uid":      existing.SOPInstanceUID,
			"existing_ledger_index": existing.Index,
			"existing_entry_hash":   existing.LeafHashHex(),
			"existing_sha256":       existing.FileSHA256,
			"attempted_sha256":      sha,
			"conflict_ledger_index": conflict.Index,
			"conflict_count":        count,
		},
	}
}

// openEntry checks an ingest entry end to end — leaf hash, body, envelope
// signature, statement — and returns its attestation.
func (s *Service) openEntry(e ledger.Entry) (*Attestation, error) {
	if ledger.LeafHash(e.Body) != e.LeafHash {
		return nil, fmt.Errorf("entry %d: leaf hash does not match its body", e.Index)
	}
	body, err := decodeIngestBody(e)
	if err != nil {
		return nil, err
	}
	payload, err := s.attestor.Open(body.Envelope)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	if st.SubjectSHA256() != e.FileSHA256 || st.Predicate.SOPInstanceUID != e.SOPInstanceUID {
		return nil, fmt.Errorf("entry %d: signed statement names other bytes or another instance", e.Index)
	}
	return newAttestation(e, st.Predicate, body.Envelope), nil
}

func newAttestation(e ledger.Entry, p Predicate, env signer.Envelope) *Attestation {
	return &Attestation{
		SOPInstanceUID:    p.SOPInstanceUID,
		StudyInstanceUID:  p.StudyInstanceUID,
		SeriesInstanceUID: p.SeriesInstanceUID,
		SOPClassUID:       p.SOPClassUID,
		Modality:          p.Modality,
		TransferSyntaxUID: p.TransferSyntaxUID,
		Digests:           p.Digests,
		Size:              p.Size,
		LedgerIndex:       e.Index,
		EntryHash:         e.LeafHashHex(),
		KeyID:             p.KeyID,
		Envelope:          env,
		AttestedAt:        p.AttestedAt,
		Entry:             base64.StdEncoding.EncodeToString(e.Body),
	}
}
