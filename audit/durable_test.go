package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
)

// countingBackend is the real SQLite backend, counting its commits.
type countingBackend struct {
	ledger.Backend
	writes atomic.Int64
}

func (b *countingBackend) Write(ctx context.Context, fn func(ledger.Tx) error) error {
	b.writes.Add(1)
	return b.Backend.Write(ctx, fn)
}

func durableTrail(t *testing.T, delay time.Duration) (*Log, *countingBackend, *ledger.Log) {
	t.Helper()
	var b *countingBackend
	l := sqlitetest.Log(t, filepath.Join(t.TempDir(), "audit.db"), func(db ledger.Backend) ledger.Backend {
		b = &countingBackend{Backend: db}
		return b
	})
	a := New(l, nil)
	a.durable.delay = delay
	t.Cleanup(a.Close)
	return a, b, l
}

func event(object string) Event {
	return Event{Time: time.Now().UTC(), Actor: "viewer", Action: "verify.digest", Object: object, Outcome: "allowed", Status: 200}
}

// recordTimed records ev as a request announced with Begin and says how
// long the record took.
func recordTimed(t *testing.T, a *Log, ev Event) time.Duration {
	t.Helper()
	end := a.Begin()
	defer end()
	start := time.Now()
	if err := a.RecordDurable(context.Background(), ev); err != nil {
		t.Error(err)
	}
	return time.Since(start)
}

func TestDurableRecordAloneIsNotDelayed(t *testing.T) {
	a, b, l := durableTrail(t, time.Hour)
	before := b.writes.Load()
	if took := recordTimed(t, a, event("1.2.3")); took > time.Minute {
		t.Fatalf("a lone record waited %s for company", took)
	}
	if got := b.writes.Load() - before; got != 1 {
		t.Errorf("%d commits for one record, want 1", got)
	}
	if e, err := l.Entry(context.Background(), 0); err != nil || e.Kind != KindAudit {
		t.Errorf("the record is not in the log: %v %v", e.Kind, err)
	}
}

func TestDurableRecordWaitsForWorkingRequests(t *testing.T) {
	a, b, _ := durableTrail(t, time.Hour)
	before := b.writes.Load()
	endSecond := a.Begin() // a second request, still working
	first := make(chan time.Duration)
	go func() { first <- recordTimed(t, a, event("1.2.3.1")) }()
	select {
	case <-first:
		t.Fatal("the first record committed while another request could still join it")
	case <-time.After(200 * time.Millisecond):
	}
	if err := a.RecordDurable(context.Background(), event("1.2.3.2")); err != nil {
		t.Fatal(err)
	}
	endSecond()
	<-first
	if got := b.writes.Load() - before; got != 1 {
		t.Errorf("%d commits for two records gathered together, want 1", got)
	}

	// Company that never comes is waited for no longer than the delay.
	// (Set while the committer is idle: the next record's send orders it.)
	a.durable.delay = time.Second
	endThird := a.Begin()
	defer endThird()
	if took := recordTimed(t, a, event("1.2.3.3")); took > 10*time.Second {
		t.Fatalf("a record waited %s, past the delay of 1 s", took)
	}
}

func TestDurableCrowdSharesCommits(t *testing.T) {
	a, b, l := durableTrail(t, 5*time.Second)
	const n = 64
	before := b.writes.Load()
	ends := make([]func(), n)
	for i := range ends {
		ends[i] = a.Begin()
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer ends[i]()
			if err := a.RecordDurable(context.Background(), event("1.2.3")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := b.writes.Load() - before; got > n/8 {
		t.Errorf("%d commits for %d concurrent records: they did not share commits", got, n)
	}
	var entries int
	if err := l.Scan(context.Background(), 0, func(ledger.Entry) error { entries++; return nil }); err != nil {
		t.Fatal(err)
	}
	if entries != n {
		t.Errorf("%d entries in the log, want %d", entries, n)
	}
}

func TestDurableRecordAfterCloseFails(t *testing.T) {
	a, _, _ := durableTrail(t, CommitDelay)
	a.Close()
	err := a.RecordDurable(context.Background(), event("1.2.3"))
	if !errors.Is(err, errClosed) {
		t.Fatalf("RecordDurable after Close: %v, want errClosed", err)
	}
}

// flakyBackend is the real SQLite backend whose writes fail while down.
type flakyBackend struct {
	ledger.Backend
	down atomic.Bool
}

var errDown = errors.New("database restarting")

func (b *flakyBackend) Write(ctx context.Context, fn func(ledger.Tx) error) error {
	if b.down.Load() {
		return errDown
	}
	return b.Backend.Write(ctx, fn)
}

// Queued events (refusals, denials) outlive a passing outage of the audit
// log: retried, not dropped.
func TestQueuedEventsOutliveAnOutage(t *testing.T) {
	var b *flakyBackend
	l := sqlitetest.Log(t, filepath.Join(t.TempDir(), "audit.db"), func(db ledger.Backend) ledger.Backend {
		b = &flakyBackend{Backend: db}
		return b
	})
	a := New(l, nil)
	b.down.Store(true)
	const n = 50
	for i := range n {
		a.Record(event(fmt.Sprintf("1.2.3.%d", i)))
	}
	// The writer meets the outage and keeps the events.
	for deadline := time.Now().Add(time.Minute); a.Pending() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d, want %d", a.Pending(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * retryFirst)
	if a.Dropped() != 0 {
		t.Fatalf("%d events dropped during a short outage", a.Dropped())
	}
	b.down.Store(false)
	for deadline := time.Now().Add(time.Minute); a.Pending() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d after the outage", a.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Close()
	var entries int
	if err := l.Scan(context.Background(), 0, func(ledger.Entry) error { entries++; return nil }); err != nil {
		t.Fatal(err)
	}
	if entries != n || a.Dropped() != 0 {
		t.Fatalf("%d entries, %d dropped, want %d and 0", entries, a.Dropped(), n)
	}
}
