package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
)

// BenchmarkDICOMweb measures STOW-RS and WADO-RS beside the native API for
// the same real file (pydicom's CT_small, 39,206 bytes; every instance its
// own SOP Instance UID) on embedded backends, with dicomwebClients
// concurrent clients, and Orthanc's own DICOMweb server (Orthanc 1.10, its
// DICOMweb plugin) as an external baseline in the same run:
//
//	ingest/native               POST /v1/instances, one instance a request
//	ingest/stow-1               POST /dicomweb/studies, one part a request
//	ingest/stow-10              POST /dicomweb/studies, ten parts a request
//	ingest/orthanc-stow-10      the same bodies to Orthanc's /dicom-web/studies
//	retrieve/native             GET /v1/instances/{uid}
//	retrieve/wado-instance      GET /dicomweb/studies/{s}/series/{se}/instances/{i}
//	retrieve/wado-series        GET /dicomweb/studies/{s}/series/{se}: ten instances
//	retrieve/orthanc-wado-series the same series from Orthanc's /dicom-web
//
// One op is one instance (a ten-part request is ten ops), so ns/op, MB/s
// (DICOM bytes) and instances/s compare across rows; -benchtime should be
// a multiple of 10. Every answer is checked: a status other than the one
// success means, a STOW answer that does not list every part as stored, or
// a WADO answer whose parts are not the stored bytes fails the benchmark.
// The Orthanc rows skip unless DICOMSEAL_TEST_ORTHANC and
// DICOMSEAL_TEST_ORTHANC_DICOMWEB are set, and while startOrthanc takes a
// *testing.T (see startOrthancBaseline):
//
//	eval "$(scripts/orthanc.sh install)"
//	go test ./cmd/dicomseal -run '^$' -bench DICOMweb -benchtime 2000x -count 3
//
// -count repeats each row before the next; to interleave the rows (drift
// on a shared machine then hits all alike), run a compiled binary in a loop:
//
//	go test -c -o /tmp/dicomweb.test ./cmd/dicomseal && cd cmd/dicomseal && for i in 1 2 3; do
//	  /tmp/dicomweb.test -test.run '^$' -test.bench DICOMweb -test.benchtime 2000x; done
func BenchmarkDICOMweb(b *testing.B) {
	b.Run("ingest", func(b *testing.B) {
		b.Run("native", func(b *testing.B) {
			s := startBenchServer(b)
			gen := newCTInstances(b)
			runClients(b, 1, func(c *benchClient, req int) error {
				return c.post(s.url+"/v1/instances", "application/dicom", s.tokens[auth.RoleIngest], gen.instance(req), http.StatusCreated)
			})
		})
		stow := func(b *testing.B, parts int) {
			s := startBenchServer(b)
			gen := newCTInstances(b)
			runClients(b, parts, func(c *benchClient, req int) error {
				return c.stow(s.url+"/dicomweb/studies", "Bearer "+s.tokens[auth.RoleIngest], gen.request(req, parts))
			})
		}
		b.Run("stow-1", func(b *testing.B) { stow(b, 1) })
		b.Run("stow-10", func(b *testing.B) { stow(b, 10) })
		b.Run("orthanc-stow-10", func(b *testing.B) {
			o := startOrthancBaseline(b)
			gen := newCTInstances(b)
			runClients(b, 10, func(c *benchClient, req int) error {
				return c.stow(o.url+"/dicom-web/studies", o.basicAuth(), gen.request(req, 10))
			})
		})
	})

	b.Run("retrieve", func(b *testing.B) {
		// Each server holds retrieveSeries series of ten instances,
		// stored with STOW-RS before the clock starts; requests go round
		// them.
		const retrieveSeries = 10
		dicomseal := func(b *testing.B) (*testServer, *ctInstances) {
			s := startBenchServer(b)
			gen := newCTInstances(b)
			c := newBenchClient()
			for g := range retrieveSeries {
				if err := c.stow(s.url+"/dicomweb/studies", "Bearer "+s.tokens[auth.RoleIngest], gen.request(g, 10)); err != nil {
					b.Fatal(err)
				}
			}
			return s, gen
		}
		b.Run("native", func(b *testing.B) {
			s, gen := dicomseal(b)
			runClients(b, 1, func(c *benchClient, req int) error {
				n := req % (10 * retrieveSeries)
				return c.getFile(s.url+"/v1/instances/"+gen.sop(n), s.tokens[auth.RoleViewer], gen)
			})
		})
		b.Run("wado-instance", func(b *testing.B) {
			s, gen := dicomseal(b)
			runClients(b, 1, func(c *benchClient, req int) error {
				n := req % (10 * retrieveSeries)
				path := fmt.Sprintf("/dicomweb/studies/%s/series/%s/instances/%s", gen.study(n/10), gen.series(n/10), gen.sop(n))
				return c.getParts(s.url+path, "Bearer "+s.tokens[auth.RoleViewer], gen, 1)
			})
		})
		b.Run("wado-series", func(b *testing.B) {
			s, gen := dicomseal(b)
			runClients(b, 10, func(c *benchClient, req int) error {
				g := req % retrieveSeries
				path := fmt.Sprintf("/dicomweb/studies/%s/series/%s", gen.study(g), gen.series(g))
				return c.getParts(s.url+path, "Bearer "+s.tokens[auth.RoleViewer], gen, 10)
			})
		})
		b.Run("orthanc-wado-series", func(b *testing.B) {
			o := startOrthancBaseline(b)
			gen := newCTInstances(b)
			c := newBenchClient()
			for g := range retrieveSeries {
				if err := c.stow(o.url+"/dicom-web/studies", o.basicAuth(), gen.request(g, 10)); err != nil {
					b.Fatal(err)
				}
			}
			runClients(b, 10, func(c *benchClient, req int) error {
				g := req % retrieveSeries
				path := fmt.Sprintf("/dicom-web/studies/%s/series/%s", gen.study(g), gen.series(g))
				return c.getParts(o.url+path, o.basicAuth(), gen, 10)
			})
		})
	})
}

// dicomwebClients is how many clients send requests at once.
const dicomwebClients = 8

// startBenchServer starts an in-process dicomseal (embedded ledger and
// store, audited as in production) whose limits per client do not throttle
// the benchmark's clients.
func startBenchServer(b *testing.B) *testServer {
	return startServer(b, b.TempDir(), "--log-level", "warn",
		"--rate-limit", "1000000", "--rate-burst", "1000000", "--max-conns-per-source", "1024")
}

// startOrthancBaseline starts a real Orthanc with startOrthanc
// (orthanc_helpers_test.go), or skips. startOrthanc is reached through an
// interface so that this file compiles whether it takes a *testing.T, as
// it does now (a benchmark has none to give it: the Orthanc rows skip), or
// a testing.TB.
func startOrthancBaseline(b *testing.B) *orthanc {
	b.Helper()
	if os.Getenv("DICOMSEAL_TEST_ORTHANC") == "" || os.Getenv("DICOMSEAL_TEST_ORTHANC_DICOMWEB") == "" {
		b.Skip(`DICOMSEAL_TEST_ORTHANC and DICOMSEAL_TEST_ORTHANC_DICOMWEB are not set: eval "$(scripts/orthanc.sh install)" sets them`)
	}
	start, ok := any(startOrthanc).(func(testing.TB, map[string]dicomwebPeer) *orthanc)
	if !ok {
		b.Skip("startOrthanc (orthanc_helpers_test.go) takes a *testing.T, which a benchmark does not have: it needs to take testing.TB (and requireOrSkip with it)")
	}
	return start(b, nil)
}

// ctInstances makes distinct copies of CT_small without dcmtk: its Study,
// Series and SOP Instance UIDs rewritten in place, same length, so the
// file stays well-formed and byte for byte the original elsewhere.
// Instance n is in group n/10, which is its own study of one series.
type ctInstances struct {
	template []byte
	// at are the offsets of the 14-digit component of each UID's
	// occurrences in the template.
	studyAt, seriesAt, sopAt []int
	// base keeps the UIDs of one generator apart from every other's.
	base int64
}

var ctInstanceBase atomic.Int64

const ctUIDComponent = "20040119072730" // in all three of CT_small's UIDs

func newCTInstances(b *testing.B) *ctInstances {
	b.Helper()
	data := fixture(b, "pydicom-CT_small.dcm")
	g := &ctInstances{template: data, base: ctInstanceBase.Add(1) * 100_000_000}
	find := func(uid string, want int) []int {
		var at []int
		for i := 0; ; {
			j := bytes.Index(data[i:], []byte(uid))
			if j < 0 {
				break
			}
			at = append(at, i+j+bytes.Index([]byte(uid), []byte(ctUIDComponent)))
			i += j + len(uid)
		}
		if len(at) != want {
			b.Fatalf("%s occurs %d times in CT_small, not %d", uid, len(at), want)
		}
		return at
	}
	g.studyAt, g.seriesAt, g.sopAt = find(ctStudyUID, 1), find(ctSeriesUID, 1), find(ctSOPUID, 2)
	return g
}

// component is the UID component that replaces ctUIDComponent for n:
// 14 digits without a leading zero.
func (g *ctInstances) component(n int) string { return fmt.Sprintf("1%013d", g.base+int64(n)) }

func (g *ctInstances) study(group int) string  { return uidWith(ctStudyUID, g.component(group)) }
func (g *ctInstances) series(group int) string { return uidWith(ctSeriesUID, g.component(group)) }
func (g *ctInstances) sop(n int) string        { return uidWith(ctSOPUID, g.component(n)) }

func uidWith(uid, component string) string {
	return string(bytes.Replace([]byte(uid), []byte(ctUIDComponent), []byte(component), 1))
}

// instance is the bytes of instance n.
func (g *ctInstances) instance(n int) []byte {
	data := bytes.Clone(g.template)
	for _, at := range g.sopAt {
		copy(data[at:], g.component(n))
	}
	for _, at := range g.studyAt {
		copy(data[at:], g.component(n/10))
	}
	for _, at := range g.seriesAt {
		copy(data[at:], g.component(n/10))
	}
	return data
}

// number is the instance number n of a file instance made, read back from
// its SOP Instance UID (-1: not one of g's).
func (g *ctInstances) number(data []byte) int {
	at := g.sopAt[len(g.sopAt)-1]
	if len(data) != len(g.template) {
		return -1
	}
	v, err := strconv.ParseInt(string(data[at+1:at+len(ctUIDComponent)]), 10, 64)
	if err != nil || data[at] != '1' || v < g.base || v >= g.base+100_000_000 {
		return -1
	}
	return int(v - g.base)
}

// request is the instances of request req of a benchmark sending parts
// instances a request: instances req*parts … req*parts+parts-1 (for ten
// parts, the whole of group req).
func (g *ctInstances) request(req, parts int) [][]byte {
	out := make([][]byte, parts)
	for i := range out {
		out[i] = g.instance(req*parts + i)
	}
	return out
}

// runClients sends ceil(b.N/perRequest) requests, each carrying
// perRequest instances, over dicomwebClients concurrent clients; one op is
// one instance. do sends request req; its error fails the benchmark.
func runClients(b *testing.B, perRequest int, do func(c *benchClient, req int) error) {
	b.Helper()
	requests := (b.N + perRequest - 1) / perRequest
	b.SetBytes(int64(len(fixture(b, "pydicom-CT_small.dcm"))))
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range dicomwebClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newBenchClient()
			for {
				req := next.Add(1) - 1
				if req >= int64(requests) || b.Failed() {
					return
				}
				if err := do(c, int(req)); err != nil {
					b.Errorf("request %d: %v", req, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(requests*perRequest)/b.Elapsed().Seconds(), "instances/s")
}

// benchClient is one client: its own connection (kept alive) and buffer.
type benchClient struct {
	http *http.Client
	buf  bytes.Buffer
}

func newBenchClient() *benchClient {
	return &benchClient{http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
}

// do sends a request and reads the whole answer into c.buf; any status but
// want is an error.
func (c *benchClient) do(method, url, contentType, authorization, accept string, body []byte, want int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %v", method, url, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s → %s, want %d: %.300s", method, url, resp.Status, want, c.buf.Bytes())
	}
	return resp, nil
}

// post sends one body; want is the status of success.
func (c *benchClient) post(url, contentType, token string, body []byte, want int) error {
	_, err := c.do(http.MethodPost, url, contentType, "Bearer "+token, "", body, want)
	return err
}

// stow sends instances as one STOW-RS request and checks the Store
// Instances Response: 200, every part in the ReferencedSOPSequence, none
// in the FailedSOPSequence.
func (c *benchClient) stow(url, authorization string, instances [][]byte) error {
	const boundary = "dicomseal-bench-3f1c"
	body := multipartBody{boundary: boundary}.build(instances...)
	resp, err := c.do(http.MethodPost, url, `multipart/related; type="application/dicom"; boundary=`+boundary,
		authorization, "application/dicom+json", body, http.StatusOK)
	if err != nil {
		return err
	}
	var doc map[string]struct{ Value []json.RawMessage }
	if err := json.Unmarshal(c.buf.Bytes(), &doc); err != nil {
		return fmt.Errorf("STOW %s answered %s: %v", url, resp.Header.Get("Content-Type"), err)
	}
	if stored, failed := len(doc["00081199"].Value), len(doc["00081198"].Value); stored != len(instances) || failed != 0 {
		return fmt.Errorf("STOW %s: %d of %d parts stored, %d failed: %.500s", url, stored, len(instances), failed, c.buf.Bytes())
	}
	return nil
}

// getFile retrieves one instance from the native API and checks that it
// is the bytes stored.
func (c *benchClient) getFile(url, token string, gen *ctInstances) error {
	resp, err := c.do(http.MethodGet, url, "", "Bearer "+token, "", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/dicom" {
		return fmt.Errorf("GET %s: Content-Type %q", url, ct)
	}
	return gen.check(c.buf.Bytes())
}

// wadoAccept asks for the instances as stored.
const wadoAccept = `multipart/related; type="application/dicom"; transfer-syntax=*`

// getParts retrieves instances with WADO-RS and checks that the answer is
// multipart/related of want parts, each the bytes of an instance gen made.
func (c *benchClient) getParts(url, authorization string, gen *ctInstances, want int) error {
	resp, err := c.do(http.MethodGet, url, "", authorization, wadoAccept, nil, http.StatusOK)
	if err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["boundary"] == "" {
		return fmt.Errorf("GET %s: Content-Type %q", url, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(c.buf.Bytes()), params["boundary"])
	var part bytes.Buffer
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if n != want {
				return fmt.Errorf("GET %s: %d parts, want %d", url, n, want)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("GET %s: part %d: %v", url, n+1, err)
		}
		part.Reset()
		if _, err := part.ReadFrom(p); err != nil {
			return fmt.Errorf("GET %s: part %d: %v", url, n+1, err)
		}
		if err := gen.check(part.Bytes()); err != nil {
			return fmt.Errorf("GET %s: part %d: %v", url, n+1, err)
		}
	}
}

// check tells whether data is exactly an instance g made.
func (g *ctInstances) check(data []byte) error {
	n := g.number(data)
	if n < 0 {
		return fmt.Errorf("%d bytes that are not one of the instances stored", len(data))
	}
	if !bytes.Equal(data, g.instance(n)) {
		return fmt.Errorf("instance %s is not the bytes stored", g.sop(n))
	}
	return nil
}
