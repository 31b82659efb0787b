package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/dicomseal/dicomseal/attest"
)

// ProblemBase prefixes every problem type: a problem's type is ProblemBase
// followed by its stable slug (RFC 9457).
const ProblemBase = "https://dicomseal.dev/problems/"

// API-level problem slugs (the domain's are in package attest).
const (
	problemUnsupportedMediaType = "unsupported-media-type"
	problemRouteNotFound        = "route-not-found"
	problemMethodNotAllowed     = "method-not-allowed"
)

var titles = map[string]string{
	attest.ProblemInvalidDICOM:              "Invalid DICOM",
	attest.ProblemInvalidRequest:            "Invalid request",
	attest.ProblemBodyTooLarge:              "Request body too large",
	attest.ProblemNotFound:                  "Not attested",
	attest.ProblemInstanceConflict:          "Conflicting instance",
	attest.ProblemIdentityChangeRefused:     "Identity change refused",
	attest.ProblemIdentityCorrectionRefused: "Identity correction refused",
	attest.ProblemUnverifiableReencoding:    "Re-encoding cannot be verified",
	attest.ProblemIntegrity:                 "Integrity violation",
	attest.ProblemStorageUnavailable:        "Object store unavailable",
	attest.ProblemLedgerUnavailable:         "Ledger unavailable",
	attest.ProblemInternal:                  "Internal error",
	attest.ProblemInsufficientStorage:       "Insufficient storage",
	attest.ProblemBodyTimeout:               "Request body too slow",
	problemUnauthenticated:                  "Authentication required",
	problemForbidden:                        "Forbidden",
	problemRateLimited:                      "Too many requests",
	problemAuthLimited:                      "Too many failed authentications",
	problemNotReady:                         "Not ready",
	attest.ProblemNoCheckpoint:              "No checkpoint yet",
	attest.ProblemBadProof:                  "Invalid proof request",
	ProblemNoSyncReplica:                    "No synchronous standby",
	problemUnsupportedMediaType:             "Unsupported media type",
	problemRouteNotFound:                    "No such route",
	problemMethodNotAllowed:                 "Method not allowed",
}

var statusOf = map[attest.Code]int{
	attest.EInvalid:     http.StatusBadRequest,
	attest.ETooLarge:    http.StatusRequestEntityTooLarge,
	attest.ENotFound:    http.StatusNotFound,
	attest.EConflict:    http.StatusConflict,
	attest.EIntegrity:   http.StatusBadGateway, // the storage handed back bytes that fail verification
	attest.EUnavailable: http.StatusServiceUnavailable,
	attest.ENoSpace:     http.StatusInsufficientStorage,
	attest.ETimeout:     http.StatusRequestTimeout,
	attest.EInternal:    http.StatusInternalServerError,
}

// retryAfterSeconds is sent with every 503.
const retryAfterSeconds = "5"

// writeError answers with the problem+json form of err and logs what the
// client does not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *attest.Error
	if !errors.As(err, &e) {
		e = &attest.Error{Code: attest.EInternal, Problem: attest.ProblemInternal, Message: "internal error", Err: err}
	}
	status := statusOf[e.Code]
	if e.Problem == problemUnsupportedMediaType {
		status = http.StatusUnsupportedMediaType
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if e.Code == attest.EIntegrity {
		reason, _ := e.Details["reason"].(string)
		s.metrics.violations.WithLabelValues(reason).Inc()
	}
	switch e.Code {
	case attest.EUnavailable, attest.ENoSpace:
		w.Header().Set("Retry-After", retryAfterSeconds)
	case attest.ETimeout:
		s.metrics.bodyTimeouts.Inc()
		w.Header().Set("Connection", "close") // the connection's read side is spent
	}
	writeProblem(w, status, e.Problem, e.Message, e.Details)
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string, ext map[string]any) {
	body := make(map[string]any, len(ext)+4)
	for k, v := range ext {
		body[k] = v
	}
	body["type"] = ProblemBase + slug
	body["title"] = titles[slug]
	body["status"] = status
	body["detail"] = detail
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeDeadline(w, 0)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// answerWriteTimeout bounds how long a client may take to read a JSON
// answer: one that does not read cannot hold the connection.
const answerWriteTimeout = 30 * time.Second

// writeDeadline gives the answer about to be written answerWriteTimeout,
// plus size at --body-min-rate's default pace for a large body.
func writeDeadline(w http.ResponseWriter, size int64) {
	d := answerWriteTimeout + time.Duration(size/(4<<10))*time.Second
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, attest.ProblemInternal, "internal error", nil)
		return
	}
	writeDeadline(w, int64(len(b))) // an audit answer with proofs may be megabytes
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
