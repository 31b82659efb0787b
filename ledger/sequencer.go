package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Appends are sequenced by leader/follower group commit. The first caller
// to find no commit in flight becomes the leader and commits everything
// pending in one transaction (one fsync); callers arriving meanwhile queue
// up and form the next batch. There is no timer: a lone append is never
// delayed waiting for company, and a crowd shares one commit.

type appendRequest struct {
	rec    Record
	seenAt time.Time // incidents only

	entry Entry
	count int64
	err   error
	done  chan struct{}
}

// AppendIngest appends an ingest entry and claims its SOP Instance UID in
// the same transaction; *InstanceExistsError (and nothing appended) when the
// UID is already claimed, including by an earlier record of the same batch.
//
// A KindRevision record appends new bytes for an already claimed UID; the
// caller has judged them.
func (l *Log) AppendIngest(ctx context.Context, rec Record) (Entry, error) {
	if !rec.Kind.Attests() {
		return Entry{}, fmt.Errorf("ledger: AppendIngest given a %s record", rec.Kind)
	}
	r, err := l.submit(ctx, &appendRequest{rec: rec})
	return r.entry, err
}

// RecordIncident appends an incident entry (a conflict or an integrity
// failure) the first time one is seen for its kind, SOP Instance UID and
// incident key; repeats only raise its count. It returns the entry and how
// often the incident has now been seen.
func (l *Log) RecordIncident(ctx context.Context, rec Record, seenAt time.Time) (Entry, int64, error) {
	if rec.Kind.Attests() {
		return Entry{}, 0, errors.New("ledger: RecordIncident given an ingest record")
	}
	r, err := l.submit(ctx, &appendRequest{rec: rec, seenAt: seenAt})
	return r.entry, r.count, err
}

// Append appends plain records (KindAudit) together: they join the next
// group commit as one. The entries come back in order.
func (l *Log) Append(ctx context.Context, recs []Record) ([]Entry, error) {
	reqs := make([]*appendRequest, len(recs))
	for i, rec := range recs {
		if rec.Kind != KindAudit {
			return nil, fmt.Errorf("ledger: Append given a %s record", rec.Kind)
		}
		reqs[i] = &appendRequest{rec: rec, done: make(chan struct{})}
	}
	l.mu.Lock()
	l.pending = append(l.pending, reqs...)
	if l.leading {
		l.mu.Unlock()
	} else {
		l.leading = true
		l.lead(ctx)
	}
	out := make([]Entry, len(reqs))
	for i, r := range reqs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err() // without reading what the leader still writes
		}
		if r.err != nil {
			return nil, r.err
		}
		out[i] = r.entry
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
	for _, r := range batch {
		close(r.done)
	}
	l.mu.Lock()
}

func (l *Log) submit(ctx context.Context, req *appendRequest) (*appendRequest, error) {
	req.done = make(chan struct{})
	l.mu.Lock()
	l.pending = append(l.pending, req)
	if l.leading {
		l.mu.Unlock()
		select {
		case <-req.done:
			return req, req.err
		case <-ctx.Done():
			// The request stays queued and may still commit; the caller
			// only stops waiting for it, and must not read what the
			// leader is still writing.
			return &appendRequest{}, ctx.Err()
		}
	}
	l.leading = true
	l.lead(ctx)
	return req, req.err
}

// commitSafely is commit that turns a panic into an error for the batch,
// so that a bug cannot leave the log with a leader that never returns.
func (l *Log) commitSafely(ctx context.Context, batch []*appendRequest) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("%w: commit panicked: %v", ErrUnavailable, p)
			for _, r := range batch {
				r.entry, r.count, r.err = Entry{}, 0, err
			}
		}
	}()
	l.commit(ctx, batch)
}

// commit writes one batch in one transaction and sets each request's
// outcome. It reads what the batch depends on in bulk, decides every
// record in Go (seeing the records before it in the same batch), then
// writes in bulk: a few round trips per batch, whatever its size.
func (l *Log) commit(ctx context.Context, batch []*appendRequest) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	err := l.backend.Write(ctx, func(tx Tx) error {
		next, err := tx.NextIndex(ctx)
		if err != nil {
			return err
		}
		var uids []string
		var keys []IncidentKey
		for _, r := range batch {
			r.entry, r.count, r.err = Entry{}, 0, nil
			switch {
			case r.rec.Kind == KindIngest:
				uids = append(uids, r.rec.Subject)
			case r.rec.Kind != KindAudit && !r.rec.Kind.Attests():
				keys = append(keys, incidentKey(r.rec))
			}
		}
		claimed, err := tx.InstanceEntries(ctx, uids)
		if err != nil {
			return err
		}
		incidents, err := tx.Incidents(ctx, keys)
		if err != nil {
			return err
		}

		var rows Rows
		b := Batch{First: next}
		latest := map[string]uint64{} // revisions appended in this batch, by UID
		touched := map[IncidentKey]bool{}
		var repeats []*appendRequest // incidents seen before this batch: their entry is read back
		for _, r := range batch {
			rec := r.rec
			if rec.Kind.Revises() {
				head, ok := latest[rec.Subject]
				if !ok {
					e, err := tx.InstanceEntry(ctx, rec.Subject)
					if err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					head = e.Index
				}
				if head != rec.Revises {
					r.err = ErrStaleRevision
					continue
				}
				latest[rec.Subject] = next
			}
			if rec.Kind == KindIngest {
				if e, ok := claimed[rec.Subject]; ok {
					r.err = &InstanceExistsError{Existing: e}
					continue
				}
			} else if inc, ok := incidents[incidentKey(rec)]; ok && !rec.Kind.Attests() && rec.Kind != KindAudit {
				inc.Count++
				inc.LastSeen = r.seenAt
				incidents[inc.IncidentKey], touched[inc.IncidentKey] = inc, true
				r.count, r.entry.Index = inc.Count, inc.Index
				repeats = append(repeats, r)
				continue
			}
			e := Entry{Index: next, Kind: rec.Kind, Subject: rec.Subject, FileSHA256: rec.FileSHA256,
				Body: rec.Body, LeafHash: LeafHash(rec.Body)}
			next++
			r.entry = e
			rows.Entries = append(rows.Entries, e)
			b.Leaves = append(b.Leaves, e.LeafHash)
			if rec.Kind.Attests() {
				if rec.Kind == KindIngest {
					claimed[rec.Subject] = e
					rows.Claims = append(rows.Claims, Claim{SOPInstanceUID: rec.Subject, Index: e.Index, FileSHA256: rec.FileSHA256})
				}
				if rec.Identity != nil {
					rows.Identities = append(rows.Identities, IdentityRow{FileSHA256: rec.FileSHA256, Identity: rec.Identity})
				}
				continue
			}
			if rec.Kind == KindAudit {
				continue
			}
			k := incidentKey(rec)
			incidents[k], touched[k] = Incident{IncidentKey: k, Index: e.Index, Count: 1, LastSeen: r.seenAt}, true
			r.count = 1
		}
		for k := range touched {
			rows.Incidents = append(rows.Incidents, incidents[k])
		}
		if err := tx.AppendRows(ctx, rows); err != nil {
			return err
		}
		for _, r := range repeats {
			if r.entry, err = tx.Entry(ctx, r.entry.Index); err != nil {
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
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
		for _, r := range batch {
			r.entry, r.count, r.err = Entry{}, 0, err
		}
	}
}

func incidentKey(rec Record) IncidentKey {
	return IncidentKey{Kind: rec.Kind, Subject: rec.Subject, Key: rec.IncidentKey}
}
