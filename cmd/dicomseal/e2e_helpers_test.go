package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// syncBuffer collects a server's logs across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a real dicomseal serve on 127.0.0.1:0.
type testServer struct {
	t       testing.TB
	main    *Main
	url     string
	dataDir string
	logs    *syncBuffer
	client  *http.Client
	// tokens holds one token per role; requests use the role their route
	// allows (see roleFor) unless asRole says otherwise.
	tokens map[auth.Role]string
	asRole auth.Role
}

// anonymous makes as() send no credentials.
const anonymous auth.Role = "anonymous"

// as returns the same server, sending requests as role (or anonymous).
func (s *testServer) as(role auth.Role) *testServer {
	c := *s
	c.asRole = role
	return &c
}

// withToken returns the same server, sending requests with token.
func (s *testServer) withToken(token string) *testServer {
	c := *s
	c.tokens = maps.Clone(s.tokens)
	c.tokens["custom"], c.asRole = token, "custom"
	return &c
}

// makeToken creates a token in the server's store.
func (s *testServer) makeToken(name string, role auth.Role, ttl time.Duration) string {
	s.t.Helper()
	secret, tok, err := auth.NewToken(name, role, "test", time.Now(), ttl)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.main.Tokens().CreateToken(context.Background(), tok); err != nil {
		s.t.Fatal(err)
	}
	return secret
}

// roleFor is the role a test request to method and path uses by default:
// the first role the route table allows.
func roleFor(method, path string) auth.Role {
	path, _, _ = strings.Cut(path, "?")
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Method == method && matchPattern(rt.Pattern, path) && len(rt.Roles) > 0 {
			return rt.Roles[0]
		}
	}
	return auth.RoleViewer
}

func matchPattern(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// startServer runs the real Main on a free port over dataDir; extra flags
// are appended to the defaults.
func startServer(t testing.TB, dataDir string, flags ...string) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain()
	m.Stderr = logs
	args := append([]string{"--addr", "127.0.0.1:0", "--data-dir", dataDir}, flags...)
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, main: m, url: "http://" + m.ListenAddr(), dataDir: dataDir, logs: logs, client: &http.Client{},
		tokens: map[auth.Role]string{}}
	for _, role := range auth.Roles {
		s.tokens[role] = s.makeToken("test-"+string(role)+"-"+randomSuffix(), role, 0)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	return s
}

func (s *testServer) stop() {
	if s.main != nil {
		if err := s.main.Close(); err != nil {
			s.t.Errorf("Close: %v", err)
		}
		s.main = nil
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body is not JSON: %v: %.300s", r.status, err, r.body)
	}
	return m
}

// do sends a request and validates the response against openapi.yaml.
func (s *testServer) do(method, path, contentType string, body []byte) response {
	s.t.Helper()
	return s.doWithHeader(method, path, contentType, body)
}

// doWithHeader is do with extra header name, value pairs.
func (s *testServer) doWithHeader(method, path, contentType string, body []byte, header ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	role := s.asRole
	if role == "" {
		role = roleFor(method, path)
	}
	if role != anonymous {
		req.Header.Set("Authorization", "Bearer "+s.tokens[role])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	validateResponse(s.t, req, resp, b)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *testServer) ingest(body []byte) response {
	s.t.Helper()
	return s.do(http.MethodPost, "/v1/instances", "application/dicom", body)
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// validateResponse checks a real response against openapi.yaml: the route
// and method must be in the contract and the status, headers and body must
// match what it declares. Undeclared routes fail unless the answer is the
// router's own 404/405 problem.
func validateResponse(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join("..", "..", "openapi.yaml"))
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = err
			return
		}
		// Match on paths alone: test servers listen on random ports.
		doc.Servers = nil
		specRouter, specErr = legacy.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	checkProblem(t, req, resp, body)
	route, params, err := specRouter.FindRoute(req)
	if err != nil {
		if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
			strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			return
		}
		t.Fatalf("%s %s: not in openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			// application/dicom bodies are opaque to the validator.
			ExcludeResponseBody: strings.HasPrefix(resp.Header.Get("Content-Type"), "application/dicom"),
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s → %d does not match openapi.yaml: %v\nbody: %.500s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// checkProblem holds every problem answer to the one table: a type it
// has, with its title and status (/readyz answers 503 whatever dependency
// it names).
func checkProblem(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		return
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%s %s: a problem that is not JSON: %v", req.Method, req.URL.Path, err)
	}
	ty, ok := problem.Lookup(strings.TrimPrefix(p.Type, problem.Base))
	want := ty.Status
	if req.URL.Path == "/readyz" {
		want = http.StatusServiceUnavailable
	}
	if !ok || p.Title == "" || p.Title != ty.Title || p.Status != want || resp.StatusCode != want {
		t.Fatalf("%s %s → %d: problem %+v is not the table's (%+v)", req.Method, req.URL.Path, resp.StatusCode, p, ty)
	}
}

// readyzUntil polls /readyz, whose probes run in the background once a
// second, until it answers status (or fails the test after 5 s), and
// returns that answer.
func (s *testServer) readyzUntil(status int) response {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := s.do(http.MethodGet, "/readyz", "", nil)
		if r.status == status || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dicom", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertProblem checks an error answer's status and problem type slug.
func assertProblem(t testing.TB, r response, status int, slug string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	p := r.json(t)
	if p["type"] != "https://dicomseal.dev/problems/"+slug {
		t.Fatalf("problem type %v, want …/%s (detail: %v)", p["type"], slug, p["detail"])
	}
	if d, _ := p["detail"].(string); d == "" {
		t.Fatalf("problem without detail: %s", r.body)
	}
	return p
}

// pixelOffset returns an offset inside the (explicit VR little endian)
// Pixel Data of a fixture: changing a byte there changes a pixel.
func pixelOffset(t testing.TB, data []byte) int {
	t.Helper()
	i := bytes.LastIndex(data, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W'})
	if i < 0 {
		t.Fatal("fixture has no explicit-VR OW Pixel Data")
	}
	return i + 12 + 100
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// onlySubjectMaps fails unless every entry in [from, to) is a checkpoint's
// subject map: no other entry was appended in between. Maps are appended
// by each checkpoint, so their number depends on timing, not on the test.
func (s *testServer) onlySubjectMaps(t *testing.T, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		if e, err := s.main.ledger.Entry(context.Background(), i); err != nil || e.Kind != ledger.KindSubjectMap {
			t.Fatalf("entry %d: %s, %v; want a subject map", i, e.Kind, err)
		}
	}
}
