package api

import (
	"context"
	"errors"
	"github.com/go-chi/chi/v5"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/problem"
)

// ActionAuthLockout is the audit action of a source locked out for failing
// authentication --auth-fail-limit times in one window.
const ActionAuthLockout = "auth.lockout"

// Auditor receives every request's event. Record must not block: a
// retrieval or a verification never waits on the audit log.
type Auditor interface {
	Record(audit.Event)
	// RecordDurable returns once the event is durable in the audit log:
	// for the routes that hand out images and verdicts (durableActions).
	RecordDurable(context.Context, audit.Event) error
	// Begin announces a request in the server (end when it is done): a
	// durable record waits briefly for such company.
	Begin() (end func())
	// Pending and Dropped count events not yet written, and lost.
	Pending() int
	Dropped() int64
	// Unauthenticated counts a request without valid credentials from
	// source; Unchecked one whose credentials could not be checked.
	Unauthenticated(source string, at time.Time)
	Unchecked(source string, at time.Time)
}

type auditNote struct {
	mu     sync.Mutex
	object string
	// study is the Study Instance UID of what the request touched, when
	// known: the audit entry is chained under that study.
	study string
	// intent, for routes that change who may act, records durably that
	// the change is about to be made (see recordIntent).
	intent func(object string) error
	// each records durably one instance of a request that concerns many
	// (see recordEach).
	each func(action, object, study string, status int) error
}

type noteKey struct{}

// noteObject tells the audit trail which object a request concerned.
func noteObject(r *http.Request, object string) {
	if n, ok := r.Context().Value(noteKey{}).(*auditNote); ok {
		n.mu.Lock()
		n.object = object
		n.mu.Unlock()
	}
}

// noteStudy tells the audit trail the study of what a request touched.
func noteStudy(r *http.Request, study string) {
	if n, ok := r.Context().Value(noteKey{}).(*auditNote); ok {
		n.mu.Lock()
		n.study = study
		n.mu.Unlock()
	}
}

// studyOf is the study a request noted, or the one its route names.
func (n *auditNote) studyOf(r *http.Request) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.study != "" {
		return n.study
	}
	return chi.URLParam(r, "study")
}

// recordIntent writes, durably and before a change is made, the audit
// event of a request that changes who may act (token administration): a
// change is never made without its record, and when the record cannot be
// written nothing changes. The answer's own event follows, as for any
// request. Without an audit trail it records nothing.
func recordIntent(r *http.Request, object string) error {
	n, ok := r.Context().Value(noteKey{}).(*auditNote)
	if !ok || n.intent == nil {
		return nil
	}
	return n.intent(object)
}

// recordEach writes, durably, the event of one instance among the many a
// request concerns (each part of a STOW-RS request, each instance of a
// study retrieved): as the native API records each of its own, before the
// instance is answered. Without an audit trail it records nothing.
func recordEach(r *http.Request, action, object, study string, status int) error {
	n, ok := r.Context().Value(noteKey{}).(*auditNote)
	if !ok || n.each == nil {
		return nil
	}
	return n.each(action, object, study, status)
}

// guard authenticates and authorizes a request against its route's entry,
// then records it in the audit trail, allowed or denied.
func (s *Server) guard(rt route, next http.Handler) http.Handler {
	public := next
	// A panic is answered inside the guard, through the writer that
	// records it: a 500 is an answer, and audited like any other.
	next = s.recoverPanics(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.public != nil && rt.public(s) {
			public.ServeHTTP(w, r)
			return
		}
		source := s.clientAddr(r)
		now := time.Now()
		failKey := limitKey(source)
		if wait, locked := s.authFails.blocked(failKey, now); locked {
			// Refused before the token is even looked at: guessing stops.
			s.refuseLockedOut(w, source, wait, now)
			return
		}
		// A request in the server may soon join a durable commit, which
		// waits briefly for it (Begin): if not with its own record, with
		// its client's next request. (Ending the count at the record
		// instead halved the batches under load.)
		end := func() {}
		if s.Audit != nil {
			end = s.Audit.Begin()
		}
		defer end()
		id, err := s.authenticate(r, now)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				// Who asked is unknown, but not that somebody did:
				// counted per source and interval, like 401s.
				if s.Audit != nil {
					s.Audit.Unchecked(source, now)
				}
				s.writeError(w, r, &attest.Error{Code: attest.EUnavailable, Problem: problem.CredentialsUnavailable,
					Message: "cannot check credentials now; retry later", Err: err})
				return
			}
			if r.Header.Get("Authorization") != "" {
				locked, over := s.authFails.fail(failKey, now)
				if locked {
					s.log.WarnContext(r.Context(), "source locked out after failed authentications",
						"source", source, "limit", s.authFails.Limit, "window", s.authFails.Window.String())
					s.record(audit.Event{Time: now, Action: ActionAuthLockout, Outcome: "denied",
						Status: http.StatusTooManyRequests, Source: source, RequestID: r.Header.Get("X-Request-Id")})
				}
				if over {
					s.refuseLockedOut(w, source, s.authFails.retryAfter(failKey, now), now)
					return
				}
			}
			// Counted per source and interval, never logged one by one: a
			// flood must not grow a log that is never pruned.
			if s.Audit != nil {
				s.Audit.Unauthenticated(source, now)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="dicomseal"`)
			writeProblem(w, problem.Unauthenticated,
				"a valid API token is required: Authorization: Bearer <token>", nil)
			return
		}
		ev := audit.Event{Time: now, Actor: id.Name, Role: id.Role, Action: rt.action, Source: source,
			RequestID: r.Header.Get("X-Request-Id")}
		if !slices.Contains(rt.roles, id.Role) {
			ev.Outcome, ev.Status = "denied", http.StatusForbidden
			s.record(ev)
			writeProblem(w, problem.Forbidden,
				"role "+string(id.Role)+" may not "+rt.action+" (allowed: "+rolesList(rt.roles)+")", nil)
			return
		}
		if lim := s.limiter(id.Name); !lim.Allow() {
			ev.Outcome, ev.Status = "denied", http.StatusTooManyRequests
			s.record(ev)
			w.Header().Set("Retry-After", "1")
			writeProblem(w, problem.RateLimited,
				"too many requests for "+id.Name+": retry after a second", nil)
			return
		}
		note := &auditNote{}
		ctx := context.WithValue(auth.WithIdentity(r.Context(), id), noteKey{}, note)
		if s.Audit != nil {
			note.intent = func(object string) error {
				e := ev
				e.Object, e.Outcome = object, "allowed"
				return s.Audit.RecordDurable(context.WithoutCancel(ctx), e)
			}
			note.each = func(action, object, study string, status int) error {
				e := ev
				e.Action, e.Object, e.Study, e.Status, e.Outcome = action, object, study, status, "allowed"
				if status >= 400 {
					e.Outcome = "failed"
				}
				return s.Audit.RecordDurable(context.WithoutCancel(ctx), e)
			}
		}
		if durableActions[rt.action] && s.Audit != nil {
			// The record is written, durably, before the answer's first
			// byte: no image and no verdict leaves without it.
			dw := s.durable(w, r.WithContext(ctx), ev, note)
			next.ServeHTTP(dw, r.WithContext(ctx))
			if !dw.wrote {
				// An answer net/http would complete on its own, after
				// the handler returns and past this writer: it too waits
				// for its record.
				dw.WriteHeader(http.StatusOK)
			}
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		note.mu.Lock()
		ev.Object = note.object
		note.mu.Unlock()
		ev.Study = note.studyOf(r.WithContext(ctx))
		ev.Status = sw.status
		ev.Outcome = "allowed"
		if sw.status >= 400 {
			ev.Outcome = "failed"
		}
		s.record(ev)
	})
}

// refuseLockedOut answers a source that failed authentication too often.
func (s *Server) refuseLockedOut(w http.ResponseWriter, source string, wait time.Duration, now time.Time) {
	s.metrics.authLimited.Inc()
	if s.Audit != nil {
		s.Audit.Unauthenticated(source, now)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	writeProblem(w, problem.AuthRateLimited,
		"too many failed authentications from "+source+"; retry after the Retry-After seconds", nil)
}

func (s *Server) record(ev audit.Event) {
	if s.Audit != nil {
		s.Audit.Record(ev)
	}
}

func rolesList(roles []auth.Role) string {
	parts := make([]string, len(roles))
	for i, r := range roles {
		parts[i] = string(r)
	}
	return strings.Join(parts, ", ")
}

func (s *Server) authenticate(r *http.Request, now time.Time) (auth.Identity, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || s.Tokens == nil {
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	ctx := r.Context()
	if s.DBTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.DBTimeout)
		defer cancel()
	}
	return auth.Authenticate(ctx, s.Tokens, token, now)
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) started() bool { return w.wrote }

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limiter returns the token bucket of one identity.
func (s *Server) limiter(name string) *rate.Limiter {
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	if s.limits == nil {
		s.limits = map[string]*rate.Limiter{}
	}
	l, ok := s.limits[name]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.RateLimit), s.RateBurst)
		s.limits[name] = l
	}
	return l
}

// viaTrustedProxy tells whether the request's peer is a trusted proxy.
func (s *Server) viaTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	return err == nil && containsAddr(s.TrustedProxies, peer)
}

// clientAddr is the request's source: the peer address, or the last
// X-Forwarded-For hop added by a trusted proxy.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !containsAddr(s.TrustedProxies, peer) {
		return host
	}
	// Every X-Forwarded-For line counts: a proxy that appends its own line
	// leaves the client's line first, which must not be believed.
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !containsAddr(s.TrustedProxies, hop) {
			return hop.String()
		}
	}
	return host
}

// parseHop reads one X-Forwarded-For hop: an address, or an address and
// port as some proxies write it.
func parseHop(h string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(h)
	return ap.Addr().Unmap(), err
}

// limitKey is the key a source's failed authentications count under: its
// address, or its IPv6 /64.
func limitKey(source string) string {
	a, err := netip.ParseAddr(source)
	if err != nil {
		return source
	}
	return sourcePrefix(a).String()
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// serveMetrics answers only clients in the metrics allow-list.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	a, err := netip.ParseAddr(s.clientAddr(r))
	if err != nil || !containsAddr(s.MetricsAllow, a) {
		writeProblem(w, problem.Forbidden, "metrics are served only to addresses in --metrics-allow", nil)
		return
	}
	s.metrics.handler().ServeHTTP(w, r)
}

// securityHeaders sets what a JSON/DICOM API should send to browsers too.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age="+strconv.Itoa(365*24*3600))
		}
		next.ServeHTTP(w, r)
	})
}
