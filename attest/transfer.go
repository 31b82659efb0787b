package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"unicode/utf8"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/destination"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
)

// Destination is where a push transfer sends verified bytes (package
// destination: STOW-RS, or a directory).
type Destination interface {
	Send(ctx context.Context, inst destination.Instance, r io.Reader, size int64) (destination.Ack, error)
	String() string
}

// TransferRequest is what a caller asks: where, why, and whether
// dicomseal sends the bytes itself.
type TransferRequest struct {
	Destination string `json:"destination"`
	Purpose     string `json:"purpose"`
	Push        bool   `json:"push"`
	// BeforeSend, when set, is called just before an instance's bytes
	// leave (push only): its error stops the send, and nothing is recorded
	// as sent (the edge writes its audit record here).
	BeforeSend func(uid, study string) error `json:"-"`
}

// Transfer is one instance's transfer entry, as answered.
type Transfer struct {
	SOPInstanceUID  string          `json:"sop_instance_uid"`
	LedgerIndex     uint64          `json:"ledger_index"`
	EntryHash       string          `json:"entry_hash"`
	Kind            string          `json:"kind"`
	Outcome         string          `json:"outcome"`
	Destination     string          `json:"destination"`
	FileSHA256      string          `json:"file_sha256"`
	IngestIndex     uint64          `json:"ingest_index"`
	Status          int             `json:"status,omitempty"`
	Acknowledgement json.RawMessage `json:"acknowledgement,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	// StudyInstanceUID is the instance's study, for the audit trail; the
	// answer names the instance, not its study.
	StudyInstanceUID string `json:"-"`
}

const maxPurpose = 1024

func (s *Service) checkTransfer(req TransferRequest) (Destination, error) {
	if !destination.ValidName(req.Destination) {
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "destination must be a name of letters, digits, '.', '_' or '-' (at most 64), got %q", req.Destination)
	}
	if req.Purpose == "" || len(req.Purpose) > maxPurpose || !utf8.ValidString(req.Purpose) {
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "purpose must be UTF-8 text of 1 to %d bytes: every transfer says why", maxPurpose)
	}
	if !req.Push {
		return nil, nil
	}
	d, ok := s.Destinations[req.Destination]
	if !ok {
		return nil, Errorf(EInvalid, problem.UnknownDestination,
			"no destination %q is configured (serve --destination NAME=URL); nothing was sent", req.Destination)
	}
	return d, nil
}

// TransferInstance verifies an instance's stored bytes and records their
// transfer: with Push false, a move the caller performs; with Push true,
// dicomseal sends them to the configured destination and records its
// answer. A failed verification blocks the transfer (and is recorded so,
// with the incident): EIntegrity. A refusal is EBadGateway, an
// unreachable destination EUnavailable, each recorded as the failed
// transfer it is. Other errors: EInvalid, ENotFound, EUnavailable.
func (s *Service) TransferInstance(ctx context.Context, uid string, req TransferRequest, actor string) (*Transfer, error) {
	d, err := s.checkTransfer(req)
	if err != nil {
		return nil, err
	}
	if !dicomfile.LooksLikeUID(uid) {
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "the SOP Instance UID must be digits and dots, at most 64 characters")
	}
	return s.transfer(ctx, uid, req, d, actor)
}

// TransferStudy transfers every instance of a study, verifying all of
// them first: one that fails blocks the whole study (nothing is sent),
// and every instance gets its entry. Sends then go one by one; the first
// failure stops the rest, which are not recorded (they never left).
func (s *Service) TransferStudy(ctx context.Context, study string, req TransferRequest, actor string) ([]Transfer, error) {
	d, err := s.checkTransfer(req)
	if err != nil {
		return nil, err
	}
	if !dicomfile.LooksLikeUID(study) {
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "the Study Instance UID must be digits and dots, at most 64 characters")
	}
	if s.Catalog == nil {
		return nil, Errorf(EUnavailable, problem.IndexUnavailable, "no study index is configured")
	}
	rows, err := s.Catalog.Entries(ctx, study, "")
	if err != nil {
		return nil, unavailable(problem.IndexUnavailable, err)
	}
	if len(rows) == 0 {
		return nil, Errorf(ENotFound, ProblemNotFound, "no attested instance of study %q", study)
	}
	// Verify all before anything moves: a study leaves whole or not at all.
	var blocked error
	for _, row := range rows {
		r, err := s.Retrieve(ctx, row.SOPInstanceUID, nil)
		if err != nil {
			if ErrorCode(err) != EIntegrity {
				return nil, err
			}
			blocked = errors.Join(blocked, err)
			continue
		}
		r.Close()
	}
	if blocked != nil {
		var out []Transfer
		for _, row := range rows {
			t, err := s.transfer(ctx, row.SOPInstanceUID, req, d, actor, withBlock(blocked))
			if err != nil && t == nil {
				return nil, err
			}
			out = append(out, *t)
		}
		var first *Error
		errors.As(blocked, &first)
		details := map[string]any{}
		maps.Copy(details, first.Details) // the first failing instance's
		details["transfers"] = out
		return out, &Error{Code: EIntegrity, Problem: ProblemIntegrity,
			Message: fmt.Sprintf("study %s: stored bytes failed verification; nothing was transferred (%s)", study, first.Message),
			Details: details, Err: blocked}
	}
	var out []Transfer
	for _, row := range rows {
		t, err := s.transfer(ctx, row.SOPInstanceUID, req, d, actor)
		if t != nil {
			out = append(out, *t)
		}
		if err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				ae.Details = maps.Clone(ae.Details) // which instance failed, and why
				if ae.Details == nil {
					ae.Details = map[string]any{}
				}
				ae.Details["transfers"] = out
			}
			return out, err
		}
	}
	return out, nil
}

// transferOption changes what transfer records before anything is sent.
type transferOption func(*transferBody)

// withBlock records an instance of a study as blocked because another
// instance of the study failed verification.

func withBlock(cause error) transferOption {
	return func(b *transferBody) {
		b.Outcome, b.Reason = TransferBlocked, "another instance of the study failed verification: "+firstMessage(cause)
	}
}

func firstMessage(err error) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

func (s *Service) transfer(ctx context.Context, uid string, req TransferRequest, d Destination, actor string, opts ...transferOption) (*Transfer, error) {
	kind := custody.KindTransfer
	if _, dir := d.(*destination.Dir); dir {
		kind = custody.KindExport
	}
	body := transferBody{entryHead: head(kind, uid), Destination: req.Destination, Purpose: req.Purpose,
		Actor: actor, Push: req.Push}
	r, verr := s.Retrieve(ctx, uid, nil)
	if verr != nil && ErrorCode(verr) != EIntegrity {
		return nil, verr
	}
	for _, o := range opts {
		o(&body)
	}
	if verr != nil {
		// Blocked: what the entry says it would have sent is the attested
		// digest; the incident says what the store holds instead.
		var ae *Error
		errors.As(verr, &ae)
		body.Outcome, body.Reason = TransferBlocked, ae.Message
		if v, ok := ae.Details["expected_sha256"].(string); ok {
			body.FileSHA256 = v
		}
		if v, ok := ae.Details["ingest_index"].(uint64); ok {
			body.IngestIndex = v
		}
		if v, ok := ae.Details["incident_ledger_index"].(uint64); ok {
			body.IntegrityFailureIndex = &v
		}
		e, err := s.ledger.Entry(ctx, body.IngestIndex)
		if err == nil {
			body.IngestEntryHash = e.LeafHashHex()
		}
		t, err := s.recordTransfer(ctx, kind, body)
		if err != nil {
			return nil, err
		}
		return t, verr
	}
	defer r.Close()
	att := r.Attestation
	body.FileSHA256, body.IngestIndex, body.IngestEntryHash, body.StudyUID =
		att.Digests[DigestFile], att.LedgerIndex, att.EntryHash, att.StudyInstanceUID
	if body.Outcome == TransferBlocked { // another instance of the study failed
		t, err := s.recordTransfer(ctx, kind, body)
		return t, err
	}
	if d == nil {
		body.Outcome = TransferRecorded
		return s.recordTransfer(ctx, kind, body)
	}
	if req.BeforeSend != nil {
		if err := req.BeforeSend(uid, att.StudyInstanceUID); err != nil {
			return nil, err
		}
	}
	ack, sendErr := d.Send(ctx, destination.Instance{SOPInstanceUID: uid, SOPClassUID: att.SOPClassUID,
		StudyInstanceUID: att.StudyInstanceUID, SeriesInstanceUID: att.SeriesInstanceUID, SHA256: body.FileSHA256},
		r.Reader(), r.Size())
	var de *destination.Error
	if errors.As(sendErr, &de) {
		ack = de.Ack
	}
	body.Status, body.Acknowledgement, body.Reason = ack.Status, ack.Item, ack.Reason
	switch {
	case sendErr == nil && kind == custody.KindExport:
		body.Outcome = ExportWritten
	case sendErr == nil:
		body.Outcome = TransferDelivered
	case errors.Is(sendErr, destination.ErrRefused):
		body.Outcome = TransferRefused
	default:
		body.Outcome = TransferUnreachable
		if body.Reason == "" {
			body.Reason = sendErr.Error()
		}
	}
	t, err := s.recordTransfer(ctx, kind, body)
	if err != nil {
		// Sent, perhaps, but not recorded: the caller is told it failed,
		// and the log says nothing false.
		return nil, err
	}
	if sendErr == nil {
		s.log.InfoContext(ctx, "instance transferred", "sop_instance_uid", uid, "destination", req.Destination,
			"outcome", body.Outcome, "ledger_index", t.LedgerIndex)
		return t, nil
	}
	s.log.WarnContext(ctx, "transfer failed", "sop_instance_uid", uid, "destination", req.Destination,
		"outcome", body.Outcome, "status", ack.Status, "reason", body.Reason)
	details := map[string]any{"sop_instance_uid": uid, "destination": req.Destination, "outcome": body.Outcome,
		"ledger_index": t.LedgerIndex, "reason": body.Reason}
	if body.Outcome == TransferRefused {
		return t, &Error{Code: problem.EBadGateway, Problem: problem.DestinationRefused,
			Message: fmt.Sprintf("destination %s refused SOP Instance UID %s: %s", req.Destination, uid, body.Reason),
			Details: details, Err: sendErr}
	}
	return t, &Error{Code: EUnavailable, Problem: problem.DestinationUnavailable,
		Message: fmt.Sprintf("destination %s is unreachable: %s; nothing is known to have arrived", req.Destination, body.Reason),
		Details: details, Err: sendErr}
}

func (s *Service) recordTransfer(ctx context.Context, kind ledger.Kind, body transferBody) (*Transfer, error) {
	body.RecordedAt = s.Now().UTC()
	// Not cancelled with the request: a client gone after the bytes left
	// must not leave the move unrecorded.
	es, err := s.ledger.AppendEvents(detached(ctx), []custody.Record{{Kind: kind, Subject: body.Subject, FileSHA256: body.FileSHA256,
		Body: encodeBody(body)}})
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	e := es[0]
	return &Transfer{SOPInstanceUID: body.Subject, LedgerIndex: e.Index, EntryHash: e.LeafHashHex(), Kind: string(kind),
		Outcome: body.Outcome, Destination: body.Destination, FileSHA256: body.FileSHA256, IngestIndex: body.IngestIndex,
		Status: body.Status, Acknowledgement: body.Acknowledgement, Reason: body.Reason, StudyInstanceUID: body.StudyUID}, nil
}
