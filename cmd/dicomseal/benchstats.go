package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencySummary is what a run's latencies report, in milliseconds.
type latencySummary struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted:
// the smallest sample with at least p % of the samples at or below it.
// Every sample is kept, so it is exact, not a histogram's estimate.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func summarizeLatencies(samples []time.Duration) latencySummary {
	if len(samples) == 0 {
		return latencySummary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latencySummary{P50: ms(percentile(s, 50)), P95: ms(percentile(s, 95)), P99: ms(percentile(s, 99)),
		Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture (the kernel's own HZ is hidden from /proc).
const clockTicks = 100

// procCPU is the CPU seconds (user and system, every thread) a process
// has used, from /proc/PID/stat ("self" for this one).
func procCPU(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted from after its closing parenthesis (field 3 is state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// procMemory is a process's resident set and its peak (VmRSS, VmHWM from
// /proc/PID/status), in bytes.
func procMemory(pid string) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%s/status %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

func procName(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/comm")
	return strings.TrimSpace(string(b))
}

// processStats is what one server process used during the timed run.
type processStats struct {
	PID          int     `json:"pid"`
	Name         string  `json:"name"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUMsPerOp   float64 `json:"cpu_ms_per_op"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	HWMBytes     int64   `json:"hwm_bytes,omitempty"`
}

// serverStats is the servers' use, summed over their processes.
type serverStats struct {
	Source       string         `json:"source"` // "proc" or "metrics"
	CPUSeconds   float64        `json:"cpu_seconds"`
	CPUMsPerOp   float64        `json:"cpu_ms_per_op"`
	PeakRSSBytes int64          `json:"peak_rss_bytes"`
	Processes    []processStats `json:"processes,omitempty"`
}

// serverSampler measures server processes over the timed run: CPU from
// the difference of two readings, peak RSS from samples (every 100 ms
// from /proc, every second from /metrics, whose scrape is itself a
// request the server serves).
type serverSampler struct {
	pids       []int
	metricsURL string
	client     *http.Client

	cpu0 []float64
	mu   sync.Mutex
	peak []int64
	stop func()
}

// newServerSampler checks that every process can be read before the run.
func newServerSampler(pids []int, metricsURL string, client *http.Client) (*serverSampler, error) {
	s := &serverSampler{pids: pids, metricsURL: metricsURL, client: client}
	n := max(len(pids), 1)
	s.cpu0, s.peak = make([]float64, n), make([]int64, n)
	if s.active() {
		if _, err := s.readCPU(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *serverSampler) active() bool { return len(s.pids) > 0 || s.metricsURL != "" }

func (s *serverSampler) readCPU() ([]float64, error) {
	if len(s.pids) == 0 {
		m, err := s.scrape()
		return []float64{m.cpu}, err
	}
	out := make([]float64, len(s.pids))
	for i, pid := range s.pids {
		c, err := procCPU(strconv.Itoa(pid))
		if err != nil {
			return nil, fmt.Errorf("server pid %d: %w", pid, err)
		}
		out[i] = c
	}
	return out, nil
}

func (s *serverSampler) sampleRSS() {
	for i := range s.peak {
		var rss int64
		if len(s.pids) == 0 {
			m, err := s.scrape()
			if err != nil {
				continue
			}
			rss = m.rss
		} else if r, _, err := procMemory(strconv.Itoa(s.pids[i])); err == nil {
			rss = r
		}
		s.mu.Lock()
		s.peak[i] = max(s.peak[i], rss)
		s.mu.Unlock()
	}
}

// start takes the first readings and samples until finish.
func (s *serverSampler) start() error {
	if !s.active() {
		return nil
	}
	c, err := s.readCPU()
	if err != nil {
		return err
	}
	s.cpu0 = c
	s.sampleRSS()
	every := 100 * time.Millisecond
	if len(s.pids) == 0 {
		every = time.Second
	}
	s.stop = progressEvery(every, s.sampleRSS)
	return nil
}

// finish ends sampling; ops is the number of operations the run did.
func (s *serverSampler) finish(ops int64) (*serverStats, error) {
	if !s.active() {
		return nil, nil
	}
	s.stop()
	s.sampleRSS()
	c, err := s.readCPU()
	if err != nil {
		return nil, err
	}
	perOp := func(sec float64) float64 {
		if ops == 0 {
			return 0
		}
		return sec * 1000 / float64(ops)
	}
	st := &serverStats{Source: "proc"}
	if len(s.pids) == 0 {
		st.Source = "metrics"
	}
	for i := range c {
		cpu := c[i] - s.cpu0[i]
		st.CPUSeconds += cpu
		st.PeakRSSBytes += s.peak[i]
		if len(s.pids) == 0 {
			continue
		}
		pid := strconv.Itoa(s.pids[i])
		_, hwm, _ := procMemory(pid)
		st.Processes = append(st.Processes, processStats{PID: s.pids[i], Name: procName(pid), CPUSeconds: cpu,
			CPUMsPerOp: perOp(cpu), PeakRSSBytes: s.peak[i], HWMBytes: hwm})
	}
	st.CPUMsPerOp = perOp(st.CPUSeconds)
	return st, nil
}

type metricsSample struct {
	cpu float64
	rss int64
}

// scrape reads process_cpu_seconds_total and
// process_resident_memory_bytes from a Prometheus text exposition
// (dicomseal serves it at /metrics to --metrics-allow addresses).
func (s *serverSampler) scrape() (metricsSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return metricsSample{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return metricsSample{}, fmt.Errorf("--metrics-url: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricsSample{}, fmt.Errorf("--metrics-url: %s", resp.Status)
	}
	return parseProcessMetrics(resp.Body)
}

func parseProcessMetrics(r io.Reader) (metricsSample, error) {
	var m metricsSample
	var haveCPU bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case err != nil:
		case name == "process_cpu_seconds_total":
			m.cpu, haveCPU = f, true
		case name == "process_resident_memory_bytes":
			m.rss = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if !haveCPU {
		return m, errors.New("--metrics-url: no process_cpu_seconds_total in the answer")
	}
	return m, nil
}

// hostInfo describes the machine a result was measured on.
type hostInfo struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
