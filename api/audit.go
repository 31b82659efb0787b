package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
)

// AuditQuerier reads the audit trail, and the audit log as a log: its
// checkpoints and consistency proofs, public like the custody log's, so a
// witness can follow it. Errors: ledger.ErrNotFound before the first
// checkpoint, *ledger.BadParameterError for sizes the tree does not have.
type AuditQuerier interface {
	Query(ctx context.Context, f audit.Filter) ([]audit.Found, error)
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, uint64, error)
	SubjectProof(ctx context.Context, key ledger.SubjectKey, size uint64) (*ledger.SubjectProof, error)
}

// auditLogError names what failed on the audit log.
func auditLogError(err error) error {
	var bad *ledger.BadParameterError
	switch {
	case errors.As(err, &bad):
		return &attest.Error{Code: attest.EInvalid, Problem: attest.ProblemBadProof, Message: bad.Msg, Err: err}
	case errors.Is(err, ledger.ErrNotFound):
		return attest.Errorf(attest.ENotFound, attest.ProblemNoCheckpoint, "the audit log has published no checkpoint yet")
	}
	return &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable, Message: "the audit log is unavailable", Err: err}
}

func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.AuditLog == nil {
		writeProblem(w, problem.AuditNotConfigured, "this server keeps no audit log", nil)
		return
	}
	note, err := s.AuditLog.Checkpoint(r.Context())
	if err != nil {
		s.writeError(w, r, auditLogError(err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(note)
}

func (s *Server) auditConsistencyProof(w http.ResponseWriter, r *http.Request) {
	if s.AuditLog == nil {
		writeProblem(w, problem.AuditNotConfigured, "this server keeps no audit log", nil)
		return
	}
	from, to, err := consistencyRange(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hashes, size, err := s.AuditLog.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		s.writeError(w, r, auditLogError(err))
		return
	}
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = hex.EncodeToString(h)
	}
	writeJSON(w, http.StatusOK, attest.Proof{From: &from, TreeSize: size, Hashes: out})
}

// auditQuery answers GET /v1/audit?actor=&since=&until=&limit= for auditors.
func (s *Server) auditQuery(w http.ResponseWriter, r *http.Request) {
	if s.AuditLog == nil {
		writeProblem(w, problem.AuditNotConfigured, "this server keeps no audit log", nil)
		return
	}
	q := r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Object: q.Get("object")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "%s must be an RFC 3339 time, got %q", name, v))
				return
			}
			*dst = t
		}
	}
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > 1<<62 {
			s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "from must be a log index, got %q", v))
			return
		}
		f.From = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "limit must be a positive integer, got %q", v))
			return
		}
		f.Limit = n
	}
	found, err := s.AuditLog.Query(r.Context(), f)
	var tampered *audit.TamperedError
	if errors.As(err, &tampered) {
		s.log.ErrorContext(r.Context(), "audit log fails verification; nothing served", "index", tampered.Index, "reason", tampered.Reason)
		writeProblem(w, problem.AuditTampered, tampered.Error()+"; nothing is served from it (run dicomseal log verify)",
			map[string]any{"index": tampered.Index})
		return
	}
	if errors.Is(err, ledger.ErrUnknownFormat) {
		s.writeError(w, r, &attest.Error{Code: attest.EUnavailable, Problem: problem.EntryFormatUnknown,
			Message: fmt.Sprintf("the audit log holds an entry this dicomseal does not read (%v): upgrade it; nothing is served meanwhile", err), Err: err})
		return
	}
	if err != nil {
		s.writeError(w, r, &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable, Message: "the audit log is unavailable", Err: err})
		return
	}
	if found == nil {
		found = []audit.Found{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": found})
}

// auditSubjectProof answers GET /v1/audit/proof/subject: every audit
// entry about a study, proven complete at an audit checkpoint. The audit
// log chains its entries by study only.
func (s *Server) auditSubjectProof(w http.ResponseWriter, r *http.Request) {
	if s.AuditLog == nil {
		writeProblem(w, problem.AuditNotConfigured, "this server keeps no audit log", nil)
		return
	}
	sq, size, err := subjectQuery(r)
	if err == nil && sq.Patient != "" {
		err = attest.Errorf(attest.EInvalid, attest.ProblemBadProof, "the audit log chains its entries by study only: give study")
	}
	var key ledger.SubjectKey
	if err == nil {
		key, err = s.svc.SubjectKey(r.Context(), sq)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.AuditLog.SubjectProof(r.Context(), key, size)
	if errors.Is(err, ledger.ErrNoSubjectMap) {
		err = &attest.Error{Code: attest.ENotFound, Problem: problem.NoSubjectMap, Message: err.Error(), Err: err}
	}
	if err != nil {
		s.writeError(w, r, auditLogError(err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}
