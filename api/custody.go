package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/dicomseal/dicomseal/report"
)

// maxReports is how many custody reports a server makes at once.
const maxReports = 2

// custodyReport answers GET /v1/custody?study=|patient=|sop=&from=&to=:
// the signed chain-of-custody bundle that `dicomseal verify-report`
// checks. The report is itself an export of the study's history: its
// audit event (custody.export) is durable before the first byte, and is
// chained under the study, so the next report lists this one.
func (s *Server) custodyReport(w http.ResponseWriter, r *http.Request) {
	if s.AuditLog == nil {
		writeProblem(w, problem.AuditNotConfigured, "this server keeps no audit log: a report proves the audit trail too", nil)
		return
	}
	v := r.URL.Query()
	q := report.Query{Study: v.Get("study"), Patient: v.Get("patient"), SOP: v.Get("sop")}
	switch {
	case q.SOP != "":
		noteObject(r, q.SOP)
	case q.Study != "":
		noteObject(r, q.Study)
		noteStudy(r, q.Study)
	case q.Patient != "":
		noteObject(r, "patient") // the audit trail never holds a Patient ID
	}
	if s.reports != nil {
		select {
		case s.reports <- struct{}{}:
			defer func() { <-s.reports }()
		default:
			w.Header().Set("Retry-After", "1")
			writeProblem(w, problem.RateLimited, fmt.Sprintf("at most %d custody reports are made at once: retry", maxReports), nil)
			return
		}
	}
	for name, dst := range map[string]**time.Time{"from": &q.From, "to": &q.To} {
		if raw := v.Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "%s must be an RFC 3339 time, got %q", name, raw))
				return
			}
			t = t.UTC()
			*dst = &t
		}
	}
	doc, q, err := s.svc.CustodyReport(r.Context(), q, s.AuditLog)
	if q.Study != "" {
		noteStudy(r, q.Study) // an instance's report is its study's
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.Patient != "" {
		// The patient's key (the log already holds it): which patient's
		// history left, and a chain to follow, without the Patient ID.
		noteObject(r, "patient:"+doc.Subject.String())
	}
	// Written as it is: the bundle's bytes are what the signature names.
	raw, err := doc.MarshalJSON()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// At the usual 4 KiB/s allowance a slow reader would hold a report's
	// memory and slot for hours; 256 KiB/s still serves a 120 MiB report
	// over a 2 Mbit/s link.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerWriteTimeout + time.Duration(len(raw)>>18)*time.Second))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(raw, '\n'))
}
