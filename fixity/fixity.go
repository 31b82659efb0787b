// Package fixity names what the fixity scrubber keeps beside the log: a
// lease, so that one replica at a time scrubs, and the progress of the
// pass in hand, so that a restart resumes where the last one stopped.
// Both are correctable state, not history: they prove nothing (the fixity
// entries in the log do). Backends implement Store in their own tables;
// fixitytest is the conformance suite every backend runs.
package fixity

import (
	"context"
	"errors"
	"time"
)

// Store keeps leases and scrub progress.
type Store interface {
	// AcquireLease takes or renews the lease name for holder until
	// now+ttl, and reports whether holder has it: false while another
	// holder's lease has not expired.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease (nothing when another holds it).
	ReleaseLease(ctx context.Context, name, holder string) error
	// Progress is the progress saved under name; the zero Progress when
	// none was ever saved.
	Progress(ctx context.Context, name string) (Progress, error)
	// SaveProgress saves p under name, only while holder holds the lease
	// of that name at now: ErrLeaseLost otherwise (a replica that lost its
	// lease must not overwrite its successor's progress).
	SaveProgress(ctx context.Context, name, holder string, now time.Time, p Progress) error
}

// ErrLeaseLost: the lease is another's (or expired); nothing was saved.
var ErrLeaseLost = errors.New("the scrub lease is no longer held")

// Outcomes of checking one stored object.
const (
	OK             = "OK"
	Missing        = "MISSING"
	SizeMismatch   = "SIZE_MISMATCH"
	DigestMismatch = "DIGEST_MISMATCH"
	ReadError      = "READ_ERROR"
)

// Outcomes lists every outcome, OK first.
var Outcomes = []string{OK, Missing, SizeMismatch, DigestMismatch, ReadError, AttestationInvalid, Unchecked}

// Progress is a scrub pass in hand, and what the last complete pass covered.
type Progress struct {
	// Pass numbers passes from 1; 0 before the first.
	Pass int64 `json:"pass"`
	// Position is the next ledger index the pass checks.
	Position uint64 `json:"position"`
	// End is the log size when the pass began: it checks what was attested
	// below it (what comes later is the next pass's).
	End     uint64    `json:"end"`
	Started time.Time `json:"started"`
	// Counts are the outcomes so far in this pass; Bytes what was read.
	Counts map[string]int64 `json:"counts"`
	Bytes  int64            `json:"bytes"`
	// Failures found so far in this pass (at most MaxFailures are kept;
	// Counts counts them all). UNCHECKED objects are counted, not listed.
	Failures []Failure `json:"failures,omitempty"`
	// Previous* describe the last complete pass: when it started and the
	// log size it covered (zero: none yet).
	PreviousStarted time.Time `json:"previous_started"`
	PreviousEnd     uint64    `json:"previous_end"`
	// Summarized is set once the pass's signed summary is in the log: a
	// pass at its end without it has its summary appended on resume.
	Summarized bool `json:"summarized,omitempty"`
}

// MaxFailures bounds the failures one summary lists.
const MaxFailures = 1000

// Failure is one object that did not check out.
type Failure struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	IngestIndex    uint64 `json:"ingest_index"`
	Outcome        string `json:"outcome"`
	ExpectedSHA256 string `json:"expected_sha256"`
	ObservedSHA256 string `json:"observed_sha256,omitempty"`
	ExpectedSize   int64  `json:"expected_size"`
	ObservedSize   int64  `json:"observed_size"`
	// IncidentIndex is the integrity-failure entry recorded for it.
	IncidentIndex *uint64 `json:"incident_index,omitempty"`
}

// AttestationInvalid is the outcome for an object that cannot be checked
// because its own ledger entry or signature fails: there is no signed
// digest to compare with (an integrity failure of the record itself).
const AttestationInvalid = "ATTESTATION_INVALID"

// Unchecked is the outcome for an object whose attestation this server
// cannot read (signed by a key it is not configured with, or of a newer
// entry format): a configuration matter, not evidence; no incident.
const Unchecked = "UNCHECKED"

// Checked is how many objects the pass has checked so far, all outcomes.
func (p Progress) Checked() int64 {
	var n int64
	for _, c := range p.Counts {
		n += c
	}
	return n
}

// Failed is how many of them failed: neither OK nor UNCHECKED.
func (p Progress) Failed() int64 { return p.Checked() - p.Counts[OK] - p.Counts[Unchecked] }

// IsFailure tells whether an outcome is a failure of the object (not OK,
// and not UNCHECKED, which is this server's configuration).
func IsFailure(outcome string) bool { return outcome != OK && outcome != Unchecked }
