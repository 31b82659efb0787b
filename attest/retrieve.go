package attest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
	"github.com/dicomseal/dicomseal/store"
)

// Retrieved is an instance whose stored bytes are verified: whole, before
// Retrieve returns (read them through Reader), or chunk by chunk as
// WriteTo sends them (Stream). Close releases its spool or stream.
type Retrieved struct {
	Attestation *Attestation
	// SHA256 is the digest of the bytes handed out (the attested one).
	SHA256 [32]byte
	spool  *spool.Spool
	limits dicomfile.Limits

	// A streaming Retrieved (Stream) holds the store's stream instead,
	// read through verifier, whose first chunk is already verified.
	stream   io.ReadCloser
	verifier *chunks.Verifier
	first    []byte
	size     int64
	svc      *Service
	ctx      context.Context
}

// Reader returns the verified bytes of a Retrieved that was verified
// whole (Retrieve); a streaming one has none (use WriteTo).
func (r *Retrieved) Reader() io.Reader {
	if r.spool == nil {
		panic("attest: Reader of a streaming Retrieved")
	}
	return r.spool.Reader()
}

// Streaming reports whether the bytes are verified as they are sent.
func (r *Retrieved) Streaming() bool { return r.spool == nil }

// WriteTo writes the verified bytes to w. For a streaming Retrieved, a
// chunk that fails stops it with EIntegrity before any byte of that chunk
// is written; it can be called once.
func (r *Retrieved) WriteTo(w io.Writer) (int64, error) {
	if r.spool == nil {
		return r.streamTo(w)
	}
	return io.Copy(w, r.spool.Reader())
}

// Size is the number of verified bytes.
func (r *Retrieved) Size() int64 {
	if r.spool == nil {
		return r.size
	}
	return r.spool.Size()
}

// Close releases the spooled bytes or the stream.
func (r *Retrieved) Close() error {
	if r.spool == nil {
		return r.release()
	}
	return r.spool.Close()
}

// Attestation returns the verified attestation of an instance.
// Errors: ENotFound, EIntegrity (the record itself fails verification), EUnavailable.
// Once the entry is integrated it carries its inclusion proof against the
// latest checkpoint.
//
// revision, when not nil, asks for the version at that ledger index: each
// stays verifiable offline with its own attestation.
func (s *Service) Attestation(ctx context.Context, sopInstanceUID string, revision *uint64) (*Attestation, error) {
	var att *Attestation
	var err error
	if revision != nil {
		if !dicomfile.LooksLikeUID(sopInstanceUID) {
			return nil, Errorf(EInvalid, ProblemInvalidRequest, "the SOP Instance UID must be digits and dots, at most 64 characters")
		}
		att, err = s.revisionAttestation(ctx, sopInstanceUID, *revision)
	} else {
		att, err = s.verifiedAttestation(ctx, sopInstanceUID)
	}
	if err != nil {
		return nil, err
	}
	if att.Inclusion, err = s.inclusion(ctx, att.LedgerIndex); err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	return att, nil
}

// revisionAttestation opens the attestation at ledger index idx, which
// must attest bytes of uid.
func (s *Service) revisionAttestation(ctx context.Context, uid string, idx uint64) (*Attestation, error) {
	e, err := s.ledger.Entry(ctx, idx)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && (e.Subject != uid || !custody.Attests(e.Kind))) {
		return nil, Errorf(ENotFound, ProblemNotFound, "no revision of SOP Instance UID %q at ledger index %d", uid, idx)
	}
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	att, err := s.openEntry(e)
	if err != nil {
		return nil, s.integrityFailure(ctx, e, ReasonAttestationInvalid, "", err)
	}
	return att, nil
}

// verifiedAttestation looks up an instance's ingest entry and checks it
// end to end (see openEntry).
func (s *Service) verifiedAttestation(ctx context.Context, sopInstanceUID string) (*Attestation, error) {
	entry, err := s.instanceEntry(ctx, sopInstanceUID)
	if err != nil {
		return nil, err
	}
	att, err := s.openEntry(entry)
	if err != nil {
		return nil, s.integrityFailure(ctx, entry, ReasonAttestationInvalid, "", err)
	}
	return att, nil
}

// Retrieve fetches an instance's stored bytes and checks them against the
// ledger entry and its signature before anything is handed out. The bytes
// are spooled whole first: a caller never sees a byte of an object that
// fails verification.
//
// Errors: ENotFound (never attested), EIntegrity (missing, altered, or a
// failing record; an integrity-failure entry is recorded), EUnavailable.
//
// revision, when not nil, asks for the revision at that ledger index
// instead of the latest; every revision stays retrievable and verifiable.
func (s *Service) Retrieve(ctx context.Context, sopInstanceUID string, revision *uint64) (*Retrieved, error) {
	att, err := s.versionAttestation(ctx, sopInstanceUID, revision)
	if err != nil {
		return nil, err
	}
	return s.retrieveWhole(ctx, att)
}

// versionAttestation is the verified attestation of the version asked
// for: the revision at that ledger index, or (nil) the latest.
func (s *Service) versionAttestation(ctx context.Context, uid string, revision *uint64) (*Attestation, error) {
	if revision != nil {
		return s.revisionAttestation(ctx, uid, *revision)
	}
	return s.verifiedAttestation(ctx, uid)
}

// openStored opens the stored copy of att's bytes: a missing one is an
// integrity failure (recorded, and its series checked), an unreachable
// store an outage.
func (s *Service) openStored(ctx context.Context, att *Attestation, entry ledger.Entry) (io.ReadCloser, error) {
	rc, err := s.store.Get(ctx, entry.FileSHA256)
	if errors.Is(err, store.ErrNotFound) {
		s.checkSeries(att)
		return nil, s.integrityFailure(ctx, entry, ReasonMissing, "", err)
	}
	if err != nil {
		return nil, storageError(err)
	}
	return rc, nil
}

// retrieveWhole spools the stored copy of att's bytes and checks it whole.
func (s *Service) retrieveWhole(ctx context.Context, att *Attestation) (*Retrieved, error) {
	entry := ledger.Entry{Index: att.LedgerIndex, Subject: att.SOPInstanceUID, FileSHA256: att.Digests[DigestFile]}
	rc, err := s.openStored(ctx, att, entry)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sp, err := spool.FillWith(spool.Options{Dir: s.SpoolDir, Memory: s.SpoolMemory, SizeHint: att.Size}, rc)
	if err != nil {
		return nil, storageError(err)
	}
	if got := sp.SHA256Hex(); got != entry.FileSHA256 || sp.Size() != att.Size {
		sp.Close()
		s.checkSeries(att)
		return nil, s.integrityFailure(ctx, entry, ReasonAltered, got, nil)
	}
	return &Retrieved{Attestation: att, SHA256: sp.SHA256(), spool: sp, limits: s.Limits}, nil
}

// checkSeries asks for a check of the whole series of an instance whose
// stored copy failed: what damaged one object (a bad disk, a botched
// restore) rarely damages only one.
func (s *Service) checkSeries(att *Attestation) {
	if s.SeriesCheck != nil && att.StudyInstanceUID != "" && att.SeriesInstanceUID != "" {
		s.SeriesCheck(att.StudyInstanceUID, att.SeriesInstanceUID, att.SOPInstanceUID)
	}
}

func (s *Service) instanceEntry(ctx context.Context, uid string) (ledger.Entry, error) {
	if !dicomfile.LooksLikeUID(uid) {
		return ledger.Entry{}, Errorf(EInvalid, ProblemInvalidRequest,
			"the SOP Instance UID must be digits and dots, at most 64 characters")
	}
	entry, err := s.ledger.InstanceBySOP(ctx, uid)
	if errors.Is(err, ledger.ErrNotFound) {
		return entry, Errorf(ENotFound, ProblemNotFound, "no attestation for SOP Instance UID %q", uid)
	}
	if err != nil {
		return entry, unavailable(ProblemLedgerUnavailable, err)
	}
	return entry, nil
}

// provenOrPending tells whether the signed tree proves entry, or the
// latest signed checkpoint does not cover it yet.
func (s *Service) provenOrPending(ctx context.Context, entry ledger.Entry) bool {
	cp, err := s.ledger.LatestCheckpoint(ctx)
	if err != nil {
		return false
	}
	if entry.Index >= cp.Size {
		return true
	}
	return s.ledger.ProveIncluded(ctx, entry.Index, entry.LeafHash) == nil
}

// integrityFailure records a failed verification (once per object and
// observed digest; repeats are counted) and returns the EIntegrity error.
// The verdict stands even when recording it fails: bytes are never served.
func (s *Service) integrityFailure(ctx context.Context, entry ledger.Entry, reason, observed string, cause error) error {
	// A foreign key is a configuration error only for an entry the signed
	// tree proves genuine: one whose envelope (key id included) and leaf
	// hash were rewritten behind the log's back is evidence, and recorded.
	if errors.Is(cause, ErrKeyUnavailable) && s.ledger.ProveIncluded(ctx, entry.Index, entry.LeafHash) == nil {
		return &Error{Code: EUnavailable, Problem: ProblemKeyUnavailable,
			Message: fmt.Sprintf("the attestation at ledger index %d is signed by a key this server is not configured with; "+
				"nothing is wrong with the image: configure the key (see /v1/keys and the server log)", entry.Index),
			Details: map[string]any{"sop_instance_uid": entry.Subject, "ledger_index": entry.Index}, Err: cause}
	}
	// So is an entry this release cannot read: a newer writer put it there
	// (the signed tree proves it, or it is too new to be integrated yet);
	// misreading or condemning it would be wrong. A body at odds with its
	// own indexed kind is an edit, and recorded.
	var fe *ledger.FormatError
	if errors.As(cause, &fe) && !fe.Mismatch && s.provenOrPending(ctx, entry) {
		return &Error{Code: EUnavailable, Problem: ProblemEntryFormatUnknown,
			Message: fmt.Sprintf("the log entry at index %d has a format this dicomseal does not read (%v): upgrade it; nothing is served meanwhile",
				entry.Index, cause),
			Details: map[string]any{"sop_instance_uid": entry.Subject, "ledger_index": entry.Index}, Err: cause}
	}
	now := s.Now().UTC()
	details := map[string]any{
		"sop_instance_uid": entry.Subject,
		"reason":           reason,
		"expected_sha256":  entry.FileSHA256,
		"ingest_index":     entry.Index,
	}
	if observed != "" {
		details["observed_sha256"] = observed
	}
	incident, count, err := s.ledger.RecordIncident(ctx, custody.Record{
		Kind:        custody.KindIntegrityFailure,
		Subject:     entry.Subject,
		FileSHA256:  observed,
		IncidentKey: reason + ":" + observed,
		Body: encodeBody(integrityFailureBody{
			entryHead: head(custody.KindIntegrityFailure, entry.Subject), Reason: reason,
			ExpectedSHA256: entry.FileSHA256, ObservedSHA256: observed, IngestIndex: entry.Index, RecordedAt: now,
		}),
	}, now)
	if err != nil {
		s.log.ErrorContext(ctx, "could not record integrity failure", "sop_instance_uid", entry.Subject, "err", err)
	} else {
		details["incident_ledger_index"] = incident.Index
		details["incident_count"] = count
	}
	s.log.ErrorContext(ctx, "integrity violation", "sop_instance_uid", entry.Subject, "reason", reason,
		"expected_sha256", entry.FileSHA256, "observed_sha256", observed, "cause", cause)
	msg := map[string]string{
		ReasonMissing:            "the stored object is missing",
		ReasonAltered:            "the stored object's bytes do not match the attested digest",
		ReasonAttestationInvalid: "the ledger entry or its signature fails verification",
		ReasonUnreadable:         "the stored object cannot be read",
	}[reason]
	return &Error{Code: EIntegrity, Problem: ProblemIntegrity,
		Message: fmt.Sprintf("%s for SOP Instance UID %s; nothing is served", msg, entry.Subject),
		Details: details, Err: cause}
}
