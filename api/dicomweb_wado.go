package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5"
)

// WADO-RS hands out only verified bytes: each instance is verified whole
// against its attestation before its first byte is written. When an
// instance of a study or series fails, the answer stops there: if nothing
// was sent yet it is a 502 integrity-violation problem; otherwise the
// connection is cut before the closing boundary, so that the client sees
// an incomplete multipart body rather than a shorter study. The failure is
// in the log (an integrity-failure entry) and the audit trail either way.

// inlineMax is the longest binary value that metadata gives inline
// (InlineBinary) instead of as a BulkDataURI.
const inlineMax = 1024

// target is the instances a WADO-RS request names.
type target struct {
	study, series, instance string
}

func (t target) object() string {
	switch {
	case t.instance != "":
		return t.instance
	case t.series != "":
		return t.series
	}
	return t.study
}

func wadoTarget(r *http.Request) (target, error) {
	var t target
	names := []string{"study"}
	if chi.URLParam(r, "series") != "" {
		names = append(names, "series")
	}
	if chi.URLParam(r, "instance") != "" {
		names = append(names, "instance")
	}
	uids, err := uidParams(r, names...)
	if err != nil {
		return t, err
	}
	t.study = uids[0]
	if len(uids) > 1 {
		t.series = uids[1]
	}
	if len(uids) > 2 {
		t.instance = uids[2]
	}
	return t, nil
}

// instances lists what a target names: one instance is looked up in the
// log itself; a study or series through the catalog.
func (s *Server) instances(r *http.Request, t target) ([]catalog.Entry, error) {
	if t.instance != "" {
		return []catalog.Entry{{StudyInstanceUID: t.study, SeriesInstanceUID: t.series, SOPInstanceUID: t.instance}}, nil
	}
	if s.Catalog == nil {
		return nil, attest.Errorf(attest.ENotFound, problem.RouteNotFound, "this server keeps no DICOMweb index")
	}
	es, err := s.Catalog.Entries(r.Context(), t.study, t.series)
	if err != nil {
		return nil, s.catalogError(err)
	}
	if len(es) == 0 {
		what := "study " + t.study
		if t.series != "" {
			what = "series " + t.series + " of " + what
		}
		return nil, attest.Errorf(attest.ENotFound, attest.ProblemNotFound, "no instance of %s is indexed", what)
	}
	return es, nil
}

// retrieveVerified retrieves one instance of a target and checks that its
// attestation places it where the URL says (the catalog is correctable
// state; the attestation is what was signed).
func (s *Server) retrieveVerified(r *http.Request, t target, uid string, stream bool) (*attest.Retrieved, error) {
	open := s.svc.Retrieve
	if stream {
		open = s.svc.Stream
	}
	got, err := open(r.Context(), uid, nil)
	if err != nil {
		return nil, err
	}
	a := got.Attestation
	if a.StudyInstanceUID != t.study || (t.series != "" && a.SeriesInstanceUID != t.series) {
		got.Close()
		return nil, attest.Errorf(attest.ENotFound, attest.ProblemNotFound,
			"instance %s is attested in study %s, series %s, not under this URL", uid, a.StudyInstanceUID, a.SeriesInstanceUID)
	}
	return got, nil
}

// wadoBatch is how many instances of a study or series are retrieved and
// verified at once, and have their audit records committed together: a
// lone viewer's series otherwise waited for one durable commit per
// instance, one after another. It bounds the spools one request holds.
const wadoBatch = 4

// streamInstances writes each instance of a target through part, after
// verifying it, and records each (for a study or series) before it is
// sent. A failure before the first byte is a problem answer; after it the
// stream is cut (see above). An instance is recorded only once it and
// those before it in its batch verified (when streaming: their first
// chunk, see Service.Stream), so the trail never lacks an
// instance that was sent; when the client goes away or a write fails
// mid-batch, up to wadoBatch-1 instances recorded may not have been.
//
// With stream, the instances' bytes are verified chunk by chunk while
// part sends them (Service.Stream): a chunk that fails cuts the answer
// before any byte of it.
func (s *Server) streamInstances(w http.ResponseWriter, r *http.Request, t target, es []catalog.Entry, action string, stream bool,
	admit func(got *attest.Retrieved) error, begin func() error, part func(got *attest.Retrieved) error) (sent bool) {
	fail := func(err error) {
		switch {
		case errors.Is(err, errWithheld):
			return // the answer is already the 503 of its own record
		case !sent:
			s.writeError(w, r, err)
			return
		}
		s.countViolation(err)
		s.log.ErrorContext(r.Context(), "DICOMweb answer cut: an instance could not be sent", "object", t.object(), "err", err)
		panic(http.ErrAbortHandler)
	}
	for start := 0; start < len(es); start += wadoBatch {
		batch := es[start:min(start+wadoBatch, len(es))]
		gots, errs := make([]*attest.Retrieved, len(batch)), make([]error, len(batch))
		// Whatever happens (a panic in part included), no spool outlives
		// the batch; sendPart and the paths below close and clear theirs.
		defer func() {
			for _, g := range gots {
				if g != nil {
					g.Close()
				}
			}
		}()
		each(len(batch), func(j int) {
			gots[j], errs[j] = s.retrieveVerified(r, t, batch[j].SOPInstanceUID, stream)
			if errs[j] == nil && admit != nil {
				if errs[j] = admit(gots[j]); errs[j] != nil {
					gots[j].Close()
					gots[j] = nil
				}
			}
		})
		// ok: the instances before the batch's first failure.
		ok := len(batch)
		for j, err := range errs {
			if err != nil {
				ok = j
				break
			}
		}
		if t.instance == "" {
			recorded := make([]error, len(batch))
			each(min(ok+1, len(batch)), func(j int) {
				status := http.StatusOK
				if j == ok {
					status = problem.Of(problemOf(errs[j])).Status
				}
				recorded[j] = recordEach(r, action, batch[j].SOPInstanceUID, batch[j].StudyInstanceUID, status)
			})
			for j := 0; j < ok; j++ {
				if recorded[j] != nil {
					ok, errs[j] = j, &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable, Err: recorded[j],
						Message: "the audit log cannot record this access now; retry later"}
					break
				}
			}
		}
		for j := ok; j < len(batch); j++ {
			if gots[j] != nil {
				gots[j].Close()
				gots[j] = nil
			}
		}
		for j := 0; j < ok; j++ {
			got := gots[j]
			gots[j] = nil // sendPart closes it
			if err := s.sendPart(w, &sent, begin, part, got); err != nil {
				fail(err)
				return sent
			}
		}
		if ok < len(batch) {
			fail(errs[ok])
			return sent
		}
	}
	return sent
}

// sendPart writes one verified instance (beginning the answer before the
// first) and closes it.
func (s *Server) sendPart(w http.ResponseWriter, sent *bool, begin func() error, part func(*attest.Retrieved) error, got *attest.Retrieved) error {
	defer got.Close()
	if !*sent {
		if err := begin(); err != nil {
			return err
		}
		*sent = true
	}
	if err := part(got); err != nil {
		return err
	}
	// Each verified part goes out whole before the next: a viewer can
	// start on it, and a cut after it leaves the client every part that
	// verified.
	return http.NewResponseController(w).Flush()
}

// each runs f(0) … f(n-1) concurrently and waits for them. A panic in
// one is carried back to the caller's goroutine (where recoverPanics
// answers it) rather than ending the process.
func each(n int, f func(int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var panicked any
	for j := range n {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					panicked = p
					mu.Unlock()
				}
			}()
			f(j)
		})
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}

func problemOf(err error) string {
	if e, ok := err.(*attest.Error); ok {
		return e.Problem
	}
	return problem.Internal
}

// wadoRetrieve answers WADO-RS instances: GET /dicomweb/studies/{study}
// [/series/{series}[/instances/{instance}]], multipart/related of
// application/dicom parts, each the attested bytes as stored.
func (s *Server) wadoRetrieve(w http.ResponseWriter, r *http.Request) {
	t, err := wadoTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, t.object())
	es, err := s.instances(r, t)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	accept := r.Header.Get("Accept")
	// The catalog knows each instance's stored syntax: a syntax asked for
	// that is not the stored one is refused before anything is read.
	var stored []string
	for _, e := range es {
		if e.TransferSyntaxUID != "" {
			stored = append(stored, e.TransferSyntaxUID)
		}
	}
	if !acceptable(accept, "application/dicom", stored...) {
		s.writeError(w, r, notAcceptable(
			"dicomseal sends the attested bytes as stored (transfer syntax %s), never transcoded: accept multipart/related; type=\"application/dicom\" with transfer-syntax=* or the stored syntax",
			strings.Join(uniq(stored), ", ")))
		return
	}
	mw := multipart.NewWriter(w)
	begin := func() error {
		h := w.Header()
		h.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
		h.Set("Cache-Control", "private, no-store")
		return nil
	}
	admit := func(got *attest.Retrieved) error {
		if ts := got.Attestation.TransferSyntaxUID; !acceptable(accept, "application/dicom", ts) {
			return notAcceptable("instance %s is stored in transfer syntax %s and sent as stored, never transcoded: accept transfer-syntax=* or %s",
				got.Attestation.SOPInstanceUID, ts, ts)
		}
		return nil
	}
	sent := s.streamInstances(w, r, t, es, "instance.retrieve", true, admit, begin, func(got *attest.Retrieved) error {
		ts := got.Attestation.TransferSyntaxUID
		writeDeadline(w, got.Size())
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":   {"application/dicom; transfer-syntax=" + ts},
			"Content-Length": {strconv.FormatInt(got.Size(), 10)},
		})
		if err != nil {
			return err
		}
		_, err = got.WriteTo(pw)
		return err
	})
	if sent {
		mw.Close()
	}
}

func uniq(v []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// wadoMetadata answers WADO-RS metadata: the DICOM JSON of each verified
// instance, bulk data as BulkDataURIs that work with the same token.
func (s *Server) wadoMetadata(w http.ResponseWriter, r *http.Request) {
	t, err := wadoTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, t.object())
	if !acceptsJSON(r.Header.Get("Accept")) {
		s.writeError(w, r, notAcceptable("metadata is answered as application/dicom+json"))
		return
	}
	es, err := s.instances(r, t)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	base := s.dicomwebBase(r)
	n := 0
	begin := func() error {
		w.Header().Set("Content-Type", "application/dicom+json")
		w.Header().Set("Cache-Control", "private, no-store")
		_, err := io.WriteString(w, "[")
		return err
	}
	s.streamInstances(w, r, t, es, "instance.metadata", false, nil, begin, func(got *attest.Retrieved) error {
		a := got.Attestation
		prefix := fmt.Sprintf("%s/studies/%s/series/%s/instances/%s/bulkdata/", base, a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID)
		ds, err := got.Metadata(dicomfile.JSONOptions{InlineMax: inlineMax,
			BulkDataURI: func(tag uint32) string { return prefix + fmt.Sprintf("%08X", tag) }})
		if err != nil {
			return err
		}
		b, err := json.Marshal(ds)
		if err != nil {
			return err
		}
		writeDeadline(w, int64(len(b)))
		if n > 0 {
			io.WriteString(w, ",")
		}
		n++
		_, err = w.Write(b)
		return err
	})
	if n > 0 {
		io.WriteString(w, "]\n")
	}
}

// wadoFrames answers WADO-RS frames: GET …/instances/{instance}/frames/1,2,
// multipart/related of application/octet-stream parts, each a frame as
// stored, with its transfer-syntax (a viewer that finds none decodes the
// frame as Implicit VR Little Endian).
func (s *Server) wadoFrames(w http.ResponseWriter, r *http.Request) {
	t, err := wadoTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, t.instance)
	list, err := frameList(chi.URLParam(r, "frames"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	accept := r.Header.Get("Accept")
	got, err := s.retrieveVerified(r, t, t.instance, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer got.Close()
	f, err := got.Frames()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !acceptable(accept, "application/octet-stream", f.TransferSyntaxUID) {
		s.writeError(w, r, notAcceptable(
			"the frames are stored in transfer syntax %s and sent as stored: accept multipart/related; type=\"application/octet-stream\"; transfer-syntax=* (or %s)",
			f.TransferSyntaxUID, f.TransferSyntaxUID))
		return
	}
	for _, n := range list {
		if n > f.Count {
			s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest,
				"frame %d does not exist: instance %s has %d frame(s)", n, t.instance, f.Count))
			return
		}
	}
	mw := multipart.NewWriter(w)
	ct := "application/octet-stream; transfer-syntax=" + f.TransferSyntaxUID
	w.Header().Set("Content-Type", `multipart/related; type="application/octet-stream"; transfer-syntax=`+f.TransferSyntaxUID+`; boundary=`+mw.Boundary())
	w.Header().Set("Cache-Control", "private, no-store")
	writeDeadline(w, got.Size())
	for i, n := range list {
		fr, size, err := f.Frame(n)
		if err != nil && i == 0 {
			// Nothing sent yet: a problem, audited like any answer.
			s.writeError(w, r, attest.Errorf(attest.EInternal, attest.ProblemInternal, "frame %d of a verified instance cannot be read", n))
			return
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "frame of a verified instance unreadable", "instance", t.instance, "frame", n, "err", err)
			panic(http.ErrAbortHandler)
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct}, "Content-Length": {strconv.FormatInt(size, 10)}})
		if err == nil {
			_, err = io.Copy(pw, fr)
		}
		if err != nil {
			// A part cut short must not read as a whole answer.
			panic(http.ErrAbortHandler)
		}
	}
	mw.Close()
}

// maxFramesPerRequest bounds a frame list.
const maxFramesPerRequest = 10_000

// frameList parses "1,3,5": frame numbers from 1.
func frameList(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest,
				"frames must be a comma-separated list of frame numbers from 1, got %q", v)
		}
		out = append(out, n)
	}
	if len(out) > maxFramesPerRequest {
		return nil, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "at most %d frames per request", maxFramesPerRequest)
	}
	return out, nil
}

// wadoBulkData answers a metadata BulkDataURI: the element's value as
// stored, one application/octet-stream part.
func (s *Server) wadoBulkData(w http.ResponseWriter, r *http.Request) {
	t, err := wadoTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, t.instance)
	tag, err := strconv.ParseUint(chi.URLParam(r, "tag"), 16, 32)
	if err != nil || len(chi.URLParam(r, "tag")) != 8 {
		s.writeError(w, r, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest,
			"the bulk data tag must be 8 hex digits (GGGGEEEE), got %q", chi.URLParam(r, "tag")))
		return
	}
	if !acceptable(r.Header.Get("Accept"), "application/octet-stream") {
		s.writeError(w, r, notAcceptable("bulk data is answered as multipart/related; type=\"application/octet-stream\""))
		return
	}
	got, err := s.retrieveVerified(r, t, t.instance, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer got.Close()
	v, size, err := got.BulkData(uint32(tag))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", `multipart/related; type="application/octet-stream"; boundary=`+mw.Boundary())
	w.Header().Set("Cache-Control", "private, no-store")
	writeDeadline(w, size)
	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"},
		"Content-Length": {strconv.FormatInt(size, 10)}})
	if err == nil {
		_, err = io.Copy(pw, v)
	}
	if err != nil {
		panic(http.ErrAbortHandler) // a part cut short must not read as a whole answer
	}
	mw.Close()
}
