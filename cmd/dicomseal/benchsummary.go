package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const benchSummarizeDescription = `
Reads the --json results of dicomseal bench in DIR (every *.json file)
and prints issue 19's table in BENCHMARKS.md's style: for each scenario,
each row's median over the rounds, the baseline's of the same rounds, their
ratio (the median of the per-round ratios) and the target, met or missed.

Results are matched by their labels: scenario (a set of files), deployment
(embedded or pg-minio for dicomseal) and round, and by target and op, as
scripts/bench.sh writes them. CPU per op is the server process's own
(dicomseal, Orthanc, minio) from --server-pid; the SHA-256 pass is the
client's CPU per hash.`

func benchSummarizeCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	command := fs.String("command", "", "the command that made the results, printed above the table")
	fs.Usage = usage(fs, stderr, "dicomseal bench summarize [--command TEXT] DIR...", benchSummarizeDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "dicomseal bench summarize: give the directory of results")
		return 2
	}
	var results []*benchResult
	for _, dir := range fs.Args() {
		rs, err := readBenchResults(dir)
		if err != nil {
			fmt.Fprintln(stderr, "dicomseal bench summarize:", err)
			return 1
		}
		results = append(results, rs...)
	}
	if len(results) == 0 {
		fmt.Fprintln(stderr, "dicomseal bench summarize: no results (*.json) in", strings.Join(fs.Args(), " "))
		return 1
	}
	// Scenarios in the order they ran.
	slices.SortStableFunc(results, func(a, b *benchResult) int { return a.Started.Compare(b.Started) })
	writeBenchSummary(stdout, results, *command)
	return 0
}

func readBenchResults(dir string) ([]*benchResult, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []*benchResult
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r benchResult
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if r.Target == "" {
			return nil, fmt.Errorf("%s: not a dicomseal bench --json result", p)
		}
		out = append(out, &r)
	}
	return out, nil
}

// benchSel picks the results of one target, op and (for dicomseal)
// deployment.
type benchSel struct{ target, op, deployment string }

func (s benchSel) matches(r *benchResult) bool {
	return r.Target == s.target && r.Op == s.op && (s.deployment == "" || r.Labels["deployment"] == s.deployment)
}

// benchMetric is the figure a row compares.
type benchMetric struct {
	rate    bool   // instances/s (else CPU ms per op)
	mbps    bool   // with rate: MB/s beside it instead of p99
	process string // CPU of the server process of this name; "" all of them
	client  bool   // CPU of the client (the SHA-256 pass)
}

func (m benchMetric) value(r *benchResult) (float64, bool) {
	switch {
	case m.rate:
		return r.Rate, r.OK > 0
	case m.client:
		return r.Client.CPUMsPerOp, r.Ops > 0
	case r.Server == nil:
		return 0, false
	case m.process == "":
		return r.Server.CPUMsPerOp, true
	}
	for _, p := range r.Server.Processes {
		if strings.EqualFold(p.Name, m.process) {
			return p.CPUMsPerOp, true
		}
	}
	return 0, false
}

// benchGoal is a row's target; zero fields are not part of it.
type benchGoal struct {
	text               string
	minRatio, maxRatio float64
	maxP99Ratio        float64
	minRate, maxP99    float64
}

type benchRow struct {
	what   string
	a, b   benchSel
	ma, mb benchMetric
	goal   benchGoal
}

var (
	rate       = benchMetric{rate: true}
	cpuOf      = func(name string) benchMetric { return benchMetric{process: name} }
	noBaseline = benchSel{}
)

// benchRows is issue 19's table, scenario by scenario.
var benchRows = []benchRow{
	{"ingest, embedded (SQLite + filesystem)", benchSel{"dicomseal", "ingest", "embedded"}, benchSel{"orthanc", "ingest", ""},
		rate, rate, benchGoal{text: "≥ 1.5×", minRatio: 1.5}},
	{"server CPU per ingested instance, embedded", benchSel{"dicomseal", "ingest", "embedded"}, benchSel{"orthanc", "ingest", ""},
		cpuOf("dicomseal"), cpuOf("Orthanc"), benchGoal{text: "below Orthanc's", maxRatio: 1}},
	{"ingest, PostgreSQL + MinIO (baseline: raw minio-go PutObject)", benchSel{"dicomseal", "ingest", "pg-minio"}, benchSel{"s3", "ingest", ""},
		rate, rate, benchGoal{text: "≥ 0.8×", minRatio: 0.8}},
	{"server CPU per ingest, PostgreSQL + MinIO (dicomseal + MinIO, PostgreSQL not counted; baseline: MinIO)", benchSel{"dicomseal", "ingest", "pg-minio"}, benchSel{"s3", "ingest", ""},
		cpuOf(""), cpuOf(""), benchGoal{text: "—"}},
	{"verified retrieval, embedded (baseline: Orthanc, unverified)", benchSel{"dicomseal", "retrieve", "embedded"}, benchSel{"orthanc", "retrieve", ""},
		rate, rate, benchGoal{text: "≥ 1.5×, p99 ≤ 1.5×", minRatio: 1.5, maxP99Ratio: 1.5}},
	{"server CPU per verified retrieval, embedded", benchSel{"dicomseal", "retrieve", "embedded"}, benchSel{"orthanc", "retrieve", ""},
		cpuOf("dicomseal"), cpuOf("Orthanc"), benchGoal{text: "—"}},
	{"verified retrieval, PostgreSQL + MinIO (baseline: raw minio-go GetObject)", benchSel{"dicomseal", "retrieve", "pg-minio"}, benchSel{"s3", "retrieve", ""},
		rate, rate, benchGoal{text: "≥ 0.4×, p99 ≤ 2×", minRatio: 0.4, maxP99Ratio: 2}},
	{"dicomseal CPU per verified GET (S3) against one SHA-256 pass", benchSel{"dicomseal", "retrieve", "pg-minio"}, benchSel{"sha256", "hash", ""},
		cpuOf("dicomseal"), benchMetric{client: true}, benchGoal{text: "≤ 2×", maxRatio: 2}},
	{"`GET /v1/verify?sha256=`, embedded", benchSel{"dicomseal", "verify", "embedded"}, noBaseline,
		rate, rate, benchGoal{text: "≥ 10,000/s, p99 ≤ 5 ms", minRate: 10000, maxP99: 5}},
	{"`GET /v1/verify?sha256=`, PostgreSQL + MinIO", benchSel{"dicomseal", "verify", "pg-minio"}, noBaseline,
		rate, rate, benchGoal{text: "≥ 10,000/s, p99 ≤ 5 ms", minRate: 10000, maxP99: 5}},
	{"SHA-256 of the same bytes, in memory (this CPU's hashing limit)", benchSel{"sha256", "hash", ""}, noBaseline,
		benchMetric{rate: true, mbps: true}, rate, benchGoal{text: "—"}},
}

// writeBenchSummary prints the Markdown.
func writeBenchSummary(w io.Writer, results []*benchResult, command string) {
	fmt.Fprintf(w, "## dicomseal bench: beside Orthanc, raw MinIO and SHA-256 in one run (issue 19)\n\n")
	if command != "" {
		fmt.Fprintf(w, "```\n%s\n```\n\n", command)
	}
	first := results[0]
	rounds := map[string]bool{}
	var scenarios []string
	for _, r := range results {
		rounds[r.Labels["round"]] = true
		if s := r.Labels["scenario"]; !slices.Contains(scenarios, s) {
			scenarios = append(scenarios, s)
		}
	}
	fmt.Fprintf(w, "%s, %d cores (%s), %s. %d round(s), interleaved; each cell the median over the rounds (range in brackets), "+
		"each ratio the median of the per-round ratios; %d concurrent clients.\n",
		first.Started.Format("2006-01-02"), first.Host.CPUs, first.Host.CPUModel, first.Host.GoVersion, len(rounds), first.Concurrency)
	for _, sc := range scenarios {
		var in []*benchResult
		for _, r := range results {
			if r.Labels["scenario"] == sc {
				in = append(in, r)
			}
		}
		fmt.Fprintf(w, "\n### %s\n\n", scenarioTitle(sc, in))
		fmt.Fprintln(w, "| what | dicomseal | baseline same run | ratio | target |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, row := range benchRows {
			writeBenchRow(w, row, in)
		}
	}
	var failed []string
	for _, r := range results {
		if r.Errors > 0 || (r.Check != nil && r.Check.Failed > 0) {
			failed = append(failed, fmt.Sprintf("%s %s %s round %s: %d errors %v", r.Labels["scenario"], r.Target, r.Op,
				r.Labels["round"], r.Errors, r.ErrorsByKind))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\n**Runs with errors** (their figures are in the medians above):\n\n")
		for _, f := range failed {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
}

// scenarioTitle names a scenario by its files: their size and number.
func scenarioTitle(sc string, in []*benchResult) string {
	for _, r := range in {
		if r.OK > 0 && (r.Op == "ingest" || r.Op == "retrieve") {
			return fmt.Sprintf("%s: %s-byte files, %d unique copies", sc, groupDigits(float64(r.Bytes/r.OK)), r.Files)
		}
	}
	return sc
}

// fileMB is the size of a scenario's files in 10^6 bytes.
func fileMB(in []*benchResult) float64 {
	for _, r := range in {
		if r.OK > 0 {
			return float64(r.Bytes) / float64(r.OK) / 1e6
		}
	}
	return math.NaN()
}

// roundValues is a metric of the results sel picks, by round.
func roundValues(in []*benchResult, sel benchSel, m benchMetric) (map[string]float64, map[string]float64) {
	vals, p99 := map[string]float64{}, map[string]float64{}
	for _, r := range in {
		if sel.target == "" || !sel.matches(r) {
			continue
		}
		if v, ok := m.value(r); ok {
			vals[r.Labels["round"]], p99[r.Labels["round"]] = v, r.Latency.P99
		}
	}
	return vals, p99
}

func writeBenchRow(w io.Writer, row benchRow, in []*benchResult) {
	a, ap99 := roundValues(in, row.a, row.ma)
	if len(a) == 0 {
		return
	}
	b, bp99 := roundValues(in, row.b, row.mb)
	cell := func(vals, p99 map[string]float64, m benchMetric) string {
		if len(vals) == 0 {
			return "—"
		}
		if !m.rate {
			return strings.TrimSpace(fmt.Sprintf("%s ms %s", formatFigure(median(values(vals))), spread(vals, " ms")))
		}
		second := fmt.Sprintf("p99 %s ms", formatFigure(median(values(p99))))
		if m.mbps {
			second = fmt.Sprintf("%s MB/s", formatFigure(median(values(vals))*fileMB(in)))
		}
		return strings.Replace(fmt.Sprintf("%s/s %s, %s", formatFigure(median(values(vals))), spread(vals, ""), second), " ,", ",", 1)
	}
	ratio, p99Ratio := "—", math.NaN()
	r := pairedRatio(a, b)
	if !math.IsNaN(r) {
		ratio = fmt.Sprintf("**%.2f×**", r)
		if row.ma.rate {
			p99Ratio = pairedRatio(ap99, bp99)
			ratio += fmt.Sprintf(" (p99 %.2f×)", p99Ratio)
		}
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.what, cell(a, ap99, row.ma), cell(b, bp99, row.mb), ratio,
		goalVerdict(row.goal, r, p99Ratio, median(values(a)), median(values(ap99))))
}

// goalVerdict is the target with whether it was met.
func goalVerdict(g benchGoal, ratio, p99Ratio, rate, p99 float64) string {
	var checks []bool
	unmeasured := false
	add := func(limit, v float64, ok bool) {
		switch {
		case limit == 0:
		case math.IsNaN(v): // no baseline in these results
			unmeasured = true
		default:
			checks = append(checks, ok)
		}
	}
	add(g.minRatio, ratio, ratio >= g.minRatio)
	add(g.maxRatio, ratio, ratio <= g.maxRatio)
	add(g.maxP99Ratio, p99Ratio, p99Ratio <= g.maxP99Ratio)
	add(g.minRate, rate, rate >= g.minRate)
	add(g.maxP99, p99, p99 <= g.maxP99)
	if len(checks) == 0 || unmeasured {
		return g.text
	}
	if slices.Contains(checks, false) {
		return g.text + ": **missed**"
	}
	return g.text + ": met"
}

// pairedRatio is the median over the rounds both have of a/b; NaN when
// they share none.
func pairedRatio(a, b map[string]float64) float64 {
	var rs []float64
	for round, av := range a {
		if bv, ok := b[round]; ok && bv > 0 {
			rs = append(rs, av/bv)
		}
	}
	if len(rs) == 0 {
		if len(a) == 0 || len(b) == 0 || median(values(b)) == 0 {
			return math.NaN()
		}
		// A baseline run once (the SHA-256 pass) serves every round.
		return median(values(a)) / median(values(b))
	}
	return median(rs)
}

func values(m map[string]float64) []float64 {
	out := make([]float64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is "(min–max)" over the rounds, empty when they are all one.
func spread(vals map[string]float64, unit string) string {
	v := values(vals)
	if slices.Min(v) == slices.Max(v) {
		return ""
	}
	return fmt.Sprintf("(%s–%s%s)", formatFigure(slices.Min(v)), formatFigure(slices.Max(v)), unit)
}

// formatFigure rounds to what a 2-core machine's noise leaves meaningful:
// whole numbers with thousands separated from 100 on, else 3 digits.
func formatFigure(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.Abs(v) >= 100:
		return groupDigits(v)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func groupDigits(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
