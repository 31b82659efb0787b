package attest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/fixity"
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
	// Revises is the ledger index of the attestation this revision follows.
	Revises *uint64 `json:"revises,omitempty"`
	// IdentityCorrection is set when this version corrected the identity of
	// the one it revises: who, which attributes, their commitments.
	IdentityCorrection *IdentityCorrection `json:"identity_correction,omitempty"`

	// chunks and chunkList are the attested chunk tree (v3 predicates) and
	// the entry's list of its leaves, for verified streaming.
	chunks    *chunks.Tree
	chunkList string
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
// Bytes already attested get their attestation back. Other bytes under an
// attested SOP Instance UID are judged against its latest attestation: a
// benign change (pixels, geometry and clinical attributes unchanged, any
// identity change documented by an Original Attributes Sequence) becomes a
// revision linked to it; anything else is refused and recorded.
//
// Errors: EInvalid (not DICOM, malformed, invalid or missing UIDs, over
// Limits), ETooLarge and ETimeout (passed through from body), ENoSpace
// (below MinFreeSpace, or the disk filled up), EConflict (refused revision,
// recorded as a security alert, or an incomparable re-encoding), EUnavailable.
func (s *Service) Ingest(ctx context.Context, body io.Reader) (*IngestResult, error) {
	a, sp, err := s.receive(body)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	return s.indexed(ctx, sp)(s.ingest(ctx, a, sp, true))
}

// indexed records a successful ingest's instance in the catalog before it
// is answered (see index).
func (s *Service) indexed(ctx context.Context, sp *spool.Spool) func(*IngestResult, error) (*IngestResult, error) {
	return func(res *IngestResult, err error) (*IngestResult, error) {
		if err != nil {
			return nil, err
		}
		if !res.Created { // a new version's row was written with its entry
			if err := s.index(ctx, res.Attestation, sp, sp.Size()); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}

// Sized tells Ingest (and IngestPart) how many bytes body will bring, as
// an HTTP Content-Length does, so that the spool is sized once instead of
// growing as the bytes arrive. A wrong n costs only memory.
func Sized(body io.Reader, n int64) io.Reader {
	if n <= 0 {
		return body
	}
	return sizedBody{body, n}
}

type sizedBody struct {
	io.Reader
	n int64
}

// receive takes an uploaded file to be attested: refused before a byte is
// read while the disk is below MinFreeSpace, spooled, then analysed within
// Limits. The caller closes the spool.
func (s *Service) receive(body io.Reader) (*dicomfile.Analysis, *spool.Spool, error) {
	if err := s.CheckSpace(); err != nil {
		return nil, nil, err
	}
	var hint int64
	if sb, ok := body.(sizedBody); ok {
		body, hint = sb.Reader, sb.n
	}
	sp, err := spool.FillWith(spool.Options{Dir: s.SpoolDir, Memory: s.SpoolMemory, SizeHint: hint, ChunkSize: s.chunkSize()}, body)
	if err != nil {
		return nil, nil, bodyError(err)
	}
	a, err := s.Limits.Analyze(sp, sp.Size())
	if err != nil {
		sp.Close()
		return nil, nil, &Error{Code: EInvalid, Problem: ProblemInvalidDICOM, Message: err.Error(), Err: err}
	}
	return a, sp, nil
}

// ingest decides what the analysed file becomes. retry allows one more
// decision after losing a race for the first claim of its UID.
func (s *Service) ingest(ctx context.Context, a *dicomfile.Analysis, sp *spool.Spool, retry bool) (*IngestResult, error) {
	sha := sp.SHA256Hex()
	if same, err := s.ledger.IngestBySHA256(ctx, sha); err == nil {
		return s.again(ctx, same, sp)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	latest, err := s.ledger.InstanceBySOP(ctx, a.Instance.SOPInstanceUID)
	switch {
	case err == nil && latest.FileSHA256 == sha && retry:
		// These very bytes were attested between the two lookups (a
		// concurrent first ingest): they are no revision of themselves.
		return s.ingest(ctx, a, sp, false)
	case err == nil:
		return s.revise(ctx, latest, a, sp, retry)
	case !errors.Is(err, ledger.ErrNotFound):
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	res, err := s.attest(ctx, custody.KindIngest, nil, a, sp, nil)
	var exists *custody.InstanceExistsError
	if errors.As(err, &exists) && retry {
		// A concurrent first ingest of the same UID won the claim.
		return s.ingest(ctx, a, sp, false)
	}
	return res, err
}

// correction is what an identity correction adds to an attestation.
type correction struct {
	actor, reason string
	corrects      ledger.Entry
	changed       []string
	before        map[string]string
}

// again answers bytes already attested by entry with its attestation. The
// bytes are at hand: the store is made sure to still have them (an object
// lost behind our back is restored), so a 2xx means durable.
func (s *Service) again(ctx context.Context, entry ledger.Entry, sp *spool.Spool) (*IngestResult, error) {
	att, err := s.openEntry(entry)
	if err != nil {
		return nil, s.integrityFailure(ctx, entry, ReasonAttestationInvalid, "", err)
	}
	if err := s.restore(ctx, entry, sp); err != nil {
		return nil, err
	}
	return &IngestResult{Attestation: att}, nil
}

// restore makes sure the store holds entry's attested bytes, which sp
// holds (the caller matched their digest). A stored copy that is gone,
// altered or unreadable is rewritten from sp and the repair is logged;
// an intact one is only touched (see the stores' Put).
func (s *Service) restore(ctx context.Context, entry ledger.Entry, sp *spool.Spool) error {
	outcome, observed, _, _, err := s.readBack(ctx, entry.FileSHA256, sp.Size(), nil)
	if err != nil {
		return storageError(err)
	}
	if outcome == fixity.OK {
		if err := s.store.Put(ctx, entry.FileSHA256, sp.Reader(), sp.Size()); err != nil {
			return storageError(err)
		}
		return nil
	}
	if err := s.store.Replace(ctx, entry.FileSHA256, sp.Reader(), sp.Size()); err != nil {
		return storageError(err)
	}
	actor := ""
	if id, ok := auth.FromContext(ctx); ok {
		actor = id.Name
	}
	found := outcomeReason[outcome]
	// Not cancelled with the request: the copy is rewritten, its entry
	// must follow.
	_, err = s.ledger.AppendEvents(detached(ctx), []custody.Record{{
		Kind: custody.KindRepair, Subject: entry.Subject, FileSHA256: entry.FileSHA256,
		Body: encodeBody(repairBody{entryHead: head(custody.KindRepair, entry.Subject),
			FileSHA256: entry.FileSHA256, IngestIndex: entry.Index, IngestEntryHash: entry.LeafHashHex(),
			Found: found, ObservedSHA256: observed, Actor: actor, RecordedAt: s.Now().UTC()}),
	}})
	if err != nil {
		// The copy is whole again; the next repeat logs the repair only if
		// it finds something to repair, so say it here.
		s.log.ErrorContext(ctx, "stored copy repaired but the repair entry could not be logged",
			"sop_instance_uid", entry.Subject, "err", err)
		return unavailable(ProblemLedgerUnavailable, err)
	}
	s.log.WarnContext(ctx, "stored copy repaired from re-ingested attested bytes", "sop_instance_uid", entry.Subject,
		"found", found, "observed_sha256", observed, "actor", actor)
	return nil
}

// attest stores, signs and logs the file as an ingest, a revision or (with
// corr) an identity correction.
func (s *Service) attest(ctx context.Context, kind ledger.Kind, revises *uint64, a *dicomfile.Analysis, sp *spool.Spool, corr *correction) (*IngestResult, error) {
	inst, sha, size := a.Instance, sp.SHA256Hex(), sp.Size()
	row, err := s.catalogRow(ctx, inst.SOPInstanceUID, sha, sp, size)
	if err != nil {
		return nil, err
	}
	// Written whatever is there: an object already under this digest is
	// one no entry names (an orphan), which Put would trust on its size
	// alone, and S3 would pay a round trip to ask about. These bytes are
	// the ones the attestation will name.
	if err := s.store.Replace(ctx, sha, sp.Reader(), size); err != nil {
		return nil, storageError(err)
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(s.Rand, salt); err != nil {
		return nil, internal(fmt.Errorf("salt: %w", err))
	}
	d := a.Digests(salt)
	digests := map[string]string{DigestFile: sha, DigestMetadata: d.Metadata, DigestIdentity: d.Identity}
	if d.Pixel != "" {
		digests[DigestPixel] = d.Pixel
	}
	pred := Predicate{
		SOPClassUID:        inst.SOPClassUID,
		SOPInstanceUID:     inst.SOPInstanceUID,
		StudyInstanceUID:   inst.StudyInstanceUID,
		SeriesInstanceUID:  inst.SeriesInstanceUID,
		Modality:           inst.Modality,
		TransferSyntaxUID:  inst.TransferSyntaxUID,
		Digests:            digests,
		PixelEncoding:      d.PixelEncoding,
		Frames:             d.Frames,
		Attributes:         d.Attributes,
		OriginalAttributes: d.OriginalAttributes,
		Size:               size,
		AttestedAt:         s.Now().UTC(),
		KeyID:              s.attestor.KeyID(),
		Revises:            revises,
	}
	leaves := sp.ChunkLeaves()
	tree := chunks.NewTree(s.chunkSize(), size, leaves)
	pred.Chunks = &tree
	var chunkList string
	if len(leaves) > 1 {
		chunkList = chunks.Encode(leaves)
	}
	payload, err := json.Marshal(newStatement(pred))
	if err != nil {
		return nil, internal(fmt.Errorf("encode statement: %w", err))
	}
	env, err := s.attestor.Sign(ctx, payload)
	if err != nil {
		return nil, internal(err)
	}
	identity := &custody.Identity{
		Salt: salt, PatientName: inst.PatientName, PatientID: inst.PatientID, PatientBirthDate: inst.PatientBirthDate,
	}
	body := encodeBody(ingestBody{entryHead: head(kind, inst.SOPInstanceUID), FileSHA256: sha, Envelope: env, Chunks: chunkList})
	var ic *IdentityCorrection
	if corr != nil {
		ic = &IdentityCorrection{Corrects: corr.corrects.Index, CorrectsEntryHash: corr.corrects.LeafHashHex(),
			Actor: corr.actor, Changed: corr.changed, Before: corr.before, After: map[string]string{}, CorrectedAt: pred.AttestedAt}
		for _, k := range corr.changed {
			ic.After[k] = d.Attributes[k]
		}
		body = encodeBody(identityCorrectionBody{entryHead: head(kind, inst.SOPInstanceUID), FileSHA256: sha, Envelope: env,
			Chunks: chunkList, IdentityCorrection: *ic})
		identity.CorrectionReason = corr.reason
	}
	entry, err := s.ledger.AppendIngest(ctx, custody.Record{
		Kind:       kind,
		Subject:    inst.SOPInstanceUID,
		FileSHA256: sha,
		Body:       body,
		Identity:   identity,
		Revises:    revisesIndex(revises),
		Catalog:    row,
	})
	var exists *custody.InstanceExistsError
	switch {
	case errors.As(err, &exists), errors.Is(err, custody.ErrStaleRevision):
		return nil, err
	case err != nil:
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	s.log.InfoContext(ctx, "instance attested", "kind", kind,
		"sop_instance_uid", inst.SOPInstanceUID, "sha256", sha, "size", size, "ledger_index", entry.Index)
	att := newAttestation(entry, pred, env)
	att.IdentityCorrection = ic
	att.chunks, att.chunkList = pred.Chunks, chunkList
	return &IngestResult{Attestation: att, Created: true}, nil
}

// revise judges other bytes under an attested UID against its latest
// attestation: a benign change becomes a revision; anything else is
// refused, the original untouched, and the attempt recorded.
func (s *Service) revise(ctx context.Context, latest ledger.Entry, a *dicomfile.Analysis, sp *spool.Spool, retry bool) (*IngestResult, error) {
	pred, _, err := s.openPredicate(latest)
	if errors.Is(err, ErrKeyUnavailable) || errors.Is(err, ledger.ErrUnknownFormat) {
		return nil, s.integrityFailure(ctx, latest, ReasonAttestationInvalid, "", err)
	}
	if err != nil {
		return nil, &Error{Code: EIntegrity, Problem: ProblemIntegrity,
			Message: fmt.Sprintf("the existing attestation at ledger index %d fails verification", latest.Index), Err: err}
	}
	j, err := s.judgeAgainst(ctx, latest, pred, a)
	if err != nil {
		return nil, err
	}
	if ok, _ := j.revisable(); ok {
		idx := latest.Index
		res, err := s.attest(ctx, custody.KindRevision, &idx, a, sp, nil)
		if errors.Is(err, custody.ErrStaleRevision) && retry {
			// Another revision landed first: judge against it instead.
			return s.ingest(ctx, a, sp, false)
		}
		if errors.Is(err, custody.ErrStaleRevision) {
			return nil, unavailable(ProblemLedgerUnavailable, err)
		}
		return res, err
	}
	problem := ProblemInstanceConflict
	if len(j.identityChanges()) > 0 {
		// Whatever else changed too (pixels, the encoding): an identity
		// change through ingest is named, and is a security alert.
		problem = ProblemIdentityChangeRefused
	}
	return nil, s.refuse(ctx, latest, j, problem, sp.SHA256Hex(), sp.Size())
}

// judgeAgainst computes the file's digests with the salt of the attested
// record (so per-attribute digests compare) and judges them.
func (s *Service) judgeAgainst(ctx context.Context, e ledger.Entry, pred Predicate, a *dicomfile.Analysis) (judgement, error) {
	j, _, err := s.judgeWithDigests(ctx, e, pred, a)
	return j, err
}

// judgeWithDigests is judgeAgainst, also returning the file's digests
// under the attested record's salt.
func (s *Service) judgeWithDigests(ctx context.Context, e ledger.Entry, pred Predicate, a *dicomfile.Analysis) (judgement, *dicomfile.Digests, error) {
	var salt []byte
	id, err := s.ledger.Identity(ctx, e.FileSHA256)
	switch {
	case err == nil:
		salt = id.Salt
	case !errors.Is(err, ledger.ErrNotFound):
		return judgement{}, nil, unavailable(ProblemLedgerUnavailable, err)
	}
	// With the salt erased (crypto-shredding) no keyed digest can match:
	// every identity attribute then reads as changed, never as intact.
	d := a.DigestsVersion(pred.DigestVersion(), salt)
	return judge(pred, d), d, nil
}

// refuse records a refused revision or correction (a security alert, or a
// conflict for an encoding that cannot be compared) and returns the 409
// that names it.
func (s *Service) refuse(ctx context.Context, existing ledger.Entry, j judgement, problem, sha string, size int64) error {
	_, reason := j.revisable()
	if len(j.identityChanges()) > 0 && j.status != StatusPixelsIntact {
		reason = "identity attributes changed (" + strings.Join(j.identityChanges(), ", ") + "), and " + j.detail
	}
	return s.refuseFor(ctx, existing, j, problem, reason, sha, sha, size)
}

// refuseFor records the refusal once per incidentKey (repeats counted).
func (s *Service) refuseFor(ctx context.Context, existing ledger.Entry, j judgement, problem, reason, incidentKey, sha string, size int64) error {
	kind := custody.KindSecurityAlert
	if j.status == StatusPixelsUnverifiable && problem == ProblemInstanceConflict {
		kind, problem = custody.KindConflict, ProblemUnverifiableReencoding
	}
	now := s.Now().UTC()
	incident, count, err := s.ledger.RecordIncident(ctx, custody.Record{
		Kind:        kind,
		Subject:     existing.Subject,
		FileSHA256:  sha,
		IncidentKey: incidentKey,
		Body: encodeBody(conflictBody{
			entryHead:       head(kind, existing.Subject),
			AttemptedSHA256: sha, AttemptedSize: size,
			ExistingIndex: existing.Index, ExistingSHA256: existing.FileSHA256, ExistingEntryHash: existing.LeafHashHex(),
			Verdict: j.status, Reason: reason, Changes: j.changes, Frames: j.frames,
			RecordedAt: now,
		}),
	}, now)
	if err != nil {
		return unavailable(ProblemLedgerUnavailable, err)
	}
	s.log.WarnContext(ctx, "refused: different bytes under an attested SOP Instance UID", "problem", problem,
		"kind", kind, "sop_instance_uid", existing.Subject, "existing_index", existing.Index,
		"attempted_sha256", sha, "verdict", j.status, "reason", reason, "incident_index", incident.Index, "count", count)
	return &Error{
		Code: EConflict, Problem: problem,
		Message: fmt.Sprintf("SOP Instance UID %s is attested at ledger index %d; these bytes are refused (%s); the attested version is kept",
			existing.Subject, existing.Index, reason),
		Details: map[string]any{
			"sop_instance_uid":      existing.Subject,
			"existing_ledger_index": existing.Index,
			"existing_entry_hash":   existing.LeafHashHex(),
			"existing_sha256":       existing.FileSHA256,
			"attempted_sha256":      sha,
			"verdict":               j.status,
			"changes":               nonNil(j.changes),
			"frames":                j.frames,
			"security_alert":        kind == custody.KindSecurityAlert,
			"conflict_ledger_index": incident.Index,
			"conflict_count":        count,
		},
	}
}

func nonNil(c []Change) []Change {
	if c == nil {
		return []Change{}
	}
	return c
}

// openEntry checks an ingest or revision entry end to end — leaf hash,
// body, envelope signature, statement — and returns its attestation.
func (s *Service) openEntry(e ledger.Entry) (*Attestation, error) {
	_, att, err := s.openPredicate(e)
	return att, err
}

func (s *Service) openPredicate(e ledger.Entry) (Predicate, *Attestation, error) {
	if ledger.LeafHash(e.Body) != e.LeafHash {
		return Predicate{}, nil, fmt.Errorf("entry %d: leaf hash does not match its body", e.Index)
	}
	if p, att, ok := s.verified.get(e); ok {
		return p, att, nil
	}
	body, err := decodeIngestBody(e)
	if err != nil {
		return Predicate{}, nil, err
	}
	if sigs := body.Envelope.Signatures; len(sigs) > 0 && sigs[0].KeyID != s.attestor.KeyID() {
		// Signed by a key this server does not hold: a configuration
		// error, not evidence against the image.
		return Predicate{}, nil, fmt.Errorf("%w: entry %d is signed by key id %s, this server holds %s",
			ErrKeyUnavailable, e.Index, sigs[0].KeyID, s.attestor.KeyID())
	}
	payload, err := s.attestor.Open(body.Envelope)
	if err != nil {
		return Predicate{}, nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return Predicate{}, nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	if st.SubjectSHA256() != e.FileSHA256 || st.Predicate.SOPInstanceUID != e.Subject {
		return Predicate{}, nil, fmt.Errorf("entry %d: signed statement names other bytes or another instance", e.Index)
	}
	att := newAttestation(e, st.Predicate, body.Envelope)
	att.chunks, att.chunkList = st.Predicate.Chunks, body.Chunks
	if e.Kind == custody.KindIdentityCorrection {
		if att.IdentityCorrection, err = decodeCorrection(e); err != nil {
			return Predicate{}, nil, err
		}
	}
	s.verified.put(e, st.Predicate, att)
	return st.Predicate, att, nil
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
		Revises:           p.Revises,
	}
}

func revisesIndex(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}
