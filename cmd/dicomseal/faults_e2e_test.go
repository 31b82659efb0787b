//go:build faults

package main

// Hanging and failing dependencies (issue 10, point 4): a frozen object
// store, a frozen database and a nearly full data directory. Every request
// here gives up after faultClient's timeout, so a hang fails the test
// instead of stalling the run.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

const (
	// depTimeout is the --s3-timeout and --db-timeout of these tests;
	// answers must come within it plus answerMargin.
	depTimeout   = 2 * time.Second
	answerMargin = 3 * time.Second
	// readyWithin bounds every /readyz answer (the probes run in the background).
	readyWithin = time.Second
	// probeLag is how long the background probes may take to notice a change.
	probeLag = 3 * time.Second
)

// faultClient bounds every request of these tests.
var faultClient = &http.Client{Timeout: 10 * time.Second}

// answer is one request's outcome and how long it took; safe to produce
// from any goroutine (validate it from the test's).
type answer struct {
	response
	req     *http.Request
	resp    *http.Response
	elapsed time.Duration
	err     error
}

func send(method, url, token, contentType string, body []byte) answer {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := faultClient.Do(req)
	if err != nil {
		return answer{req: req, elapsed: time.Since(start), err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a := answer{response: response{status: resp.StatusCode, header: resp.Header, body: b}, req: req, resp: resp,
		elapsed: time.Since(start), err: err}
	return a
}

// sendChecked is send from the test goroutine: a transport error fails the
// test, and the answer is validated against openapi.yaml.
func sendChecked(t testing.TB, method, url, token, contentType string, body []byte) answer {
	t.Helper()
	a := send(method, url, token, contentType, body)
	if a.err != nil {
		t.Fatalf("%s %s: %v after %v", method, url, a.err, a.elapsed.Round(time.Millisecond))
	}
	validateResponse(t, a.req, a.resp, a.body)
	return a
}

// unavailable says what is wrong with a when it is not a prompt 503 of the
// given problem type with a Retry-After (empty when it is one).
func unavailable(a answer, slug string) string {
	switch {
	case a.err != nil:
		return fmt.Sprintf("no answer after %v: %v", a.elapsed.Round(time.Millisecond), a.err)
	case a.elapsed >= depTimeout+answerMargin:
		return fmt.Sprintf("answered %d after %v, want within %v", a.status, a.elapsed.Round(time.Millisecond), depTimeout+answerMargin)
	case a.status != http.StatusServiceUnavailable:
		return fmt.Sprintf("status %d, want 503: %.300s", a.status, a.body)
	case a.header.Get("Content-Type") != "application/problem+json":
		return fmt.Sprintf("Content-Type %q, want application/problem+json", a.header.Get("Content-Type"))
	}
	var p struct{ Type string }
	json.Unmarshal(a.body, &p)
	if p.Type != "https://dicomseal.dev/problems/"+slug {
		return fmt.Sprintf("problem type %q, want …/%s: %.300s", p.Type, slug, a.body)
	}
	if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n <= 0 {
		return fmt.Sprintf("Retry-After %q, want a positive number of seconds", a.header.Get("Retry-After"))
	}
	return ""
}

// depState is one dependency's entry under "checks" in /readyz.
type depState struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

var dependencies = []string{"ledger", "audit", "objects", "disk"}

// readyzChecks checks the shape of a /readyz answer (200 "ready" or a 503
// problem, every dependency named under "checks", an error for each one
// that is not ok) and returns its checks.
func readyzChecks(t testing.TB, a answer) map[string]depState {
	t.Helper()
	var body struct {
		Status any                 `json:"status"` // "ready", or a problem's status code
		Checks map[string]depState `json:"checks"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("/readyz %d: body is not JSON: %v: %.300s", a.status, err, a.body)
	}
	switch a.status {
	case http.StatusOK:
		if body.Status != "ready" {
			t.Fatalf(`/readyz 200 with status %v, want "ready": %s`, body.Status, a.body)
		}
	case http.StatusServiceUnavailable:
		if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("/readyz 503 with Content-Type %q, want application/problem+json", ct)
		}
	default:
		t.Fatalf("/readyz answered %d: %.300s", a.status, a.body)
	}
	for _, d := range dependencies {
		c, ok := body.Checks[d]
		if !ok {
			t.Fatalf("/readyz %d does not name %q under checks: %s", a.status, d, a.body)
		}
		if !c.OK && c.Error == "" {
			t.Fatalf("/readyz: check %q is not ok and gives no error: %s", d, a.body)
		}
	}
	if a.status == http.StatusOK {
		for _, d := range dependencies {
			if !body.Checks[d].OK {
				t.Fatalf("/readyz 200 while %q is not ok: %s", d, a.body)
			}
		}
	}
	return body.Checks
}

// waitReadyz polls /readyz (anonymously) until want holds, within d.
// Every answer must come within readyWithin.
func waitReadyz(t testing.TB, base string, d time.Duration, what string, want func(status int, checks map[string]depState) bool) map[string]depState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		a := sendChecked(t, http.MethodGet, base+"/readyz", "", "", nil)
		if a.elapsed >= readyWithin {
			t.Fatalf("/readyz took %v, want under %v", a.elapsed.Round(time.Millisecond), readyWithin)
		}
		checks := readyzChecks(t, a)
		if want(a.status, checks) {
			return checks
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not %s within %v; last answer %d: %s", what, d, a.status, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isReady(status int, _ map[string]depState) bool { return status == http.StatusOK }

// notReadyFor is true for a 503 naming dep as failed.
func notReadyFor(dep string) func(int, map[string]depState) bool {
	return func(status int, checks map[string]depState) bool {
		return status == http.StatusServiceUnavailable && !checks[dep].OK
	}
}

// pollReadyz asks /readyz until stop is closed, from its own goroutine, and
// returns what went wrong: answers slower than readyWithin or none at all.
// loadWhileFrozen sends concurrent ingests of bodies (named uids) and
// retrievals of retrieveUID while a dependency is frozen: every answer must
// be a prompt 503 of problem slug with Retry-After, and /readyz, polled
// meanwhile, must keep answering within a second.
func loadWhileFrozen(t *testing.T, what, slug, base, ingestTok, viewerTok string, bodies [][]byte, uids []string,
	retrieveUID string, retrievers int) {
	t.Helper()
	stopPoll := make(chan struct{})
	polled := pollReadyz(base, stopPoll)
	ingesters := len(bodies)
	answers := make([]answer, ingesters+retrievers)
	var wg sync.WaitGroup
	for i := range ingesters {
		wg.Go(func() {
			answers[i] = send(http.MethodPost, base+"/v1/instances", ingestTok, "application/dicom", bodies[i])
		})
	}
	for i := range retrievers {
		wg.Go(func() {
			answers[ingesters+i] = send(http.MethodGet, base+"/v1/instances/"+retrieveUID, viewerTok, "", nil)
		})
	}
	wg.Wait()
	close(stopPoll)
	for i, a := range answers {
		req := "ingest " + uids[min(i, ingesters-1)]
		if i >= ingesters {
			req = "retrieval of " + retrieveUID
		}
		if msg := unavailable(a, slug); msg != "" {
			t.Errorf("%s, %s: %s", what, req, msg)
		}
	}
	for _, msg := range <-polled {
		t.Errorf("/readyz during the freeze: %s", msg)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func pollReadyz(base string, stop <-chan struct{}) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var bad []string
		for {
			select {
			case <-stop:
				out <- bad
				return
			default:
			}
			a := send(http.MethodGet, base+"/readyz", "", "", nil)
			switch {
			case a.err != nil:
				bad = append(bad, fmt.Sprintf("no answer after %v: %v", a.elapsed.Round(time.Millisecond), a.err))
			case a.elapsed >= readyWithin:
				bad = append(bad, fmt.Sprintf("%d after %v", a.status, a.elapsed.Round(time.Millisecond)))
			case a.status != http.StatusOK && a.status != http.StatusServiceUnavailable:
				bad = append(bad, fmt.Sprintf("status %d: %.200s", a.status, a.body))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return out
}

// ctUID is the SOP Instance UID of instanceWithUID(t, n).
func ctUID(n int) string { return fmt.Sprintf("1.3.6.1.4.1.5962.1.1.1.1.1.1%013d.12322", n) }

// freezableMinIO is a MinIO process of the test's own, so that the test
// can stop it with SIGSTOP: the port stays open, nothing answers.
type freezableMinIO struct {
	cmd                *exec.Cmd
	addr, user, secret string
	bin, dir           string
}

func startFreezableMinIO(t *testing.T) *freezableMinIO {
	t.Helper()
	bin := os.Getenv("DICOMSEAL_TEST_MINIO_BIN")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the fault tests: DICOMSEAL_TEST_MINIO_BIN is not set (run scripts/test.sh)")
		}
		t.Skip("DICOMSEAL_TEST_MINIO_BIN is not set; scripts/test.sh (make test) builds MinIO and sets it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &freezableMinIO{addr: l.Addr().String(), user: "fault" + randomSuffix(), secret: randomSuffix() + randomSuffix(),
		bin: bin, dir: t.TempDir()}
	l.Close()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGCONT)
		m.cmd.Process.Kill()
		m.cmd.Wait()
	})
	m.start(t)
	return m
}

// start runs MinIO on m's address and data and waits until it is ready.
func (m *freezableMinIO) start(t testing.TB) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", m.addr, "--console-address", "127.0.0.1:0", filepath.Join(m.dir, "data"))
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.secret, "MINIO_BROWSER=off")
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	probe := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := probe.Get("http://" + m.addr + "/minio/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MinIO did not become ready on %s", m.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops MinIO for good (SIGKILL); start brings it back on the same
// address and data.
func (m *freezableMinIO) kill() {
	m.cmd.Process.Signal(syscall.SIGCONT)
	m.cmd.Process.Kill()
	m.cmd.Wait()
}

func (m *freezableMinIO) freeze(t testing.TB) {
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (m *freezableMinIO) thaw() { m.cmd.Process.Signal(syscall.SIGCONT) }

// MinIO frozen with SIGSTOP under load: every ingest and retrieval answers
// 503 storage-unavailable with Retry-After within --s3-timeout (plus a
// margin), /readyz keeps answering within 1 s and names the object store;
// after SIGCONT the service is ready again and ingests, without a restart,
// and none of the refused instances left a ledger entry.
func TestFaultFrozenObjectStore(t *testing.T) {
	t.Parallel()
	m := startFreezableMinIO(t)
	srv := startServer(t, t.TempDir(), "--s3-endpoint", m.addr, "--s3-access-key", m.user, "--s3-secret-key", m.secret,
		"--s3-disable-tls", "--s3-bucket-lookup", "path", "--s3-bucket", "frozen", "--s3-timeout", depTimeout.String(),
		"--min-free-space", "1MiB", "--shutdown-timeout", "2s")
	srv.client = faultClient
	t.Cleanup(m.thaw) // before the server closes
	base, ingestTok, viewerTok := srv.url, srv.tokens[auth.RoleIngest], srv.tokens[auth.RoleViewer]

	first := fixture(t, "pydicom-CT_small.dcm")
	firstUID := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	if r := srv.ingest(first); r.status != http.StatusCreated {
		t.Fatalf("ingest before the freeze: %d %s", r.status, r.body)
	}
	waitReadyz(t, base, probeLag, "ready", isReady)

	const ingesters, retrievers = 8, 4
	bodies := make([][]byte, ingesters)
	var refused []string
	for i := range bodies {
		bodies[i] = instanceWithUID(t, 100+i)
		refused = append(refused, ctUID(100+i))
	}

	m.freeze(t)
	frozenAt := time.Now()
	loadWhileFrozen(t, "frozen object store", "storage-unavailable", base, ingestTok, viewerTok, bodies, refused, firstUID, retrievers)
	// The answers match openapi.yaml, and /readyz names the object store.
	a := sendChecked(t, http.MethodPost, base+"/v1/instances", ingestTok, "application/dicom", instanceWithUID(t, 120))
	refused = append(refused, ctUID(120))
	if msg := unavailable(a, "storage-unavailable"); msg != "" {
		t.Fatalf("frozen object store, ingest: %s", msg)
	}
	checks := waitReadyz(t, base, max(0, probeLag-time.Since(frozenAt)), "503 naming the object store", notReadyFor("objects"))
	if !checks["ledger"].OK || !checks["disk"].OK {
		t.Fatalf("/readyz blames more than the object store: %+v", checks)
	}

	m.thaw()
	waitReadyz(t, base, 10*time.Second, "ready again after SIGCONT", isReady)
	// A refused instance is new to the ledger: 201, not 200.
	for deadline := time.Now().Add(5 * time.Second); ; {
		r := sendChecked(t, http.MethodPost, base+"/v1/instances", ingestTok, "application/dicom", bodies[0])
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("ingest after SIGCONT: %d %s, want 201", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, uid := range refused[1:] {
		if r := sendChecked(t, http.MethodGet, base+"/v1/instances/"+uid, viewerTok, "", nil); r.status != http.StatusNotFound {
			t.Errorf("refused %s: retrieval %d, want 404 (no ledger entry): %.300s", uid, r.status, r.body)
		}
	}
	if r := sendChecked(t, http.MethodGet, base+"/v1/instances/"+firstUID, viewerTok, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, first) {
		t.Fatalf("retrieval of the first instance after SIGCONT: %d", r.status)
	}
}

// freezableProxy forwards TCP connections to target until frozen; frozen,
// it accepts connections and holds every byte in both directions, as a
// stopped server whose kernel still holds the sockets would.
type freezableProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{} // non-nil while frozen; closed by thaw
	conns  map[net.Conn]struct{}
	closed bool
}

func startFreezableProxy(t testing.TB, target string) *freezableProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *freezableProxy) addr() string { return p.l.Addr().String() }

func (p *freezableProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (p *freezableProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

// gate waits while the proxy is frozen.
func (p *freezableProxy) gate() {
	p.mu.Lock()
	ch := p.frozen
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *freezableProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *freezableProxy) handle(c net.Conn) {
	if !p.track(c) {
		return
	}
	p.gate()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	go p.pipe(up, c)
	p.pipe(c, up)
}

func (p *freezableProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		p.gate()
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezableProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.l.Close()
	p.thaw()
	for c := range conns {
		c.Close()
	}
}

// PostgreSQL frozen behind a proxy that holds every byte: ingest and
// retrieval answer 503 credentials-unavailable with Retry-After within
// --db-timeout (plus a margin), /readyz keeps answering within 1 s and
// names the ledger; unfrozen, the service recovers without a restart.
func TestFaultFrozenDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	u, err := url.Parse(db.Service)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startFreezableProxy(t, u.Host)
	u.Host = proxy.addr()
	srv := startServer(t, t.TempDir(), "--database-url", u.String(), "--db-timeout", depTimeout.String(),
		"--min-free-space", "1MiB", "--shutdown-timeout", "2s")
	srv.client = faultClient
	t.Cleanup(proxy.thaw) // before the server closes
	base, ingestTok, viewerTok := srv.url, srv.tokens[auth.RoleIngest], srv.tokens[auth.RoleViewer]

	first := instanceWithUID(t, 200)
	if r := srv.ingest(first); r.status != http.StatusCreated {
		t.Fatalf("ingest before the freeze: %d %s", r.status, r.body)
	}
	waitReadyz(t, base, probeLag, "ready", isReady)

	const ingesters, retrievers = 4, 2
	bodies := make([][]byte, ingesters)
	for i := range bodies {
		bodies[i] = instanceWithUID(t, 210+i)
	}

	proxy.freeze()
	frozenAt := time.Now()
	var uids []string
	for i := range ingesters {
		uids = append(uids, ctUID(210+i))
	}
	// The token check is the first thing that reads the database: the
	// refusal says so.
	loadWhileFrozen(t, "frozen database", "credentials-unavailable", base, ingestTok, viewerTok, bodies, uids, ctUID(200), retrievers)
	a := sendChecked(t, http.MethodPost, base+"/v1/instances", ingestTok, "application/dicom", instanceWithUID(t, 220))
	if msg := unavailable(a, "credentials-unavailable"); msg != "" {
		t.Fatalf("frozen database, ingest: %s", msg)
	}
	checks := waitReadyz(t, base, max(0, probeLag-time.Since(frozenAt)), "503 naming the ledger", notReadyFor("ledger"))
	if !checks["objects"].OK || !checks["disk"].OK {
		t.Fatalf("/readyz blames more than the database: %+v", checks)
	}

	proxy.thaw()
	waitReadyz(t, base, 10*time.Second, "ready again after the database came back", isReady)
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := sendChecked(t, http.MethodPost, base+"/v1/instances", ingestTok, "application/dicom", instanceWithUID(t, 230))
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("ingest after the database came back: %d %s, want 201", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A write the database received before the freeze may still commit
	// after it; either way a refused instance is whole or absent, never
	// an entry without its object.
	for i := range ingesters {
		uid := ctUID(210 + i)
		r := sendChecked(t, http.MethodGet, base+"/v1/instances/"+uid, viewerTok, "", nil)
		if r.status != http.StatusNotFound && (r.status != http.StatusOK || !bytes.Equal(r.body, bodies[i])) {
			t.Errorf("refused %s: retrieval %d, want 404 (or 200 with its bytes): %.300s", uid, r.status, r.body)
		}
	}
	if r := sendChecked(t, http.MethodGet, base+"/v1/instances/"+ctUID(200), viewerTok, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, first) {
		t.Fatalf("retrieval of the first instance after the freeze: %d", r.status)
	}
}

// tmpfsServer is the real dicomseal process in a mount namespace of its
// own, whose data directory is a small tmpfs that only it (and commands
// run with nsenter into its namespace) can see.
type tmpfsServer struct {
	t       testing.TB
	bin     string
	dir     string
	pid     int
	url     string
	logs    *syncBuffer
	ingest  string // tokens
	viewer  string
	objects string
	spool   string
}

// requireNamespaces fails under CI and skips elsewhere unless the test can
// mount a tmpfs in a mount namespace of its own (root, unshare, nsenter).
func requireNamespaces(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root to mount a tmpfs in a private mount namespace"
	}
	for _, tool := range []string{"unshare", "nsenter", "mount", "fallocate", "stat", "find"} {
		if _, err := exec.LookPath(tool); err != nil && reason == "" {
			reason = "needs " + tool + " (util-linux, coreutils)"
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run the full-disk test: it %s", reason)
	}
	t.Skipf("the full-disk test %s", reason)
}

// startInTmpfs runs `dicomseal serve` on a fresh tmpfs of the given size
// (e.g. "64m") mounted as its data directory, with tokens for ingest and
// viewer made by the CLI inside the namespace.
func startInTmpfs(t *testing.T, bin, size string, flags ...string) *tmpfsServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const script = `dir=$0 size=$1 bin=$2; shift 2
mount -t tmpfs -o size="$size",mode=0700 tmpfs "$dir" || exit 1
exec "$bin" serve --addr 127.0.0.1:0 --log-format json --data-dir "$dir" "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, dir, size, bin}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &tmpfsServer{t: t, bin: bin, dir: dir, pid: cmd.Process.Pid, logs: &syncBuffer{},
		objects: filepath.Join(dir, "objects"), spool: filepath.Join(dir, "spool")}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(addr)
		rd := io.TeeReader(stderr, s.logs)
		dec := json.NewDecoder(rd)
		for {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if err := dec.Decode(&line); err != nil {
				io.Copy(io.Discard, rd) // keep draining what is not JSON
				return
			}
			if line.Msg == "dicomseal serving" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("dicomseal in a tmpfs did not start:\n%s", s.logs.String())
		}
		s.url = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("dicomseal in a tmpfs did not start within 30 s:\n%s", s.logs.String())
	}
	s.ingest = s.token(auth.RoleIngest)
	s.viewer = s.token(auth.RoleViewer)
	return s
}

// inside runs a command in the server's mount namespace and returns its
// standard output.
func (s *tmpfsServer) inside(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(s.pid), "-m", "--"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("nsenter %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func (s *tmpfsServer) token(role auth.Role) string {
	s.t.Helper()
	out := s.inside(s.bin, "tokens", "create", "--role", string(role), "--name", "fault-"+string(role), "--data-dir", s.dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// free is the space left on the tmpfs, in bytes.
func (s *tmpfsServer) free() int64 {
	s.t.Helper()
	f := strings.Fields(s.inside("stat", "-f", "-c", "%a %S", s.dir))
	if len(f) != 2 {
		s.t.Fatalf("stat -f: %q", f)
	}
	avail, err1 := strconv.ParseInt(f[0], 10, 64)
	bsize, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		s.t.Fatalf("stat -f: %q", f)
	}
	return avail * bsize
}

// fillTo allocates a filler file that leaves about left bytes free.
func (s *tmpfsServer) fillTo(left int64) {
	s.t.Helper()
	n := s.free() - left
	if n <= 0 {
		s.t.Fatalf("only %d bytes free, cannot leave %d", s.free(), left)
	}
	s.inside("fallocate", "-l", strconv.FormatInt(n, 10), filepath.Join(s.dir, "filler"))
	if got := s.free(); got > left+(1<<20) || got < left-(1<<20) {
		s.t.Fatalf("after filling, %d bytes free, want about %d", got, left)
	}
}

func (s *tmpfsServer) unfill() {
	s.inside("rm", "-f", filepath.Join(s.dir, "filler"), filepath.Join(s.dir, "filler2"))
}

// files lists the regular files under dir (none when it does not exist).
func (s *tmpfsServer) files(dir string) []string {
	s.t.Helper()
	out := strings.TrimSpace(s.inside("sh", "-c", `[ ! -d "$0" ] || find "$0" -type f`, dir))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func (s *tmpfsServer) post(body []byte) answer {
	s.t.Helper()
	return sendChecked(s.t, http.MethodPost, s.url+"/v1/instances", s.ingest, "application/dicom", body)
}

func (s *tmpfsServer) get(uid string) answer {
	s.t.Helper()
	return sendChecked(s.t, http.MethodGet, s.url+"/v1/instances/"+uid, s.viewer, "", nil)
}

// onlyDisk is a 503 that names the disk, and nothing else, as failing.
func onlyDisk(status int, checks map[string]depState) bool {
	return status == http.StatusServiceUnavailable && !checks["disk"].OK &&
		checks["ledger"].OK && checks["audit"].OK && checks["objects"].OK
}

// insufficient checks a 507 insufficient-storage answer.
func insufficient(t testing.TB, a answer) {
	t.Helper()
	assertProblem(t, a.response, http.StatusInsufficientStorage, "insufficient-storage")
}

// A data directory with less free space than --min-free-space makes the
// service not ready and ingest answer 507, recording nothing; when space
// comes back, ingest works again without a restart. A body that runs the
// disk out of space mid-way also gets 507 and leaves nothing behind.
// Runs the real binary on a small tmpfs in a mount namespace (root only).
func TestFaultNearlyFullDisk(t *testing.T) {
	t.Parallel()
	requireNamespaces(t)
	bin := buildBinary(t)
	ct := fixture(t, "pydicom-CT_small.dcm")
	ctUID0 := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"

	t.Run("BelowMinimum", func(t *testing.T) {
		t.Parallel()
		s := startInTmpfs(t, bin, "64m") // default --min-free-space 1GiB
		waitReadyz(t, s.url, probeLag, "503 naming only the disk", onlyDisk)
		insufficient(t, s.post(ct))
		if r := s.get(ctUID0); r.status != http.StatusNotFound {
			t.Fatalf("refused instance: retrieval %d, want 404: %.300s", r.status, r.body)
		}
		if f := s.files(s.objects); len(f) != 0 {
			t.Fatalf("refused ingest left objects: %v", f)
		}
	})

	t.Run("FilledAndFreed", func(t *testing.T) {
		t.Parallel()
		s := startInTmpfs(t, bin, "64m", "--min-free-space", "16MiB")
		waitReadyz(t, s.url, probeLag, "ready", isReady)
		if r := s.post(ct); r.status != http.StatusCreated {
			t.Fatalf("ingest with space: %d %s", r.status, r.body)
		}
		objects := s.files(s.objects)

		s.fillTo(8 << 20)
		waitReadyz(t, s.url, probeLag, "503 naming only the disk", onlyDisk)
		other := instanceWithUID(t, 300)
		insufficient(t, s.post(other))
		if r := s.get(ctUID(300)); r.status != http.StatusNotFound {
			t.Fatalf("refused instance: retrieval %d, want 404: %.300s", r.status, r.body)
		}
		if f := s.files(s.objects); len(f) != len(objects) {
			t.Fatalf("refused ingest changed the objects: %v, before %v", f, objects)
		}

		s.unfill()
		waitReadyz(t, s.url, probeLag, "ready again once space came back", isReady)
		// Nothing of the refused attempt was recorded: 201, not 200.
		if r := s.post(other); r.status != http.StatusCreated {
			t.Fatalf("ingest once space came back: %d %s, want 201", r.status, r.body)
		}
		if r := s.get(ctUID(300)); r.status != http.StatusOK || !bytes.Equal(r.body, other) {
			t.Fatalf("retrieval once space came back: %d", r.status)
		}
	})

	t.Run("BodyLargerThanFreeSpace", func(t *testing.T) {
		t.Parallel()
		s := startInTmpfs(t, bin, "64m", "--min-free-space", "1MiB", "--max-body", "64MiB", "--spool-memory", "1MiB")
		waitReadyz(t, s.url, probeLag, "ready", isReady)
		const uid = "1.2.826.0.1.3680043.9.7433.10.12"
		big := synth.Instance(synth.Spec{SOPInstanceUID: uid, Rows: 1024, Columns: 1024, Frames: 6}) // 12 MiB
		objects := s.files(s.objects)

		s.fillTo(8 << 20)
		waitReadyz(t, s.url, probeLag, "still ready with 8 MiB free over a 1 MiB minimum", isReady)
		before := s.free()
		start := time.Now()
		a := s.post(big)
		insufficient(t, a)
		if a.elapsed >= 10*time.Second {
			t.Fatalf("507 after %v", time.Since(start))
		}
		if r := s.get(uid); r.status != http.StatusNotFound {
			t.Fatalf("refused instance: retrieval %d, want 404: %.300s", r.status, r.body)
		}
		// No half-written object, spool file or temporary file stays behind.
		if f := s.files(s.objects); len(f) != len(objects) {
			t.Fatalf("refused ingest changed the objects: %v, before %v", f, objects)
		}
		for deadline := time.Now().Add(2 * time.Second); ; {
			spool, free := s.files(s.spool), s.free()
			if len(spool) == 0 && free >= before-(1<<20) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the 507: spool holds %v, %d bytes free (%d before the request)", spool, free, before)
			}
			time.Sleep(100 * time.Millisecond)
		}

		s.unfill()
		waitReadyz(t, s.url, probeLag, "ready", isReady)
		if r := s.post(big); r.status != http.StatusCreated {
			t.Fatalf("ingest once space came back: %d %.300s, want 201", r.status, r.body)
		}
		if r := s.get(uid); r.status != http.StatusOK || !bytes.Equal(r.body, big) {
			t.Fatalf("retrieval once space came back: %d", r.status)
		}
	})
}
