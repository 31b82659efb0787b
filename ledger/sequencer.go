package ledger

import (
	"context"
	"errors"
	"fmt"
)

// Appends are sequenced by leader/follower group commit. The first caller
// to find no commit in flight becomes the leader and commits everything
// pending in one transaction (one fsync); callers arriving meanwhile queue
// up and form the next batch. There is no timer: a lone append is never
// delayed waiting for company, and a crowd shares one commit.

// Indexer decides a batch's records inside its append transaction, for an
// index kept beside the log (custody's claims, revision chains and
// incidents). Without one, every record is appended as it is.
type Indexer interface {
	// Decide is called once per commit with the batch's requests in order.
	// For each it either calls add(p), which gives the record the next
	// index and returns its entry (the indexer may first fill fields of
	// p.Record.Body that depend on sequencing, and p.Record.Chains; the
	// entry's body and leaf hash are final only once the chains are
	// linked, after Decide), or sets p.Err to refuse it,
	// or sets p.Entry (and p.Value) to answer it with an entry already in
	// the log. It returns what to write to its own storage once the
	// batch's entries are written (nil: nothing). An error aborts the
	// whole commit.
	Decide(ctx context.Context, tx Tx, batch []*Pending, add func(*Pending) Entry) (write func() error, err error)
}

// Pending is one record waiting for its commit, and, once committed, its
// outcome.
type Pending struct {
	Record Record
	// Entry is the appended entry, or the existing one the indexer
	// answered with; Value is anything else the indexer answers (custody:
	// an incident's count); Err refuses this record alone.
	Entry Entry
	Value any
	Err   error

	done chan struct{}
}

// Submit queues records to be appended together, in order, with the next
// group commit, and waits for it. Each record's outcome is in its Pending
// (Err refuses that record alone); the error is the commit's or ctx's.
// A caller that stops waiting leaves its records queued: they may still
// commit.
func (l *Log) Submit(ctx context.Context, recs []Record) ([]*Pending, error) {
	ps := make([]*Pending, len(recs))
	for i, rec := range recs {
		// Refused here, the caller's alone: at sequencing it would fail
		// the batch of everyone.
		if hasChainMember(rec.Body) {
			return nil, errors.New("ledger: a record's body has a chain member: only the log writes one")
		}
		ps[i] = &Pending{Record: rec, done: make(chan struct{})}
	}
	l.mu.Lock()
	l.pending = append(l.pending, ps...)
	if l.leading {
		l.mu.Unlock()
	} else {
		l.leading = true
		l.lead(ctx)
	}
	out := make([]*Pending, len(ps))
	for i, p := range ps {
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err() // without reading what the leader still writes
		}
		out[i] = p
	}
	return out, nil
}

// Append appends records together and returns their entries in order;
// it fails if any record is refused.
func (l *Log) Append(ctx context.Context, recs []Record) ([]Entry, error) {
	ps, err := l.Submit(ctx, recs)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(ps))
	for i, p := range ps {
		if p.Err != nil {
			return nil, p.Err
		}
		out[i] = p.Entry
	}
	return out, nil
}

// Queued is how many appends wait for a commit: a gauge of the load on the
// sequencer.
func (l *Log) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// lead commits the batch that holds the caller's own requests (everything
// pending when it took the lead); called with l.mu held and l.leading set,
// it returns with l.mu released. Whatever queued meanwhile is committed by
// a background leader: under sustained load a caller waits for its own
// commit, not for the load to end.
func (l *Log) lead(ctx context.Context) {
	l.commitPending(ctx)
	if len(l.pending) == 0 {
		l.leading = false
		l.mu.Unlock()
		return
	}
	l.draining.Add(1)
	l.mu.Unlock()
	// Not the caller's context: the queue is other requests' work.
	go l.drain(context.Background())
}

// drain leads until nothing is pending. No caller waits on it as such:
// each waits on its own request.
func (l *Log) drain(ctx context.Context) {
	defer l.draining.Done()
	l.mu.Lock()
	for len(l.pending) > 0 {
		l.commitPending(ctx)
	}
	l.leading = false
	l.mu.Unlock()
}

// commitPending commits everything pending as one batch; called with l.mu
// held, it releases it for the commit and holds it again on return.
func (l *Log) commitPending(ctx context.Context) {
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	// The batch belongs to every caller in it: one caller's cancellation
	// must not abort the others' commit.
	l.commitSafely(context.WithoutCancel(ctx), batch)
	for _, p := range batch {
		close(p.done)
	}
	l.mu.Lock()
}

// commitSafely is commit that turns a panic into an error for the batch,
// so that a bug cannot leave the log with a leader that never returns.
func (l *Log) commitSafely(ctx context.Context, batch []*Pending) {
	defer func() {
		if r := recover(); r != nil {
			failAll(batch, fmt.Errorf("%w: commit panicked: %v", ErrUnavailable, r))
		}
	}()
	l.commit(ctx, batch)
}

func failAll(batch []*Pending, err error) {
	for _, p := range batch {
		p.Entry, p.Value, p.Err = Entry{}, nil, err
	}
}

// commit writes one batch in one transaction and sets each request's
// outcome: the indexer decides the records (reading what it needs in
// bulk), then the entries, the index's rows and the signed batch are
// written: a few round trips per batch, whatever its size.
func (l *Log) commit(ctx context.Context, batch []*Pending) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	err := l.backend.Write(ctx, func(tx Tx) error {
		next, err := tx.NextIndex(ctx)
		if err != nil {
			return err
		}
		var entries []Entry
		var chains [][]SubjectKey
		b := Batch{First: next}
		add := func(p *Pending) Entry {
			r := p.Record
			e := Entry{Index: next, Kind: r.Kind, Subject: r.Subject, FileSHA256: r.FileSHA256, Body: r.Body, LeafHash: LeafHash(r.Body)}
			next++
			p.Entry = e
			entries = append(entries, e)
			chains = append(chains, r.Chains)
			return e
		}
		failAll(batch, nil)
		var write func() error
		if l.Indexer != nil {
			if write, err = l.Indexer.Decide(ctx, tx, batch, add); err != nil {
				return err
			}
		} else {
			for _, p := range batch {
				add(p)
			}
		}
		// Chained bodies are final only now, in index order; an answer
		// the indexer gave with an entry of this batch gets the final one.
		links, err := chain(ctx, tx, entries, chains)
		if err != nil {
			return err
		}
		if links != nil {
			for _, p := range batch {
				if i := p.Entry.Index - b.First; p.Entry.LeafHash != ([32]byte{}) && p.Entry.Index >= b.First && i < uint64(len(entries)) {
					p.Entry = entries[i]
				}
			}
		}
		for _, e := range entries {
			b.Leaves = append(b.Leaves, e.LeafHash)
		}
		if len(entries) > 0 {
			if err := tx.AppendEntries(ctx, entries); err != nil {
				return err
			}
		}
		if write != nil {
			if err := write(); err != nil {
				return err
			}
		}
		if len(links) > 0 {
			if err := tx.PutSubjectLinks(ctx, links); err != nil {
				return err
			}
		}
		if len(b.Leaves) == 0 {
			return nil
		}
		if b.Signature, err = l.key.Sign(batchMessage(l.origin, b.First, b.Leaves)); err != nil {
			return fmt.Errorf("sign batch: %w", err)
		}
		return tx.InsertBatch(ctx, b)
	})
	if err != nil {
		failAll(batch, fmt.Errorf("%w: %v", ErrUnavailable, err))
	}
}
