// Package report builds and verifies chain-of-custody reports: a bundle
// of a subject's complete history in the custody log and in the audit log
// with everything a third party needs to check it offline, signed by the
// attestation key as an in-toto statement in a DSSE envelope
// (docs/report.md).
//
// The signature says who issued the report; it is not what makes it
// trustworthy. A key-holding insider can re-sign anything, so Verify
// checks the content itself: every entry against the logs' signed
// checkpoints (only the logs' verifier keys are trusted for that) and
// the subject proofs' completeness (ledger.VerifySubjectProof).
package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
	"github.com/dicomseal/dicomseal/subject"
)

// PredicateType is the in-toto predicate type of a custody report; its
// version changes whenever the bundle's meaning does.
const PredicateType = "https://dicomseal.dev/custody-report/v1"

const statementType = "https://in-toto.io/Statement/v1"

// Query is what a report is about: a study, a patient (by Patient ID; its
// chain's key comes from the patient's salt, held by the server), or one
// instance of a study. From and To bound the events shown, not what is
// proven: a chain is proven from its first entry, whatever the window.
type Query struct {
	Study   string     `json:"study,omitempty"`
	Patient string     `json:"patient,omitempty"`
	SOP     string     `json:"sop,omitempty"` // with Study: that instance's events only
	From    *time.Time `json:"from,omitempty"`
	To      *time.Time `json:"to,omitempty"`
}

// Bundle is a report's predicate: the subject's proof in the custody log
// and, for every study it is chained under, that study's proof in the
// audit log (which chains its entries by study only).
type Bundle struct {
	V         int                    `json:"v"`
	Query     Query                  `json:"query"`
	Generated time.Time              `json:"generated"`
	Custody   *ledger.SubjectProof   `json:"custody"`
	Audit     []*ledger.SubjectProof `json:"audit"`
}

type statement struct {
	Type          string        `json:"_type"`
	Subject       []stmtSubject `json:"subject"`
	PredicateType string        `json:"predicateType"`
	Predicate     predicateBody `json:"predicate"`
}

type stmtSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// predicateBody is what the signed statement says of the bundle beside
// its digest: what it is about and when it was made, so that the
// envelope alone names the report.
type predicateBody struct {
	Query     Query     `json:"query"`
	Generated time.Time `json:"generated"`
}

// Document is a report as it is handed out and verified: the bundle's
// exact JSON bytes, and a DSSE envelope over an in-toto statement whose
// subject is their SHA-256. The bundle is not inside the envelope's
// payload: its entries would be base64 twice over.
type Document struct {
	Bundle   json.RawMessage `json:"bundle"`
	Envelope signer.Envelope `json:"envelope"`
	// Subject, set by Sign, is the custody proof's subject key: a
	// patient's names them in the audit trail without their Patient ID.
	Subject ledger.SubjectKey `json:"-"`
}

// MarshalJSON writes the bundle's bytes as they are: they are what the
// statement's digest names (encoding/json would re-compact them).
func (d Document) MarshalJSON() ([]byte, error) {
	env, err := json.Marshal(d.Envelope)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(d.Bundle)+len(env)+32)
	out = append(out, `{"bundle":`...)
	out = append(out, d.Bundle...)
	out = append(out, `,"envelope":`...)
	out = append(out, env...)
	return append(out, '}'), nil
}

// ParseDocument reads a report document. The bundle is taken as the
// bytes between `{"bundle":` and the last `,"envelope":` when the
// document has that form (as dicomseal writes it), without a pass of its
// own: Verify checks those bytes against the signed digest and parses
// them. Any other form of the same JSON is read by encoding/json.
func ParseDocument(raw []byte) (*Document, error) {
	raw = bytes.TrimSpace(raw)
	const head, sep = `{"bundle":`, `,"envelope":`
	if bytes.HasPrefix(raw, []byte(head)) && bytes.HasSuffix(raw, []byte("}")) {
		if i := bytes.LastIndex(raw, []byte(sep)); i > len(head) {
			var env signer.Envelope
			if json.Unmarshal(raw[i+len(sep):len(raw)-1], &env) == nil && env.Payload != "" {
				return &Document{Bundle: raw[len(head):i], Envelope: env}, nil
			}
		}
	}
	var d Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("not a custody report: %w", err)
	}
	if len(d.Bundle) == 0 || d.Envelope.Payload == "" {
		return nil, errors.New("not a custody report: it needs a bundle and its envelope")
	}
	return &d, nil
}

// Signer signs a DSSE payload: the attestation key.
type Signer interface {
	Sign(ctx context.Context, payload []byte) (signer.Envelope, error)
}

// Sign encodes b and signs an in-toto statement naming its digest.
func Sign(ctx context.Context, s Signer, b *Bundle) (*Document, error) {
	if b.Custody == nil {
		return nil, errors.New("report: a bundle without a custody proof")
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	st, err := json.Marshal(statement{Type: statementType, PredicateType: PredicateType,
		Predicate: predicateBody{Query: b.Query, Generated: b.Generated},
		Subject:   []stmtSubject{{Name: "custody-report", Digest: map[string]string{"sha256": hex.EncodeToString(digest(raw))}}}})
	if err != nil {
		return nil, err
	}
	env, err := s.Sign(ctx, st)
	if err != nil {
		return nil, err
	}
	return &Document{Bundle: raw, Envelope: env, Subject: b.Custody.Subject}, nil
}

func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// Keys are what an offline verifier trusts: the attestation key that
// issued the report, each log's origin and verifier key, and the
// witnesses whose cosignatures it counts (none: "not witnessed").
type Keys struct {
	Attestation            *signer.Verifier
	LogOrigin, AuditOrigin string
	Log, Audit             note.Verifier
	Witnesses              []note.Verifier
	// Held are checkpoints the verifier already holds, by log (from a
	// witness, or 'dicomseal log watch'): a report at an older one could
	// leave out what came after it, so it is refused. Nil: no such check,
	// and the report is as fresh as its issuer says.
	HeldLog, HeldAudit *Held
}

// Held is a checkpoint the verifier holds: its tree size and root.
type Held struct {
	Size uint64
	Root []byte
}

// Verified is what a sound report proves: up to each log's checkpoint,
// the subject's entries are exactly these.
type Verified struct {
	Query     Query
	Generated time.Time
	KeyID     string // the attestation key that issued the report
	Custody   Proven
	Audit     []Proven // one per study the custody entries are chained under
	// Events are the entries of both logs as rows, in time order, within
	// the query's instance and window; Instances are the SOP Instance UIDs
	// the custody entries attest, in the order of their first entry.
	Events    []Event
	Instances []string
	// AuditUnchecked counts the audit proofs left unchecked (and their
	// entries unshown) for want of the audit log's key.
	AuditUnchecked int

	chainInstances int // the instances the chain attests, whatever the query shows

	// Names, set by the caller for a reader allowed to see them, are each
	// instance's patient as the correctable identity table holds it: shown
	// in HTML and PDF, marked as not proven, never in the bundle.
	Names map[string]string

	digests map[string]string // each instance's latest attested bytes
}

// Digests are the SHA-256 of each instance's latest attested bytes, by
// SOP Instance UID: what its identity row is kept under.
func (v *Verified) Digests() map[string]string {
	out := make(map[string]string, len(v.Instances))
	for _, uid := range v.Instances {
		out[uid] = v.digests[uid]
	}
	return out
}

// Proven is one log's part of a report: its checkpoint and the entries
// it proves complete.
type Proven struct {
	Origin    string
	Key       string // the log key's name and hash, as in its verifier key
	Subject   ledger.SubjectKey
	Size      uint64
	Root      []byte
	Witnesses []string // names of the trusted witnesses that cosigned the checkpoint
	Entries   []ledger.Entry
}

// Verify opens env with the attestation key and checks the bundle's
// content against the logs' keys: the first problem is the error. Without
// the audit log's key (k.Audit nil) its proofs are left unchecked.
func Verify(doc *Document, k Keys) (*Verified, error) {
	if k.Attestation == nil || k.Log == nil {
		return nil, errors.New("the attestation key and the custody log's verifier key are needed")
	}
	payload, err := k.Attestation.Open(doc.Envelope)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	if st.Type != statementType || st.PredicateType != PredicateType {
		return nil, fmt.Errorf("not a custody report (statement %q, predicate %q)", st.Type, st.PredicateType)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != hex.EncodeToString(digest(doc.Bundle)) {
		return nil, errors.New("the signed statement names other bytes than the bundle's")
	}
	var b Bundle
	// encoding/json/v2's decoder: a bundle of 10,000 instances is tens of
	// megabytes, which it reads in a third of the time (BENCHMARKS.md).
	if err := jsonv2.Unmarshal(doc.Bundle, &b); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if b.V != 1 || b.Custody == nil {
		return nil, fmt.Errorf("bundle of version %d without a custody proof", b.V)
	}
	if !sameQuery(st.Predicate.Query, b.Query) || !st.Predicate.Generated.Equal(b.Generated) {
		return nil, errors.New("the signed statement describes another report than the bundle")
	}
	q := b.Query
	switch {
	case q.Study != "" && q.Patient == "":
		// A UID that only looks like the study's (an invisible character)
		// would name an empty chain.
		for _, uid := range []string{q.Study, q.SOP} {
			if err := dicomfile.ValidUID(uid); uid != "" && err != nil {
				return nil, fmt.Errorf("the report's query: %w", err)
			}
		}
		// A study's key is derived from its UID: the verifier checks it.
		if b.Custody.Subject != subject.Study(q.Study) {
			return nil, fmt.Errorf("the custody proof is not of study %s", q.Study)
		}
	case q.Patient != "" && q.Study == "" && q.SOP == "":
		// A patient's key is derived from a salt only the server holds:
		// the report binds it to the Patient ID by the issuer's signature
		// alone. A patient is known only by their entries, so a report of
		// none is not one.
		if b.Custody.Head == nil {
			return nil, errors.New("a patient's report that proves no entry: a patient has a key only once an entry names them")
		}
	default:
		return nil, errors.New("a report is about a study (and perhaps one of its instances) or a patient")
	}
	out := &Verified{Query: q, Generated: b.Generated, KeyID: k.Attestation.KeyID()}
	if out.Custody, err = verifyProof(k.LogOrigin, k.Log, k.Witnesses, b.Custody.Subject, b.Custody); err != nil {
		return nil, fmt.Errorf("custody log: %w", err)
	}
	if err := fresh(out.Custody, k.HeldLog); err != nil {
		return nil, fmt.Errorf("custody log: %w", err)
	}
	bodies := make([][]byte, len(out.Custody.Entries))
	for i, e := range out.Custody.Entries {
		bodies[i] = e.Body
	}
	want, err := auditSubjects(q, out.Custody.Subject, bodies)
	if err != nil {
		return nil, err
	}
	if len(b.Audit) != len(want) {
		return nil, fmt.Errorf("audit log: the custody entries are chained under %d studies, the bundle proves %d in the audit log", len(want), len(b.Audit))
	}
	for i, p := range b.Audit {
		if p == nil || p.Subject != want[i] {
			return nil, fmt.Errorf("audit log: proof %d is not of subject %s", i, want[i])
		}
		if k.Audit == nil {
			out.AuditUnchecked++
			continue
		}
		a, err := verifyProof(k.AuditOrigin, k.Audit, k.Witnesses, want[i], p)
		if err == nil {
			err = fresh(a, k.HeldAudit)
		}
		if err == nil && i > 0 && (a.Size != out.Audit[0].Size || !bytes.Equal(a.Root, out.Audit[0].Root)) {
			// Each at a checkpoint of its own, one could be old.
			err = fmt.Errorf("proof %d is at the checkpoint of size %d, proof 0 at %d: a report's audit proofs share one", i, a.Size, out.Audit[0].Size)
		}
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		out.Audit = append(out.Audit, a)
	}
	if err := out.decode(); err != nil {
		return nil, err
	}
	return out, nil
}

// fresh refuses a proof at a checkpoint older than the one held, or of
// another tree at the same size (a fork).
func fresh(p Proven, held *Held) error {
	switch {
	case held == nil:
		return nil
	case p.Size < held.Size:
		return fmt.Errorf("the report is at the checkpoint of size %d, older than the one you hold (%d): what came after it could be left out", p.Size, held.Size)
	case p.Size == held.Size && !bytes.Equal(p.Root, held.Root):
		return fmt.Errorf("the report's checkpoint of size %d has another root than the one you hold: the log forked", p.Size)
	}
	return nil
}

// verifyProof checks one subject proof, and which witnesses cosigned its
// checkpoint.
func verifyProof(origin string, v note.Verifier, witnesses []note.Verifier, key ledger.SubjectKey, p *ledger.SubjectProof) (Proven, error) {
	es, err := ledger.VerifySubjectProof(origin, v, key, 0, p)
	if err != nil {
		return Proven{}, err
	}
	root, names, err := checkpointFacts(p.Checkpoint, origin, v, witnesses)
	if err != nil {
		return Proven{}, err
	}
	return Proven{Origin: origin, Key: fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()), Subject: key, Size: es.Size, Root: root, Witnesses: names, Entries: es.Entries}, nil
}

// auditSubjects are the subjects whose audit proofs a report must hold,
// sorted: a study's own; for a patient, every other subject its custody
// entries are chained under (its studies; and, for an instance moved
// between patients, the other patient, which the audit log proves absent).
func auditSubjects(q Query, key ledger.SubjectKey, bodies [][]byte) ([]ledger.SubjectKey, error) {
	if q.Study != "" {
		return []ledger.SubjectKey{key}, nil
	}
	var keys []ledger.SubjectKey
	for i, body := range bodies {
		links, err := ledger.ChainsOf(body)
		if err != nil {
			return nil, fmt.Errorf("custody log: the proof's entry %d: %w", i+1, err)
		}
		for _, l := range links {
			if l.Subject != key && !slices.Contains(keys, l.Subject) {
				keys = append(keys, l.Subject)
			}
		}
	}
	slices.SortFunc(keys, func(a, b ledger.SubjectKey) int { return bytes.Compare(a[:], b[:]) })
	return keys, nil
}

func sameQuery(a, b Query) bool {
	same := func(x, y *time.Time) bool { return x == nil && y == nil || x != nil && y != nil && x.Equal(*y) }
	return a.Study == b.Study && a.Patient == b.Patient && a.SOP == b.SOP && same(a.From, b.From) && same(a.To, b.To)
}
