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
func (l *Log) AppendIngest(ctx context.Context, rec Record) (Entry, error) {
	if rec.Kind != KindIngest {
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
	if rec.Kind == KindIngest {
		return Entry{}, 0, errors.New("ledger: RecordIncident given an ingest record")
	}
	r, err := l.submit(ctx, &appendRequest{rec: rec, seenAt: seenAt})
	return r.entry, r.count, err
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
			// only stops waiting for it.
			return req, ctx.Err()
		}
	}
	l.leading = true
	for {
		batch := l.pending
		l.pending = nil
		l.mu.Unlock()
		// The batch belongs to every caller in it: one caller's
		// cancellation must not abort the others' commit.
		l.commit(context.WithoutCancel(ctx), batch)
		for _, r := range batch {
			close(r.done)
		}
		l.mu.Lock()
		if len(l.pending) == 0 {
			l.leading = false
			l.mu.Unlock()
			return req, req.err
		}
	}
}

// commit writes one batch in one transaction and sets each request's outcome.
func (l *Log) commit(ctx context.Context, batch []*appendRequest) {
	err := l.backend.Write(ctx, func(tx Tx) error {
		next, err := tx.NextIndex(ctx)
		if err != nil {
			return err
		}
		b := Batch{First: next}
		for _, r := range batch {
			r.entry, r.count, r.err = Entry{}, 0, nil
			appended, err := l.apply(ctx, tx, r, next)
			if err != nil {
				return err
			}
			if appended {
				b.Leaves = append(b.Leaves, r.entry.LeafHash)
				next++
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

// apply decides one record inside the batch transaction: append it at idx,
// or answer from what is already there. Errors abort the whole batch.
func (l *Log) apply(ctx context.Context, tx Tx, r *appendRequest, idx uint64) (appended bool, err error) {
	rec := r.rec
	if rec.Kind == KindIngest {
		existing, err := tx.InstanceEntry(ctx, rec.SOPInstanceUID)
		if err == nil {
			r.err = &InstanceExistsError{Existing: existing}
			return false, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, err
		}
	} else {
		eidx, count, err := tx.Incident(ctx, rec.Kind, rec.SOPInstanceUID, rec.IncidentKey)
		switch {
		case err == nil:
			r.count = count + 1
			if err := tx.PutIncident(ctx, rec.Kind, rec.SOPInstanceUID, rec.IncidentKey, eidx, r.count, r.seenAt); err != nil {
				return false, err
			}
			r.entry, err = tx.Entry(ctx, eidx)
			return false, err
		case !errors.Is(err, ErrNotFound):
			return false, err
		}
	}

	e := Entry{Index: idx, Kind: rec.Kind, SOPInstanceUID: rec.SOPInstanceUID, FileSHA256: rec.FileSHA256,
		Body: rec.Body, LeafHash: LeafHash(rec.Body)}
	if err := tx.InsertEntry(ctx, e); err != nil {
		return false, err
	}
	r.entry = e
	if rec.Kind == KindIngest {
		if err := tx.ClaimInstance(ctx, rec.SOPInstanceUID, idx, rec.FileSHA256); err != nil {
			return false, err
		}
		if rec.Identity != nil {
			if err := tx.PutIdentity(ctx, rec.FileSHA256, rec.Identity); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	r.count = 1
	return true, tx.PutIncident(ctx, rec.Kind, rec.SOPInstanceUID, rec.IncidentKey, idx, 1, r.seenAt)
}
