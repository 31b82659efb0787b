package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/problem"
)

// durableActions are the routes that hand out an image or a verdict: their
// audit record is durable before the first byte of the answer, and when it
// cannot be written they answer 503 audit-unavailable instead.
// Ingests and corrections are among them: every answer a client received
// has its event, whatever crashes after it. Token changes record theirs
// before the change itself (recordIntent).
var durableActions = map[string]bool{
	"instance.retrieve":            true,
	"instance.attestation":         true,
	"verify.file":                  true,
	"verify.digest":                true,
	"instance.ingest":              true,
	"instance.identity-correction": true,
	// A chain-of-custody report takes a study's history out.
	"custody.export": true,
	// A transfer records each instance sent before it leaves
	// (instance.transfer.send), and its answer like any other.
	"instance.transfer": true,
	"study.transfer":    true,
	// DICOMweb hands out images, metadata and patient data in results.
	"dicomweb.store":             true,
	"dicomweb.search.studies":    true,
	"dicomweb.search.series":     true,
	"dicomweb.search.instances":  true,
	"dicomweb.retrieve.study":    true,
	"dicomweb.retrieve.series":   true,
	"dicomweb.retrieve.instance": true,
	"dicomweb.metadata.study":    true,
	"dicomweb.metadata.series":   true,
	"dicomweb.metadata.instance": true,
	"dicomweb.frames":            true,
	"dicomweb.bulkdata":          true,
}

// sendsOut are the durable actions whose handler may have sent images to
// another system before its answer is withheld.
var sendsOut = map[string]bool{"instance.transfer": true, "study.transfer": true}

// durableWriter holds a handler's answer until its audit event, with the
// status about to be sent, is durable.
type durableWriter struct {
	http.ResponseWriter
	s      *Server
	r      *http.Request
	ev     audit.Event
	note   *auditNote
	wrote  bool
	failed bool
}

func (s *Server) durable(w http.ResponseWriter, r *http.Request, ev audit.Event, note *auditNote) *durableWriter {
	return &durableWriter{ResponseWriter: w, s: s, r: r, ev: ev, note: note}
}

// representation headers a refused answer must not keep.
var representationHeaders = []string{"Content-Type", "Content-Length", "Content-Range", "Content-Encoding",
	"ETag", "Repr-Digest", "Last-Modified", "Accept-Ranges", "Cache-Control", "Location"}

func (w *durableWriter) WriteHeader(code int) {
	if w.wrote {
		if !w.failed {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	w.wrote = true
	ev := w.ev
	w.note.mu.Lock()
	ev.Object = w.note.object
	w.note.mu.Unlock()
	ev.Study = w.note.studyOf(w.r)
	ev.Status, ev.Outcome = code, "allowed"
	if code >= 400 {
		ev.Outcome = "failed"
	}
	// No deadline of its own: the audit log's commit is bounded by
	// --db-timeout, and a waiter that gave up first would answer 503 for a
	// record that then commits as sent.
	if err := w.s.Audit.RecordDurable(context.WithoutCancel(w.r.Context()), ev); err != nil {
		w.failed = true
		ev.Status, ev.Outcome = http.StatusServiceUnavailable, "failed"
		w.s.record(ev) // the refusal, queued: written once the log is back
		w.s.log.ErrorContext(w.r.Context(), "audit record not written: answer withheld", "action", ev.Action,
			"object", ev.Object, "status", code, "err", err)
		h := w.ResponseWriter.Header()
		for _, k := range representationHeaders {
			h.Del(k)
		}
		w.ResponseWriter.Header().Set("Retry-After", retryAfterSeconds)
		msg := "the audit log cannot record this access now; nothing was sent; retry later"
		if sendsOut[ev.Action] {
			// The answer is withheld, not the move: each instance sent was
			// audited before it left and has its transfer entry.
			msg = "the audit log cannot record this answer now; instances may have been sent (each audited as " +
				"instance.transfer.send and recorded in a transfer entry): check the log before retrying"
		}
		writeProblem(w.ResponseWriter, problem.AuditUnavailable, msg, nil)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

var errWithheld = errors.New("answer withheld: its audit record could not be written")

func (w *durableWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return 0, errWithheld
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps the sendfile path of a spooled retrieval.
func (w *durableWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return 0, errWithheld
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *durableWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *durableWriter) started() bool { return w.wrote }
