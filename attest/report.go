package attest

import (
	"context"
	"errors"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/dicomseal/dicomseal/report"
)

// CustodyReport builds and signs the chain-of-custody report of q at each
// log's latest checkpoint (package report); audit is the audit log. A
// query by instance (SOP alone) becomes one of its study, which the
// answer's Query names. Errors: EInvalid for a query naming no subject or
// two, ENotFound for an unknown instance or patient or a log without a
// subject map yet, EUnavailable for a log that cannot be read.
func (s *Service) CustodyReport(ctx context.Context, q report.Query, audit report.Prover) (*report.Document, report.Query, error) {
	// One checkpoint for the custody side: an instance's study is read
	// from the entries the proof will hold, not from a newer one.
	cp, err := s.ledger.LatestCheckpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, q, &Error{Code: ENotFound, Problem: ProblemNoCheckpoint, Message: "the log has published no checkpoint yet", Err: err}
	}
	if err != nil {
		return nil, q, s.logError(err)
	}
	if q.SOP != "" {
		if err := dicomfile.ValidUID(q.SOP); err != nil {
			return nil, q, Errorf(EInvalid, ProblemInvalidRequest, "sop: %v", err)
		}
		if q.Patient != "" {
			return nil, q, Errorf(EInvalid, ProblemInvalidRequest, "give study, patient or sop: a patient's report is of all its instances")
		}
		study, err := s.studyOf(ctx, q.SOP, cp.Size)
		if err != nil {
			return nil, q, err
		}
		if q.Study != "" && q.Study != study {
			return nil, q, Errorf(EInvalid, ProblemInvalidRequest, "instance %s is of study %s, not %s", q.SOP, study, q.Study)
		}
		q.Study = study
	}
	if q.From != nil && q.To != nil && !q.From.Before(*q.To) {
		return nil, q, Errorf(EInvalid, ProblemInvalidRequest, "from must be before to")
	}
	key, err := s.SubjectKey(ctx, SubjectQuery{Study: q.Study, Patient: q.Patient})
	if err != nil {
		return nil, q, err
	}
	b, err := report.Build(ctx, q, key, cp.Size, reportLog{s.ledger, s.logError}, reportLog{audit, auditError}, s.Now())
	if err != nil {
		return nil, q, err
	}
	doc, err := report.Sign(ctx, s.attestor, b)
	if err != nil {
		return nil, q, &Error{Code: EInternal, Problem: ProblemInternal, Message: "the report could not be signed", Err: err}
	}
	return doc, q, nil
}

// reportLog is a log as a report's prover, its errors the service's.
type reportLog struct {
	p      report.Prover
	mapErr func(error) error
}

func (l reportLog) SubjectProof(ctx context.Context, key ledger.SubjectKey, size uint64) (*ledger.SubjectProof, error) {
	p, err := l.p.SubjectProof(ctx, key, size)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, ledger.ErrNoSubjectMap):
		return nil, &Error{Code: ENotFound, Problem: problem.NoSubjectMap, Message: err.Error(), Err: err}
	case errors.Is(err, ledger.ErrNotFound), size == 0 && errors.As(err, new(*ledger.BadParameterError)):
		return nil, &Error{Code: ENotFound, Problem: ProblemNoCheckpoint, Message: "the log has published no checkpoint yet", Err: err}
	}
	return nil, l.mapErr(err)
}

func auditError(err error) error {
	return &Error{Code: EUnavailable, Problem: problem.AuditUnavailable, Message: "the audit log is unavailable", Err: err}
}

// studyOf is the study of an instance's latest attesting entry in the
// tree of that size.
func (s *Service) studyOf(ctx context.Context, uid string, size uint64) (string, error) {
	var latest *ledger.Entry
	err := s.ledger.ScanSubject(ctx, uid, func(e ledger.Entry) error {
		if custody.Attests(e.Kind) && e.Index < size {
			latest = &e
		}
		return nil
	})
	if err != nil {
		return "", s.logError(err)
	}
	if latest == nil {
		return "", Errorf(ENotFound, ProblemNotFound, "no attested instance has SOP Instance UID %s", uid)
	}
	p, _, err := s.openPredicate(*latest)
	if err != nil {
		return "", &Error{Code: EUnavailable, Problem: ProblemLedgerUnavailable, Message: "the instance's attestation could not be read", Err: err}
	}
	return p.StudyInstanceUID, nil
}

// Identities are the correctable identity rows (patient name, ID, birth
// date) of the bytes each instance was attested with, by SOP Instance UID,
// for a report made by whoever may read them (the data directory's
// operator): they are not in the logs, and a report does not prove them.
// An erased row is left out.
func (s *Service) Identities(ctx context.Context, instances map[string]string) (map[string]custody.Identity, error) {
	out := make(map[string]custody.Identity, len(instances))
	for uid, sha := range instances {
		id, err := s.ledger.Identity(ctx, sha)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, s.logError(err)
		}
		out[uid] = *id
	}
	return out, nil
}
