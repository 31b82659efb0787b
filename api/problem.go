package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/problem"
)

// ProblemBase prefixes every problem type: a problem's type is ProblemBase
// followed by its stable slug (RFC 9457).
const ProblemBase = problem.Base

// retryAfterSeconds is sent with every 503.
const retryAfterSeconds = "5"

// writeError answers with the problem+json form of err and logs what the
// client does not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *attest.Error
	if !errors.As(err, &e) {
		e = &attest.Error{Code: attest.EInternal, Problem: attest.ProblemInternal, Message: "internal error", Err: err}
	}
	// The table decides status and headers, so that a problem type is
	// answered the same way whatever code its maker set.
	t := problem.Of(e.Problem)
	status := t.Status
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	s.countViolation(e)
	switch t.Code {
	case problem.EUnavailable, problem.ENoSpace:
		w.Header().Set("Retry-After", retryAfterSeconds)
	case problem.ETimeout:
		s.metrics.bodyTimeouts.Inc()
		w.Header().Set("Connection", "close") // the connection's read side is spent
	}
	writeProblem(w, e.Problem, e.Message, e.Details)
}

// countViolation counts an integrity violation in the metrics, whether it
// is answered as a problem or cuts a stream already begun.
func (s *Server) countViolation(err error) {
	var e *attest.Error
	if errors.As(err, &e) && problem.Of(e.Problem).Code == problem.EIntegrity {
		reason, _ := e.Details["reason"].(string)
		s.metrics.violations.WithLabelValues(reason).Inc()
	}
}

// cutAnswer ends an answer whose bytes stopped verifying after its first
// byte: the connection is cut, so that the client sees a broken transfer,
// never a short image that looks whole. A client that went away is only
// logged.
func (s *Server) cutAnswer(r *http.Request, object string, err error) {
	if errors.Is(err, chunks.ErrWrite) {
		s.log.InfoContext(r.Context(), "client went away during an answer", "object", object, "err", err)
		return
	}
	s.countViolation(err)
	s.log.ErrorContext(r.Context(), "answer cut while streaming: a chunk failed verification or the store failed", "object", object, "err", err)
	panic(http.ErrAbortHandler)
}

// writeProblem answers with a problem of the table (package problem): its
// type, title and status come from there.
func writeProblem(w http.ResponseWriter, slug, detail string, ext map[string]any) {
	t := problem.Of(slug)
	writeProblemStatus(w, t.Status, t, detail, ext)
}

// writeProblemStatus is writeProblem under another status: only /readyz,
// whose answer is 503 whichever dependency's problem it names.
func writeProblemStatus(w http.ResponseWriter, status int, t problem.Type, detail string, ext map[string]any) {
	body := make(map[string]any, len(ext)+4)
	for k, v := range ext {
		body[k] = v
	}
	body["type"] = t.URI()
	body["title"] = t.Title
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
		writeProblem(w, problem.Internal, "internal error", nil)
		return
	}
	writeDeadline(w, int64(len(b))) // an audit answer with proofs may be megabytes
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
