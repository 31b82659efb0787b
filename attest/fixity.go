package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/store"
	"golang.org/x/time/rate"
)

// ErrStoreDown: the object store does not answer at all, so what a check
// found says nothing about one object (a scrub pass stops and resumes
// later instead of condemning every image during an outage).
var ErrStoreDown = errors.New("the object store is unavailable")

// outcomeReason maps fixity outcomes to the integrity-failure reason the
// incident records.
var outcomeReason = map[string]string{
	fixity.Missing:        ReasonMissing,
	fixity.SizeMismatch:   ReasonAltered,
	fixity.DigestMismatch: ReasonAltered,
	fixity.ReadError:      ReasonUnreadable,
}

// objectExpected tells whether an attesting entry has a stored object to
// check. Every version has one today; attest-only entries and objects
// deleted by policy (later) will answer false here, so that they are
// never reported MISSING.
func objectExpected(ledger.Entry, Predicate) bool { return true }

// CheckStored re-reads one attesting entry's stored object at the pace
// limiter allows (nil: unbounded), recomputes its SHA-256 and compares it,
// and its size, with the digest in the signed attestation — never with
// anything stored beside the object. A failure is recorded as an
// integrity-failure entry (deduplicated per object and observed digest)
// and logged as a security alert. ok is false for an entry without an
// object by design.
//
// Errors: ErrStoreDown (nothing can be said of the object), an
// EUnavailable *Error (the key or the entry's format is not this
// server's: a configuration matter), or the ledger's.
func (s *Service) CheckStored(ctx context.Context, e ledger.Entry, limiter *rate.Limiter) (f fixity.Failure, bytes int64, ok bool, err error) {
	f = fixity.Failure{SOPInstanceUID: e.Subject, IngestIndex: e.Index, ExpectedSHA256: e.FileSHA256}
	pred, _, err := s.openPredicate(e)
	if err != nil {
		// No signed digest to compare with: the record itself failed.
		ierr := s.integrityFailure(ctx, e, ReasonAttestationInvalid, "", err)
		var ae *Error
		if errors.As(ierr, &ae) && ae.Code == EUnavailable {
			// Signed by a key this server lacks, or of a newer format:
			// nothing against the image, and no reason to stop the pass.
			f.Outcome = fixity.Unchecked
			s.log.WarnContext(ctx, "scrub: an attestation this server cannot check", "sop_instance_uid", e.Subject,
				"ledger_index", e.Index, "err", ae.Message)
			return f, 0, true, nil
		}
		f.Outcome = fixity.AttestationInvalid
		f.IncidentIndex = incidentIndex(ierr)
		s.securityAlert(ctx, f)
		return f, 0, true, nil
	}
	if !objectExpected(e, pred) {
		return f, 0, false, nil
	}
	f.ExpectedSHA256, f.ExpectedSize = pred.Digests[DigestFile], pred.Size
	f.Outcome, f.ObservedSHA256, f.ObservedSize, bytes, err = s.readBack(ctx, f.ExpectedSHA256, f.ExpectedSize, limiter)
	if err != nil {
		return f, bytes, true, err
	}
	if f.Outcome == fixity.OK {
		return f, bytes, true, nil
	}
	entry := ledger.Entry{Index: e.Index, Subject: e.Subject, FileSHA256: f.ExpectedSHA256}
	f.IncidentIndex = incidentIndex(s.integrityFailure(ctx, entry, outcomeReason[f.Outcome], f.ObservedSHA256, nil))
	s.securityAlert(ctx, f)
	return f, bytes, true, nil
}

// readBack reads the object stored under sha and says what it found. It
// reads at most size+1 bytes: a grown object is a SIZE_MISMATCH without
// reading it all.
func (s *Service) readBack(ctx context.Context, sha string, size int64, limiter *rate.Limiter) (outcome, observed string, observedSize, n int64, err error) {
	var h hash.Hash
	for attempt := 1; ; attempt++ {
		h, n, err = s.readOnce(ctx, sha, size, limiter)
		if errors.Is(err, store.ErrNotFound) {
			// Absent — or the whole store is (an unmounted volume, a
			// deleted bucket): that is an outage, not a missing image.
			if perr := s.storeHoldsObjects(ctx); perr != nil {
				return "", "", 0, 0, fmt.Errorf("%w: %v", ErrStoreDown, perr)
			}
			return fixity.Missing, "", 0, 0, nil
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, errPacing) {
			return "", "", 0, n, err // stopped, not unreadable
		}
		if attempt == 2 {
			return s.readFailed(ctx, err, n)
		}
	}
	observed = hex.EncodeToString(h.Sum(nil))
	switch {
	case n != size:
		return fixity.SizeMismatch, observed, n, n, nil
	case observed != sha:
		return fixity.DigestMismatch, observed, n, n, nil
	}
	return fixity.OK, observed, n, n, nil
}

// storeHoldsObjects is the store's ping, and for a store that can tell
// (the filesystem's), whether its tree of objects is there at all.
func (s *Service) storeHoldsObjects(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return err
	}
	if h, ok := s.store.(interface{ HoldsObjects(context.Context) error }); ok {
		return h.HoldsObjects(ctx)
	}
	return nil
}

// readOnce reads the object once, hashing it.
func (s *Service) readOnce(ctx context.Context, sha string, size int64, limiter *rate.Limiter) (hash.Hash, int64, error) {
	rc, err := s.store.Get(ctx, sha)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, paced(ctx, io.LimitReader(rc, size+1), limiter))
	return h, n, err
}

// readFailed tells a READ_ERROR of one object (read twice) from a store
// that is down or hanging.
func (s *Service) readFailed(ctx context.Context, cause error, n int64) (string, string, int64, int64, error) {
	if ctx.Err() != nil {
		return "", "", 0, n, ctx.Err()
	}
	// A store that does not answer is down; one that answers but stalls
	// (or fails) twice on this object cannot read it.
	if err := s.store.Ping(ctx); err != nil {
		return "", "", 0, n, fmt.Errorf("%w: %v (reading: %v)", ErrStoreDown, err, cause)
	}
	s.log.WarnContext(ctx, "stored object unreadable", "err", cause)
	return fixity.ReadError, "", n, n, nil
}

// securityAlert is the event a SIEM alerts on (the syslog forwarder's
// "security-alert" category): what failed, never patient data.
func (s *Service) securityAlert(ctx context.Context, f fixity.Failure) {
	s.log.ErrorContext(ctx, "security alert: stored image failed its fixity check", "event", "security-alert",
		"category", "fixity", "sop_instance_uid", f.SOPInstanceUID, "outcome", f.Outcome,
		"ingest_index", f.IngestIndex, "expected_sha256", f.ExpectedSHA256, "observed_sha256", f.ObservedSHA256,
		"expected_size", f.ExpectedSize, "observed_size", f.ObservedSize)
}

// incidentIndex is the integrity-failure entry an integrityFailure error
// names (nil when recording it failed).
func incidentIndex(err error) *uint64 {
	var ae *Error
	if !errors.As(err, &ae) {
		return nil
	}
	if idx, ok := ae.Details["incident_ledger_index"].(uint64); ok {
		return &idx
	}
	return nil
}

// paced reads r no faster than limiter allows, in chunks no larger than
// its burst.
func paced(ctx context.Context, r io.Reader, limiter *rate.Limiter) io.Reader {
	if limiter == nil || limiter.Limit() == rate.Inf {
		return r
	}
	return &pacedReader{ctx: ctx, r: r, l: limiter}
}

type pacedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if burst := p.l.Burst(); len(b) > burst {
		b = b[:burst]
	}
	n, err := p.r.Read(b)
	if n > 0 {
		if werr := p.l.WaitN(p.ctx, n); werr != nil {
			// The context ends (or would, before the wait): the caller stops.
			return n, fmt.Errorf("%w: %w", errPacing, werr)
		}
	}
	return n, err
}

// errPacing: a paced read was stopped by its context.
var errPacing = errors.New("scrub stopped")

// detached is ctx without its cancellation, for a write that must follow
// what already happened (bytes moved, a batch checked), still bounded so
// that a hung database cannot hold a shutdown for ever.
func detached(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	context.AfterFunc(c, cancel) // released with its deadline
	return c
}
