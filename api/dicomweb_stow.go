package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"sync"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5"
)

// STOW-RS failure reasons (FailureReason, 0008,1197), PS3.18 Table
// 10.5.3-2 and PS3.4 status codes; 0xC409 is a vendor code in the "cannot
// understand" class, as dcm4chee uses it. Each is documented in
// openapi.yaml.
const (
	reasonProcessingFailure = 0x0110 // a dependency failed while storing this part
	reasonDuplicate         = 0x0111 // other bytes under an attested SOP Instance UID: refused, the attested version kept
	reasonOutOfResources    = 0xA700 // parsing this part would exceed --max-elements or --max-inflated
	reasonCannotUnderstand  = 0xC000 // not a DICOM Part 10 file, malformed, invalid UIDs, not application/dicom
	reasonOtherStudy        = 0xC409 // the instance's Study Instance UID is not the one in the URL
)

// stowPart is what became of one part.
type stowPart struct {
	classUID, instanceUID string
	study, series         string
	reason                int // 0: stored
	status                int // as POST /v1/instances would have answered
}

// stow answers STOW-RS: POST /dicomweb/studies[/{study}], a
// multipart/related body of application/dicom parts (or one
// application/dicom body). Parts are read one at a time and each goes
// through the native ingest; a refused part is listed in the
// FailedSOPSequence and the others still store. 200: all stored; 202: some
// refused; 409: none stored.
func (s *Server) stow(w http.ResponseWriter, r *http.Request) {
	study := chi.URLParam(r, "study")
	if study != "" {
		if _, err := uidParams(r, "study"); err != nil {
			s.writeError(w, r, err)
			return
		}
		noteObject(r, study)
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := parseMediaType(ct)
	var parts func(yield func(io.Reader, string) bool) error
	switch {
	case err == nil && mt == "application/dicom":
		body, err := s.dicomBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		parts = func(yield func(io.Reader, string) bool) error { yield(body, mt); return nil }
	case err == nil && mt == "multipart/related":
		if t := params["type"]; t != "" && t != "application/dicom" {
			writeProblem(w, problem.UnsupportedMediaType, fmt.Sprintf(
				"STOW-RS takes multipart/related; type=\"application/dicom\" (DICOM Part 10 parts), not type=%q", t), nil)
			return
		}
		boundary := params["boundary"]
		if boundary == "" {
			writeProblem(w, problem.InvalidMultipart, "the multipart/related Content-Type has no boundary parameter", nil)
			return
		}
		limit, whose := s.bodyLimit(r)
		if r.ContentLength > limit {
			s.writeError(w, r, tooLarge(limit, whose))
			return
		}
		body := &limitedBody{r: http.MaxBytesReader(w, readCloser{s.pace(w, r.Body), r.Body}, limit), limit: limit, whose: whose}
		closing := newSawClosing(body, boundary)
		parts = s.multipartParts(multipart.NewReader(closing, boundary), closing)
	default:
		writeProblem(w, problem.UnsupportedMediaType, fmt.Sprintf(
			"STOW-RS takes multipart/related; type=\"application/dicom\" or application/dicom, got %q", ct), nil)
		return
	}

	var (
		results  []stowPart
		records  sync.WaitGroup
		mu       sync.Mutex
		auditErr error
		sem      = make(chan struct{}, 64)
	)
	failure := func(err error) {
		mu.Lock()
		if auditErr == nil {
			auditErr = err
		}
		mu.Unlock()
	}
	var fatal error
	err = parts(func(part io.Reader, partType string) bool {
		res, err := s.storePart(r.Context(), part, partType, study)
		if err != nil { // a request-level failure: stop here
			fatal = err
			return false
		}
		results = append(results, res)
		// Each part is an ingest, and recorded as one, durably, before
		// the answer; the records overlap so that a commit takes many.
		records.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; records.Done() }()
			if err := recordEach(r, "instance.ingest", res.instanceUID, res.study, res.status); err != nil {
				failure(err)
			}
		}()
		return true
	})
	records.Wait()
	if err == nil {
		err = fatal
	}
	if err == nil && auditErr != nil {
		err = &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable, Err: auditErr,
			Message: "the audit log cannot record the stored parts now; the stored ones are kept, retry the request"}
	}
	if err == nil && len(results) == 0 {
		err = attest.Errorf(attest.EInvalid, problem.InvalidMultipart, "the multipart body has no parts")
	}
	if err != nil {
		s.writeError(w, r, storedSoFar(err, results))
		return
	}
	s.writeStowResponse(w, r, study, results)
}

// storedSoFar tells, in a request-level problem, how many parts were
// already stored before it (each durable and retrievable: a retry of the
// request stores them again as identical re-stores).
func storedSoFar(err error, results []stowPart) error {
	var e *attest.Error
	if !errors.As(err, &e) {
		return err
	}
	stored := 0
	for _, p := range results {
		if p.reason == 0 {
			stored++
		}
	}
	if stored == 0 {
		return err
	}
	c := *e
	c.Details = map[string]any{"parts_stored": stored}
	for k, v := range e.Details {
		c.Details[k] = v
	}
	return &c
}

// multipartParts yields the parts of a multipart/related body, at most
// s.MaxParts of them.
func (s *Server) multipartParts(mr *multipart.Reader, closing *sawClosing) func(yield func(io.Reader, string) bool) error {
	return func(yield func(io.Reader, string) bool) error {
		max := s.MaxParts
		if max <= 0 {
			max = DefaultMaxParts
		}
		for n := 0; ; n++ {
			p, err := mr.NextRawPart()
			if err == io.EOF && closing.seen {
				return nil
			}
			if err == io.EOF {
				// mime/multipart ends as cleanly at a body cut after a
				// boundary line as at the closing delimiter.
				return multipartError(errors.New("no closing delimiter"))
			}
			if err != nil {
				return multipartError(err)
			}
			if n == max {
				p.Close()
				return attest.Errorf(attest.ETooLarge, problem.TooManyParts,
					"more than %d parts in one request (--max-parts); send the rest in another", max)
			}
			pt := p.Header.Get("Content-Type")
			tr := &trackedPart{r: p}
			ok := yield(tr, pt)
			if tr.err != nil {
				return multipartError(tr.err)
			}
			if !ok {
				return nil
			}
		}
	}
}

// sawClosing watches a multipart body for its closing delimiter, a line
// beginning "--boundary--" (after LF or CRLF, as mime/multipart reads
// it), which no part's content can hold without ending the part: without
// it the body was cut short.
type sawClosing struct {
	r     io.Reader
	delim []byte // "\n--boundary--"
	// tail is the end of what was read before, for a delimiter split
	// across reads; started "\n", so that one at the very start counts.
	tail []byte
	seen bool
}

func newSawClosing(r io.Reader, boundary string) *sawClosing {
	d := []byte("\n--" + boundary + "--")
	return &sawClosing{r: r, delim: d, tail: append(make([]byte, 0, 2*len(d)), '\n')}
}

func (c *sawClosing) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n == 0 || c.seen {
		return n, err
	}
	// Across the junction with the last read, then within this one.
	head := p[:min(n, len(c.delim)-1)]
	junction := append(c.tail, head...)
	c.seen = bytes.Contains(junction, c.delim) || bytes.Contains(p[:n], c.delim)
	keep := junction
	if n >= len(c.delim)-1 {
		keep = p[n-(len(c.delim)-1) : n]
	} else if len(keep) > len(c.delim)-1 {
		keep = keep[len(keep)-(len(c.delim)-1):]
	}
	c.tail = append(c.tail[:0], keep...)
	return n, err
}

// trackedPart remembers a read error of the multipart framing itself, as
// opposed to a part whose content is not DICOM.
type trackedPart struct {
	r   io.Reader
	err error
}

func (t *trackedPart) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.err = err
	}
	return n, err
}

// multipartError is the problem of a body that is not well-formed
// multipart; the request's own limits (size, pace) pass through.
func multipartError(err error) error {
	var e *attest.Error
	if errors.As(err, &e) {
		return e
	}
	return &attest.Error{Code: attest.EInvalid, Problem: problem.InvalidMultipart, Err: err,
		Message: "the multipart/related body is malformed or ends before its closing boundary: " + err.Error()}
}

// storePart ingests one part. A refusal of the part is a stowPart with a
// reason; only a failure of the request itself (its body, a dependency
// down, the disk full) is an error.
func (s *Server) storePart(ctx context.Context, part io.Reader, partType, study string) (stowPart, error) {
	if partType != "" {
		mt, _, err := parseMediaType(partType)
		if err != nil || mt != "application/dicom" {
			// Drain it: the next part begins after it.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return stowPart{}, err
			}
			return stowPart{reason: reasonCannotUnderstand, status: http.StatusUnsupportedMediaType}, nil
		}
	}
	var res *attest.IngestResult
	var err error
	if study != "" {
		res, err = s.svc.IngestToStudy(ctx, part, study)
	} else {
		res, err = s.svc.Ingest(ctx, part)
	}
	if err == nil {
		status := http.StatusOK
		if res.Created {
			status = http.StatusCreated
		}
		return stowPart{classUID: res.SOPClassUID, instanceUID: res.SOPInstanceUID,
			study: res.StudyInstanceUID, series: res.SeriesInstanceUID, status: status}, nil
	}
	if t, ok := part.(*trackedPart); ok && t.err != nil {
		return stowPart{}, t.err // the framing broke, not this part's content
	}
	var e *attest.Error
	if !errors.As(err, &e) {
		return stowPart{}, err
	}
	p := stowPart{status: problem.Of(e.Problem).Status}
	if uid, ok := e.Details["sop_instance_uid"].(string); ok {
		p.instanceUID = uid
	}
	switch {
	case errors.Is(err, attest.ErrOtherStudy):
		p.reason = reasonOtherStudy
	case errors.Is(err, dicomfile.ErrLimitExceeded):
		p.reason = reasonOutOfResources
	case e.Code == attest.EInvalid:
		p.reason = reasonCannotUnderstand
	case e.Code == attest.EConflict:
		p.reason = reasonDuplicate
	case e.Code == attest.EIntegrity:
		p.reason = reasonProcessingFailure
	default:
		// Too large or too slow a body, a dependency down, the disk full:
		// the request fails as the native API's would.
		return stowPart{}, err
	}
	return p, nil
}

// writeStowResponse answers the Store Instances Response Module (PS3.18
// 10.5.3): what was stored, with where to retrieve it, and what was
// refused, with why.
func (s *Server) writeStowResponse(w http.ResponseWriter, r *http.Request, study string, results []stowPart) {
	base := s.dicomwebBase(r)
	var stored, failed []map[string]any
	studies := map[string]bool{}
	for _, p := range results {
		item := map[string]any{}
		if p.classUID != "" {
			item["00081150"] = uiAttr(p.classUID)
		}
		if p.instanceUID != "" {
			item["00081155"] = uiAttr(p.instanceUID)
		}
		if p.reason != 0 {
			item["00081197"] = jsonAttr{VR: "US", Value: []any{p.reason}}
			failed = append(failed, item)
			continue
		}
		item["00081190"] = urAttr(fmt.Sprintf("%s/studies/%s/series/%s/instances/%s", base, p.study, p.series, p.instanceUID))
		studies[p.study] = true
		stored = append(stored, item)
	}
	resp := map[string]any{}
	if study == "" && len(studies) == 1 {
		for st := range studies {
			study = st
		}
	}
	if study != "" {
		resp["00081190"] = urAttr(base + "/studies/" + study)
	}
	if len(stored) > 0 {
		resp["00081199"] = jsonAttr{VR: "SQ", Value: anySlice(stored)}
	}
	if len(failed) > 0 {
		resp["00081198"] = jsonAttr{VR: "SQ", Value: anySlice(failed)}
	}
	status := http.StatusOK
	switch {
	case len(stored) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	writeDICOMJSON(w, status, resp)
}

func anySlice[T any](v []T) []any {
	out := make([]any, len(v))
	for i := range v {
		out[i] = v[i]
	}
	return out
}
