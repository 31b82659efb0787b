package api

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/problem"
)

// maxTransferRequest bounds a transfer request's JSON body.
const maxTransferRequest = 8 << 10

// transferRequest reads {"destination", "purpose", "push"} and arranges
// that each instance sent is audited, durably, before its bytes leave.
func (s *Server) transferRequest(w http.ResponseWriter, r *http.Request) (attest.TransferRequest, error) {
	var req attest.TransferRequest
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, &attest.Error{Code: problem.EUnsupported, Problem: problem.UnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))}
	}
	dec := json.NewDecoder(io.LimitReader(s.pace(w, r.Body), maxTransferRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, attest.Errorf(attest.EInvalid, problem.InvalidRequest,
			"the body must be a JSON object with destination, purpose and push: %v", err)
	}
	req.BeforeSend = func(uid, study string) error {
		noteStudy(r, study) // the request's own record, too
		if err := recordEach(r, "instance.transfer.send", uid, study, http.StatusAccepted); err != nil {
			return &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable,
				Message: "the audit record of the send cannot be written; nothing was sent", Err: err}
		}
		return nil
	}
	return req, nil
}

// transferInstance answers POST /v1/instances/{uid}/transfers: 201 with
// the transfer entry.
func (s *Server) transferInstance(w http.ResponseWriter, r *http.Request) {
	s.transfer(w, r, "sopInstanceUID", func(uid string, req attest.TransferRequest, actor string) (any, error) {
		t, err := s.svc.TransferInstance(r.Context(), uid, req, actor)
		if t != nil {
			noteStudy(r, t.StudyInstanceUID) // recorded, sent or blocked
		}
		return t, err
	})
}

// transferStudy answers POST /v1/studies/{study}/transfers: 201 with
// every instance's transfer entry.
func (s *Server) transferStudy(w http.ResponseWriter, r *http.Request) {
	s.transfer(w, r, "study", func(study string, req attest.TransferRequest, actor string) (any, error) {
		ts, err := s.svc.TransferStudy(r.Context(), study, req, actor)
		return map[string]any{"study_instance_uid": study, "transfers": ts}, err
	})
}

// transfer reads the path's UID (param) and the request, and answers what
// call returns.
func (s *Server) transfer(w http.ResponseWriter, r *http.Request, param string,
	call func(uid string, req attest.TransferRequest, actor string) (any, error)) {
	uid := chi.URLParam(r, param)
	noteObject(r, uid)
	req, err := s.transferRequest(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, _ := auth.FromContext(r.Context())
	out, err := call(uid, req, id.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}
