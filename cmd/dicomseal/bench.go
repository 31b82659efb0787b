package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const benchDescription = `
Drives one running server with one operation at a time, from --concurrency
clients, with real DICOM files made unique, and reports instances/s, MB/s
(DICOM bytes), latency percentiles, errors by kind, and the CPU and memory
the server used. The baselines run through the same code: Orthanc's REST
API, raw minio-go PUT/GET against the same MinIO, and plain SHA-256.

Targets and operations (--target, --op; the first op is the default):
  dicomseal  ingest    POST /v1/instances (application/dicom); 201 is success,
                       200 (already attested) is counted as an error
             retrieve  GET /v1/instances/{SOP Instance UID}; 200
             verify    GET /v1/verify?sha256=<the file's digest>; 200
             stow      POST /dicomweb/studies, one part of multipart/related;
                       type="application/dicom"; 200
             wado      GET /dicomweb/studies/{study}/series/{series}/instances/{sop}
                       with Accept multipart/related; type="application/dicom";
                       transfer-syntax=* (as stored); 200
             --url, --token-file (ingest role for ingest and stow, viewer
             otherwise)
  orthanc    ingest    POST /instances; 200 with status Success (AlreadyStored is
                       an error); the IDs Orthanc answers are written to --ids
             retrieve  GET /instances/{ID}/file, the IDs read from --ids
             --url, --user, --password (HTTP Basic)
  s3         ingest    minio-go PutObject of bench/<sha256>: one PUT carrying
                       x-amz-checksum-sha256 (computed before the run) with an
                       unsigned payload, as dicomseal's S3 store sends it
             retrieve  GetObject of the same key, read to the end
             --s3-endpoint, --s3-bucket (created if missing), --s3-access-key,
             --s3-secret-key; plain HTTP
  sha256     hash      SHA-256 of the files' bytes, already in memory (as many of
                       them as fit in 256 MiB, at most --concurrency×2), by
                       --concurrency workers: this CPU's hashing limit

Files: --files names DICOM files or directories of .dcm files. With
--copies N each becomes N copies, each with its own SOP Instance UID (file
meta and data set; the same length, so nothing else in the file moves),
study and series kept; every copy is parsed as the server will parse it
before it is used. Copies are written once, to <--cache>/bench, in a
directory named by the source's SHA-256, N and --seed, with manifest.jsonl
(JSON lines: path, sop, study, series, sha256, size); a later run with the
same files, --copies and --seed reuses them. A different --seed makes other
copies (for a server that already holds the first ones). Without --copies
the files are used as they are.

Which instances: op k of the run uses file k mod the number of files,
warm-up ops first. Ingest and stow use each file once: by default they do
one op per file (less --warmup), and no more. Retrieve, verify and wado go
round the files the same flags name, so run them after an ingest with the
same --files, --copies and --seed. For Orthanc the ingest run writes --ids
(JSON lines: sop, id) and a retrieve run reads it; it goes round the files
--ids names.

The timed run does --count ops (default: one per file) or runs for
--duration, after --warmup ops that are not counted. Answers are read to
the end and dropped, never hashed. --check then runs a correctness pass,
not timed, over the files the run used: retrievals (and Orthanc's and
S3's stored objects) must hash to the manifest's SHA-256, a WADO answer
must be one part of those bytes, a second dicomseal ingest or STOW must
answer 200 naming the file's SOP Instance UID and SHA-256, a verification
must say verified.

Server use: --server-pid PID (repeatable: dicomseal and its MinIO) reads
the CPU time the processes used during the timed run (utime+stime from
/proc/PID/stat) and samples their resident set every 100 ms (VmRSS; also
VmHWM, the peak over the process's life). Without a PID, --metrics-url
(dicomseal's /metrics, served to --metrics-allow addresses) gives the same
from process_cpu_seconds_total and process_resident_memory_bytes, sampled
every second. The client's own CPU comes from /proc/self.

Progress goes to stderr about once a second (a line updated in place on a
terminal, otherwise a line every 5 seconds). The report goes to stdout: a
short table, or with --json one JSON object whose fields are stable:
  target, op, url, labels (--label), started, concurrency, warmup, files
  (the number the run went round), manifests, ops (timed ops, failed ones
  included), ok, errors, errors_by_kind ({"http 200": n, "transport": n,
  "s3 NoSuchKey": n, "check": n, …}), first_errors (one message per kind),
  stopped ("count", "duration", "files used up", "interrupted"), seconds,
  bytes (DICOM bytes of the successful ops), instances_per_second and
  mb_per_second (successful ops, 10^6 bytes), latency_ms {p50, p95, p99,
  max, mean} (successful ops; exact nearest-rank percentiles),
  client {cpu_seconds, cpu_ms_per_op}, server {source ("proc" or
  "metrics"), cpu_seconds, cpu_ms_per_op, peak_rss_bytes, processes [{pid,
  name, cpu_seconds, cpu_ms_per_op, peak_rss_bytes, hwm_bytes}]}, check
  {checked, failed, first_failure}, host {cpus, cpu_model, go_version}.

'dicomseal bench summarize [--command TEXT] DIR' reads the --json results
in DIR (*.json, labelled scenario, deployment and round, as
scripts/bench.sh writes them) and prints medians and ratios as a Markdown
table in BENCHMARKS.md's style.

Exit status: 0 every op (and check) succeeded, 1 any failed or the server
could not be reached, 2 usage.`

// benchConfig is the bench command's flags.
type benchConfig struct {
	target, op                     string
	concurrency, count, warmup     int
	duration, timeout              time.Duration
	files                          stringList
	copies                         int
	seed, cache, ids               string
	url, tokenFile, user, password string
	s3Endpoint, s3Bucket           string
	s3AccessKey, s3SecretKey       string
	pids                           pidList
	metricsURL                     string
	json, check                    bool
	labels                         labelMap
}

func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "summarize" {
		return benchSummarizeCommand(args[1:], stdout, stderr)
	}
	var c benchConfig
	c.labels = labelMap{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.target, "target", "dicomseal", "what to drive: dicomseal, orthanc, s3 or sha256")
	fs.StringVar(&c.op, "op", "", "the operation (see above; default: the target's first)")
	fs.IntVar(&c.concurrency, "concurrency", 16, "clients sending at once (each one request at a time, on kept-alive connections)")
	fs.IntVar(&c.count, "count", 0, "timed ops (default: one per file, less --warmup for ingest and stow)")
	fs.DurationVar(&c.duration, "duration", 0, "run the timed ops for this long instead of --count (ingest and stow stop early when the files are used up)")
	fs.IntVar(&c.warmup, "warmup", 0, "ops before the timed run, not counted")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "deadline of one op")
	fs.Var(&c.files, "files", "a DICOM file, or a directory of .dcm files (repeatable)")
	fs.IntVar(&c.copies, "copies", 0, "make this many unique copies of each file (0: use the files as they are)")
	fs.StringVar(&c.seed, "seed", "1", "names the copies: another seed makes other SOP Instance UIDs (letters, digits, '.', '_', '-')")
	fs.StringVar(&c.cache, "cache", defaultBenchCache(), "the cache directory (the scripts' DICOMSEAL_CACHE): copies are written once to its bench/ and reused")
	fs.StringVar(&c.ids, "ids", "", "orthanc: JSON-lines file of SOP Instance UID → Orthanc ID, written by ingest, read by retrieve")
	fs.StringVar(&c.url, "url", "", "dicomseal or orthanc: the server's base URL (default http://127.0.0.1:8080 for dicomseal, http://127.0.0.1:8042 for orthanc)")
	fs.StringVar(&c.tokenFile, "token-file", "", "dicomseal: file holding a bearer token (ingest role for ingest and stow, viewer otherwise)")
	fs.StringVar(&c.user, "user", "", "orthanc: HTTP Basic user")
	fs.StringVar(&c.password, "password", "", "orthanc: HTTP Basic password (prefer DICOMSEAL_PASSWORD: flags show in process lists)")
	fs.StringVar(&c.s3Endpoint, "s3-endpoint", "", "s3: the object store, HOST:PORT (plain HTTP)")
	fs.StringVar(&c.s3Bucket, "s3-bucket", "dicomseal-bench", "s3: the bucket (created if missing)")
	fs.StringVar(&c.s3AccessKey, "s3-access-key", "", "s3: access key")
	fs.StringVar(&c.s3SecretKey, "s3-secret-key", "", "s3: secret key (prefer DICOMSEAL_S3_SECRET_KEY)")
	fs.Var(&c.pids, "server-pid", "a server process to measure from /proc (repeatable, or comma-separated)")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "without --server-pid: the server's Prometheus /metrics, for its CPU and memory")
	fs.BoolVar(&c.json, "json", false, "print the report as one JSON object")
	fs.BoolVar(&c.check, "check", false, "after the timed run, check every answer against the manifest (not timed)")
	fs.Var(&c.labels, "label", "KEY=VALUE copied into the report (repeatable), e.g. scenario=ct deployment=embedded round=1")
	fs.Usage = usage(fs, stderr, "dicomseal bench --target T --op OP --files PATH [flags]\n       dicomseal bench summarize [--command TEXT] DIR", benchDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	fail := func(code int, err error) int { fmt.Fprintln(stderr, "dicomseal bench:", err); return code }
	if fs.NArg() > 0 {
		return fail(2, fmt.Errorf("no arguments expected, got %q", fs.Args()))
	}
	if err := c.validate(); err != nil {
		return fail(2, err)
	}
	res, err := runBench(ctx, &c, stderr)
	var cfg *configError
	switch {
	case errors.As(err, &cfg):
		return fail(2, err)
	case err != nil:
		return fail(1, err)
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printBenchResult(stdout, res)
	}
	if res.Errors > 0 || (res.Check != nil && res.Check.Failed > 0) || res.Stopped == "interrupted" {
		return 1
	}
	return 0
}

func (c *benchConfig) validate() error {
	ops, ok := benchOps[c.target]
	if !ok {
		return fmt.Errorf("--target must be dicomseal, orthanc, s3 or sha256, got %q", c.target)
	}
	if c.op == "" {
		c.op = ops[0]
	}
	if !slices.Contains(ops, c.op) {
		return fmt.Errorf("--target %s does --op %s, not %q", c.target, strings.Join(ops, ", "), c.op)
	}
	switch {
	case c.concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case c.count < 0 || c.warmup < 0 || c.copies < 0 || c.duration < 0:
		return errors.New("--count, --warmup, --copies and --duration cannot be negative")
	case c.count > 0 && c.duration > 0:
		return errors.New("give --count or --duration, not both")
	case c.seed == "" || strings.Trim(c.seed, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "":
		return fmt.Errorf("--seed must be letters, digits, '.', '_' or '-', got %q", c.seed)
	case len(c.files) == 0:
		return errors.New("--files is required")
	}
	if c.url == "" {
		c.url = map[string]string{"dicomseal": "http://127.0.0.1:8080", "orthanc": "http://127.0.0.1:8042"}[c.target]
	}
	c.url = strings.TrimRight(c.url, "/")
	return nil
}

// benchResult is the report, as --json prints it (field names are stable:
// scripts and summarize read them).
type benchResult struct {
	Target       string            `json:"target"`
	Op           string            `json:"op"`
	URL          string            `json:"url,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Started      time.Time         `json:"started"`
	Concurrency  int               `json:"concurrency"`
	Warmup       int               `json:"warmup"`
	Files        int               `json:"files"`
	Manifests    []string          `json:"manifests,omitempty"`
	Ops          int64             `json:"ops"`
	OK           int64             `json:"ok"`
	Errors       int64             `json:"errors"`
	ErrorsByKind map[string]int64  `json:"errors_by_kind"`
	FirstErrors  map[string]string `json:"first_errors,omitempty"`
	Stopped      string            `json:"stopped"`
	Seconds      float64           `json:"seconds"`
	Bytes        int64             `json:"bytes"`
	Rate         float64           `json:"instances_per_second"`
	MBps         float64           `json:"mb_per_second"`
	Latency      latencySummary    `json:"latency_ms"`
	Client       clientStats       `json:"client"`
	Server       *serverStats      `json:"server,omitempty"`
	Check        *checkStats       `json:"check,omitempty"`
	Host         hostInfo          `json:"host"`
}

type clientStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUMsPerOp float64 `json:"cpu_ms_per_op"`
}

type checkStats struct {
	Checked      int64  `json:"checked"`
	Failed       int64  `json:"failed"`
	FirstFailure string `json:"first_failure,omitempty"`
}

// newBenchTarget builds the target the flags name.
func newBenchTarget(c *benchConfig, client *http.Client) benchTarget {
	switch c.target {
	case "dicomseal":
		return &dicomsealTarget{httpTarget: httpTarget{client: client, base: c.url}, op: c.op, tokenFile: c.tokenFile}
	case "orthanc":
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.password))
		return &orthancTarget{httpTarget: httpTarget{client: client, base: c.url, authorization: basic}, op: c.op, idsPath: c.ids}
	case "s3":
		return &s3Target{op: c.op, endpoint: c.s3Endpoint, bucket: c.s3Bucket, access: c.s3AccessKey, secret: c.s3SecretKey,
			transport: client.Transport}
	}
	return &sha256Target{loaded: 2 * c.concurrency}
}

// benchTransport keeps one idle connection per client, talks to loopback
// servers directly (no proxy) and asks for no compression: what is timed
// is the server, not gzip.
func benchTransport(concurrency int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// runBench prepares the files, runs the warm-up and the timed ops, and
// the check pass when asked.
func runBench(ctx context.Context, c *benchConfig, stderr io.Writer) (*benchResult, error) {
	set, err := prepareBenchFiles(c.files, c.copies, c.seed, c.cache)
	if err != nil {
		return nil, &configError{"--files: " + err.Error()}
	}
	if c.copies > 0 {
		fmt.Fprintf(stderr, "bench: %d files in %s (%d written now)\n", len(set.files), filepath.Join(c.cache, "bench"), set.written)
	}
	n := int64(len(set.files))
	count, warmup := int64(c.count), int64(c.warmup)
	if uniqueOp(c.op) {
		if warmup >= n {
			return nil, &configError{fmt.Sprintf("--warmup %d uses up all %d files: ingest needs unique files (raise --copies)", warmup, n)}
		}
		if count > n-warmup {
			return nil, &configError{fmt.Sprintf("--count %d: only %d unique files are left after --warmup (raise --copies)", count, n-warmup)}
		}
	}
	client := &http.Client{Transport: benchTransport(c.concurrency)}
	target := newBenchTarget(c, client)
	files, err := target.setup(ctx, set.files)
	if err != nil {
		return nil, err
	}
	n = int64(len(files))
	if count == 0 && c.duration == 0 {
		count = n
		if uniqueOp(c.op) {
			count = n - warmup
		}
	}
	sampler, err := newServerSampler(c.pids, c.metricsURL, client)
	if err != nil {
		return nil, &configError{err.Error()}
	}
	r := &benchRunner{c: c, target: target, files: files}
	if warmup > 0 {
		if w := r.phase(ctx, 0, warmup, time.Time{}); w.ok < w.ops {
			fmt.Fprintf(stderr, "bench: %d of the %d warm-up ops failed (not counted): %v\n", w.ops-w.ok, w.ops, w.kinds)
		}
		r.done.Store(0)
		r.failed.Store(0)
	}
	res := &benchResult{Target: c.target, Op: c.op, URL: c.url, Labels: c.labels, Concurrency: c.concurrency, Warmup: c.warmup,
		Files: len(files), Manifests: set.manifests, ErrorsByKind: map[string]int64{}, FirstErrors: map[string]string{},
		Host: hostInfo{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version()}}
	if c.target != "dicomseal" && c.target != "orthanc" {
		res.URL = c.s3Endpoint
	}
	limit, deadline := count, time.Time{}
	if c.duration > 0 {
		limit = -1
		if uniqueOp(c.op) {
			limit = n - warmup
		}
	}
	clientCPU0, _ := procCPU("self")
	if err := sampler.start(); err != nil {
		return nil, err
	}
	res.Started = time.Now().UTC()
	if c.duration > 0 {
		deadline = time.Now().Add(c.duration)
	}
	stopProgress := startBenchProgress(stderr, c, &r.done, &r.failed, limit)
	start := time.Now()
	p := r.phase(ctx, warmup, limit, deadline)
	elapsed := time.Since(start)
	stopProgress()
	server, serr := sampler.finish(p.ops)
	clientCPU1, _ := procCPU("self")

	res.Ops, res.OK, res.Bytes, res.Seconds = p.ops, p.ok, p.bytes, elapsed.Seconds()
	res.Errors = p.ops - p.ok
	res.ErrorsByKind, res.FirstErrors = p.kinds, p.first
	res.Latency = summarizeLatencies(p.latencies)
	if res.Seconds > 0 {
		res.Rate = float64(p.ok) / res.Seconds
		res.MBps = float64(p.bytes) / 1e6 / res.Seconds
	}
	res.Client.CPUSeconds = clientCPU1 - clientCPU0
	if p.ops > 0 {
		res.Client.CPUMsPerOp = res.Client.CPUSeconds * 1000 / float64(p.ops)
	}
	res.Server = server
	if serr != nil {
		fmt.Fprintln(stderr, "bench: server use not measured:", serr)
	}
	switch {
	case ctx.Err() != nil:
		res.Stopped = "interrupted"
	case c.duration == 0:
		res.Stopped = "count"
	case limit >= 0 && p.ops >= limit:
		res.Stopped = "files used up"
	default:
		res.Stopped = "duration"
	}
	if c.check && ctx.Err() == nil {
		res.Check = r.checkPass(ctx, min(n, warmup+p.ops))
	}
	if err := target.finish(); err != nil {
		return res, err
	}
	return res, nil
}

// benchRunner runs the ops of one target over its files.
type benchRunner struct {
	c            *benchConfig
	target       benchTarget
	files        []benchFile
	done, failed atomic.Int64
}

// phaseResult is what the ops of a phase did.
type phaseResult struct {
	ops, ok, bytes int64
	latencies      []time.Duration
	kinds          map[string]int64
	first          map[string]string
}

// phase does ops first, first+1, … until limit of them are done (limit < 0:
// until the deadline) from --concurrency workers. The file's bytes are
// read before an op's clock starts. Ops cut short by ctx are not counted.
func (r *benchRunner) phase(ctx context.Context, first, limit int64, deadline time.Time) phaseResult {
	var next atomic.Int64
	var mu sync.Mutex
	out := phaseResult{kinds: map[string]int64{}, first: map[string]string{}}
	var wg sync.WaitGroup
	for range r.c.concurrency {
		wg.Go(func() {
			var buf []byte
			var lat []time.Duration
			var ok, bytes int64
			defer func() {
				mu.Lock()
				out.latencies = append(out.latencies, lat...)
				out.ok += ok
				out.bytes += bytes
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if (limit >= 0 && k >= limit) || (!deadline.IsZero() && !time.Now().Before(deadline)) {
					return
				}
				f := &r.files[(first+k)%int64(len(r.files))]
				var body []byte
				var err error
				if r.target.sends() {
					if buf, err = readBenchFile(buf, f); err != nil {
						err = &opError{kind: "client", err: err}
					}
					body = buf
				}
				var took time.Duration
				if err == nil {
					opCtx, cancel := context.WithTimeout(ctx, r.c.timeout)
					t0 := time.Now()
					err = r.target.do(opCtx, f, body)
					took = time.Since(t0)
					cancel()
				}
				if ctx.Err() != nil {
					return
				}
				r.done.Add(1)
				if err != nil {
					r.failed.Add(1)
					kind := errorKind(err)
					mu.Lock()
					out.kinds[kind]++
					if _, seen := out.first[kind]; !seen {
						out.first[kind] = err.Error()
					}
					mu.Unlock()
					continue
				}
				ok++
				bytes += f.Size
				lat = append(lat, took)
			}
		})
	}
	wg.Wait()
	out.ops = out.ok
	for _, n := range out.kinds {
		out.ops += n
	}
	return out
}

// checkPass runs the target's check on files [0, n), untimed.
func (r *benchRunner) checkPass(ctx context.Context, n int64) *checkStats {
	var next atomic.Int64
	var mu sync.Mutex
	st := &checkStats{}
	var wg sync.WaitGroup
	for range r.c.concurrency {
		wg.Go(func() {
			var buf []byte
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= n {
					return
				}
				f := &r.files[k]
				var err error
				if r.target.sends() {
					buf, err = readBenchFile(buf, f)
				}
				if err == nil {
					opCtx, cancel := context.WithTimeout(ctx, r.c.timeout)
					err = r.target.check(opCtx, f, buf)
					cancel()
				}
				mu.Lock()
				st.Checked++
				if err != nil {
					st.Failed++
					if st.FirstFailure == "" {
						st.FirstFailure = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return st
}

// readBenchFile reads f into buf, reusing its memory.
func readBenchFile(buf []byte, f *benchFile) ([]byte, error) {
	if int64(cap(buf)) < f.Size {
		buf = make([]byte, f.Size)
	}
	buf = buf[:f.Size]
	fh, err := os.Open(f.Path)
	if err != nil {
		return buf, err
	}
	defer fh.Close()
	if _, err := io.ReadFull(fh, buf); err != nil {
		return buf, fmt.Errorf("%s: %w", f.Path, err)
	}
	return buf, nil
}

// startBenchProgress prints ops done, the current rate and errors to
// stderr every second: on a terminal one line rewritten in place,
// otherwise a line every 5 seconds (logs stay short).
func startBenchProgress(stderr io.Writer, c *benchConfig, done, failed *atomic.Int64, limit int64) (stop func()) {
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	total := "?"
	if limit >= 0 {
		total = strconv.FormatInt(limit, 10)
	}
	var last int64
	lastAt, tick := time.Now(), 0
	stopTicker := progressEvery(time.Second, func() {
		tick++
		now, d := time.Now(), done.Load()
		rate := float64(d-last) / now.Sub(lastAt).Seconds()
		last, lastAt = d, now
		line := fmt.Sprintf("bench %s %s: %d/%s ops, %.0f/s, %d errors", c.target, c.op, d, total, rate, failed.Load())
		switch {
		case terminal:
			fmt.Fprintf(stderr, "\r%-70s", line)
		case tick%5 == 0:
			fmt.Fprintln(stderr, line)
		}
	})
	return func() {
		stopTicker()
		if terminal && tick > 0 {
			fmt.Fprintln(stderr)
		}
	}
}

// printBenchResult is the human report.
func printBenchResult(w io.Writer, r *benchResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s %s\t%s, %d clients, %d files\n", r.Target, r.Op, r.URL, r.Concurrency, r.Files)
	fmt.Fprintf(tw, "ops\t%d in %.2f s (%d errors; stopped: %s)\n", r.Ops, r.Seconds, r.Errors, r.Stopped)
	fmt.Fprintf(tw, "rate\t%.1f instances/s, %.1f MB/s\n", r.Rate, r.MBps)
	l := r.Latency
	fmt.Fprintf(tw, "latency ms\tp50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n", l.P50, l.P95, l.P99, l.Max)
	if s := r.Server; s != nil {
		fmt.Fprintf(tw, "server\t%.2f s CPU (%.2f ms/op), peak RSS %s (%s)\n", s.CPUSeconds, s.CPUMsPerOp, humanBytes(s.PeakRSSBytes), s.Source)
		for _, p := range s.Processes {
			fmt.Fprintf(tw, "  %s %d\t%.2f s CPU (%.2f ms/op), peak RSS %s, VmHWM %s\n", p.Name, p.PID, p.CPUSeconds, p.CPUMsPerOp,
				humanBytes(p.PeakRSSBytes), humanBytes(p.HWMBytes))
		}
	}
	fmt.Fprintf(tw, "client\t%.2f s CPU (%.2f ms/op)\n", r.Client.CPUSeconds, r.Client.CPUMsPerOp)
	kinds := make([]string, 0, len(r.ErrorsByKind))
	for k := range r.ErrorsByKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "errors %s\t%d, e.g. %s\n", k, r.ErrorsByKind[k], r.FirstErrors[k])
	}
	if c := r.Check; c != nil {
		fmt.Fprintf(tw, "check\t%d checked, %d failed %s\n", c.Checked, c.Failed, c.FirstFailure)
	}
	tw.Flush()
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// pidList is --server-pid: repeatable, or comma-separated.
type pidList []int

func (p *pidList) String() string {
	parts := make([]string, len(*p))
	for i, x := range *p {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

func (p *pidList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n <= 0 {
			return fmt.Errorf("want process IDs, got %q", part)
		}
		*p = append(*p, n)
	}
	return nil
}

// labelMap is --label KEY=VALUE: repeatable, or comma-separated.
type labelMap map[string]string

func (l labelMap) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k+"="+l[k])
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

func (l labelMap) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", part)
		}
		l[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return nil
}
