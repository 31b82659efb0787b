package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/fixity"
)

// FixitySource is the scrubber as its metrics read it.
type FixitySource interface {
	Status() attest.ScrubStatus
}

// ServeFixityMetrics publishes the scrubber's progress and results, so
// that an operator can alert on coverage (the oldest unverified object)
// and on failures.
func (s *Server) ServeFixityMetrics(src FixitySource) {
	s.metrics.registry.MustRegister(&fixityCollector{src: src})
}

var (
	fixityChecked = prometheus.NewDesc("dicomseal_fixity_checks_total",
		"Stored objects re-read and checked against their signed attestation by this process, by outcome.", []string{"outcome"}, nil)
	fixityBytes = prometheus.NewDesc("dicomseal_fixity_read_bytes_total",
		"Bytes the fixity scrubber read from the object store.", nil, nil)
	fixityPassResults = prometheus.NewDesc("dicomseal_fixity_pass_objects",
		"Objects checked in the current (or last) scrub pass, by outcome: failures stay visible until a pass finds none.", []string{"outcome"}, nil)
	fixityPass = prometheus.NewDesc("dicomseal_fixity_pass",
		"Number of the current (or last) scrub pass.", nil, nil)
	fixityProgress = prometheus.NewDesc("dicomseal_fixity_pass_progress_ratio",
		"How far the current pass is through the log entries it covers (1: complete).", nil, nil)
	fixityOldest = prometheus.NewDesc("dicomseal_fixity_oldest_unverified_seconds",
		"Age of the object that has gone longest without a fixity check (since its last check, or its attestation if never checked).", nil, nil)
	fixityActive = prometheus.NewDesc("dicomseal_fixity_scrubbing",
		"1 while this process holds the scrub lease.", nil, nil)
)

type fixityCollector struct{ src FixitySource }

func (c *fixityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fixityChecked, fixityBytes, fixityPassResults, fixityPass, fixityProgress, fixityOldest, fixityActive} {
		ch <- d
	}
}

func (c *fixityCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	p := st.Progress
	for _, o := range fixity.Outcomes {
		ch <- prometheus.MustNewConstMetric(fixityChecked, prometheus.CounterValue, float64(st.Checked[o]), o)
		ch <- prometheus.MustNewConstMetric(fixityPassResults, prometheus.GaugeValue, float64(p.Counts[o]), o)
	}
	ch <- prometheus.MustNewConstMetric(fixityBytes, prometheus.CounterValue, float64(st.BytesRead))
	ch <- prometheus.MustNewConstMetric(fixityPass, prometheus.GaugeValue, float64(p.Pass))
	ratio := 0.0
	if p.End > 0 {
		ratio = float64(min(p.Position, p.End)) / float64(p.End)
	} else if p.Pass > 0 {
		ratio = 1
	}
	ch <- prometheus.MustNewConstMetric(fixityProgress, prometheus.GaugeValue, ratio)
	age := 0.0
	if !st.OldestUnverified.IsZero() {
		age = time.Since(st.OldestUnverified).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(fixityOldest, prometheus.GaugeValue, age)
	active := 0.0
	if st.Scrubbing {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(fixityActive, prometheus.GaugeValue, active)
}
