// Package audit is dicomseal's audit trail: who accessed what, allowed or
// denied. Events are appended to a verifiable log of their own (a plain
// ledger.Log: its own origin, key and checkpoints), in batches off the
// response path or durably before an answer (RecordDurable), so an auditor
// can prove an entry is in it and a witness can follow it. Requests without valid credentials are counted per source address
// and interval, not logged one by one: a flood cannot grow a log that is
// never pruned.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
)

// Event is one request as the audit trail records it.
type Event struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"` // the token's name ("" when not authenticated)
	Role   auth.Role `json:"role,omitempty"`
	Action string    `json:"action"`
	Object string    `json:"object,omitempty"` // SOP Instance UID or log index, when the request names one
	// Study is the Study Instance UID of the object, when the request
	// touched a study's instances (from version 2): the entry is chained
	// under that study.
	Study     string `json:"study,omitempty"`
	Outcome   string `json:"outcome"` // allowed, denied, failed
	Status    int    `json:"status,omitempty"`
	Source    string `json:"source,omitempty"` // client address
	RequestID string `json:"request_id,omitempty"`
	// Count and Until, for aggregated unauthenticated requests: how many
	// came from Source between Time and Until.
	Count int64      `json:"count,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// KindAudit is the audit log's one entry kind: plain appends (no claim,
// no deduplication).
const KindAudit ledger.Kind = "audit"

// EntryFormats are the audit log's one kind and the body versions this
// release reads (docs/entries.md).
var EntryFormats = ledger.Formats{KindAudit: {0, 1, 2}, ledger.KindSubjectMap: ledger.SubjectMapFormats}

// bodyVersion is the version of the bodies this release writes: 2 added
// "study" and the subject chain.
const bodyVersion = 2

// body is the canonical entry of one event. From version 1 the actor is
// the entry's "subject", as the subject column is; version 0 named it
// "actor" (which, at this depth, shadows Event.Actor in encoding/json).
type body struct {
	V       int         `json:"v,omitempty"`
	Kind    ledger.Kind `json:"kind"`
	Subject *string     `json:"subject,omitempty"`
	Actor   *string     `json:"actor,omitempty"` // version 0 only
	Event
}

// ActionUnauthenticated names aggregated requests without valid
// credentials; ActionUnchecked those refused because their credentials
// could not be checked.
const (
	ActionUnauthenticated = "unauthenticated"
	ActionUnchecked       = "credentials-unchecked"
)

// Log writes events to the audit ledger.
type Log struct {
	ledger *ledger.Log
	log    *slog.Logger
	// Window is the interval over which unauthenticated requests from
	// one source become one entry.
	Window time.Duration

	events  chan Event
	dropped atomic.Int64
	// droppedTotal never resets (dropped does, once recorded); inflight
	// counts durable appends waiting for their commit.
	droppedTotal atomic.Int64
	inflight     atomic.Int64
	// queued counts events Record accepted and the writer has not yet
	// written (still in the channel, or gathered).
	queued    atomic.Int64
	durable   durableCommitter
	closeOnce sync.Once
	mu        sync.Mutex
	unauth    map[string]int64
	unchecked map[string]int64
	since     time.Time
	stop      chan struct{}
	done      chan struct{}
}

// New starts the writer with a 10 s window. Close flushes and stops it.
func New(l *ledger.Log, logger *slog.Logger) *Log { return NewWithWindow(l, logger, 10*time.Second) }

// NewWithWindow starts the writer; unauthenticated requests are counted
// per source over window.
func NewWithWindow(l *ledger.Log, logger *slog.Logger, window time.Duration) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	l.Indexer = Index{}
	l.SubjectMap = true
	a := &Log{ledger: l, log: logger, Window: window, events: make(chan Event, 1<<16),
		unauth: map[string]int64{}, unchecked: map[string]int64{}, since: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	a.durable.start(a)
	go a.run()
	return a
}

// Pending is how many events are not yet in the audit log: queued for the
// background writer, waiting for a durable commit, or counts of
// unauthenticated requests that become entries when their window ends.
func (a *Log) Pending() int {
	a.mu.Lock()
	counted := len(a.unauth) + len(a.unchecked) // an entry each, at the window's end
	a.mu.Unlock()
	return int(a.queued.Load()) + int(a.inflight.Load()) + counted
}

// Dropped is how many events could not be written, in all.
func (a *Log) Dropped() int64 { return a.droppedTotal.Load() }

func record(ev Event) (ledger.Record, error) {
	b, err := json.Marshal(body{V: bodyVersion, Kind: KindAudit, Subject: &ev.Actor, Event: ev})
	if err != nil {
		return ledger.Record{}, fmt.Errorf("audit: encode event: %w", err)
	}
	// The subject column holds the actor, so queries by actor use an index.
	return ledger.Record{Kind: KindAudit, Subject: ev.Actor, Body: b, Meta: ev}, nil
}

// Record queues an event; it never blocks. If the queue is full (the
// database is down or far behind) the event is counted as dropped, and
// the count itself is recorded as soon as there is room.
func (a *Log) Record(ev Event) {
	a.queued.Add(1) // before the send: Pending never misses it
	select {
	case a.events <- ev:
	default:
		a.queued.Add(-1)
		a.dropped.Add(1)
		a.droppedTotal.Add(1)
	}
}

// Unauthenticated counts a request without valid credentials.
func (a *Log) Unauthenticated(source string, at time.Time) { a.countSource(&a.unauth, source) }

// Unchecked counts a request refused because its credentials could not be
// checked (the database down): who asked is unknown, and a flood of
// made-up tokens must not grow the log either.
func (a *Log) Unchecked(source string, at time.Time) { a.countSource(&a.unchecked, source) }

// countSource counts under the lock that counted swaps the maps under.
func (a *Log) countSource(which *map[string]int64, source string) {
	a.mu.Lock()
	m := *which
	if _, ok := m[source]; !ok && len(m) >= maxSources {
		// Many sources (rotating addresses) share one bucket, so neither
		// this map nor the log grows with them.
		source = "other"
	}
	m[source]++
	a.mu.Unlock()
}

// maxSources bounds the distinct sources counted per window.
const maxSources = 1024

func (a *Log) run() {
	defer close(a.done)
	tick := time.NewTicker(a.Window)
	defer tick.Stop()
	for {
		select {
		case ev := <-a.events:
			batch := a.gather(ev)
			a.write(batch)
			a.queued.Add(-int64(len(batch)))
		case <-tick.C:
			counted := a.counted(false)
			a.write(counted)
			a.inflight.Add(-int64(len(counted)))
		case <-a.stop:
			var batch []Event
			for {
				select {
				case ev := <-a.events:
					batch = append(batch, ev)
					continue
				default:
				}
				break
			}
			counted := a.counted(true)
			a.write(append(batch, counted...))
			a.queued.Add(-int64(len(batch)))
			a.inflight.Add(-int64(len(counted)))
			return
		}
	}
}

// flushEvery bounds how long an event waits for company before it is
// written. Unlike the custody ledger (where a request waits for its own
// commit, so there is no timer), nobody waits for an audit write: a short
// gathering time turns thousands of tiny commits into a few large ones.
const flushEvery = 100 * time.Millisecond

// gather collects events for up to flushEvery, or 4096 of them.
func (a *Log) gather(first Event) []Event {
	batch := []Event{first}
	timer := time.NewTimer(flushEvery)
	defer timer.Stop()
	for len(batch) < 4096 {
		select {
		case ev := <-a.events:
			batch = append(batch, ev)
		case <-timer.C:
			return batch
		case <-a.stop:
			return batch
		}
	}
	return batch
}

// counted turns the window's unauthenticated counts (and any dropped
// events) into events.
func (a *Log) counted(final bool) []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now().UTC()
	var out []Event
	for source, n := range a.unauth {
		until := now
		out = append(out, Event{Time: a.since.UTC(), Until: &until, Action: ActionUnauthenticated, Outcome: "denied",
			Status: 401, Source: source, Count: n})
	}
	for source, n := range a.unchecked {
		until := now
		out = append(out, Event{Time: a.since.UTC(), Until: &until, Action: ActionUnchecked, Outcome: "failed",
			Status: 503, Source: source, Count: n})
	}
	if n := a.dropped.Swap(0); n > 0 {
		out = append(out, Event{Time: now, Action: "audit.dropped", Outcome: "failed", Count: n})
	}
	a.unauth, a.unchecked, a.since = map[string]int64{}, map[string]int64{}, now
	// Under the lock Pending reads the maps with: the entries move from
	// the maps to in flight in one step. The caller subtracts them once
	// written.
	a.inflight.Add(int64(len(out)))
	return out
}

// write appends events. A failed append (the database restarting, the
// disk full) is retried with backoff while the queue still has room, so a
// passing outage loses nothing; the events are counted as dropped only
// when the queue fills behind them, or at Close.
func (a *Log) write(events []Event) {
	if len(events) == 0 {
		return
	}
	recs := make([]ledger.Record, len(events))
	for i, ev := range events {
		rec, err := record(ev)
		if err != nil {
			a.log.Error("audit: encode event", "err", err)
			return
		}
		recs[i] = rec
	}
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		_, err := a.ledger.Append(context.Background(), recs)
		if err == nil {
			if attempt > 1 {
				a.log.Info("audit: events written after the audit log came back", "events", len(events), "attempts", attempt)
			}
			return
		}
		full := len(a.events) >= cap(a.events)*3/4
		select {
		case <-a.stop:
			full = true
		default:
		}
		if full {
			a.dropped.Add(int64(len(events)))
			a.droppedTotal.Add(int64(len(events)))
			a.log.Error("audit: could not append events; counted as dropped", "events", len(events), "attempts", attempt, "err", err)
			return
		}
		if attempt == 1 {
			a.log.Warn("audit: could not append events; retrying", "events", len(events), "err", err)
		}
		select {
		case <-time.After(wait):
		case <-a.stop:
		}
		wait = min(2*wait, retryMax)
	}
}

// retryFirst and retryMax bound the backoff of a failed audit append.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 2 * time.Second
)

// Close flushes everything queued and stops the writers; it may be called
// more than once.
func (a *Log) Close() {
	a.closeOnce.Do(func() { close(a.stop) })
	<-a.done
	<-a.durable.done
}

// Decode reads an audit entry's event, of any body version this release
// knows; a *ledger.FormatError for one it does not.
func Decode(e ledger.Entry) (Event, error) {
	hd, err := EntryFormats.Check(e)
	if err != nil {
		return Event{}, fmt.Errorf("audit: %w", err)
	}
	if hd.Kind != KindAudit {
		return Event{}, fmt.Errorf("audit: entry %d is a %s entry, not an event", e.Index, hd.Kind)
	}
	var b body
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return Event{}, fmt.Errorf("audit: entry %d is not an audit event: %w", e.Index, err)
	}
	switch {
	case b.V == 0 && b.Actor != nil && b.Subject == nil:
		b.Event.Actor = *b.Actor
	case b.V > 0 && b.Subject != nil && b.Actor == nil:
		b.Event.Actor = *b.Subject
	default:
		return Event{}, fmt.Errorf("audit: entry %d: a version %d event must name its actor as %s", e.Index, b.V,
			map[bool]string{true: `"actor"`, false: `"subject"`}[b.V == 0])
	}
	if b.Event.Actor != e.Subject {
		return Event{}, fmt.Errorf("audit: entry %d: the event's actor is not the entry's subject", e.Index)
	}
	return b.Event, nil
}
