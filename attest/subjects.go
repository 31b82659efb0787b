package attest

import (
	"context"
	"errors"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/dicomseal/dicomseal/subject"
)

// SubjectQuery names the subject of a subject proof: a study by its Study
// Instance UID, or a patient by Patient ID (looked up through the
// correctable patients table: a deleted salt names no one any more).
type SubjectQuery struct {
	Study, Patient string
}

// SubjectKey is the key the query names. Errors: EInvalid for neither or
// both, ENotFound (unknown-patient) for a patient without a salt.
func (s *Service) SubjectKey(ctx context.Context, q SubjectQuery) (ledger.SubjectKey, error) {
	switch {
	case (q.Study == "") == (q.Patient == ""):
		return ledger.SubjectKey{}, Errorf(EInvalid, ProblemBadProof, "give study or patient, not both or neither")
	case q.Study != "":
		if err := dicomfile.ValidUID(q.Study); err != nil {
			return ledger.SubjectKey{}, Errorf(EInvalid, ProblemBadProof, "study: %v", err)
		}
		return subject.Study(q.Study), nil
	}
	salt, err := s.ledger.PatientSalt(ctx, q.Patient)
	if errors.Is(err, ledger.ErrNotFound) {
		return ledger.SubjectKey{}, Errorf(ENotFound, problem.UnknownPatient, "no entry of the custody log is chained under that patient")
	}
	if err != nil {
		return ledger.SubjectKey{}, s.logError(err)
	}
	return subject.Patient(salt), nil
}

// SubjectProof proves every custody entry about the subject in the tree of
// the given size (0: the latest checkpoint). ENotFound (no-subject-map)
// for a checkpoint from before subject maps.
func (s *Service) SubjectProof(ctx context.Context, q SubjectQuery, size uint64) (*ledger.SubjectProof, error) {
	key, err := s.SubjectKey(ctx, q)
	if err != nil {
		return nil, err
	}
	p, err := s.ledger.SubjectProof(ctx, key, size)
	if errors.Is(err, ledger.ErrNoSubjectMap) {
		return nil, &Error{Code: ENotFound, Problem: problem.NoSubjectMap, Message: err.Error(), Err: err}
	}
	if err != nil {
		return nil, s.logError(err)
	}
	return p, nil
}
