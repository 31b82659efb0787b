package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/problem"
)

// drainGrace is how long a refused request's unread body may still be
// drained after the answer.
const drainGrace = 250 * time.Millisecond

// rateWindow is the interval --body-min-rate is averaged over.
const rateWindow = 30 * time.Second

// BodyPace bounds how slowly a client may send a request body: a body that
// stalls for Idle, or averages less than MinRate bytes/s over a 30 s
// window, ends the request with 408 and the connection. Without it one
// slow client holds a goroutine, a spool and a connection for ever.
type BodyPace struct {
	Idle    time.Duration
	MinRate int64
}

// pacedBody reads a request body under a BodyPace, moving the connection's
// read deadline ahead of every read.
type pacedBody struct {
	r    io.Reader
	rc   *http.ResponseController
	pace BodyPace

	windowStart time.Time
	windowBytes int64
	done        bool
}

func (s *Server) pace(w http.ResponseWriter, r io.Reader) io.Reader {
	if s.Pace.Idle <= 0 && s.Pace.MinRate <= 0 {
		return r
	}
	return &pacedBody{r: r, rc: http.NewResponseController(w), pace: s.Pace, windowStart: time.Now()}
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.r.Read(p)
	}
	if b.pace.Idle > 0 {
		b.rc.SetReadDeadline(time.Now().Add(b.pace.Idle))
	}
	n, err := b.r.Read(p)
	now := time.Now()
	b.windowBytes += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		// The whole body is in: lift the deadline, or the server's
		// background read would cancel a long analysis when it expires.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
		return n, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, &attest.Error{Code: attest.ETimeout, Problem: attest.ProblemBodyTimeout,
			Message: fmt.Sprintf("no byte of the request body arrived for %s (--body-idle-timeout)", b.pace.Idle), Err: err}
	case err != nil:
		return n, err
	}
	if elapsed := now.Sub(b.windowStart); b.pace.MinRate > 0 && elapsed >= rateWindow {
		if rate := float64(b.windowBytes) / elapsed.Seconds(); rate < float64(b.pace.MinRate) {
			return n, &attest.Error{Code: attest.ETimeout, Problem: attest.ProblemBodyTimeout,
				Message: fmt.Sprintf("the request body arrived at %.0f bytes/s over the last %s, below --body-min-rate (%d bytes/s)",
					rate, elapsed.Round(time.Second), b.pace.MinRate)}
		}
		b.windowStart, b.windowBytes = now, 0
	}
	return n, nil
}

// closeUnreadBodies makes a refusal cheap: when a handler answers without
// having read the request body to its end (401 before authentication, 413,
// 415, a too-slow body), the connection is closed after the answer instead
// of being drained, so a client cannot keep it busy by still sending.
func closeUnreadBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		tb := &trackedBody{ReadCloser: r.Body}
		r.Body = tb
		cw := &closingWriter{ResponseWriter: w, body: tb}
		next.ServeHTTP(cw, r)
		if !tb.eof.Load() {
			// Bound the server's post-handler drain (it reads up to 256 KiB
			// of a small body, so that closing does not reset the answer
			// away): a client that is still sending after drainGrace is cut.
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainGrace))
		}
	})
}

type trackedBody struct {
	io.ReadCloser
	eof atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof.Store(true)
	}
	return n, err
}

// closingWriter adds "Connection: close" to an answer sent while the body
// is unread.
type closingWriter struct {
	http.ResponseWriter
	body  *trackedBody
	wrote bool
}

func (w *closingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if !w.body.eof.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitBehindProxies caps the requests in flight per client that arrive
// through a trusted proxy: the listener caps connections per address, but a
// proxy's connections carry every client behind it.
func (s *Server) limitBehindProxies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.MaxPerSource <= 0 || len(s.TrustedProxies) == 0 || !s.viaTrustedProxy(r) {
			next.ServeHTTP(w, r)
			return
		}
		client := s.clientAddr(r)
		s.inflightMu.Lock()
		if s.inflight == nil {
			s.inflight = map[string]int{}
		}
		over := s.inflight[client] >= s.MaxPerSource
		if !over {
			s.inflight[client]++
		}
		s.inflightMu.Unlock()
		if over {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, problem.RateLimited,
				fmt.Sprintf("more than %d requests in flight from %s (--max-conns-per-source)", s.MaxPerSource, client), nil)
			return
		}
		defer func() {
			s.inflightMu.Lock()
			if s.inflight[client]--; s.inflight[client] <= 0 {
				delete(s.inflight, client)
			}
			s.inflightMu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}
