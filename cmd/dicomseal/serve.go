package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/postgres"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/dicomseal/dicomseal/store"
)

const serveDescription = `
Runs the dicomseal service. With no configuration it keeps everything under
--data-dir: an embedded SQLite ledger (ledger.db), a filesystem object store
(objects/), the attestation key (keys/attestation.pem, generated on first
start, mode 0600), the log key (keys/log.key, Ed25519, likewise) and a spool
for request bodies (spool/). A 2xx answer means the instance and its ledger
entry are durable on disk. Every --checkpoint-interval, new entries are
integrated into the Merkle tree and a signed checkpoint is published.
DICOMweb (STOW-RS, WADO-RS, QIDO-RS, PS3.18) is served under /dicomweb.`

// Main is the dicomseal server: ParseFlags, Run, then Close. Tests run the
// real Main on 127.0.0.1:0 with a temporary data directory.
type Main struct {
	Addr       string
	DataDir    string
	KeyFile    string
	LogKeyFile string
	// AuditLogKeyFile is the audit log's own key (default <data-dir>/keys/audit-log.key).
	AuditLogKeyFile string
	LogOrigin       string
	Checkpoint      time.Duration
	MaxBody         byteSize
	SpoolMemory     byteSize
	Ledger          ledgerConfig
	Objects         storeConfig
	AuditOrigin     string
	AuditWindow     time.Duration
	PublicLog       bool
	MetricsAllow    prefixList
	Proxies         prefixList
	RateLimit       float64
	RateBurst       int
	MigrateURL      string
	RequireSync     bool
	TLSCert         string
	TLSKey          string
	LogLevel        string
	LogFormat       string
	ShutdownWait    time.Duration

	// Hostile input and hanging dependencies (see `serve --help`).
	MaxInflated     byteSize
	MaxInflateRatio int64
	MaxElements     int
	BodyIdle        time.Duration
	BodyMinRate     byteSize
	MaxConns        int
	MaxConnsSource  int
	S3Timeout       time.Duration
	DBTimeout       time.Duration
	MinFreeSpace    byteSize
	AuthFailLimit   int
	AuthFailWindow  time.Duration

	// DICOMweb.
	MaxParts    int
	CORSOrigins originList

	// Custody of images at rest and on the move.
	ScrubInterval      time.Duration
	ScrubRate          byteSize
	Destinations       destinationFlags
	DestinationTimeout time.Duration

	// Stderr receives logs (os.Stderr unless a test sets it).
	Stderr io.Writer
	// noAudit leaves requests unaudited: only for the benchmark that
	// measures what auditing costs.
	noAudit bool

	log        *slog.Logger
	ledger     *custody.Log
	auditLog   *ledger.Log
	audit      *audit.Log
	tokens     auth.Store
	catalog    catalog.Store
	listener   net.Listener
	server     *http.Server
	served     chan error
	integrator context.CancelFunc
	integrated chan struct{}
	scrubStop  context.CancelFunc
	scrubbed   chan struct{}
	scrubber   *attest.Scrubber
}

// Defaults of the limits on hostile input and hanging dependencies: part
// of the wire contract, documented in the README.
var (
	defaultLimits = dicomfile.DefaultLimits
	defaultPace   = api.BodyPace{Idle: 30 * time.Second, MinRate: 4 << 10}
)

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{
		Addr:         "127.0.0.1:8080",
		DataDir:      "./dicomseal-data",
		LogOrigin:    defaultLogOrigin,
		AuditOrigin:  defaultAuditOrigin,
		AuditWindow:  10 * time.Second,
		PublicLog:    true,
		MetricsAllow: prefixList{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		RateLimit:    1000,
		RateBurst:    2000,
		Checkpoint:   500 * time.Millisecond,
		MaxBody:      2 << 30,
		SpoolMemory:  16 << 20,
		LogLevel:     "info",
		LogFormat:    "json",
		ShutdownWait: 30 * time.Second,
		Stderr:       os.Stderr,

		MaxInflated:     byteSize(defaultLimits.MaxInflated),
		MaxInflateRatio: defaultLimits.MaxInflateRatio,
		MaxElements:     defaultLimits.MaxElements,
		BodyIdle:        defaultPace.Idle,
		BodyMinRate:     byteSize(defaultPace.MinRate),
		MaxConns:        4096,
		MaxConnsSource:  256,
		S3Timeout:       30 * time.Second,
		DBTimeout:       10 * time.Second,
		MinFreeSpace:    1 << 30,
		AuthFailLimit:   20,
		AuthFailWindow:  10 * time.Second,
		MaxParts:        api.DefaultMaxParts,

		ScrubRate:          32 << 20,
		DestinationTimeout: 2 * time.Minute,
	}
}

// ParseFlags reads the serve flags and DICOMSEAL_* variables.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	m.storageFlags(fs)
	fs.StringVar(&m.Addr, "addr", m.Addr, "address to listen on, HOST:PORT (port 0 picks a free port)")
	fs.DurationVar(&m.Checkpoint, "checkpoint-interval", m.Checkpoint, "how often new entries are integrated into the tree and a checkpoint is published")
	fs.DurationVar(&m.AuditWindow, "audit-window", m.AuditWindow, "requests without valid credentials are counted per source over this window, one audit entry each")
	fs.BoolVar(&m.PublicLog, "public-log", m.PublicLog, "serve /v1/keys, the checkpoint and consistency proofs without a token (witnesses need them)")
	fs.Var(&m.MetricsAllow, "metrics-allow", "comma-separated addresses or CIDRs that may read /metrics")
	fs.Var(&m.Proxies, "trusted-proxies", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed")
	fs.Float64Var(&m.RateLimit, "rate-limit", m.RateLimit, "requests per second allowed to each identity (429 beyond; generous enough for a CT study at full speed)")
	fs.IntVar(&m.RateBurst, "rate-burst", m.RateBurst, "burst allowed to each identity above --rate-limit")
	fs.StringVar(&m.MigrateURL, "migrate-database-url", m.MigrateURL, "if set, apply PostgreSQL migrations with these (owner's) credentials before serving; serve never migrates otherwise")
	fs.BoolVar(&m.RequireSync, "require-sync-replica", m.RequireSync, "fail readiness when PostgreSQL has no synchronous standby configured (otherwise only a warning)")
	fs.Var(&m.MaxBody, "max-body", "largest request body accepted (e.g. 2GiB); larger bodies get 413")
	fs.Var(&m.SpoolMemory, "spool-memory", "bytes of a body or object buffered in memory before spilling to a 0600 file in <data-dir>/spool")
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "TLS certificate (PEM); with --tls-key serves HTTPS, TLS 1.2 minimum")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "TLS private key (PEM)")
	fs.DurationVar(&m.ShutdownWait, "shutdown-timeout", m.ShutdownWait, "how long to let requests in flight finish on shutdown")
	fs.Var(&m.MaxInflated, "max-inflated", "largest size a deflated data set (transfer syntax 1.2.840.10008.1.2.1.99) may inflate to; beyond: 400 (0: no limit)")
	fs.Int64Var(&m.MaxInflateRatio, "max-inflate-ratio", m.MaxInflateRatio, "most bytes a deflated data set may inflate to per compressed byte (a deflate bomb inflates ~1000 times); beyond: 400 (0: no limit)")
	fs.IntVar(&m.MaxElements, "max-elements", m.MaxElements, "most data elements and items in one data set, nested ones included; beyond: 400 (0: no limit)")
	fs.DurationVar(&m.BodyIdle, "body-idle-timeout", m.BodyIdle, "a request body that sends no byte for this long ends the request (408) and its connection (0: off)")
	fs.Var(&m.BodyMinRate, "body-min-rate", "slowest request body accepted, in bytes per second averaged over 30 s (e.g. 4KiB); slower: 408 (0: off)")
	fs.IntVar(&m.MaxConns, "max-conns", m.MaxConns, "most client connections open at once; more are closed on accept (kept below the open-file limit)")
	fs.IntVar(&m.MaxConnsSource, "max-conns-per-source", m.MaxConnsSource, "most connections from one address (an IPv6 /64); --trusted-proxies are exempt and their clients are capped per X-Forwarded-For instead")
	fs.Var(&m.MinFreeSpace, "min-free-space", "free space the data directory must keep: below it ingest answers 507 and /readyz is not ready (0: no check)")
	fs.IntVar(&m.AuthFailLimit, "auth-fail-limit", m.AuthFailLimit, "failed authentications one source may make per --auth-fail-window before it gets 429 (0: no limit)")
	fs.DurationVar(&m.AuthFailWindow, "auth-fail-window", m.AuthFailWindow, "the window --auth-fail-limit counts over")
	fs.IntVar(&m.MaxParts, "max-parts", m.MaxParts, "most parts in one DICOMweb STOW-RS request; more: 413 (the parts before the limit are stored)")
	fs.DurationVar(&m.ScrubInterval, "scrub-interval", m.ScrubInterval, "check every stored object against its signed attestation once per this interval, e.g. 720h (0: no scheduled scrub; `dicomseal scrub` runs one on demand)")
	fs.Var(&m.ScrubRate, "scrub-rate", "most bytes per second the scrubber reads from the object store (e.g. 32MiB)")
	fs.Var(&m.Destinations.urls, "destination", "a transfer destination, NAME=URL (repeatable; in DICOMSEAL_DESTINATION, several separated by spaces): a DICOMweb root for STOW-RS (http(s)://…), or file:///DIR to export into a directory")
	fs.Var(&m.Destinations.tokens, "destination-token-file", "NAME=PATH (repeatable): the file holding destination NAME's credentials, a bearer token or a whole Authorization value (\"Basic …\"); never put them in a flag")
	fs.DurationVar(&m.DestinationTimeout, "destination-timeout", m.DestinationTimeout, "deadline of one instance's send to a destination; beyond it the transfer is recorded unreachable")
	fs.Var(&m.CORSOrigins, "cors-origins", "browser origins (scheme://host[:port], comma-separated) allowed to call the API, e.g. a web viewer's; none by default")
	fs.Usage = usage(fs, m.Stderr, "dicomseal serve [flags]", serveDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if (m.TLSCert == "") != (m.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if m.MaxBody <= 0 || m.SpoolMemory <= 0 {
		return errors.New("--max-body and --spool-memory must be positive")
	}
	if m.MaxParts <= 0 {
		return errors.New("--max-parts must be positive")
	}
	return nil
}

// open opens what the service and the offline commands share: the
// logger, the spool, both logs and their keys, the token store, the
// catalog and the object store, and wires the domain service. On error
// the caller closes m.
func (m *Main) open(ctx context.Context) (_ *attest.Service, _ ledger.Backend, err error) {
	if m.log, err = newLogger(m.Stderr, m.LogLevel, m.LogFormat); err != nil {
		return nil, nil, err
	}
	spoolDir := filepath.Join(m.DataDir, "spool")
	if err := prepareSpool(spoolDir); err != nil {
		return nil, nil, err
	}
	if m.MigrateURL != "" {
		roles := postgres.Roles{Owner: m.Ledger.OwnerRole, Service: m.Ledger.ServiceRole}
		if err := postgres.Migrate(ctx, m.MigrateURL, roles, m.log); err != nil {
			return nil, nil, err
		}
	}
	backend, err := m.Ledger.open(ctx, m.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if err := m.auditLogPresent(ctx, backend); err != nil {
		backend.Close()
		return nil, nil, err
	}
	auditBackend, err := m.Ledger.openAudit(ctx, m.DataDir)
	if err != nil {
		backend.Close()
		return nil, nil, err
	}
	keys, err := m.checkedKeys(ctx, backend, auditBackend)
	if err != nil {
		backend.Close()
		auditBackend.Close()
		return nil, nil, err
	}
	warnPrivileges(ctx, backend, m.log)
	m.ledger = custody.New(ledger.New(backend, m.LogOrigin, keys.log, keys.log.Verifier()))
	m.ledger.Timeout = m.DBTimeout
	tokens, ok := backend.(auth.Store)
	if !ok {
		return nil, nil, errors.New("the ledger backend keeps no tokens")
	}
	m.tokens = tokens
	if m.catalog, ok = backend.(catalog.Store); !ok {
		return nil, nil, errors.New("the ledger backend keeps no DICOMweb catalog")
	}
	m.auditLog = ledger.New(auditBackend, m.AuditOrigin, keys.audit, keys.audit.Verifier())
	m.auditLog.Handover = keys.log
	m.auditLog.Timeout = m.DBTimeout
	m.audit = audit.NewWithWindow(m.auditLog, m.log, m.AuditWindow)
	objects, err := m.Objects.open(ctx, m.DataDir)
	if err != nil {
		return nil, nil, err
	}
	objects = store.Timeout{Backend: objects, D: m.S3Timeout}
	svc := attest.NewService(m.ledger, objects, keys.attestation, m.log)
	svc.SpoolDir, svc.SpoolMemory = spoolDir, int64(m.SpoolMemory)
	svc.Limits = dicomfile.Limits{MaxInflated: int64(m.MaxInflated), MaxInflateRatio: m.MaxInflateRatio, MaxElements: m.MaxElements}
	svc.MinFreeSpace = int64(m.MinFreeSpace)
	svc.LogKey = logKeyInfo(keys.log, "log")
	svc.AuditLogKey = logKeyInfo(keys.audit, "audit-log")
	svc.Catalog = catalog.Timeout{Store: m.catalog, D: m.DBTimeout}
	return svc, backend, nil
}

// storageFlags are the flags of what serve and the offline commands that
// write to the log (scrub, store migrate) open alike: the data directory,
// both logs and their keys, the object store, their deadlines, the logger.
func (m *Main) storageFlags(fs *flag.FlagSet) {
	fs.StringVar(&m.DataDir, "data-dir", m.DataDir, "directory for the embedded ledger, object store, keys and spool")
	fs.StringVar(&m.KeyFile, "key-file", m.KeyFile, "attestation private key (PEM, ECDSA P-256); default <data-dir>/keys/attestation.pem, created if missing")
	fs.StringVar(&m.LogKeyFile, "log-key-file", m.LogKeyFile, "the custody log's signing key (Ed25519 signed-note key) for checkpoints and batches; default <data-dir>/keys/log.key, created while both logs are empty")
	fs.StringVar(&m.AuditLogKeyFile, "audit-log-key-file", m.AuditLogKeyFile, "the audit log's own signing key, named for --audit-origin; default <data-dir>/keys/audit-log.key, created once for an audit log that has none yet")
	fs.StringVar(&m.LogOrigin, "log-origin", m.LogOrigin, "origin line of the custody log's checkpoints: a name unique to this deployment")
	m.Ledger.flags(fs)
	m.Objects.flags(fs)
	fs.StringVar(&m.AuditOrigin, "audit-origin", m.AuditOrigin, "origin line of the audit log's checkpoints")
	fs.StringVar(&m.LogLevel, "log-level", m.LogLevel, "debug, info, warn or error")
	fs.StringVar(&m.LogFormat, "log-format", m.LogFormat, "json or text")
	fs.DurationVar(&m.S3Timeout, "s3-timeout", m.S3Timeout, "deadline of each object store call (for transfers: without progress); a hung store gives 503 (0: none)")
	fs.DurationVar(&m.DBTimeout, "db-timeout", m.DBTimeout, "deadline of each database call; a hung database gives 503 (for long scans: without a row; 0: none)")
}

// Run opens the data directory, the ledger, the store and the key, and
// starts serving in the background. It returns once the listener is bound.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	svc, backend, err := m.open(ctx)
	if err != nil {
		return err
	}
	if err := m.firstAdminToken(ctx); err != nil {
		return err
	}
	if svc.Destinations, err = m.Destinations.open(m.DestinationTimeout); err != nil {
		return err
	}
	scrubber, err := m.newScrubber(svc, backend)
	if err != nil {
		return err
	}
	srv := api.New(svc, m.log)
	srv.MaxBody = int64(m.MaxBody)
	srv.Tokens, srv.Audit, srv.AuditLog = m.tokens, m.audit, m.audit
	if m.noAudit {
		srv.Audit = nil
	}
	srv.PublicLog, srv.MetricsAllow, srv.TrustedProxies = m.PublicLog, m.MetricsAllow, m.Proxies
	srv.RateLimit, srv.RateBurst = m.RateLimit, m.RateBurst
	srv.Pace = api.BodyPace{Idle: m.BodyIdle, MinRate: int64(m.BodyMinRate)}
	srv.DBTimeout = m.DBTimeout
	srv.Catalog, srv.MaxParts, srv.CORSOrigins = catalog.Timeout{Store: m.catalog, D: m.DBTimeout}, m.MaxParts, m.CORSOrigins
	srv.SetAuthFailLimit(m.AuthFailLimit, m.AuthFailWindow)
	auditLog := m.auditLog // Close clears the field; a late probe keeps its own
	srv.Probes = append(srv.Probes, api.Probe{Name: "audit", Check: func(ctx context.Context) (string, error) {
		if err := auditLog.Ping(ctx); err != nil {
			return "", attest.Errorf(attest.EUnavailable, problem.AuditUnavailable, "the audit log is unavailable")
		}
		return "", nil
	}})
	if check := syncReplicaCheck(backend, m.RequireSync); check != nil {
		srv.Probes = append(srv.Probes, api.Probe{Name: "sync-replica", Check: check})
	}
	svc.SeriesCheck, m.scrubber = scrubber.CheckSeries, scrubber
	if m.ScrubInterval > 0 {
		srv.ServeFixityMetrics(scrubber)
		sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		m.scrubStop, m.scrubbed = stop, make(chan struct{})
		go func() {
			defer close(m.scrubbed)
			scrubber.Run(sctx, m.ScrubInterval)
		}()
	}

	m.server = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	// Integrate once before the first request: a new log publishes its
	// size-0 checkpoint, so /v1/log/checkpoint never answers 404 and a
	// witness can follow it from the start. Failures (a halt included)
	// are the background integrator's to report.
	for _, l := range []*ledger.Log{m.ledger.Log, m.auditLog} {
		if _, _, err := l.Integrate(ctx); err != nil {
			m.log.Debug("integration at start", "origin", l.Origin(), "err", err)
		}
	}
	if m.listener, err = net.Listen("tcp", m.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", m.Addr, err)
	}
	m.listener = srv.Listen(m.listener, api.ConnLimits{Max: m.connCap(), PerSource: m.MaxConnsSource})
	srv.ProbeOnce(ctx)
	m.served = make(chan error, 1)
	go func() {
		if m.TLSCert != "" {
			m.served <- m.server.ServeTLS(m.listener, m.TLSCert, m.TLSKey)
		} else {
			m.served <- m.server.Serve(m.listener)
		}
	}()
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.integrator, m.integrated = cancel, make(chan struct{})
	go func() {
		defer close(m.integrated)
		probesDone := make(chan struct{})
		go func() {
			defer close(probesDone)
			srv.RunProbes(ictx)
		}()
		defer func() { <-probesDone }()
		auditDone := make(chan struct{})
		go func() {
			defer close(auditDone)
			m.auditLog.RunIntegrator(ictx, m.Checkpoint, m.log)
		}()
		m.ledger.RunIntegrator(ictx, m.Checkpoint, m.log)
		<-auditDone // both integrators stop before their backends close
	}()
	m.log.Info("dicomseal serving", "addr", m.listener.Addr().String(), "tls", m.TLSCert != "",
		"data_dir", m.DataDir, "ledger", map[bool]string{true: "postgresql", false: "sqlite"}[m.Ledger.DatabaseURL != ""],
		"objects", map[bool]string{true: "s3 " + m.Objects.s3.Endpoint + "/" + m.Objects.s3.Bucket, false: "filesystem"}[m.Objects.s3.Endpoint != ""], "key_id", svc.Keys()[0].KeyID, "log_origin", m.LogOrigin,
		"log_key", svc.LogKey.VerifierKey, "scrub_interval", m.ScrubInterval.String(), "destinations", len(svc.Destinations))
	return nil
}

// auditLogPresent refuses to start beside a custody log with entries when
// the embedded audit log's file is gone: opening it would silently begin a
// new, empty audit log.
func (m *Main) auditLogPresent(ctx context.Context, custody ledger.Backend) error {
	if m.Ledger.DatabaseURL != "" {
		return nil
	}
	path := filepath.Join(m.DataDir, "audit.db")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	st, err := readLedgerState(ctx, custody)
	if err != nil || st.entries == 0 {
		return err
	}
	return &configError{fmt.Sprintf("the audit log %s is missing beside a custody log of %d entries: restore it "+
		"(a new, empty audit log would hide who accessed what)", path, st.entries)}
}

// checkedKeys opens the keys under the rule that keeps a ledger verifiable:
// keys are generated only for ledgers that hold nothing yet, and the
// origins must be the ones the stored checkpoints carry.
func (m *Main) checkedKeys(ctx context.Context, custody, auditBackend ledger.Backend) (*serviceKeys, error) {
	cs, err := readLedgerState(ctx, custody)
	if err != nil {
		return nil, fmt.Errorf("read the ledger: %w", err)
	}
	as, err := readLedgerState(ctx, auditBackend)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	for _, o := range []struct{ flag, given, stored string }{
		{"--log-origin", m.LogOrigin, cs.origin}, {"--audit-origin", m.AuditOrigin, as.origin},
	} {
		if o.stored != "" && o.stored != o.given {
			return nil, &configError{fmt.Sprintf("%s is %q but the stored checkpoints' origin is %q: a log keeps its origin for ever",
				o.flag, o.given, o.stored)}
		}
	}
	// The custody log key also verifies audit checkpoints from before the
	// audit log had a key of its own (openAuditKey).
	expect := cs
	if signedByKeyNamed(as.checkpoint, m.LogOrigin) {
		if expect.checkpoint == nil {
			expect.checkpoint, expect.logSigner = as.checkpoint, as.logSigner
		} else {
			expect.others = [][]byte{as.checkpoint}
		}
	}
	expect.entries = cs.entries + as.entries
	keys, err := openKeys(m.DataDir, m.KeyFile, m.LogKeyFile, m.LogOrigin, m.log, cs.entries == 0, expect.entries == 0, expect)
	if err != nil {
		return nil, err
	}
	if err := checkFirstBatch("custody", m.LogOrigin, "--log-origin", cs, keys.log); err != nil {
		return nil, err
	}
	if keys.audit, err = m.openAuditKey(ctx, auditBackend, keys.log); err != nil {
		return nil, err
	}
	return keys, nil
}

// connCap is --max-conns, kept below the process's open-file limit (less a
// reserve for the database, the store, the spool and the logs): past it,
// accept would fail for everyone, health checks included.
func (m *Main) connCap() int {
	const reserve = 256
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > reserve*2 {
		if limit := int(min(rl.Cur-reserve, 1<<30)); m.MaxConns > limit {
			m.log.Warn("--max-conns exceeds what the open-file limit allows; lowered", "max_conns", m.MaxConns,
				"nofile", rl.Cur, "now", limit)
			return limit
		}
	}
	return m.MaxConns
}

// Tokens is the token store (tests create tokens through it).
func (m *Main) Tokens() auth.Store { return m.tokens }

// firstAdminToken creates an admin token on the very first start, when no
// token exists: it is written to <data-dir>/admin.token (0600) and only its
// path is logged, never the token.
func (m *Main) firstAdminToken(ctx context.Context) error {
	existing, err := m.tokens.ListTokens(ctx)
	if err != nil || len(existing) > 0 {
		return err
	}
	secret, t, err := auth.NewToken("admin", auth.RoleAdmin, "first start", time.Now(), 0)
	if err != nil {
		return err
	}
	if err := m.tokens.CreateToken(ctx, t); errors.Is(err, auth.ErrNameTaken) {
		return nil // another replica made it first
	} else if err != nil {
		return err
	}
	path := filepath.Join(m.DataDir, "admin.token")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	m.log.Warn("created the first admin token; create role tokens with `dicomseal tokens create`, then revoke or guard it", "path", path)
	return nil
}

// ListenAddr is the bound address (useful with port 0).
func (m *Main) ListenAddr() string { return m.listener.Addr().String() }

// Done is closed with the server's terminal error when it stops serving.
func (m *Main) Done() <-chan error { return m.served }

// Close stops accepting requests, lets those in flight finish (up to
// ShutdownWait), and closes the ledger.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownWait)
		defer cancel()
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	if m.audit != nil {
		m.audit.Close() // flushes what was queued: nothing audited is lost on shutdown
		m.audit = nil
	}
	if m.scrubStop != nil {
		m.scrubStop() // releases the lease: another replica takes over at once
		<-m.scrubbed
		m.scrubStop = nil
	}
	if m.scrubber != nil {
		m.scrubber.Close() // series checks in flight, before the ledger closes
		m.scrubber = nil
	}
	if m.integrator != nil {
		m.integrator()
		<-m.integrated
		m.integrator = nil
	}
	if m.auditLog != nil {
		errs = append(errs, m.auditLog.Close())
		m.auditLog = nil
	}
	if m.ledger != nil {
		errs = append(errs, m.ledger.Close())
		m.ledger = nil
	}
	return errors.Join(errs...)
}

// prepareSpool creates the spool directory and removes what a crash left in it.
func prepareSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(dir, "spool-*"))
	if err != nil {
		return err
	}
	for _, f := range stale {
		os.Remove(f)
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want json or text, got %q", format)
}
