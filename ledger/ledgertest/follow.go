package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// follow runs one Next and returns the indexes it handed out, failing the
// test on any error.
func follow(t *testing.T, fl *ledger.Follower, max int) []uint64 {
	t.Helper()
	var got []uint64
	n, err := fl.Next(context.Background(), max, func(e ledger.Entry) error { got = append(got, e.Index); return nil })
	if err != nil || n != len(got) {
		t.Fatalf("%s: Next(%d) = %d, %v after handing out %v", fl.Name(), max, n, err, got)
	}
	return got
}

// span is [from, to) as a slice, for comparisons.
func span(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func wantIndexes(t *testing.T, what string, got, want []uint64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: handed out %v, want %v", what, got, want)
	}
}

func wantPosition(t *testing.T, fl *ledger.Follower, want uint64) {
	t.Helper()
	if pos, err := fl.Position(context.Background()); err != nil || pos != want {
		t.Fatalf("%s: position %d, %v; want %d", fl.Name(), pos, err, want)
	}
}

func runFollow(t *testing.T, h Harness) {
	ctx := context.Background()
	errRefused := errors.New("refused")

	t.Run("a follower sees the integrated entries in order and no more", func(t *testing.T) {
		f := newFixture(t, h)
		fl := f.log.Follow("scrubber")
		wantPosition(t, fl, 0)
		wantIndexes(t, "an empty log", follow(t, fl, 10), nil)
		appendN(t, f.log, 0, 10, 4)
		wantIndexes(t, "before any checkpoint", follow(t, fl, 10), nil)
		integrate(t, f.log)
		appendN(t, f.log, 10, 5, 4) // not integrated yet
		var got []uint64
		n, err := fl.Next(ctx, 4, func(e ledger.Entry) error {
			if want := f.entry(t, e.Index); e.LeafHash != want.LeafHash || string(e.Body) != string(want.Body) || e.Subject != want.Subject {
				t.Errorf("entry %d handed out as %+v, stored as %+v", e.Index, e, want)
			}
			got = append(got, e.Index)
			return nil
		})
		if err != nil || n != 4 {
			t.Fatalf("Next(4) = %d, %v", n, err)
		}
		wantIndexes(t, "a batch of 4", got, span(0, 4))
		wantIndexes(t, "up to the checkpoint", follow(t, fl, 100), span(4, 10))
		wantPosition(t, fl, 10)
		wantIndexes(t, "at the checkpoint", follow(t, fl, 100), nil)
		if cp := integrate(t, f.log); cp.Size != 15 {
			t.Fatalf("checkpoint size %d", cp.Size)
		}
		wantIndexes(t, "after the next checkpoint", follow(t, fl, 100), span(10, 15))
		wantPosition(t, fl, 15)
		if _, err := fl.Next(ctx, 0, func(ledger.Entry) error { return nil }); err == nil {
			t.Fatal("Next with a batch of 0 succeeded")
		}
	})

	t.Run("an fn error stops the batch and keeps what was handled", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 10, 4)
		integrate(t, f.log)
		fl := f.log.Follow("siem")
		var got []uint64
		n, err := fl.Next(ctx, 100, func(e ledger.Entry) error {
			if e.Index == 4 {
				return errRefused
			}
			got = append(got, e.Index)
			return nil
		})
		if !errors.Is(err, errRefused) || n != 4 {
			t.Fatalf("Next = %d, %v; want 4, the fn's error", n, err)
		}
		wantIndexes(t, "before the error", got, span(0, 4))
		wantPosition(t, fl, 4)
		n, err = fl.Next(ctx, 100, func(ledger.Entry) error { return errRefused })
		if !errors.Is(err, errRefused) || n != 0 {
			t.Fatalf("an error on the first entry: %d, %v", n, err)
		}
		wantPosition(t, fl, 4)
		wantIndexes(t, "after the errors", follow(t, fl, 100), span(4, 10))
	})

	t.Run("a restart resumes after the last handled entry", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 12, 4)
		integrate(t, f.log)
		var got []uint64
		got = append(got, follow(t, f.log.Follow("report"), 3)...)
		_, err := f.log.Follow("report").Next(ctx, 100, func(e ledger.Entry) error {
			if e.Index == 5 {
				return errRefused // the process is stopped while handling 5
			}
			got = append(got, e.Index)
			return nil
		})
		if !errors.Is(err, errRefused) {
			t.Fatal(err)
		}
		if err := f.log.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := f.reopen()
		defer l2.Close()
		fl := l2.Follow("report")
		wantPosition(t, fl, 5)
		got = append(got, follow(t, fl, 100)...)
		wantIndexes(t, "across the restart", got, span(0, 12))
		appendN(t, l2, 12, 3, 1)
		integrate(t, l2)
		wantIndexes(t, "after the restart's checkpoint", follow(t, fl, 100), span(12, 15))
	})

	t.Run("followers of different names are independent", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 8, 4)
		integrate(t, f.log)
		a, b := f.log.Follow("a"), f.log.Follow("b")
		wantIndexes(t, "a", follow(t, a, 5), span(0, 5))
		wantPosition(t, b, 0)
		wantIndexes(t, "b", follow(t, b, 2), span(0, 2))
		wantPosition(t, a, 5)
		wantIndexes(t, "a again", follow(t, a, 100), span(5, 8))
		wantIndexes(t, "b again", follow(t, b, 100), span(2, 8))
	})

	t.Run("a follower does not move a cursor another one moved", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 6, 4)
		integrate(t, f.log)
		one, other := f.log.Follow("shared"), f.log.Follow("shared")
		var otherGot []uint64
		n, err := one.Next(ctx, 2, func(e ledger.Entry) error {
			if e.Index == 0 { // fn runs outside any transaction: the other may write
				otherGot = follow(t, other, 4)
			}
			return nil
		})
		if !errors.Is(err, ledger.ErrCursorMoved) || n != 0 {
			t.Fatalf("saving over a moved cursor: %d, %v; want ErrCursorMoved", n, err)
		}
		wantIndexes(t, "the other", otherGot, span(0, 4))
		wantPosition(t, one, 4) // not moved back to 2
		wantIndexes(t, "after the conflict", follow(t, one, 100), span(4, 6))
	})

	t.Run("run follows new checkpoints until its context ends", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 6, 4)
		integrate(t, f.log)
		runCtx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		var got []uint64
		err := f.log.Follow("run").Run(runCtx, 10*time.Millisecond, 2, func(e ledger.Entry) error {
			got = append(got, e.Index)
			switch e.Index {
			case 5: // caught up: more arrives while Run follows
				if err := tryAppendN(f.log, 6, 3, 1); err != nil {
					return err
				}
				if _, _, err := f.log.Integrate(ctx); err != nil {
					return err
				}
			case 8:
				stop()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		wantIndexes(t, "Run", got, span(0, 9))
		// The position of the last entry is saved though the context ended.
		wantPosition(t, f.log.Follow("run"), 9)
	})
}
