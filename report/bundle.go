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

	"golang.org/x/mod/sumdb/note"

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
	Type          string          `json:"_type"`
	Subject       []stmtSubject   `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type stmtSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Signer signs a DSSE payload: the attestation key.
type Signer interface {
	Sign(ctx context.Context, payload []byte) (signer.Envelope, error)
}

// Sign wraps b in an in-toto statement, its subject the custody proof's
// subject key, and signs it.
func Sign(ctx context.Context, s Signer, b *Bundle) (signer.Envelope, error) {
	if b.Custody == nil {
		return signer.Envelope{}, errors.New("report: a bundle without a custody proof")
	}
	pred, err := json.Marshal(b)
	if err != nil {
		return signer.Envelope{}, err
	}
	st, err := json.Marshal(statement{Type: statementType, PredicateType: PredicateType, Predicate: pred,
		Subject: []stmtSubject{{Name: "subject:" + b.Custody.Subject.String(), Digest: map[string]string{"sha256": hex.EncodeToString(digest(pred))}}}})
	if err != nil {
		return signer.Envelope{}, err
	}
	return s.Sign(ctx, st)
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
}

// Proven is one log's part of a report: its checkpoint and the entries
// it proves complete.
type Proven struct {
	Origin    string
	Subject   ledger.SubjectKey
	Size      uint64
	Root      []byte
	Witnesses []string // names of the trusted witnesses that cosigned the checkpoint
	Entries   []ledger.Entry
}

// Entries is the number of entries of every log's proofs.
func (v *Verified) Entries() int {
	n := len(v.Custody.Entries)
	for _, a := range v.Audit {
		n += len(a.Entries)
	}
	return n
}

// Verify opens env with the attestation key and checks the bundle's
// content against the logs' keys: the first problem is the error. Without
// the audit log's key (k.Audit nil) its proofs are left unchecked.
func Verify(env signer.Envelope, k Keys) (*Verified, error) {
	if k.Attestation == nil || k.Log == nil {
		return nil, errors.New("the attestation key and the custody log's verifier key are needed")
	}
	payload, err := k.Attestation.Open(env)
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
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != hex.EncodeToString(digest(st.Predicate)) {
		return nil, errors.New("the statement's subject is not the digest of its predicate")
	}
	var b Bundle
	if err := json.Unmarshal(st.Predicate, &b); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if b.V != 1 || b.Custody == nil {
		return nil, fmt.Errorf("bundle of version %d without a custody proof", b.V)
	}
	q := b.Query
	switch {
	case q.Study != "" && q.Patient == "":
		// A study's key is derived from its UID: the verifier checks it.
		if b.Custody.Subject != subject.Study(q.Study) {
			return nil, fmt.Errorf("the custody proof is not of study %s", q.Study)
		}
	case q.Patient != "" && q.Study == "" && q.SOP == "":
		// A patient's key is derived from a salt only the server holds:
		// the report binds it to the Patient ID by the issuer's signature.
	default:
		return nil, errors.New("a report is about a study (and perhaps one of its instances) or a patient")
	}
	out := &Verified{Query: q, Generated: b.Generated, KeyID: k.Attestation.KeyID()}
	if out.Custody, err = verifyProof(k.LogOrigin, k.Log, k.Witnesses, b.Custody.Subject, b.Custody); err != nil {
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
	return Proven{Origin: origin, Subject: key, Size: es.Size, Root: root, Witnesses: names, Entries: es.Entries}, nil
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
