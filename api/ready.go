package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/problem"
)

// Probe is one readiness check of a dependency, run in the background.
type Probe struct {
	Name  string
	Check ReadinessCheck
}

// Probe timing: each probe gets probeTimeout; results older than
// staleAfter (a probe that hangs past its deadline) read as failed.
const (
	probeInterval = time.Second
	probeTimeout  = 500 * time.Millisecond
	staleAfter    = 3 * time.Second
)

// probeResult is the last outcome of one probe, as /readyz reports it.
type probeResult struct {
	OK        bool    `json:"ok"`
	Error     string  `json:"error,omitempty"`
	Warning   string  `json:"warning,omitempty"`
	LatencyMS float64 `json:"latency_ms"`

	checked time.Time
	err     error
}

// readiness holds the probes' latest results; /readyz reads them and never
// waits on a dependency, so it answers at once even while one hangs.
type readiness struct {
	mu      sync.Mutex
	results map[string]probeResult
	running map[string]bool
}

// RunProbes runs every probe each second, each with a 500 ms deadline,
// until ctx ends. A probe still running from the last round is not started
// again: its result ages until it reads as failed.
func (s *Server) RunProbes(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.ProbeOnce(ctx)
	}
}

// ProbeOnce runs one round of the probes and waits for it (at most the
// probe deadline): a server probes once before it starts listening, so
// that it reads ready from its first request.
func (s *Server) ProbeOnce(ctx context.Context) {
	rd := &s.ready
	var wg sync.WaitGroup
	for _, p := range s.Probes {
		rd.mu.Lock()
		if rd.running == nil {
			rd.running, rd.results = map[string]bool{}, map[string]probeResult{}
		}
		busy := rd.running[p.Name]
		rd.running[p.Name] = true
		rd.mu.Unlock()
		if busy {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			start := time.Now()
			warning, err := p.Check(pctx)
			if err == nil && pctx.Err() != nil {
				err = pctx.Err()
			}
			res := probeResult{OK: err == nil, Warning: warning, checked: time.Now(), err: err,
				LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				res.Error = probeMessage(err)
			}
			rd.mu.Lock()
			was, seen := rd.results[p.Name]
			rd.results[p.Name] = res
			rd.running[p.Name] = false
			rd.mu.Unlock()
			if !seen || was.OK != res.OK {
				if err != nil {
					s.log.Warn("readiness probe failed", "probe", p.Name, "err", err)
				} else if seen {
					s.log.Info("readiness probe recovered", "probe", p.Name)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(probeTimeout + 100*time.Millisecond):
		// A probe that ignores its deadline: its result will read as stale.
	}
}

// probeMessage is what /readyz says of a failed probe: the domain's
// client-safe message, or the cause for a plain error.
// /readyz is public: causes (addresses, driver messages) go to the log only.
func probeMessage(err error) string {
	msg := "failed"
	var e *attest.Error
	if errors.As(err, &e) {
		msg = e.Message
	}
	if errors.Is(err, context.DeadlineExceeded) {
		msg += " (no answer within " + probeTimeout.String() + ")"
	}
	return msg
}

// snapshot returns the results as of now, the first failure (nil when all
// are ready) and the warnings.
func (s *Server) snapshot(now time.Time) (map[string]probeResult, error, []string) {
	rd := &s.ready
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := make(map[string]probeResult, len(s.Probes))
	var first error
	warnings := []string{}
	for _, p := range s.Probes {
		res, ok := rd.results[p.Name]
		switch {
		case !ok:
			res = probeResult{Error: "not probed yet", err: attest.Errorf(attest.EUnavailable, problem.NotReady, "%s not probed yet", p.Name)}
		case now.Sub(res.checked) > staleAfter:
			res = probeResult{Error: "probe hung: no result for " + now.Sub(res.checked).Round(time.Second).String(),
				err: attest.Errorf(attest.EUnavailable, problem.NotReady, "%s probe hung", p.Name)}
		}
		if res.err != nil && first == nil {
			first = res.err
		}
		if res.Warning != "" {
			warnings = append(warnings, res.Warning)
		}
		out[p.Name] = res
	}
	return out, first, warnings
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks, failed, warnings := s.snapshot(time.Now())
	if failed == nil {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "warnings": warnings, "checks": checks})
		return
	}
	var e *attest.Error
	if !errors.As(failed, &e) {
		e = &attest.Error{Problem: problem.NotReady, Message: "a dependency failed its probe"}
	}
	w.Header().Set("Retry-After", retryAfterSeconds)
	writeProblemStatus(w, http.StatusServiceUnavailable, problem.Of(e.Problem), "not ready: "+e.Message,
		map[string]any{"checks": checks, "warnings": warnings})
}
