// Package fixitytest is the conformance suite of fixity.Store: every
// backend runs it.
package fixitytest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/fixity"
)

// Run checks a fresh store.
func Run(t *testing.T, s fixity.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

	t.Run("lease", func(t *testing.T) {
		for _, c := range []struct {
			holder string
			at     time.Duration
			want   bool
		}{
			{"a", 0, true},                 // free: taken
			{"b", time.Second, false},      // a holds it
			{"a", 20 * time.Second, true},  // a renews, until t0+50s
			{"b", 40 * time.Second, false}, // still a's
			{"b", 51 * time.Second, true},  // a's expired: b takes it
			{"a", 52 * time.Second, false}, // b's now
		} {
			got, err := s.AcquireLease(ctx, "scrub", c.holder, t0.Add(c.at), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("%s at +%v: got the lease %v, want %v", c.holder, c.at, got, c.want)
			}
		}
		if err := s.ReleaseLease(ctx, "scrub", "a"); err != nil { // not a's: nothing happens
			t.Fatal(err)
		}
		if got, _ := s.AcquireLease(ctx, "scrub", "a", t0.Add(53*time.Second), time.Minute); got {
			t.Fatal("a released b's lease")
		}
		if err := s.ReleaseLease(ctx, "scrub", "b"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AcquireLease(ctx, "scrub", "a", t0.Add(54*time.Second), time.Minute); !got {
			t.Fatal("a released lease is not free")
		}
		if got, _ := s.AcquireLease(ctx, "other", "b", t0.Add(54*time.Second), time.Minute); !got {
			t.Fatal("leases of other names are independent")
		}
	})

	t.Run("progress", func(t *testing.T) {
		p, err := s.Progress(ctx, "scrub")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, fixity.Progress{}) {
			t.Fatalf("never saved: got %+v, want the zero Progress", p)
		}
		idx := uint64(7)
		want := fixity.Progress{Pass: 3, Position: 42, End: 100, Started: t0,
			Counts: map[string]int64{fixity.OK: 5, fixity.Missing: 1}, Bytes: 12345,
			Failures: []fixity.Failure{{SOPInstanceUID: "1.2.3", IngestIndex: 4, Outcome: fixity.Missing,
				ExpectedSHA256: "ab", ExpectedSize: 9, IncidentIndex: &idx}},
			PreviousStarted: t0.Add(-time.Hour), PreviousEnd: 90}
		at := t0.Add(time.Hour)
		if err := s.SaveProgress(ctx, "scrub", "a", at, want); !errors.Is(err, fixity.ErrLeaseLost) {
			t.Fatalf("saved without the lease: %v", err)
		}
		if ok, err := s.AcquireLease(ctx, "scrub", "a", at, time.Minute); !ok || err != nil {
			t.Fatalf("lease: %v %v", ok, err)
		}
		for range 2 { // an update in place as well as the first save
			if err := s.SaveProgress(ctx, "scrub", "a", at, want); err != nil {
				t.Fatal(err)
			}
			got, err := s.Progress(ctx, "scrub")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			want.Position++
		}
		// Another holder, once a's lease expired, fences a out.
		later := at.Add(2 * time.Minute)
		if ok, _ := s.AcquireLease(ctx, "scrub", "b", later, time.Minute); !ok {
			t.Fatal("b could not take an expired lease")
		}
		if err := s.SaveProgress(ctx, "scrub", "a", later, want); !errors.Is(err, fixity.ErrLeaseLost) {
			t.Fatalf("a saved after losing the lease: %v", err)
		}
		if err := s.SaveProgress(ctx, "scrub", "b", later, want); err != nil {
			t.Fatal(err)
		}
	})
}
