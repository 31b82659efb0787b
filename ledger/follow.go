package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"
)

// ErrCursorMoved: another follower of the same name saved a position while
// this one was handling its batch. Two consumers must not share a name.
var ErrCursorMoved = errors.New("ledger: the cursor was moved by another follower of the same name")

// Follower consumes the log in index order from a durable position saved
// under its name (the cursors table, beside the log): the seam for
// features that act on every entry once, such as a scrubber, a SIEM
// export or a report builder. Its zero position is the log's first entry.
//
// A follower only hands out integrated entries: those below the latest
// signed checkpoint's size, never one a checkpoint does not cover yet.
// The checkpoint's signature is verified with the log key and each entry's
// body against its leaf hash; whatever it passes on is covered by a tree
// the log signed (log verify is what proves each entry in it).
//
// Delivery is exactly once after commit. Next reads a batch, calls fn for
// each entry in index order outside any transaction (fn may be slow: an
// export over the network must not hold a snapshot open), and then saves
// the position just after the last entry fn accepted, in a write
// transaction of its own:
//
//   - once Next returns, the entries it handled are behind the saved
//     cursor: no later call, in this process or after a restart, hands
//     them out again;
//   - fn's error (or ctx ending) stops the batch; the position of the
//     entries handled before it is saved, so the next call, here or after
//     a restart, starts with the entry fn refused: nothing is skipped,
//     nothing handled is repeated;
//   - the one window is between fn's return and the cursor's commit: if
//     the process dies there, or the save fails (Next then returns
//     ErrUnavailable and n = 0), that batch is handed out again. fn should
//     tolerate seeing up to one batch twice (key what it writes by
//     Entry.Index or LeafHash), or the caller keeps max small.
//
// One name is one consumer. Two followers of the same name (two processes)
// would handle the same entries; the save refuses to move a cursor that
// changed since the batch was read (ErrCursorMoved), so they can never
// move it backwards, but they should not share a name in the first place.
type Follower struct {
	log  *Log
	name string
}

// Follow returns the follower that saves its position under name.
func (l *Log) Follow(name string) *Follower { return &Follower{log: l, name: name} }

// Name is the name the follower's position is saved under.
func (f *Follower) Name() string { return f.name }

// Position is the index of the next entry the follower will hand out: 0
// before its first save.
func (f *Follower) Position(ctx context.Context) (uint64, error) {
	ctx, cancel := f.log.bound(ctx)
	defer cancel()
	var pos uint64
	err := f.log.read(ctx, func(tx Tx) (err error) { pos, err = cursor(ctx, tx, f.name); return })
	return pos, err
}

// Next hands at most max integrated entries, from the saved position on,
// to fn in index order and saves the position after the last one fn
// accepted (see Follower). n is how many entries the cursor moved past: 0
// with a nil error when the follower has caught up with the latest
// checkpoint. fn's own error is returned unchanged (joined with the
// save's, should that fail too); backend faults are ErrUnavailable.
func (f *Follower) Next(ctx context.Context, max int, fn func(Entry) error) (n int, err error) {
	if max <= 0 || f.name == "" {
		return 0, badParam("a follower needs a name and a positive batch (got %q, %d)", f.name, max)
	}
	from, batch, err := f.fetch(ctx, max)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	var stopped error
	for _, e := range batch {
		if stopped = ctx.Err(); stopped != nil {
			break
		}
		if stopped = fn(e); stopped != nil {
			break
		}
		n++
	}
	if n == 0 {
		return 0, stopped
	}
	if err := f.save(ctx, from, from+uint64(n)); err != nil {
		return 0, errors.Join(stopped, err)
	}
	return n, stopped
}

// fetch reads the saved position and up to max integrated entries after
// it, in one snapshot, so the batch and the checkpoint it is bounded by
// agree.
func (f *Follower) fetch(ctx context.Context, max int) (from uint64, batch []Entry, err error) {
	ctx, cancel := f.log.bound(ctx)
	defer cancel()
	err = f.log.read(ctx, func(tx Tx) error {
		batch = nil // in case a backend ever retries
		var err error
		if from, err = cursor(ctx, tx, f.name); err != nil {
			return err
		}
		size, err := f.signedSize(ctx, tx)
		if err != nil || from >= size {
			return err
		}
		to := min(size, from+uint64(max))
		err = tx.ScanEntries(ctx, from, to, func(e Entry) error {
			if want := from + uint64(len(batch)); e.Index != want {
				return fmt.Errorf("integrated entry %d is missing", want)
			}
			if LeafHash(e.Body) != e.LeafHash {
				return fmt.Errorf("integrated entry %d does not hash to its leaf hash", e.Index)
			}
			batch = append(batch, e)
			return nil
		})
		if err == nil && uint64(len(batch)) != to-from {
			err = fmt.Errorf("integrated entry %d is missing", from+uint64(len(batch)))
		}
		return err
	})
	return from, batch, err
}

// signedSize is the size of the latest checkpoint whose signature verifies
// with the log key: a row the database holds is not enough (the service's
// role may insert one), the log key's signature is.
func (f *Follower) signedSize(ctx context.Context, tx Tx) (uint64, error) {
	cp, err := tx.LatestCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	parsed, _, _, err := log.ParseCheckpoint(cp.Note, f.log.origin, f.log.verify)
	if err != nil || parsed.Size != cp.Size {
		return 0, fmt.Errorf("the latest checkpoint (size %d) does not verify with the log key: %v", cp.Size, err)
	}
	return cp.Size, nil
}

// save moves the cursor from from to to, unless another follower of the
// same name moved it meanwhile. It is not cancelled with ctx: a follower
// stopped at shutdown still records what it handled (the log's Timeout
// bounds it instead).
func (f *Follower) save(ctx context.Context, from, to uint64) error {
	ctx, cancel := f.log.bound(context.WithoutCancel(ctx))
	defer cancel()
	var moved error
	err := f.log.backend.Write(ctx, func(tx Tx) error {
		at, err := cursor(ctx, tx, f.name)
		if err != nil {
			return err
		}
		if at != from {
			moved = fmt.Errorf("%w: %q is at %d, this follower read from %d", ErrCursorMoved, f.name, at, from)
			return moved
		}
		return tx.SaveCursor(ctx, f.name, to)
	})
	switch {
	case moved != nil:
		return moved
	case err != nil:
		return fmt.Errorf("%w: save cursor %q: %v", ErrUnavailable, f.name, err)
	}
	return nil
}

// cursor is the saved position, 0 when there is none.
func cursor(ctx context.Context, tx Tx, name string) (uint64, error) {
	pos, err := tx.Cursor(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return pos, err
}

// Run follows the log until ctx ends (returning ctx's error) or Next
// fails (returning its error: fn's, or a backend fault; the cursor holds
// everything handled, so calling Run again resumes). It asks for the next
// batch of max at once while batches come full, and every interval once
// it has caught up with the latest checkpoint.
func (f *Follower) Run(ctx context.Context, interval time.Duration, max int, fn func(Entry) error) error {
	if interval <= 0 {
		return badParam("a follower's interval must be positive, not %s", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := f.Next(ctx, max, fn)
		switch {
		case ctx.Err() != nil:
			// Whatever Next reported, it was cut short by ctx.
			return ctx.Err()
		case err != nil:
			return err
		case n == max:
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
