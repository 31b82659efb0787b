// Package ledgertest is the conformance suite every ledger backend must
// pass: the same tests run against the embedded SQLite ledger and (later)
// PostgreSQL.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// Ledger is the behaviour under test.
type Ledger interface {
	AppendIngest(ctx context.Context, rec ledger.Record) (ledger.Entry, error)
	RecordIncident(ctx context.Context, rec ledger.Record, seenAt time.Time) (ledger.Entry, int64, error)
	InstanceBySOP(ctx context.Context, uid string) (ledger.Entry, error)
	IngestBySHA256(ctx context.Context, sha256Hex string) (ledger.Entry, error)
	Entry(ctx context.Context, idx uint64) (ledger.Entry, error)
	Ping(ctx context.Context) error
	Close() error
}

// Backend opens ledgers for the suite. Open returns a fresh, empty ledger
// and a function that reopens the same storage (a restart).
type Backend struct {
	Open func(t *testing.T) (l Ledger, reopen func() Ledger)
}

func ingest(uid, sha string) ledger.Record {
	return ledger.Record{
		Kind: ledger.KindIngest, SOPInstanceUID: uid, FileSHA256: sha,
		Body:     []byte(fmt.Sprintf(`{"kind":"ingest","sop_instance_uid":%q,"file_sha256":%q}`, uid, sha)),
		Identity: &ledger.Identity{Salt: []byte("0123456789abcdef0123456789abcdef"), PatientID: "P-" + uid},
	}
}

func sha(n int) string { return fmt.Sprintf("%064x", n) }

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	ctx := context.Background()

	t.Run("append and look up", func(t *testing.T) {
		l, _ := b.Open(t)
		for i := 0; i < 3; i++ {
			rec := ingest(fmt.Sprintf("1.2.3.%d", i), sha(i))
			e, err := l.AppendIngest(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if e.Index != uint64(i) || e.LeafHash != ledger.LeafHash(rec.Body) {
				t.Fatalf("entry %d: index %d, leaf %x", i, e.Index, e.LeafHash)
			}
		}
		bySOP, err := l.InstanceBySOP(ctx, "1.2.3.1")
		if err != nil || bySOP.Index != 1 || bySOP.FileSHA256 != sha(1) {
			t.Fatalf("InstanceBySOP = %+v, %v", bySOP, err)
		}
		bySHA, err := l.IngestBySHA256(ctx, sha(2))
		if err != nil || bySHA.SOPInstanceUID != "1.2.3.2" {
			t.Fatalf("IngestBySHA256 = %+v, %v", bySHA, err)
		}
		at, err := l.Entry(ctx, 0)
		if err != nil || string(at.Body) != string(ingest("1.2.3.0", sha(0)).Body) {
			t.Fatalf("Entry(0) = %+v, %v", at, err)
		}
		for name, err := range map[string]error{
			"unknown UID":    second(l.InstanceBySOP(ctx, "9.9")),
			"unknown digest": second(l.IngestBySHA256(ctx, sha(99))),
			"beyond the end": second(l.Entry(ctx, 3)),
		} {
			if !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("%s: error = %v, want ledger.ErrNotFound", name, err)
			}
		}
	})

	t.Run("a UID is claimed once", func(t *testing.T) {
		l, _ := b.Open(t)
		first, err := l.AppendIngest(ctx, ingest("1.2.3", sha(1)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.AppendIngest(ctx, ingest("1.2.3", sha(2)))
		var exists *ledger.InstanceExistsError
		if !errors.As(err, &exists) || exists.Existing.Index != first.Index || exists.Existing.FileSHA256 != sha(1) {
			t.Fatalf("second claim error = %v, want InstanceExistsError naming entry %d", err, first.Index)
		}
		if _, err := l.Entry(ctx, 1); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("a refused claim appended an entry: %v", err)
		}
	})

	t.Run("incidents are recorded once and counted", func(t *testing.T) {
		l, _ := b.Open(t)
		if _, err := l.AppendIngest(ctx, ingest("1.2.3", sha(1))); err != nil {
			t.Fatal(err)
		}
		rec := ledger.Record{Kind: ledger.KindIntegrityFailure, SOPInstanceUID: "1.2.3", FileSHA256: sha(7),
			IncidentKey: "altered:" + sha(7), Body: []byte(`{"kind":"integrity-failure"}`)}
		var first ledger.Entry
		for i := 1; i <= 3; i++ {
			e, count, err := l.RecordIncident(ctx, rec, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				first = e
			}
			if e.Index != first.Index || count != int64(i) {
				t.Fatalf("repeat %d: entry %d count %d, want entry %d count %d", i, e.Index, count, first.Index, i)
			}
		}
		other := rec
		other.IncidentKey, other.Body = "missing:", []byte(`{"kind":"integrity-failure","reason":"missing"}`)
		e, count, err := l.RecordIncident(ctx, other, time.Now())
		if err != nil || e.Index == first.Index || count != 1 {
			t.Fatalf("a different incident: entry %d count %d err %v", e.Index, count, err)
		}
	})

	t.Run("concurrent appends are gap-free", func(t *testing.T) {
		l, _ := b.Open(t)
		const writers, each = 16, 20
		var wg sync.WaitGroup
		indexes := make(chan uint64, writers*each)
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					n := w*each + i
					e, err := l.AppendIngest(ctx, ingest(fmt.Sprintf("2.%d", n), sha(n)))
					if err != nil {
						errs <- err
						return
					}
					indexes <- e.Index
				}
			}()
		}
		wg.Wait()
		close(indexes)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[uint64]bool{}
		for i := range indexes {
			if seen[i] {
				t.Fatalf("index %d assigned twice", i)
			}
			seen[i] = true
		}
		for i := uint64(0); i < writers*each; i++ {
			if !seen[i] {
				t.Fatalf("gap at index %d", i)
			}
		}
	})

	t.Run("concurrent first claims of one UID: one wins", func(t *testing.T) {
		l, _ := b.Open(t)
		const n = 8
		var wg sync.WaitGroup
		results := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.AppendIngest(ctx, ingest("3.1", sha(i)))
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			var exists *ledger.InstanceExistsError
			switch {
			case err == nil:
				wins++
			case !errors.As(err, &exists):
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d claims won, want 1", wins)
		}
	})

	t.Run("entries survive a restart", func(t *testing.T) {
		l, reopen := b.Open(t)
		e, err := l.AppendIngest(ctx, ingest("4.1", sha(41)))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := reopen()
		got, err := l2.InstanceBySOP(ctx, "4.1")
		if err != nil || got.LeafHash != e.LeafHash || got.Index != e.Index {
			t.Fatalf("after restart: %+v, %v", got, err)
		}
		next, err := l2.AppendIngest(ctx, ingest("4.2", sha(42)))
		if err != nil || next.Index != e.Index+1 {
			t.Fatalf("append after restart: index %d, err %v", next.Index, err)
		}
	})
}

func second[T any](_ T, err error) error { return err }
