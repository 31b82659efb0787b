// Package report builds and verifies chain-of-custody reports: a bundle
// of a subject's complete history in the custody log (and, for a study,
// in the audit log) with everything a third party needs to check it
// offline, signed by the attestation key as an in-toto statement in a
// DSSE envelope.
//
// The signature says who issued the report; it is not what makes it
// trustworthy. A key-holding insider can re-sign anything, so Verify
// checks the content itself: every entry against the logs' signed
// checkpoints (only the logs' verifier keys are trusted for that) and
// the subject proofs' completeness (ledger.VerifySubjectProof).
package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// Query is what a report is about: a study, or a patient (by Patient ID;
// its chain's key comes from the patient's salt, held by the server).
type Query struct {
	Study   string `json:"study,omitempty"`
	Patient string `json:"patient,omitempty"`
}

// Bundle is a report's predicate: the subject's proof in the custody log
// and, for a study, in the audit log.
type Bundle struct {
	V         int                  `json:"v"`
	Query     Query                `json:"query"`
	Generated time.Time            `json:"generated"`
	Custody   *ledger.SubjectProof `json:"custody"`
	Audit     *ledger.SubjectProof `json:"audit,omitempty"`
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

// Sign wraps b in an in-toto statement, its subject the custody proof's
// subject key, and signs it.
func Sign(ctx context.Context, a *signer.Attestor, b *Bundle) (signer.Envelope, error) {
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
	return a.Sign(ctx, st)
}

func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// Keys are what an offline verifier trusts: the attestation key that
// issued the report and each log's origin and verifier key.
type Keys struct {
	Attestation            *signer.Verifier
	LogOrigin, AuditOrigin string
	Log, Audit             note.Verifier
}

// Verified is what a sound report proves: up to each log's checkpoint,
// the subject's entries are exactly these.
type Verified struct {
	Query                  Query
	Generated              time.Time
	CustodySize, AuditSize uint64
	Custody, Audit         []ledger.Entry
}

// Verify opens env with the attestation key and checks the bundle's
// content against the logs' keys: the first problem is the error.
func Verify(env signer.Envelope, k Keys) (*Verified, error) {
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
	out := &Verified{Query: b.Query, Generated: b.Generated}
	switch {
	case b.Query.Study != "" && b.Query.Patient == "":
		// A study's key is derived from its UID: the verifier checks it.
		key := subject.Study(b.Query.Study)
		if b.Custody.Subject != key || b.Audit == nil || b.Audit.Subject != key {
			return nil, fmt.Errorf("the proofs are not of study %s (and the audit log's must be there)", b.Query.Study)
		}
	case b.Query.Patient != "" && b.Query.Study == "":
		// A patient's key is derived from a salt only the server holds:
		// the report binds it to the Patient ID by the issuer's signature.
		if b.Audit != nil {
			return nil, errors.New("a patient's report holds an audit proof: the audit log is chained by study only")
		}
	default:
		return nil, errors.New("a report is about a study or a patient")
	}
	es, err := ledger.VerifySubjectProof(k.LogOrigin, k.Log, b.Custody.Subject, 0, b.Custody)
	if err != nil {
		return nil, fmt.Errorf("custody log: %w", err)
	}
	out.CustodySize, out.Custody = es.Size, es.Entries
	if b.Audit != nil {
		as, err := ledger.VerifySubjectProof(k.AuditOrigin, k.Audit, b.Audit.Subject, 0, b.Audit)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		out.AuditSize, out.Audit = as.Size, as.Entries
	}
	return out, nil
}
