package attest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
)

// MaxCorrectionReason is the longest reason a correction may give, in bytes.
const MaxCorrectionReason = 1024

// CorrectIdentity attests body, the corrected file of the instance uid, as
// an identity correction by actor: the patient, order, study or series
// identifiers may differ from the latest attestation, and nothing else may
// (pixels, geometry, clinical attributes). The file's Original Attributes
// Sequence must list every changed identifier with its previous value, and
// each previous value must match the attested one (checked against the
// attestation's keyed commitments): a correction states what it corrects.
// The reason is kept in the correctable identity table, never in the log.
//
// The same bytes again answer the existing correction (Created false).
// Errors: EInvalid (no or too long a reason, not DICOM, another UID),
// ENotFound (uid never attested), EConflict (refused; recorded as a
// security alert), ETooLarge, ETimeout, ENoSpace, EUnavailable.
func (s *Service) CorrectIdentity(ctx context.Context, uid string, body io.Reader, reason, actor string) (*IngestResult, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "a Correction-Reason header is required: why the identity is corrected")
	case len(reason) > MaxCorrectionReason:
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "Correction-Reason is %d bytes, more than %d", len(reason), MaxCorrectionReason)
	case !utf8.ValidString(reason):
		return nil, Errorf(EInvalid, ProblemInvalidRequest, "Correction-Reason is not valid UTF-8")
	}
	latest, err := s.instanceEntry(ctx, uid)
	if err != nil {
		return nil, err
	}
	a, sp, err := s.receive(body)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	if a.Instance.SOPInstanceUID != uid {
		return nil, Errorf(EInvalid, ProblemInvalidRequest,
			"the file's SOP Instance UID is not the one corrected (%s): a correction keeps the instance", uid)
	}
	return s.indexed(ctx, sp)(s.correct(ctx, latest, a, sp, reason, actor, true))
}

func (s *Service) correct(ctx context.Context, latest ledger.Entry, a *dicomfile.Analysis, sp *spool.Spool, reason, actor string, retry bool) (*IngestResult, error) {
	sha := sp.SHA256Hex()
	if same, err := s.ledger.IngestBySHA256(ctx, sha); err == nil {
		if same.Index == latest.Index && same.Kind == custody.KindIdentityCorrection {
			return s.again(ctx, same, sp) // a retried correction
		}
		return nil, Errorf(EConflict, ProblemIdentityCorrectionRefused,
			"these bytes are already attested at ledger index %d: there is nothing to correct", same.Index)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	pred, _, err := s.openPredicate(latest)
	if err != nil {
		return nil, s.integrityFailure(ctx, latest, ReasonAttestationInvalid, "", err)
	}
	j, d, err := s.judgeWithDigests(ctx, latest, pred, a)
	if err != nil {
		return nil, err
	}
	changed := j.identityChanges()
	if len(j.changes) == 0 && j.status == StatusPixelsIntact {
		return nil, Errorf(EConflict, ProblemIdentityCorrectionRefused,
			"no attribute differs from the attested ones: nothing to correct (benign re-encodings go through ingest)")
	}
	if reason := refusal(j, d, pred, changed); reason != "" {
		// Keyed by actor too: a false correction is its own alert, even
		// of bytes an ingest already tried.
		return nil, s.refuseFor(ctx, latest, j, ProblemIdentityCorrectionRefused, reason,
			"identity-correction:"+actor+":"+sha, sha, sp.Size())
	}
	before := map[string]string{}
	for _, k := range changed {
		before[k] = pred.Attributes[k]
	}
	idx := latest.Index
	res, err := s.attest(ctx, custody.KindIdentityCorrection, &idx, a, sp,
		&correction{actor: actor, reason: reason, corrects: latest, changed: changed, before: before})
	if errors.Is(err, custody.ErrStaleRevision) && retry {
		// Another version landed first: judge the correction against it.
		next, err := s.instanceEntry(ctx, latest.Subject)
		if err != nil {
			return nil, err
		}
		return s.correct(ctx, next, a, sp, reason, actor, false)
	}
	if errors.Is(err, custody.ErrStaleRevision) {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	if err == nil {
		s.log.InfoContext(ctx, "identity corrected", "sop_instance_uid", latest.Subject, "actor", actor,
			"attributes", changed, "corrects_index", latest.Index, "ledger_index", res.LedgerIndex)
	}
	return res, err
}

// refusal says why a judged file is no identity correction of pred, or ""
// when it is one.
func refusal(j judgement, d *dicomfile.Digests, pred Predicate, changed []string) string {
	if j.status != StatusPixelsIntact {
		return j.detail
	}
	for _, c := range j.changes {
		if !correctable[c.Attribute] {
			return "clinical attribute " + c.Attribute + " changed: a correction changes identity only"
		}
	}
	if len(changed) == 0 {
		return "no identity attribute differs from the attested ones"
	}
	for _, k := range changed {
		prev, listed := d.PreviousValues[k]
		switch {
		case !listed:
			return "identity attribute " + k + " changed but no Modified Attributes Sequence (0400,0550) of the Original " +
				"Attributes Sequence (0400,0561) gives its previous value"
		case !slices.Contains(prev, pred.Attributes[k]):
			return fmt.Sprintf("the Original Attributes Sequence's previous value of %s (its newest item's) is not the attested one", k)
		}
	}
	return ""
}
