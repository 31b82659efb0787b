package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"golang.org/x/time/rate"
)

// scrubName names the scrubber's lease and progress.
const scrubName = "scrub"

// Scrubber re-reads every stored object, pass after pass, in ledger index
// order and at a bounded rate, and checks each against its signed
// attestation (CheckStored). One replica at a time scrubs: it holds a
// lease in the database while it works. Progress is saved after every
// batch, so that a restart (or another replica, once the lease expires)
// resumes where it stopped. Each complete pass ends with a signed fixity
// summary in the log.
type Scrubber struct {
	svc   *Service
	state fixity.Store

	// Holder names this replica in the lease (host and process).
	Holder string
	// Rate bounds the bytes read per second (<= 0: unbounded).
	Rate float64
	// Batch is how many objects are checked between progress saves.
	Batch int
	// LeaseTTL is how long the lease outlives a replica that stops
	// renewing it (it is renewed every batch, and at least every TTL/3).
	LeaseTTL time.Duration
	// Actor names who runs the scrub in the summary ("scrubber", or the
	// operator of `dicomseal scrub`).
	Actor string
	// OnFailure, when set, hears of every failure as it is found.
	OnFailure func(fixity.Failure)

	mu         sync.Mutex
	status     ScrubStatus
	checking   map[string]time.Time // series checked lately (CheckSeries)
	inFlight   int                  // series checks running
	bucket     *rate.Limiter
	closed     bool
	bg         context.Context // the series checks'; Close ends it
	stopBG     context.CancelFunc
	background sync.WaitGroup
}

// ScrubStatus is what metrics show of the scrubber.
type ScrubStatus struct {
	Progress fixity.Progress
	// Checked counts the objects checked by this process, by outcome;
	// BytesRead the bytes it read.
	Checked   map[string]int64
	BytesRead int64
	// OldestUnverified is the attestation (or last verification) time of
	// the object that has gone longest without a check; zero when all are
	// checked.
	OldestUnverified time.Time
	// Scrubbing is whether this process holds the lease.
	Scrubbing bool
}

// NewScrubber returns a scrubber of svc's store, keeping its lease and
// progress in state.
func NewScrubber(svc *Service, state fixity.Store, holder string) *Scrubber {
	bg, stop := context.WithCancel(context.Background())
	return &Scrubber{svc: svc, state: state, Holder: holder, Batch: 64, LeaseTTL: time.Minute, Actor: "scrubber",
		status: ScrubStatus{Checked: map[string]int64{}}, bg: bg, stopBG: stop}
}

// Status is a snapshot of the scrubber's state.
func (sc *Scrubber) Status() ScrubStatus {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := sc.status
	st.Checked = maps.Clone(st.Checked)
	st.Progress.Counts = maps.Clone(st.Progress.Counts)
	st.Progress.Failures = nil // the summary's, not a metric's
	return st
}

// ErrLeaseHeld: another replica holds the scrub lease.
var ErrLeaseHeld = errors.New("another replica is scrubbing (it holds the lease)")

// PassResult is a complete pass: its progress at the end and its summary
// entry.
type PassResult struct {
	Progress fixity.Progress
	Summary  ledger.Entry
}

// Pass runs (or resumes) one pass to its end and appends its summary.
// Errors: ErrLeaseHeld, ErrStoreDown (the pass stops where it is; its
// progress is saved), context errors, the ledger's.
func (sc *Scrubber) Pass(ctx context.Context) (*PassResult, error) {
	if err := sc.acquire(ctx); err != nil {
		return nil, err
	}
	defer sc.Release(context.WithoutCancel(ctx))
	return sc.pass(ctx)
}

// Run scrubs until ctx ends: a pass, then every interval (measured from
// the start of the last complete pass) the next. A pass interrupted by an
// outage is retried after a pause; while another replica holds the lease
// it waits. The lease is released when Run returns.
func (sc *Scrubber) Run(ctx context.Context, interval time.Duration) {
	defer sc.Release(context.WithoutCancel(ctx))
	var backoff time.Duration
	for ctx.Err() == nil {
		wait := sc.LeaseTTL / 3
		if err := sc.acquire(ctx); err == nil {
			p, err := sc.state.Progress(ctx, scrubName)
			switch {
			case err != nil:
				sc.svc.log.WarnContext(ctx, "scrub: read progress", "err", err)
			case p.Pass > 0 && p.Position >= p.End && p.Summarized && time.Since(p.PreviousStarted) < interval:
				// Done for now: keep coverage fresh, keep the lease alive.
				sc.refreshOldest(ctx, p)
				wait = min(wait, interval-time.Since(p.PreviousStarted))
			default:
				_, err := sc.pass(ctx)
				if err == nil {
					backoff = 0
					continue
				}
				if ctx.Err() == nil {
					// An outage, a lost lease: pause, longer each time,
					// without the lease (another replica may do better).
					sc.Release(context.WithoutCancel(ctx))
					backoff = min(max(2*backoff, time.Second), 5*time.Minute)
					wait = backoff
					sc.svc.log.WarnContext(ctx, "scrub pass interrupted; it resumes", "err", err, "retry_in", backoff.String())
				}
			}
		} else if errors.Is(err, ErrLeaseHeld) {
			// Another replica scrubs: show its progress all the same.
			if p, err := sc.state.Progress(ctx, scrubName); err == nil {
				sc.publish(p)
				sc.refreshOldest(ctx, p)
			}
		} else if ctx.Err() == nil {
			sc.svc.log.WarnContext(ctx, "scrub: lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(max(wait, 100*time.Millisecond)):
		}
	}
}

func (sc *Scrubber) acquire(ctx context.Context) error {
	ok, err := sc.state.AcquireLease(ctx, scrubName, sc.Holder, sc.svc.Now(), sc.LeaseTTL)
	sc.mu.Lock()
	sc.status.Scrubbing = ok && err == nil
	sc.mu.Unlock()
	if err != nil {
		return fmt.Errorf("scrub lease: %w", err)
	}
	if !ok {
		return ErrLeaseHeld
	}
	return nil
}

// Release gives up the lease (a server stopping, a command done).
func (sc *Scrubber) Release(ctx context.Context) {
	if err := sc.state.ReleaseLease(ctx, scrubName, sc.Holder); err != nil {
		sc.svc.log.WarnContext(ctx, "scrub: release lease", "err", err)
	}
	sc.mu.Lock()
	sc.status.Scrubbing = false
	sc.mu.Unlock()
}

// pass runs the pass in hand, or a new one, to its end. The lease is held.
func (sc *Scrubber) pass(ctx context.Context) (*PassResult, error) {
	p, err := sc.state.Progress(ctx, scrubName)
	if err != nil {
		return nil, fmt.Errorf("scrub progress: %w", err)
	}
	if p.Pass > 0 && p.Position >= p.End && !p.Summarized {
		// Checked to its end, but its summary was not recorded (the
		// append failed, or the process stopped): that comes first.
		return sc.summarize(ctx, p)
	}
	if p.Pass == 0 || p.Position >= p.End {
		if p, err = sc.begin(ctx, p); err != nil {
			return nil, err
		}
	}
	limiter := sc.limiter()
	// The lease is renewed in the background while objects are read (a
	// large one at a low rate may take longer than the lease); losing it
	// to another replica stops this pass.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go sc.keepLease(ctx, stop)
	sc.refreshOldest(ctx, p)
	for p.Position < p.End {
		entries, next, err := sc.svc.ledger.ScanAttesting(ctx, p.Position, p.End, sc.batch())
		if err != nil {
			return nil, fmt.Errorf("scrub: read the log: %w", cause(ctx, err))
		}
		results := sc.checkAll(ctx, entries, limiter)
		for i, e := range entries {
			r := results[i]
			if r.err != nil {
				sc.save(detached(ctx), p) // what was checked stays checked
				return nil, cause(ctx, r.err)
			}
			p.Position, p.Bytes = e.Index+1, p.Bytes+r.n
			sc.count(r.f.Outcome, r.n, r.ok)
			if !r.ok {
				continue
			}
			p.Counts[r.f.Outcome]++
			if fixity.IsFailure(r.f.Outcome) {
				if len(p.Failures) < fixity.MaxFailures {
					p.Failures = append(p.Failures, r.f)
				}
				if sc.OnFailure != nil {
					sc.OnFailure(r.f)
				}
			}
		}
		p.Position = next
		sc.refreshOldest(ctx, p)
		// Saved even when ctx just ended: the batch was checked.
		if err := sc.save(detached(ctx), p); err != nil {
			return nil, cause(ctx, err)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
	return sc.summarize(ctx, p)
}

// summarize appends the signed summary of pass p, checked to its end,
// unless the log already holds it (appended, then not saved as such),
// and records that it did.
func (sc *Scrubber) summarize(ctx context.Context, p fixity.Progress) (*PassResult, error) {
	summary, found, err := sc.findSummary(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("scrub: read the log: %w", err)
	}
	if !found {
		if summary, err = sc.finish(detached(ctx), p); err != nil {
			return nil, err
		}
	}
	p.PreviousStarted, p.PreviousEnd, p.Summarized = p.Started, p.End, true
	if err := sc.save(detached(ctx), p); err != nil {
		return nil, err
	}
	sc.refreshOldest(ctx, p)
	sc.svc.log.InfoContext(ctx, "scrub pass complete", "pass", p.Pass, "objects", p.Checked(),
		"failures", p.Failed(), "bytes", p.Bytes, "summary_index", summary.Index,
		"took", sc.svc.Now().Sub(p.Started).Round(time.Millisecond).String())
	return &PassResult{Progress: p, Summary: summary}, nil
}

type checked struct {
	f   fixity.Failure
	n   int64
	ok  bool
	err error
}

// checkAll checks a batch's objects, a few at a time (signature checks
// and hashing use every core; the limiter, shared, still bounds the
// bytes read), and returns the results in the batch's order.
func (sc *Scrubber) checkAll(ctx context.Context, entries []ledger.Entry, limiter *rate.Limiter) []checked {
	out := make([]checked, len(entries))
	sem := make(chan struct{}, max(1, min(runtime.GOMAXPROCS(0), 8)))
	var wg sync.WaitGroup
	for i, e := range entries {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := &out[i]
			r.f, r.n, r.ok, r.err = sc.svc.CheckStored(ctx, e, limiter)
		})
	}
	wg.Wait()
	return out
}

// keepLease renews the lease every LeaseTTL/3 until ctx ends, and stops
// the pass (stop) if another replica has taken it.
func (sc *Scrubber) keepLease(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(max(sc.LeaseTTL/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := sc.acquire(ctx); errors.Is(err, ErrLeaseHeld) {
				stop(err)
				return
			} else if err != nil && ctx.Err() == nil {
				sc.svc.log.WarnContext(ctx, "scrub: renew the lease", "err", err)
			}
		}
	}
}

// cause names why ctx ended when it did (a lost lease), else err.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// begin starts pass p.Pass+1 over what the log holds now.
func (sc *Scrubber) begin(ctx context.Context, prev fixity.Progress) (fixity.Progress, error) {
	end, err := sc.svc.ledger.Size(ctx)
	if err != nil {
		return prev, fmt.Errorf("scrub: log size: %w", err)
	}
	p := fixity.Progress{Pass: prev.Pass + 1, End: end, Started: sc.svc.Now().UTC(), Counts: map[string]int64{},
		PreviousStarted: prev.PreviousStarted, PreviousEnd: prev.PreviousEnd}
	return p, sc.save(ctx, p)
}

// findSummary looks in the log for the fixity entry of pass p: one of its
// number appended after the pass began (the progress is correctable
// state: reset, numbers start again, and an old summary is not this one).
func (sc *Scrubber) findSummary(ctx context.Context, p fixity.Progress) (e ledger.Entry, found bool, err error) {
	err = sc.svc.ledger.ScanSubject(ctx, FixitySubject, func(x ledger.Entry) error {
		var body fixityBody
		if x.Kind == custody.KindFixity && x.Index >= p.End && json.Unmarshal(x.Body, &body) == nil && body.Pass == p.Pass {
			e, found = x, true
		}
		return nil
	})
	return e, found, err
}

// limiter is the one token bucket every read of this scrubber shares
// (passes and series checks alike); nil when unbounded.
func (sc *Scrubber) limiter() *rate.Limiter {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.Rate <= 0 {
		return nil
	}
	if sc.bucket == nil || sc.bucket.Limit() != rate.Limit(sc.Rate) {
		// A burst of 64 KiB (or the rate, if smaller) keeps reads smooth.
		sc.bucket = rate.NewLimiter(rate.Limit(sc.Rate), int(min(sc.Rate, 64<<10)))
	}
	return sc.bucket
}

func (sc *Scrubber) batch() int {
	if sc.Batch <= 0 {
		return 64
	}
	return sc.Batch
}

func (sc *Scrubber) save(ctx context.Context, p fixity.Progress) error {
	if err := sc.state.SaveProgress(ctx, scrubName, sc.Holder, sc.svc.Now(), p); err != nil {
		return fmt.Errorf("scrub: save progress: %w", err)
	}
	sc.publish(p)
	return nil
}

func (sc *Scrubber) publish(p fixity.Progress) {
	// A copy: the pass goes on counting into its own maps.
	p.Counts, p.Failures = maps.Clone(p.Counts), slices.Clone(p.Failures)
	sc.mu.Lock()
	sc.status.Progress = p
	sc.mu.Unlock()
}

func (sc *Scrubber) count(outcome string, n int64, ok bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.status.BytesRead += n
	if ok {
		sc.status.Checked[outcome]++
	}
}

// refreshOldest sets OldestUnverified for progress p: while a pass is
// short of where the previous one ended, the previous pass's start;
// beyond it, the attestation time of the first object still ahead; once
// the pass is complete, its start (what came since was attested later).
func (sc *Scrubber) refreshOldest(ctx context.Context, p fixity.Progress) {
	oldest := p.PreviousStarted
	if p.Position < p.End && p.Position >= p.PreviousEnd {
		es, _, err := sc.svc.ledger.ScanAttesting(ctx, p.Position, p.End, 1)
		if err != nil {
			return // keep the last value: a metric is no reason to fail
		}
		if len(es) == 1 {
			if pred, _, err := sc.svc.openPredicate(es[0]); err == nil {
				oldest = pred.AttestedAt
			}
		}
	}
	sc.mu.Lock()
	sc.status.OldestUnverified = oldest
	sc.mu.Unlock()
}

// FixityPredicateType is the predicate of a fixity summary's statement.
const FixityPredicateType = "https://dicomseal.dev/fixity/v1"

// FixitySummary is what a fixity entry's signed statement asserts: one
// pass over the log's first End entries, what it found, and how to repair.
type FixitySummary struct {
	Pass     int64            `json:"pass"`
	End      uint64           `json:"end"`
	Started  time.Time        `json:"started"`
	Finished time.Time        `json:"finished"`
	Objects  int64            `json:"objects"`
	Bytes    int64            `json:"bytes"`
	Counts   map[string]int64 `json:"counts"`
	Failures []fixity.Failure `json:"failures"`
	// FailuresOmitted counts failures beyond fixity.MaxFailures.
	FailuresOmitted int64  `json:"failures_omitted,omitempty"`
	Actor           string `json:"actor"`
	KeyID           string `json:"key_id"`
	// Repair says what an operator does about the failures.
	Repair string `json:"repair,omitempty"`
}

// RepairHint is the summary's advice when a pass found failures.
const RepairHint = "re-ingest each failed instance's original bytes (POST /v1/instances or STOW-RS, from the sending PACS or a backup): " +
	"bytes that match the attestation rewrite the stored copy and are logged as a repair entry; then run the next scrub"

type fixityStatement struct {
	Type          string        `json:"_type"`
	Subject       []Subject     `json:"subject"`
	PredicateType string        `json:"predicateType"`
	Predicate     FixitySummary `json:"predicate"`
}

// finish signs the pass's summary and appends it as a fixity entry. The
// statement's subject digest is over the failures list, so that the
// summary cannot be shortened without breaking the signature.
func (sc *Scrubber) finish(ctx context.Context, p fixity.Progress) (ledger.Entry, error) {
	failures := p.Failures
	if failures == nil {
		failures = []fixity.Failure{}
	}
	sum := FixitySummary{Pass: p.Pass, End: p.End, Started: p.Started, Finished: sc.svc.Now().UTC(),
		Objects: p.Checked(), Bytes: p.Bytes, Counts: p.Counts, Failures: failures,
		FailuresOmitted: p.Failed() - int64(len(failures)),
		Actor:           sc.Actor, KeyID: sc.svc.attestor.KeyID()}
	if len(failures) > 0 {
		sum.Repair = RepairHint
	}
	list, _ := json.Marshal(failures)
	digest := sha256.Sum256(list)
	payload, err := json.Marshal(fixityStatement{Type: StatementType, PredicateType: FixityPredicateType, Predicate: sum,
		Subject: []Subject{{Name: fmt.Sprintf("fixity-pass-%d", p.Pass), Digest: map[string]string{"sha256": hex.EncodeToString(digest[:])}}}})
	if err != nil {
		return ledger.Entry{}, internal(err)
	}
	env, err := sc.svc.attestor.Sign(ctx, payload)
	if err != nil {
		return ledger.Entry{}, internal(fmt.Errorf("sign the fixity summary: %w", err))
	}
	es, err := sc.svc.ledger.AppendEvents(ctx, []custody.Record{{
		Kind: custody.KindFixity, Subject: FixitySubject,
		Body: encodeBody(fixityBody{entryHead: head(custody.KindFixity, FixitySubject), Pass: p.Pass, Envelope: env}),
	}})
	if err != nil {
		return ledger.Entry{}, unavailable(ProblemLedgerUnavailable, err)
	}
	return es[0], nil
}

// OpenFixity verifies a fixity entry (leaf hash, signature, statement)
// and returns its summary.
func (s *Service) OpenFixity(e ledger.Entry) (*FixitySummary, error) {
	if e.Kind != custody.KindFixity || ledger.LeafHash(e.Body) != e.LeafHash {
		return nil, fmt.Errorf("entry %d is not an intact fixity entry", e.Index)
	}
	var body fixityBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	payload, err := s.attestor.Open(body.Envelope)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	var st fixityStatement
	if err := json.Unmarshal(payload, &st); err != nil || st.PredicateType != FixityPredicateType || len(st.Subject) != 1 {
		return nil, fmt.Errorf("entry %d: not a fixity statement", e.Index)
	}
	list, _ := json.Marshal(st.Predicate.Failures)
	if d := sha256.Sum256(list); hex.EncodeToString(d[:]) != st.Subject[0].Digest["sha256"] || st.Predicate.Pass != body.Pass {
		return nil, fmt.Errorf("entry %d: the fixity statement does not match its failures", e.Index)
	}
	return &st.Predicate, nil
}

// seriesRecheck is how long a series, once checked after a failed
// retrieval, is not checked again for another: a viewer retrying a broken
// image must not re-read (and re-count the incidents of) its series each time.
const seriesRecheck = 10 * time.Minute

// maxSeriesChecks bounds the series checks running at once; more are
// dropped (the next pass covers them).
const maxSeriesChecks = 2

// CheckSeries checks, in the background and at the scrubber's rate, every
// stored object of the series of instance uid, whose retrieval just failed
// (uid itself is skipped: the retrieval recorded it). A series is checked
// by one goroutine at a time, and not again within seriesRecheck.
// Failures are recorded as a pass's are; the pass's progress is not
// touched. Close stops and waits for the checks in flight.
func (sc *Scrubber) CheckSeries(study, series, uid string) {
	if sc.svc.Catalog == nil {
		return
	}
	key := study + "/" + series
	now := time.Now()
	sc.mu.Lock()
	if sc.checking == nil {
		sc.checking = map[string]time.Time{}
	}
	if last, ok := sc.checking[key]; ok && now.Sub(last) < seriesRecheck || sc.closed || sc.inFlight >= maxSeriesChecks {
		sc.mu.Unlock()
		return
	}
	for k, t := range sc.checking { // forget old ones: the map stays small
		if now.Sub(t) >= seriesRecheck {
			delete(sc.checking, k)
		}
	}
	sc.checking[key] = now
	sc.inFlight++
	sc.background.Add(1)
	sc.mu.Unlock()
	go func() {
		defer sc.background.Done()
		defer func() {
			sc.mu.Lock()
			sc.inFlight--
			sc.mu.Unlock()
		}()
		ctx := sc.bg
		found, err := sc.checkSeries(ctx, study, series, uid)
		if err != nil {
			if ctx.Err() == nil {
				sc.svc.log.WarnContext(ctx, "series check", "study_instance_uid", study, "series_instance_uid", series, "err", err)
			}
			return
		}
		sc.svc.log.InfoContext(ctx, "series checked after a failed retrieval", "study_instance_uid", study,
			"series_instance_uid", series, "failures", found)
	}()
}

// Close stops the series checks in flight and waits for them (before the
// ledger they record into closes).
func (sc *Scrubber) Close() {
	sc.mu.Lock()
	sc.closed = true
	sc.mu.Unlock()
	sc.stopBG()
	sc.background.Wait()
}

func (sc *Scrubber) checkSeries(ctx context.Context, study, series, skip string) (int, error) {
	rows, err := sc.svc.Catalog.Entries(ctx, study, series)
	if err != nil {
		return 0, err
	}
	limiter := sc.limiter()
	failed := 0
	for _, row := range rows {
		if row.SOPInstanceUID == skip {
			continue
		}
		e, err := sc.svc.ledger.Entry(ctx, row.LedgerIndex)
		if err != nil {
			return failed, err
		}
		f, n, ok, err := sc.svc.CheckStored(ctx, e, limiter)
		if err != nil {
			return failed, err
		}
		sc.count(f.Outcome, n, ok)
		if ok && fixity.IsFailure(f.Outcome) {
			failed++
			if sc.OnFailure != nil {
				sc.OnFailure(f)
			}
		}
	}
	return failed, nil
}
