// Package api is dicomseal's HTTP edge: the route table with its roles and
// audit actions, authentication and its lockout, the durable audit of
// answers, content types, body pace and size limits, connection caps,
// readiness, token administration and problem+json answers (package
// problem). Handlers decode, call the domain service (Service, which
// *attest.Service implements and package mock fakes) and encode; no
// business logic lives here.
package api

import (
	"context"
	"net/netip"
	"sync"

	"golang.org/x/time/rate"

	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/problem"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dicomseal/dicomseal/attest"
)

// Server serves the dicomseal API.
type Server struct {
	svc     Service
	log     *slog.Logger
	metrics *metrics
	// reports bounds the custody reports made at once: each holds its
	// bundle in memory (about 120 MiB for a study of 10,000 instances).
	reports chan struct{}
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody int64
	// Probes are the readiness checks RunProbes runs in the background
	// and /readyz reports.
	Probes []Probe
	ready  readiness
	// Pace bounds how slowly request bodies may arrive.
	Pace BodyPace
	// DBTimeout bounds each token lookup.
	DBTimeout time.Duration
	// MaxPerSource caps requests in flight per client behind a trusted
	// proxy (whose own connections the listener does not cap).
	MaxPerSource int
	inflightMu   sync.Mutex
	inflight     map[string]int
	authFails    *failLimiter

	// Tokens authenticates requests; every route but the public ones is
	// denied without a valid token.
	Tokens auth.Store
	// Audit records every request (nil: no audit trail); AuditLog answers
	// /v1/audit.
	Audit    Auditor
	AuditLog AuditQuerier
	// PublicLog serves /v1/keys and the checkpoint and consistency proofs
	// without a token, as witnesses expect.
	PublicLog bool
	// MetricsAllow lists the client addresses /metrics answers.
	MetricsAllow []netip.Prefix
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// RateLimit (requests/s) and RateBurst bound each identity.
	RateLimit float64
	RateBurst int

	limitMu sync.Mutex
	limits  map[string]*rate.Limiter

	// Catalog is the DICOMweb search index (nil: no QIDO-RS, and WADO-RS
	// only of single instances).
	Catalog Catalog
	// MaxParts bounds the parts of one STOW-RS request (0: DefaultMaxParts).
	MaxParts int
	// CORSOrigins are the browser origins allowed to call the API (none
	// by default).
	CORSOrigins []string
}

// ReadinessCheck returns a warning to report while still ready, or an
// error (an *attest.Error) that makes the service not ready.
type ReadinessCheck func(ctx context.Context) (warning string, err error)

// SetAuthFailLimit locks a source out for the rest of a window once it has
// failed authentication limit times in it (0: no limit).
func (s *Server) SetAuthFailLimit(limit int, window time.Duration) {
	s.authFails = &failLimiter{Limit: limit, Window: window}
}

// New returns a server for svc with the default 2 GiB body limit.
func New(svc Service, log *slog.Logger) *Server {
	m := newMetrics()
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dicomseal_ledger_append_queue",
		Help: "Ledger appends waiting for a commit (each commit takes all of them as one batch).",
	}, func() float64 { return float64(svc.AppendQueue()) }))
	s := &Server{svc: svc, log: log, metrics: m, MaxBody: 2 << 30, PublicLog: true, reports: make(chan struct{}, maxReports),
		MetricsAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		RateLimit:    1000, RateBurst: 2000,
		Pace:      BodyPace{Idle: 30 * time.Second, MinRate: 4 << 10},
		authFails: &failLimiter{Limit: 20, Window: 10 * time.Second},
		Probes: []Probe{
			{"ledger", func(ctx context.Context) (string, error) { return "", svc.PingLedger(ctx) }},
			{"objects", func(ctx context.Context) (string, error) { return "", svc.PingStore(ctx) }},
			{"disk", func(context.Context) (string, error) { return "", svc.CheckSpace() }},
		}}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dicomseal_audit_pending",
		Help: "Audit events not yet in the audit log: queued or being retried, waiting for a durable commit, or per-source counts awaiting the end of their window.",
	}, func() float64 {
		if s.Audit == nil {
			return 0
		}
		return float64(s.Audit.Pending())
	}), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dicomseal_audit_dropped_total",
		Help: "Audit events of routes that do not wait for their record, lost because the audit log could not be written.",
	}, func() float64 {
		if s.Audit == nil {
			return 0
		}
		return float64(s.Audit.Dropped())
	}))
	return s
}

// Handler returns the routed HTTP handler.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(closeUnreadBodies, s.cors, middleware.RequestID, s.securityHeaders, s.logRequests, s.metrics.instrument, s.recoverPanics,
		s.limitBehindProxies)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem.RouteNotFound, "no route for "+r.URL.Path, nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem.MethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path, nil)
	})

	for _, rt := range routes {
		r.Method(rt.method, rt.pattern, s.guard(rt, rt.handler(s)))
	}
	return r
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	body, err := s.dicomBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.svc.Ingest(r.Context(), attest.Sized(body, r.ContentLength))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, res.SOPInstanceUID)
	noteStudy(r, res.StudyInstanceUID)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/instances/"+res.SOPInstanceUID)
	}
	writeJSON(w, status, res.Attestation)
}

// correctIdentity takes a reconciler's corrected file of an instance.
func (s *Server) correctIdentity(w http.ResponseWriter, r *http.Request) {
	uid := chi.URLParam(r, "sopInstanceUID")
	noteObject(r, uid)
	body, err := s.dicomBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, _ := auth.FromContext(r.Context())
	res, err := s.svc.CorrectIdentity(r.Context(), uid, body, r.Header.Get("Correction-Reason"), id.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteStudy(r, res.Attestation.StudyInstanceUID)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/instances/"+uid+"?revision="+strconv.FormatUint(res.LedgerIndex, 10))
	}
	writeJSON(w, status, res.Attestation)
}

// revisionParam reads ?revision=, a ledger index (nil when absent).
func revisionParam(r *http.Request) (*uint64, error) {
	v := r.URL.Query().Get("revision")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, "revision must be a ledger index, got %q", v)
	}
	return &n, nil
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request) {
	revision, err := revisionParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	uid := chi.URLParam(r, "sopInstanceUID")
	noteObject(r, uid)
	// A plain GET streams, verified chunk by chunk; ranges and
	// conditional requests are served from a copy verified whole.
	whole := r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != ""
	open := s.svc.Stream
	if whole {
		open = s.svc.Retrieve
	}
	got, err := open(r.Context(), uid, revision)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer got.Close()
	noteStudy(r, got.Attestation.StudyInstanceUID)
	h := w.Header()
	h.Set("Content-Type", "application/dicom")
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(got.SHA256[:])+":")
	h.Set("ETag", strconv.Quote(got.Attestation.Digests[attest.DigestFile]))
	h.Set("Cache-Control", "private, no-store")
	// A viewer that stops reading must not hold the connection and the
	// spooled copy for ever.
	writeDeadline(w, got.Size())
	if whole {
		// ServeContent adds Range and conditional-request support; the
		// bytes were verified whole before this point.
		http.ServeContent(w, r, "", time.Time{}, got.Reader().(io.ReadSeeker))
		return
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(got.Size(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := got.WriteTo(w); err != nil {
		s.cutAnswer(r, uid, err)
	}
}

func (s *Server) attestation(w http.ResponseWriter, r *http.Request) {
	noteObject(r, chi.URLParam(r, "sopInstanceUID"))
	revision, err := revisionParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	att, err := s.svc.Attestation(r.Context(), chi.URLParam(r, "sopInstanceUID"), revision)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteStudy(r, att.StudyInstanceUID)
	writeJSON(w, http.StatusOK, att)
}

func (s *Server) verifyFile(w http.ResponseWriter, r *http.Request) {
	body, err := s.dicomBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.svc.VerifyFile(r.Context(), body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteObject(r, v.SOPInstanceUID)
	if v.Attestation != nil {
		noteStudy(r, v.Attestation.StudyInstanceUID)
	}
	writeVerification(w, r, v)
}

// writeVerification answers a verdict, naming its attestation; the whole
// attestation (envelope, entry, proof: kilobytes) only with
// ?include=attestation.
func writeVerification(w http.ResponseWriter, r *http.Request, v *attest.Verification) {
	if r.URL.Query().Get("include") != "attestation" {
		v = v.Brief()
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) verifyDigest(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.VerifyDigest(r.Context(), r.URL.Query().Get("sha256"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v.Attestation != nil {
		noteStudy(r, v.Attestation.StudyInstanceUID)
	}
	writeVerification(w, r, v)
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.svc.Keys()})
}

// dicomBody checks that the request carries application/dicom within the
// size limit and returns its body, which reports an overrun as ETooLarge.
func (s *Server) dicomBody(w http.ResponseWriter, r *http.Request) (io.Reader, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/dicom" {
		return nil, &attest.Error{Code: problem.EUnsupported, Problem: problem.UnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/dicom (a DICOM Part 10 file), got %q", ct)}
	}
	limit, whose := s.bodyLimit(r)
	if r.ContentLength > limit {
		return nil, tooLarge(limit, whose)
	}
	return &limitedBody{r: http.MaxBytesReader(w, readCloser{s.pace(w, r.Body), r.Body}, limit),
		limit: limit, whose: whose}, nil
}

// bodyLimit is the request's size limit: the server's, or the identity's
// own when that is lower. A token can narrow the limit, never widen it.
func (s *Server) bodyLimit(r *http.Request) (limit int64, whose string) {
	limit, whose = s.MaxBody, "the server's --max-body"
	if id, ok := auth.FromContext(r.Context()); ok && id.MaxBody > 0 && id.MaxBody < limit {
		limit, whose = id.MaxBody, "token "+id.Name+"'s --max-body"
	}
	return limit, whose
}

func tooLarge(limit int64, whose string) error {
	return attest.Errorf(attest.ETooLarge, attest.ProblemBodyTooLarge,
		"request body exceeds the limit of %d bytes (%s)", limit, whose)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// limitedBody turns http.MaxBytesReader's error into the domain's ETooLarge.
type limitedBody struct {
	r     io.Reader
	limit int64
	whose string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return n, tooLarge(b.limit, b.whose)
	}
	return n, err
}
