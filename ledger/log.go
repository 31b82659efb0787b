package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Log is a verifiable, append-only ledger over a Backend: entries are
// appended by group commit, each batch signed, and integrated into an
// RFC 6962 Merkle tree whose checkpoints are signed notes.
type Log struct {
	backend Backend
	origin  string
	key     note.Signer
	verify  note.Verifier

	// Now is the clock (injected in tests).
	Now func() time.Time
	// Timeout bounds each call on the backend (0: none).
	Timeout time.Duration
	// Indexer, if set before the first append, decides each batch's
	// records in its transaction (see Indexer).
	Indexer Indexer
	// Handover, when a log's key is replaced (the audit log's, which the
	// custody key signed before it had a key of its own): the previous
	// key. A checkpoint is co-signed with it while the previous one does not
	// verify with the log's own key: the one checkpoint that hands over,
	// which a witness holding the old key verifies before it pins the new.
	Handover note.Signer
	// SubjectMap: every checkpoint ends with an entry committing the
	// subject map of the entries before it (submap.go). Set before the
	// first Integrate, and never unset on a log that has one.
	SubjectMap bool

	mu      sync.Mutex
	pending []*Pending
	leading bool
	// draining tracks the background leader, which Close waits for: it
	// may be committing requests whose callers stopped waiting.
	draining sync.WaitGroup
}

// New returns a log named origin (the first line of its checkpoints),
// signing batches and checkpoints with key.
func New(b Backend, origin string, key note.Signer, verifier note.Verifier) *Log {
	return &Log{backend: b, origin: origin, key: key, verify: verifier, Now: time.Now}
}

// bound gives one call on the backend the log's Timeout: a database that
// hangs fails the call (and the request) instead of holding it for ever.
func (l *Log) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.Timeout)
}

// Verifier verifies the log's checkpoints.
func (l *Log) Verifier() note.Verifier { return l.verify }

// Origin is the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Ping checks the backend.
func (l *Log) Ping(ctx context.Context) error {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	if err := l.backend.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Close waits for a background commit in flight, then closes the backend.
// Appends must have stopped.
func (l *Log) Close() error {
	l.draining.Wait()
	return l.backend.Close()
}

func (l *Log) read(ctx context.Context, fn func(Tx) error) error {
	err := l.backend.Read(ctx, fn)
	if err != nil && !isDomainError(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// isDomainError tells the errors a caller branches on from backend faults.
func isDomainError(err error) bool {
	var bad *BadParameterError
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoSubjectMap) || errors.As(err, &bad)
}

// View runs fn in a read transaction bounded by the log's Timeout: what an
// index over the log reads its own tables with. Backend faults become
// ErrUnavailable; ErrNotFound passes unchanged.
func (l *Log) View(ctx context.Context, fn func(Tx) error) error {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	return l.read(ctx, fn)
}

// Entry returns the entry at idx.
func (l *Log) Entry(ctx context.Context, idx uint64) (Entry, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	var e Entry
	err := l.read(ctx, func(tx Tx) (err error) { e, err = tx.Entry(ctx, idx); return })
	return e, err
}

// EntryByLeafHash returns the entry with that leaf hash.
func (l *Log) EntryByLeafHash(ctx context.Context, leaf [32]byte) (Entry, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	var e Entry
	err := l.read(ctx, func(tx Tx) (err error) { e, err = tx.EntryByLeafHash(ctx, leaf); return })
	return e, err
}

// Scan calls fn for every entry from index from on, in order, over one
// consistent snapshot.
func (l *Log) Scan(ctx context.Context, from uint64, fn func(Entry) error) error {
	return l.scan(ctx, fn, func(ctx context.Context, tx Tx, fn func(Entry) error) error {
		return tx.ScanEntries(ctx, from, 1<<62, fn)
	})
}

// ScanSubject calls fn for the entries of one subject, in order, through
// the subject index.
func (l *Log) ScanSubject(ctx context.Context, subject string, fn func(Entry) error) error {
	return l.scan(ctx, fn, func(ctx context.Context, tx Tx, fn func(Entry) error) error {
		return tx.ScanSubject(ctx, subject, fn)
	})
}

// scan returns fn's own error unchanged, so callers can stop a scan with a
// sentinel; only the backend's faults become ErrUnavailable.
// A scan may be long (an audit query over millions of entries): its
// deadline is Timeout without a row, not Timeout in all.
func (l *Log) scan(ctx context.Context, fn func(Entry) error, run func(context.Context, Tx, func(Entry) error) error) error {
	kick := func() {}
	if l.Timeout > 0 {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		t := time.AfterFunc(l.Timeout, func() { cancel(fmt.Errorf("no row for %s", l.Timeout)) })
		defer func() { t.Stop(); cancel(nil) }()
		kick = func() { t.Reset(l.Timeout) }
	}
	var stopped error
	err := l.read(ctx, func(tx Tx) error {
		stopped = nil // in case a backend ever retries
		return run(ctx, tx, func(e Entry) error {
			kick()
			stopped = fn(e)
			return stopped
		})
	})
	if stopped != nil {
		return stopped
	}
	return err
}

// LatestCheckpoint returns the newest checkpoint; ErrNotFound before the first.
func (l *Log) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	var c Checkpoint
	err := l.read(ctx, func(tx Tx) (err error) { c, err = tx.LatestCheckpoint(ctx); return })
	return c, err
}
