package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// Durable records are committed by one goroutine, in batches. The ledger's
// group commit alone left them in batches of one or two (a commit is
// short, so few requests arrive during it), and each commit costs a
// transaction, an fsync, a batch signature and the integrator's check of
// it: a quarter of verify-by-digest throughput on two cores. So a batch
// waits for company, like PostgreSQL's commit_delay with commit_siblings:
// up to CommitDelay, while other requests are in the server (announced
// with Begin) or fewer records have gathered than requests were recently
// in the server. A request alone in an idle server commits at once; under
// load, or with slow transfers in progress, a durable answer may take up
// to CommitDelay longer.

// CommitDelay bounds how long a durable record waits for company. Under
// load a request takes tens of milliseconds on two cores; 5 ms gathers
// dozens of records per commit there.
const CommitDelay = 5 * time.Millisecond

// maxDurableBatch bounds one commit.
const maxDurableBatch = 1024

var errClosed = errors.New("the audit log is closed")

type durableAppend struct {
	rec  ledger.Record
	done chan error
}

type durableCommitter struct {
	queue chan *durableAppend
	// active counts requests in the server (Begin), parked those of them
	// waiting in RecordDurable; wake is signalled when the two meet.
	active, parked atomic.Int64
	wake           chan struct{}
	done           chan struct{}
	// delay is CommitDelay; tests shorten or lengthen it.
	delay time.Duration
	// level is a moving average, over levelWindow, of the requests in the
	// server when a batch starts: how many could come back within the
	// delay. Only the committer's goroutine uses it.
	level     float64
	lastBatch time.Time
}

// levelWindow is the time constant of level: after a burst, a lone request
// waits for company that is no longer coming for a fraction of a second at
// most.
const levelWindow = 250 * time.Millisecond

func (c *durableCommitter) start(a *Log) {
	c.queue, c.wake, c.done, c.delay = make(chan *durableAppend, maxDurableBatch), make(chan struct{}, 1), make(chan struct{}), CommitDelay
	go c.run(a)
}

// Begin announces a request in the server; end (idempotent) when it is
// done. A durable commit waits, up to CommitDelay, while announced
// requests are still working, since they may join it.
func (a *Log) Begin() (end func()) {
	a.durable.active.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			a.durable.active.Add(-1)
			a.durable.signalIfIdle()
		})
	}
}

// signalIfIdle wakes the committer once no announced request could still
// join the batch it is gathering.
func (c *durableCommitter) signalIfIdle() {
	if c.active.Load() <= c.parked.Load() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// RecordDurable appends ev and returns once it is durable in the audit
// log: for requests that hand out images or verdicts, which must not be
// answered without their record. Concurrent calls share a commit.
func (a *Log) RecordDurable(ctx context.Context, ev Event) error {
	rec, err := record(ev)
	if err != nil {
		return err
	}
	c := &a.durable
	a.inflight.Add(1)
	defer a.inflight.Add(-1)
	c.parked.Add(1)
	defer c.parked.Add(-1)
	req := &durableAppend{rec: rec, done: make(chan error, 1)}
	select {
	case <-c.done:
		return fmt.Errorf("audit: %w", errClosed)
	default:
	}
	select {
	case c.queue <- req:
	case <-c.done:
		return fmt.Errorf("audit: %w", errClosed)
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", ctx.Err())
	}
	c.signalIfIdle()
	select {
	case err := <-req.done:
		return err
	case <-c.done:
		// The committer answers what it drained before it stopped; a
		// request queued after that was never written.
		select {
		case err := <-req.done:
			return err
		default:
			return fmt.Errorf("audit: %w", errClosed)
		}
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", ctx.Err())
	}
}

func (c *durableCommitter) run(a *Log) {
	defer close(c.done)
	for {
		select {
		case first := <-c.queue:
			c.commit(a, c.gather(a, first))
		case <-a.stop:
			// What is queued is committed; later calls see c.done.
			for {
				select {
				case r := <-c.queue:
					c.commit(a, c.gather(a, r))
					continue
				default:
				}
				return
			}
		}
	}
}

// gather takes first and everything queued behind it, then waits for
// more, up to the delay, while announced requests are still working, or
// while the batch is smaller than the recent concurrency: under load the
// clients just answered come back within the delay.
func (c *durableCommitter) gather(a *Log, first *durableAppend) []*durableAppend {
	batch := []*durableAppend{first}
	now := time.Now()
	weight := 1 - math.Exp(-float64(now.Sub(c.lastBatch))/float64(levelWindow))
	c.level += (float64(c.active.Load()) - c.level) * weight
	c.lastBatch = now
	var timeout <-chan time.Time
	for len(batch) < maxDurableBatch {
		select {
		case r := <-c.queue:
			batch = append(batch, r)
			continue
		default:
		}
		if c.delay <= 0 || (c.active.Load() <= c.parked.Load() && float64(len(batch))+0.5 >= c.level) {
			return batch
		}
		if timeout == nil {
			t := time.NewTimer(c.delay)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case r := <-c.queue:
			batch = append(batch, r)
		case <-c.wake:
		case <-timeout:
			return batch
		case <-a.stop:
			return batch
		}
	}
	return batch
}

func (c *durableCommitter) commit(a *Log, batch []*durableAppend) {
	recs := make([]ledger.Record, len(batch))
	for i, r := range batch {
		recs[i] = r.rec
	}
	_, err := a.ledger.Append(context.Background(), recs)
	if err != nil {
		err = fmt.Errorf("audit: %w", err)
	}
	for _, r := range batch {
		r.done <- err
	}
}
