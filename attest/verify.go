package attest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
)

// Verification statuses (see also verdict.go).
const (
	StatusVerified = "verified" // byte-identical to an attested file
	StatusTampered = "tampered" // pixels or geometry differ from the attested ones
	StatusUnknown  = "unknown"  // no attestation for that digest or UID
	// StatusSuperseded: byte-identical to an attested version whose
	// identity a later identity correction replaced.
	StatusSuperseded = "superseded"
)

// Verification is the answer to "is this file (or digest) attested?".
type Verification struct {
	Status         string `json:"status"`
	SHA256         string `json:"sha256"`
	SOPInstanceUID string `json:"sop_instance_uid,omitempty"`
	Detail         string `json:"detail"`
	// Changes lists the allow-listed attributes that differ (pixels-intact,
	// tampered, pixels-unverifiable), with whether an Original Attributes
	// Sequence documents each.
	Changes []Change `json:"changes,omitempty"`
	// Frames lists the 0-based frames whose pixels differ (tampered).
	Frames []int `json:"frames,omitempty"`
	// Attested names the attestation the verdict rests on; Attestation is
	// all of it, envelope and entry included (see Brief).
	Attested    *Attested    `json:"attested,omitempty"`
	Attestation *Attestation `json:"attestation,omitempty"`
	// SupersededBy, for StatusSuperseded, is the correction's ledger index.
	SupersededBy *uint64 `json:"superseded_by,omitempty"`
}

// Attested is where an attestation is and what it is about: enough for a
// viewer that checks before display, a few hundred bytes where the whole
// attestation is kilobytes.
type Attested struct {
	LedgerIndex       uint64    `json:"ledger_index"`
	EntryHash         string    `json:"entry_hash"`
	StudyInstanceUID  string    `json:"study_instance_uid"`
	SeriesInstanceUID string    `json:"series_instance_uid"`
	KeyID             string    `json:"key_id"`
	AttestedAt        time.Time `json:"attested_at"`
}

// Brief is the verification without the whole attestation, which it names
// instead (Attested).
func (v *Verification) Brief() *Verification {
	if v.Attestation == nil {
		return v
	}
	b := *v
	a := v.Attestation
	b.Attested = &Attested{LedgerIndex: a.LedgerIndex, EntryHash: a.EntryHash, StudyInstanceUID: a.StudyInstanceUID,
		SeriesInstanceUID: a.SeriesInstanceUID, KeyID: a.KeyID, AttestedAt: a.AttestedAt}
	b.Attestation = nil
	return &b
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// VerifyDigest looks a file up by its SHA-256 (lower-case hex).
// Errors: EInvalid (not a digest), EIntegrity, EUnavailable.
func (s *Service) VerifyDigest(ctx context.Context, sha string) (*Verification, error) {
	if !sha256Hex.MatchString(sha) {
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "sha256 must be 64 lower-case hex characters, got %q", sha)
	}
	v, err := s.verifyByDigest(ctx, sha)
	if err != nil || v != nil {
		return v, err
	}
	return &Verification{Status: StatusUnknown, SHA256: sha, Detail: "no attestation for this digest"}, nil
}

// VerifyFile checks a whole file against the latest attestation of its SOP
// Instance UID: verified (byte-identical to an attested file),
// pixels-intact (pixels and geometry unchanged; the changed attributes are
// listed), tampered (pixels or geometry differ; the frames are named),
// pixels-unverifiable (the pixel encoding changed and cannot be compared),
// or unknown (nothing attested under that digest or UID).
// Errors: EInvalid (unknown digest and not parseable DICOM), ETooLarge, EUnavailable.
func (s *Service) VerifyFile(ctx context.Context, body io.Reader) (*Verification, error) {
	sp, err := spool.Fill(s.SpoolDir, s.SpoolMemory, body)
	if err != nil {
		return nil, bodyError(err)
	}
	defer sp.Close()
	sha := sp.SHA256Hex()
	if v, err := s.verifyByDigest(ctx, sha); err != nil || v != nil {
		return v, err
	}
	a, err := s.Limits.Analyze(sp, sp.Size())
	if err != nil {
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidDICOM, Message: err.Error(), Err: err}
	}
	uid := a.Instance.SOPInstanceUID
	latest, err := s.instanceEntry(ctx, uid)
	switch {
	case ErrorCode(err) == ENotFound:
		return &Verification{Status: StatusUnknown, SHA256: sha, SOPInstanceUID: uid,
			Detail: "no attestation for this digest or SOP Instance UID"}, nil
	case err != nil:
		return nil, err
	}
	pred, att, err := s.openPredicate(latest)
	if err != nil {
		return nil, s.integrityFailure(ctx, latest, ReasonAttestationInvalid, "", err)
	}
	if att.Inclusion, err = s.inclusion(ctx, latest.Index); err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	j, err := s.judgeAgainst(ctx, latest, pred, a)
	if err != nil {
		return nil, err
	}
	return &Verification{Status: j.status, SHA256: sha, SOPInstanceUID: uid, Detail: j.detail,
		Changes: j.changes, Frames: j.frames, Attestation: att}, nil
}

// verifyByDigest returns a verified answer when an ingest entry has that
// digest, nil when none does.
func (s *Service) verifyByDigest(ctx context.Context, sha string) (*Verification, error) {
	entry, latest, err := s.ledger.IngestBySHA256WithLatest(ctx, sha)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	att, err := s.openEntry(entry)
	if err != nil {
		return nil, s.integrityFailure(ctx, entry, ReasonAttestationInvalid, "", err)
	}
	if c, err := s.correctionSince(ctx, entry, latest); err != nil {
		return nil, err
	} else if c != nil {
		return &Verification{Status: StatusSuperseded, SHA256: sha, SOPInstanceUID: att.SOPInstanceUID,
			Detail: fmt.Sprintf("byte-identical to the version attested at ledger index %d, whose identity the identity correction at index %d replaced",
				entry.Index, *c), Attestation: att, SupersededBy: c}, nil
	}
	return &Verification{Status: StatusVerified, SHA256: sha, SOPInstanceUID: att.SOPInstanceUID,
		Detail: "byte-identical to the attested file", Attestation: att}, nil
}

// correctionSince returns the index of the latest identity correction
// that followed entry in its instance's chain of versions, walking back
// from latest (nil: none; no read at all when entry is the latest).
func (s *Service) correctionSince(ctx context.Context, entry, latest ledger.Entry) (*uint64, error) {
	cur := latest
	for cur.Index > entry.Index {
		if cur.Kind == custody.KindIdentityCorrection {
			idx := cur.Index
			return &idx, nil
		}
		pred, _, err := s.openPredicate(cur)
		if err != nil {
			return nil, s.integrityFailure(ctx, cur, ReasonAttestationInvalid, "", err)
		}
		if pred.Revises == nil {
			return nil, nil
		}
		if cur, err = s.ledger.Entry(ctx, *pred.Revises); err != nil {
			return nil, unavailable(ProblemLedgerUnavailable, err)
		}
	}
	return nil, nil
}
