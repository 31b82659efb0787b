package api

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/dicomseal/dicomseal/attest"
)

// The verifiable log's read endpoints. The checkpoint is served as the
// signed note itself, so that any C2SP-aware client or witness can use it.

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	note, err := s.svc.Checkpoint(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(note)
}

func (s *Server) logEntry(w http.ResponseWriter, r *http.Request) {
	idx, err := uintParam(chi.URLParam(r, "index"), "index", true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.svc.LogEntry(r.Context(), idx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) inclusionProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, err := uintParam(q.Get("size"), "size", false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var p *attest.Proof
	switch leaf := q.Get("leaf_hash"); {
	case leaf != "" && q.Has("index"):
		err = attest.Errorf(attest.EInvalid, attest.ProblemBadProof, "give index or leaf_hash, not both")
	case leaf != "":
		p, err = s.svc.InclusionProofByLeaf(r.Context(), leaf, size)
	default:
		var idx uint64
		if idx, err = uintParam(q.Get("index"), "index", true); err == nil {
			p, err = s.svc.InclusionProof(r.Context(), idx, size)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// consistencyRange reads a consistency proof's from (required) and to.
func consistencyRange(r *http.Request) (from, to uint64, err error) {
	q := r.URL.Query()
	if from, err = uintParam(q.Get("from"), "from", true); err != nil {
		return 0, 0, err
	}
	to, err = uintParam(q.Get("to"), "to", false)
	return from, to, err
}

func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request) {
	from, to, err := consistencyRange(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.svc.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// uintParam parses a non-negative integer parameter; absent and optional is 0.
func uintParam(v, name string, required bool) (uint64, error) {
	if v == "" {
		if required {
			return 0, attest.Errorf(attest.EInvalid, attest.ProblemBadProof, "%s is required", name)
		}
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, attest.Errorf(attest.EInvalid, attest.ProblemBadProof, "%s must be a non-negative integer, got %q", name, v)
	}
	return n, nil
}

// subjectQuery reads a subject proof's study or patient, and size. The
// audit trail records the study, never a patient's identifier.
func subjectQuery(r *http.Request) (attest.SubjectQuery, uint64, error) {
	q := r.URL.Query()
	sq := attest.SubjectQuery{Study: q.Get("study"), Patient: q.Get("patient")}
	if sq.Study != "" {
		noteObject(r, sq.Study)
		noteStudy(r, sq.Study)
	} else if sq.Patient != "" {
		noteObject(r, "patient")
	}
	size, err := uintParam(q.Get("size"), "size", false)
	return sq, size, err
}

// subjectProof answers GET /v1/log/proof/subject: every custody entry of
// a study or patient, proven complete at a checkpoint.
func (s *Server) subjectProof(w http.ResponseWriter, r *http.Request) {
	sq, size, err := subjectQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.svc.SubjectProof(r.Context(), sq, size)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
