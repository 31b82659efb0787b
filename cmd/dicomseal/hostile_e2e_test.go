package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// Hostile input against the real server process (issue 10): bombs answered
// quickly in bounded memory, slow bodies and connection floods closed,
// failed logins limited, identifiers that are not UIDs refused.

const problemBase = "https://dicomseal.dev/problems/"

// requireOrSkip skips the test when something it needs is missing, except
// under CI, where nothing may be skipped.
func requireOrSkip(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}

// hostileBuild is one dicomseal binary shared by the tests of this file:
// built by the first that needs it, removed when the last that uses it
// ends (a test's TempDir would vanish under the others).
var hostileBuild struct {
	mu    sync.Mutex
	dir   string
	bin   string
	users int
}

func hostileBinary(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("go")
	requireOrSkip(t, err == nil, "the go command is needed to build dicomseal: %v", err)
	b := &hostileBuild
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bin == "" {
		dir, err := os.MkdirTemp("", "dicomseal-hostile-")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "dicomseal")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("go build: %v\n%s", err, out)
		}
		b.dir, b.bin = dir, bin
	}
	b.users++
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.users--; b.users == 0 {
			os.RemoveAll(b.dir)
			b.dir, b.bin = "", ""
		}
	})
	return b.bin
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	return procStatus(t, pid, "VmHWM:")
}

func procStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the server's memory: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// guardMemory kills the server if its resident memory passes limit (the
// code before issue 10 took 20 GB on a bomb, enough to take the machine
// down) and fails the test saying so.
func guardMemory(t *testing.T, rep *replica, limit int64) {
	stop := make(chan struct{})
	var killed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		path := fmt.Sprintf("/proc/%d/status", rep.cmd.Process.Pid)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.HasPrefix(line, "VmRSS:") {
					kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
					if kb<<10 > limit {
						killed.Store(kb << 10)
						rep.cmd.Process.Kill()
						return
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		if n := killed.Load(); n > 0 {
			t.Errorf("server killed: its resident memory reached %d MiB, past the %d MiB guard", n>>20, limit>>20)
		}
	})
}

func hostPort(t *testing.T, url string) string {
	t.Helper()
	h, ok := strings.CutPrefix(url, "http://")
	if !ok {
		t.Fatalf("url %q", url)
	}
	return h
}

// problemDoc is the part of a problem document the tests read.
type problemDoc struct {
	Type, Title, Detail string
	Status              int
}

func readProblem(header http.Header, body []byte) (problemDoc, error) {
	var p problemDoc
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		return p, fmt.Errorf("Content-Type %q, want application/problem+json; body %.300q", ct, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("problem is not JSON: %v: %.300q", err, body)
	}
	return p, nil
}

// exchange is one request on its own TCP connection, written by hand so
// that the test controls every byte and when it is sent.
type exchange struct {
	status   int
	header   http.Header
	body     []byte
	started  time.Time // the request head was written
	bodySent time.Time // the last body byte was written (zero if never)
	answered time.Time // the status line arrived (zero if never)
	closed   time.Time // the server closed the connection (zero if not by the deadline)
	err      error     // why no answer was read
}

// answerDelay is how long after the whole body the answer came (zero when
// it came before the end of the body).
func (x *exchange) answerDelay() time.Duration {
	if x.bodySent.IsZero() || x.answered.Before(x.bodySent) {
		return 0
	}
	return x.answered.Sub(x.bodySent)
}

// rawSend writes head, then body: the first burst bytes at once, then one
// byte every interval (none when interval is 0, leaving the connection
// silent). It reads the answer and waits for the server to close the
// connection, for at most wait since the head was sent.
func rawSend(t *testing.T, addr, head string, body []byte, burst int, interval, wait time.Duration) *exchange {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	x := &exchange{started: time.Now()}
	conn.SetDeadline(x.started.Add(wait))
	var sent atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		burst = min(burst, len(body))
		for rest := body[:burst]; len(rest) > 0; {
			k := min(len(rest), 256<<10)
			if _, err := conn.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
		if burst == len(body) {
			sent.Store(time.Now().UnixNano())
			return
		}
		if interval == 0 {
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for _, c := range body[burst:] {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{c}); err != nil {
				return
			}
		}
		sent.Store(time.Now().UnixNano())
	}()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		x.err = fmt.Errorf("no answer after %v: %w", time.Since(x.started).Round(time.Millisecond), err)
	} else {
		x.answered = time.Now()
		x.status, x.header = resp.StatusCode, resp.Header
		x.body, err = io.ReadAll(resp.Body)
		if err != nil {
			x.err = fmt.Errorf("reading the answer's body: %w", err)
		}
	}
	// Wait for the close: anything further the server sends is ignored.
	for x.closed.IsZero() {
		_, err := br.ReadByte()
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			if ns := sent.Load(); ns > 0 {
				x.bodySent = time.Unix(0, ns)
			}
			return x
		default:
			x.closed = time.Now()
		}
	}
	if ns := sent.Load(); ns > 0 {
		x.bodySent = time.Unix(0, ns)
	}
	return x
}

func postHead(path, contentLength, token string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: dicomseal.test\r\nContent-Type: application/dicom\r\n", path)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	if contentLength == "chunked" {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %s\r\n", contentLength)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func generated(t *testing.T, gen func(io.Writer) (int64, error)) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := gen(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestBombsBoundedMemoryAndTime posts each bomb to ingest and verify: each
// is refused with 400 invalid-dicom naming the limit, within 2 s of the
// body, and the server's peak RSS stays under 256 MiB.
func TestBombsBoundedMemoryAndTime(t *testing.T) {
	t.Parallel()
	_, err := os.Stat("/proc/self/status")
	requireOrSkip(t, err == nil, "peak memory is read from /proc: %v", err)
	bin := hostileBinary(t)

	type bomb struct {
		name   string
		body   []byte
		limits []string // the detail names one of these
	}
	check := func(t *testing.T, rep *replica, ingestToken, viewerToken string, bombs []bomb) {
		for _, b := range bombs {
			for _, route := range []struct{ path, token string }{{"/v1/instances", ingestToken}, {"/v1/verify", viewerToken}} {
				x := rawSend(t, hostPort(t, rep.url), postHead(route.path, strconv.Itoa(len(b.body)), route.token, "Connection: close"),
					b.body, len(b.body), 0, 30*time.Second)
				where := fmt.Sprintf("%s (%d bytes) to %s", b.name, len(b.body), route.path)
				if x.err != nil {
					t.Errorf("%s: %v", where, x.err)
					continue
				}
				if d := x.answerDelay(); d > 2*time.Second {
					t.Errorf("%s: answered %v after the body, want within 2 s", where, d.Round(time.Millisecond))
				}
				if x.status != http.StatusBadRequest {
					t.Errorf("%s: status %d, want 400: %.300s", where, x.status, x.body)
					continue
				}
				p, err := readProblem(x.header, x.body)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				named := false
				for _, l := range b.limits {
					named = named || strings.Contains(p.Detail, l)
				}
				if p.Type != problemBase+"invalid-dicom" || !named {
					t.Errorf("%s: problem %q detail %q, want …/invalid-dicom naming %s", where, p.Type, p.Detail, strings.Join(b.limits, " or "))
				}
				t.Logf("%s: 400 in %v after the body: %s", where, x.answerDelay().Round(time.Millisecond), p.Detail)
			}
		}
		if peak := peakRSS(t, rep.cmd.Process.Pid); peak >= 256<<20 {
			t.Errorf("server peak RSS %d MiB, want under 256 MiB", peak>>20)
		} else {
			t.Logf("server peak RSS %d MiB", peak>>20)
		}
	}
	start := func(t *testing.T, args ...string) (*replica, string, string) {
		data := t.TempDir()
		ingest := cliToken(t, auth.RoleIngest, "--data-dir", data)
		viewer := cliToken(t, auth.RoleViewer, "--data-dir", data)
		rep := startReplica(t, bin, append([]string{"--data-dir", data}, args...)...)
		guardMemory(t, rep, 1<<30)
		return rep, ingest, viewer
	}

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		inflate := []string{"max-inflate-ratio", "max-inflated"}
		bombs := []bomb{
			{"deflate bomb (1 GiB inflated)", generated(t, func(w io.Writer) (int64, error) { return synth.DeflateBomb(w, 1<<30) }), inflate},
			{"64 MiB of zeros", generated(t, func(w io.Writer) (int64, error) { return synth.Zeros(w, 64<<20) }), []string{"max-elements"}},
			// 128 Mi empty elements inflated from about 1 MiB: the element
			// or the inflation limit may come first.
			{"deflated zeros (1 GiB inflated)", generated(t, func(w io.Writer) (int64, error) { return synth.DeflatedZeros(w, 1<<30) }),
				[]string{"max-elements", "max-inflate-ratio", "max-inflated"}},
			{"1,000,000 tiny elements", generated(t, func(w io.Writer) (int64, error) { return synth.ManyElements(w, 1_000_000) }), []string{"max-elements"}},
		}
		if n := len(bombs[0].body); n < 900<<10 || n > 1200<<10 {
			t.Fatalf("the deflate bomb is %d bytes, want about 1 MiB", n)
		}
		rep, ingest, viewer := start(t)
		check(t, rep, ingest, viewer, bombs)
	})
	t.Run("max-inflated 16MiB", func(t *testing.T) {
		t.Parallel()
		rep, ingest, viewer := start(t, "--max-inflated", "16MiB", "--max-inflate-ratio", "1000")
		check(t, rep, ingest, viewer, []bomb{{"deflate bomb (64 MiB inflated)",
			generated(t, func(w io.Writer) (int64, error) { return synth.DeflateBomb(w, 64<<20) }), []string{"max-inflated"}}})
	})
}

// TestUnauthenticatedTrickleIsClosed: a request without credentials whose
// body trickles in at 1 byte/s is answered 401 and its connection closed
// within 15 s, not drained.
func TestUnauthenticatedTrickleIsClosed(t *testing.T) {
	t.Parallel()
	bin := hostileBinary(t)
	rep := startReplica(t, bin, "--data-dir", t.TempDir())
	addr := hostPort(t, rep.url)
	body := bytes.Repeat([]byte{'x'}, 64)
	for _, tc := range []struct{ name, length string }{{"content-length", "1073741824"}, {"chunked", "chunked"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := body
			if tc.length == "chunked" {
				b = append([]byte("100000\r\n"), body...)
			}
			x := rawSend(t, addr, postHead("/v1/instances", tc.length, ""), b, 0, time.Second, 15*time.Second)
			if x.err != nil {
				t.Fatalf("%v", x.err)
			}
			if x.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %.300s", x.status, x.body)
			}
			if x.closed.IsZero() {
				t.Fatalf("401 after %v, but the connection was still open 15 s after the request head",
					x.answered.Sub(x.started).Round(time.Millisecond))
			}
			t.Logf("401 after %v, closed after %v", x.answered.Sub(x.started).Round(time.Millisecond), x.closed.Sub(x.started).Round(time.Millisecond))
		})
	}
}

// TestAuthenticatedTrickleIsClosed: an authenticated body at 1 byte/s is
// ended by --body-min-rate (4KiB/s over 30 s) within 90 s; a body that
// stops is ended by --body-idle-timeout. Both answer 408
// request-body-timeout and close the connection.
func TestAuthenticatedTrickleIsClosed(t *testing.T) {
	t.Parallel()
	bin := hostileBinary(t)
	instance := generated(t, func(w io.Writer) (int64, error) {
		return synth.Write(w, synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.31", Rows: 256, Columns: 256})
	})
	expect408 := func(t *testing.T, x *exchange, within time.Duration) {
		t.Helper()
		if x.err != nil {
			t.Fatalf("%v", x.err)
		}
		if x.status != http.StatusRequestTimeout {
			t.Fatalf("status %d after %v, want 408: %.300s", x.status, x.answered.Sub(x.started).Round(time.Millisecond), x.body)
		}
		p, err := readProblem(x.header, x.body)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type != problemBase+"request-body-timeout" {
			t.Errorf("problem type %q (detail %q), want …/request-body-timeout", p.Type, p.Detail)
		}
		if x.closed.IsZero() {
			t.Fatalf("408 after %v, but the connection was still open %v after the request head",
				x.answered.Sub(x.started).Round(time.Millisecond), within)
		}
		t.Logf("408 after %v (%s), closed after %v", x.answered.Sub(x.started).Round(time.Millisecond), p.Detail,
			x.closed.Sub(x.started).Round(time.Millisecond))
	}
	t.Run("1 byte per second", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		token := cliToken(t, auth.RoleIngest, "--data-dir", data)
		rep := startReplica(t, bin, "--data-dir", data)
		x := rawSend(t, hostPort(t, rep.url), postHead("/v1/instances", strconv.Itoa(len(instance)), token),
			instance, 0, time.Second, 90*time.Second)
		expect408(t, x, 90*time.Second)
	})
	t.Run("body-idle-timeout 2s", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		token := cliToken(t, auth.RoleIngest, "--data-dir", data)
		rep := startReplica(t, bin, "--data-dir", data, "--body-idle-timeout", "2s")
		// 4 KiB of the body at once, then silence.
		x := rawSend(t, hostPort(t, rep.url), postHead("/v1/instances", strconv.Itoa(len(instance)), token),
			instance, 4096, 0, 6*time.Second)
		expect408(t, x, 6*time.Second)
	})
}

// TestSlowConnectionFlood opens 3,000 connections from 127.0.0.2, each
// sending a request head one byte at a time, slowly: at least 90 % must be
// closed by the server within 15 s of opening (the per-source cap closes
// most at accept, ReadHeaderTimeout the rest), and /healthz from
// 127.0.0.1 keeps answering 200 throughout.
func TestSlowConnectionFlood(t *testing.T) {
	t.Parallel()
	const conns = 3000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < conns+1000 {
		requireOrSkip(t, false, "3,000 connections need more file descriptors than the %d allowed (%v)", lim.Cur, err)
	}
	probe, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", "127.0.0.1:1")
	var oe *net.OpError
	if err != nil && errors.As(err, &oe) && oe.Op == "dial" && strings.Contains(err.Error(), "bind") {
		requireOrSkip(t, false, "cannot connect from 127.0.0.2: %v", err)
	}
	if probe != nil {
		probe.Close()
	}
	bin := hostileBinary(t)
	rep := startReplica(t, bin, "--data-dir", t.TempDir())
	addr := hostPort(t, rep.url)
	health := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	healthz := func() error {
		resp, err := health.Get(rep.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := healthz(); err != nil {
		t.Fatalf("/healthz before the flood: %v", err)
	}

	type outcome struct {
		dialErr error
		closed  time.Duration // after opening; 0 if still open at the end
		answer  bool          // the server wrote something before closing
	}
	outcomes := make([]outcome, conns)
	var wg sync.WaitGroup
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	head := []byte("Host: dicomseal.test\r\nContent-Type: application/dicom\r\nX-Slow: " + strings.Repeat("a", 64) + "\r\n")
	// hold keeps connection i open, writing one more header byte every 3 s,
	// until the server closes it or 16 s have passed.
	hold := func(i int, c net.Conn, opened time.Time) {
		defer wg.Done()
		defer c.Close()
		give := opened.Add(16 * time.Second)
		if _, err := io.WriteString(c, "POST /v1/instances HTTP/1.1\r\n"); err != nil {
			outcomes[i].closed = max(time.Since(opened), time.Nanosecond)
			return
		}
		buf := make([]byte, 512)
		for k := 0; ; {
			next := time.Now().Add(3 * time.Second)
			if give.Before(next) {
				next = give
			}
			c.SetReadDeadline(next)
			n, err := c.Read(buf)
			var ne net.Error
			switch {
			case n > 0:
				outcomes[i].answer = true
			case errors.As(err, &ne) && ne.Timeout():
				if !time.Now().Before(give) {
					return // still open
				}
				if k < len(head) {
					c.Write(head[k : k+1])
					k++
				}
			case err != nil:
				outcomes[i].closed = max(time.Since(opened), time.Nanosecond)
				return
			}
		}
	}
	start := time.Now()
	wg.Add(conns)
	next := make(chan int)
	for range 64 { // dialers
		go func() {
			for i := range next {
				c, err := dialer.Dial("tcp", addr)
				if err != nil {
					outcomes[i].dialErr = err
					wg.Done()
					continue
				}
				go hold(i, c, time.Now())
			}
		}()
	}
	go func() {
		for i := range conns {
			next <- i
		}
		close(next)
	}()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	// /healthz keeps answering while the flood lasts.
	var probes, failures []string
	maxFDs := 0
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			at := time.Since(start).Round(100 * time.Millisecond)
			if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", rep.cmd.Process.Pid)); err == nil {
				maxFDs = max(maxFDs, len(fds))
			}
			if err := healthz(); err != nil {
				failures = append(failures, fmt.Sprintf("at %v: %v", at, err))
			}
			probes = append(probes, at.String())
		}
	}
	var dialErrs, closed, answered, open, held int
	var firstDialErr error
	for _, o := range outcomes {
		if o.dialErr == nil && (o.closed == 0 || o.closed > 2*time.Second) {
			held++
		}
		switch {
		case o.dialErr != nil:
			dialErrs++
			if firstDialErr == nil {
				firstDialErr = o.dialErr
			}
		case o.closed > 0 && o.closed <= 15*time.Second:
			closed++
		case o.closed == 0:
			open++
		}
		if o.answer {
			answered++
		}
	}
	t.Logf("%d connections in %v: %d closed by the server within 15 s (%d with an answer first), %d held open over 2 s, %d still open after 16 s, %d failed to connect (%v); /healthz probed at %v, server fds up to %d",
		conns, time.Since(start).Round(time.Millisecond), closed, answered, held, open, dialErrs, firstDialErr, probes, maxFDs)
	if closed*100 < conns*90 {
		t.Errorf("%d of %d slow connections closed within 15 s, want at least 90 %%", closed, conns)
	}
	// --max-conns-per-source 256: the rest are closed at accept, so one
	// source cannot hold the server's file descriptors (a few slots may
	// free up and be taken again while the flood is being opened).
	if held > 256+32 {
		t.Errorf("%d connections from one source held open over 2 s, want about 256 (--max-conns-per-source)", held)
	}
	if len(probes) < 3 || len(failures) > 0 {
		t.Errorf("/healthz during the flood: %d probes, failures: %v", len(probes), failures)
	}
	if err := healthz(); err != nil {
		t.Errorf("/healthz after the flood: %v", err)
	}
}

// TestFailedLoginsAreLimited: after --auth-fail-limit (20) failures from one
// source within 10 s, that source gets 429 authentication-rate-limited with
// Retry-After, and the limit is counted. Behind a trusted proxy the source
// is the X-Forwarded-For client, so other clients of the proxy go on.
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Parallel()
	bin := hostileBinary(t)
	digest := strings.Repeat("ab", 32)
	type tally struct {
		unauthorized, limited int
		other                 []string
		badLimited            []string
	}
	// fail sends n requests with wrong tokens (malformed, well-formed and
	// unknown, and a real token's id with a wrong secret) and tallies them.
	fail := func(t *testing.T, base, realToken string, n int, header http.Header) tally {
		var mu sync.Mutex
		var tl tally
		client := &http.Client{Timeout: 10 * time.Second}
		idx := make(chan int)
		var wg sync.WaitGroup
		for range 16 { // concurrent: the limit must hold for requests in flight too
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range idx {
					var tok string
					switch i % 3 {
					case 0:
						tok = fmt.Sprintf("not-a-token-%d", i)
					case 1:
						tok = fmt.Sprintf("dst_%016x_%s", i, strings.Repeat("A", 43))
					default:
						tok = realToken[:len("dst_")+16+1] + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 32))
					}
					req, _ := http.NewRequest(http.MethodGet, base+"/v1/verify?sha256="+digest, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					for k, v := range header {
						req.Header[k] = v
					}
					resp, err := client.Do(req)
					var body []byte
					if err == nil {
						body, _ = io.ReadAll(resp.Body)
						resp.Body.Close()
					}
					mu.Lock()
					switch {
					case err != nil:
						tl.other = append(tl.other, err.Error())
					case resp.StatusCode == http.StatusUnauthorized:
						tl.unauthorized++
					case resp.StatusCode == http.StatusTooManyRequests:
						tl.limited++
						p, perr := readProblem(resp.Header, body)
						if ra := resp.Header.Get("Retry-After"); ra == "" || perr != nil || p.Type != problemBase+"authentication-rate-limited" {
							tl.badLimited = append(tl.badLimited, fmt.Sprintf("429 with Retry-After %q, problem %q (%v)", ra, p.Type, perr))
						}
					default:
						tl.other = append(tl.other, fmt.Sprintf("%d %.200s", resp.StatusCode, body))
					}
					mu.Unlock()
				}
			}()
		}
		start := time.Now()
		for i := range n {
			idx <- i
		}
		close(idx)
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("%d failed logins in %v: %d answered 401, %d answered 429", n, elapsed.Round(time.Millisecond), tl.unauthorized, tl.limited)
		// 20 per 10 s: a slow run may see a new window.
		allowed := 20 * (1 + int(elapsed/(10*time.Second)))
		if tl.unauthorized == 0 || tl.unauthorized > allowed {
			t.Errorf("%d answers of 401, want 1 to %d before the limit", tl.unauthorized, allowed)
		}
		if len(tl.other) > 0 {
			t.Errorf("%d answers neither 401 nor 429, e.g. %v", len(tl.other), tl.other[0])
		}
		if len(tl.badLimited) > 0 {
			t.Errorf("%d of the 429s are not authentication-rate-limited with Retry-After, e.g. %s", len(tl.badLimited), tl.badLimited[0])
		}
		return tl
	}
	get := func(t *testing.T, base, token string, header http.Header) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/verify?sha256="+digest, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	t.Run("one source", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		viewer := cliToken(t, auth.RoleViewer, "--data-dir", data)
		rep := startReplica(t, bin, "--data-dir", data)
		fail(t, rep.url, viewer, 3000, nil)
		resp, err := http.Get(rep.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var limited float64
		for _, line := range strings.Split(string(body), "\n") {
			if name, rest, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "dicomseal_auth_failures_limited_total") {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				limited += v
			}
		}
		if resp.StatusCode != http.StatusOK || limited <= 0 {
			t.Errorf("/metrics (%d): dicomseal_auth_failures_limited_total is %v, want > 0", resp.StatusCode, limited)
		}
	})
	t.Run("behind a trusted proxy", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		viewer := cliToken(t, auth.RoleViewer, "--data-dir", data)
		rep := startReplica(t, bin, "--data-dir", data, "--trusted-proxies", "127.0.0.1/32")
		attacker := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
		if tl := fail(t, rep.url, viewer, 200, attacker); tl.limited == 0 {
			t.Fatal("the client behind the proxy was never limited")
		}
		if status, body := get(t, rep.url, viewer, http.Header{"X-Forwarded-For": {"203.0.113.8"}}); status != http.StatusOK {
			t.Errorf("another client of the proxy with a valid token: %d %.300s, want 200", status, body)
		}
		if status, body := get(t, rep.url, viewer, nil); status != http.StatusOK {
			t.Errorf("the proxy itself with a valid token: %d %.300s, want 200", status, body)
		}
		// Locked out means locked out: a right guess must not be told apart.
		if status, _ := get(t, rep.url, viewer, attacker); status != http.StatusTooManyRequests {
			t.Errorf("the locked-out client with a valid token: %d, want 429", status)
		}
	})
}

// TestInvalidUIDsRefused: an identifying UID that is not a UI value (PS3.5
// 9.1) is refused with 400 invalid-dicom naming the attribute, in each of
// the four identifying attributes; a valid one with its NUL padding is
// accepted; and a refused file's verification is a 400, never a false
// tamper alarm.
func TestInvalidUIDsRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	// Values are NUL-padded to even length by synth.WithUIDs. "1.2.3\x00"
	// itself is a valid UID with its padding; a NUL inside is not.
	bad := map[string]string{
		"path traversal":           "../../etc/passwd",
		"embedded NUL":             "1.2.3\x004",
		"invalid UTF-8":            "\xff\xfe",
		"10 KB":                    strings.Repeat("1", 10<<10),
		"65 characters":            "1." + strings.Repeat("2", 63),
		"leading zero":             "1.02.3",
		"empty component":          "1..2",
		"leading dot":              ".1.2",
		"trailing dot":             "1.2.",
		"newline":                  "1.2.3\n4",
		"letter":                   "1.2.a",
		"SQL":                      "1'; DROP TABLE entries; --",
		"space inside":             "1.2 .3",
		"64 characters and a NULx": "1." + strings.Repeat("2", 62) + "\x00x",
	}
	attrs := []struct {
		name, tag string
		set       func(*synth.UIDs, string)
	}{
		{"SOPInstanceUID", "(0008,0018)", func(u *synth.UIDs, v string) { u.SOPInstance = v }},
		{"StudyInstanceUID", "(0020,000D)", func(u *synth.UIDs, v string) { u.Study = v }},
		{"SeriesInstanceUID", "(0020,000E)", func(u *synth.UIDs, v string) { u.Series = v }},
		{"SOPClassUID", "(0008,0016)", func(u *synth.UIDs, v string) { u.SOPClass = v }},
	}
	file := func(t *testing.T, u synth.UIDs) []byte {
		return generated(t, func(w io.Writer) (int64, error) { return synth.WithUIDs(w, u) })
	}
	n := 0
	for _, a := range attrs {
		for name, v := range bad {
			n++
			u := synth.ValidUIDs(fmt.Sprintf("1.2.826.0.1.3680043.10.99.4%d", n))
			a.set(&u, v)
			body := file(t, u)
			t.Run(a.name+"/"+name, func(t *testing.T) {
				s := *srv
				s.t = t
				p := assertProblem(t, s.ingest(body), http.StatusBadRequest, "invalid-dicom")
				if d, _ := p["detail"].(string); !strings.Contains(d, a.tag) {
					t.Errorf("detail %q does not name %s %s", d, a.name, a.tag)
				}
				if v != "\xff\xfe" {
					return
				}
				// The same bytes, verified: a 400, never a 502 and an
				// integrity-failure entry.
				p = assertProblem(t, s.do(http.MethodPost, "/v1/verify", "application/dicom", body), http.StatusBadRequest, "invalid-dicom")
				if d, _ := p["detail"].(string); !strings.Contains(d, a.tag) {
					t.Errorf("verify: detail %q does not name %s %s", d, a.name, a.tag)
				}
			})
		}
	}

	// Valid UIDs are accepted with their padding: every one of the four is
	// of odd length, so written with one trailing NUL; and 64 characters,
	// the longest allowed, without.
	for _, sop := range []string{"1.2.826.0.1.3680043.10.99.501", "1.2.826.0.1.3680043.10.99.5" + strings.Repeat("1", 64-27)} {
		u := synth.ValidUIDs(sop)
		if len(sop) == 64 {
			u.Study, u.Series = sop[:62]+".1", sop[:62]+".2"
		}
		body := file(t, u)
		t.Run(fmt.Sprintf("valid/%d characters", len(sop)), func(t *testing.T) {
			s := *srv
			s.t = t
			r := s.ingest(body)
			if r.status != http.StatusCreated {
				t.Fatalf("valid UIDs %+v: %d %s", u, r.status, r.body)
			}
			if got := r.json(t)["sop_instance_uid"]; got != sop {
				t.Errorf("attested as %q, want %q (padding removed)", got, sop)
			}
		})
	}

	// No integrity failure was recorded, in the metrics or in the log.
	time.Sleep(time.Second) // let the log integrate what it has
	if m := srv.do(http.MethodGet, "/metrics", "", nil); strings.Contains(string(m.body), "dicomseal_integrity_violations_total{") {
		t.Errorf("integrity violations counted:\n%s", grepLines(string(m.body), "dicomseal_integrity_violations_total"))
	}
	for i := 0; ; i++ {
		r := srv.as(auth.RoleAuditor).do(http.MethodGet, fmt.Sprintf("/v1/log/entries/%d", i), "", nil)
		if r.status != http.StatusOK {
			break
		}
		e, _ := base64.StdEncoding.DecodeString(r.json(t)["entry"].(string))
		if bytes.Contains(e, []byte("integrity-failure")) {
			t.Errorf("log entry %d records an integrity failure: %.300s", i, e)
		}
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
