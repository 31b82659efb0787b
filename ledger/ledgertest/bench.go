package ledgertest

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/subject"
	"github.com/transparency-dev/merkle/proof"
)

// The benchmarks below run against any backend; each backend's package
// calls them with its harness so the figures are comparable.

// BenchAppend measures sustained appends with writers concurrent
// appenders (ingest records of ~300 bytes with identity rows), reported as
// appends/s.
func BenchAppend(b *testing.B, h Harness, writers int) { benchAppend(b, h, writers, false) }

// BenchAppendChained is BenchAppend as a custody log runs it: each record
// chained under one of 1,000 studies and its patient, the subject map on.
func BenchAppendChained(b *testing.B, h Harness, writers int) { benchAppend(b, h, writers, true) }

// benchRecord is a benchmark's i-th record: plain, or about one of 1,000
// studies and their patients.
func benchRecord(i int64, chained bool) custody.Record {
	if !chained {
		return ingest(fmt.Sprintf("5.%d", i), sha(int(i)))
	}
	study := fmt.Sprintf("%s.%d", studyB, i%1000)
	return chainedIngest(fmt.Sprintf("5.%d", i), study, "P-"+study, int(i))
}

func newBenchFixture(b *testing.B, h Harness, chained bool) *fixture {
	f := newFixture(b, h)
	f.log.SubjectMap = chained
	return f
}

func benchAppend(b *testing.B, h Harness, writers int, chained bool) {
	f := newBenchFixture(b, h, chained)
	var next atomic.Int64
	b.SetParallelism(max(1, int(math.Ceil(float64(writers)/float64(runtime.GOMAXPROCS(0))))))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := f.log.AppendIngest(context.Background(), benchRecord(i, chained)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

var (
	bigOnce sync.Once
	bigLog  *custody.Log
	bigErr  error
)

// BenchInclusionProof measures serving one inclusion proof against the
// latest checkpoint of a log of size entries. The log is built once per
// process, through the real append and integration path, on a backend
// from open that outlives any one benchmark run (the caller removes it).
func BenchInclusionProof(b *testing.B, open func() (ledger.Backend, error), size int) {
	bigOnce.Do(func() {
		start := time.Now()
		backend, err := open()
		if err != nil {
			bigErr = err
			return
		}
		s, v := LogKey(b)
		bigLog = custody.New(ledger.New(backend, Origin, s, v))
		const chunk = 100_000
		for done := 0; done < size && bigErr == nil; done += chunk {
			if bigErr = tryAppendN(bigLog, done, min(chunk, size-done), 512); bigErr == nil {
				_, _, bigErr = bigLog.Integrate(context.Background())
			}
		}
		b.Logf("built a log of %d entries in %s", size, time.Since(start).Round(time.Second))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	cp, err := bigLog.LatestCheckpoint(context.Background())
	if err != nil || cp.Size != uint64(size) {
		b.Fatalf("checkpoint %d, %v", cp.Size, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := uint64(i*7919) % cp.Size
		if _, _, err := bigLog.InclusionProof(context.Background(), idx, cp.Size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchCheckpointLatency appends with writers concurrent appenders while
// the integrator runs every interval, and reports the latency from an
// append's return to the first published checkpoint that covers it.
func BenchCheckpointLatency(b *testing.B, h Harness, writers int, interval time.Duration) {
	benchCheckpointLatency(b, h, writers, interval, false)
}

// BenchCheckpointLatencyChained is BenchCheckpointLatency with chained
// records and the subject map, which each integration updates and appends.
func BenchCheckpointLatencyChained(b *testing.B, h Harness, writers int, interval time.Duration) {
	benchCheckpointLatency(b, h, writers, interval, true)
}

func benchCheckpointLatency(b *testing.B, h Harness, writers int, interval time.Duration, chained bool) {
	f := newBenchFixture(b, h, chained)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.log.RunIntegrator(ctx, interval, discardLogger())

	// published[i] is when a checkpoint of size > i was first seen.
	var mu sync.Mutex
	seen := uint64(0)
	published := map[uint64]time.Time{}
	go func() {
		for ctx.Err() == nil {
			if cp, err := f.log.LatestCheckpoint(ctx); err == nil && cp.Size > seen {
				now := time.Now()
				mu.Lock()
				for i := seen; i < cp.Size; i++ {
					published[i] = now
				}
				seen = cp.Size
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	appended := make([]struct {
		idx uint64
		at  time.Time
	}, b.N)
	var next atomic.Int64
	b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			e, err := f.log.AppendIngest(ctx, benchRecord(i, chained))
			if err != nil {
				b.Error(err)
				return
			}
			appended[i].idx, appended[i].at = e.Index, time.Now()
		}
	})
	b.StopTimer()
	deadline := time.Now().Add(10 * interval)
	for {
		mu.Lock()
		done := seen >= uint64(b.N)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	lat := make([]float64, 0, b.N)
	for _, a := range appended {
		p, ok := published[a.idx]
		if !ok {
			b.Fatalf("entry %d never covered by a checkpoint", a.idx)
		}
		lat = append(lat, p.Sub(a.at).Seconds()*1000)
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
}

// BenchSubjectProof measures a subject proof of a study of n entries (a
// chain of n, each with its inclusion proof), interleaved with as many
// entries of other studies: producing it from the backend ("prove") and
// verifying it offline ("verify").
func BenchSubjectProof(b *testing.B, h Harness, n int) {
	f := newBenchFixture(b, h, true)
	ctx := context.Background()
	record := func(i int) custody.Record {
		study := studyA
		if i%2 == 1 {
			study = fmt.Sprintf("%s.%d", studyB, i%97)
		}
		return chainedIngest(fmt.Sprintf("9.%d", i), study, "P-"+study, i)
	}
	for done := 0; done < 2*n; done += 5000 {
		if err := appendRecords(f.log, done, min(5000, 2*n-done), record); err != nil {
			b.Fatal(err)
		}
		if _, _, err := f.log.Integrate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cp, err := f.log.LatestCheckpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	key := subject.Study(studyA)
	var p *ledger.SubjectProof
	b.Run("prove", func(b *testing.B) {
		for b.Loop() {
			if p, err = f.log.SubjectProof(ctx, key, cp.Size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			got, err := ledger.VerifySubjectProof(Origin, f.verifier, key, cp.Size, p)
			if err != nil || len(got.Entries) != n {
				b.Fatalf("%d entries, %v", len(got.Entries), err)
			}
		}
	})
	// The baseline: what a log without chains or map offers, the same
	// entries' inclusion proofs checked one by one (no completeness).
	b.Run("baseline-inclusion-only", func(b *testing.B) {
		for b.Loop() {
			for _, e := range p.Entries {
				leaf := ledger.LeafHash(e.Body)
				if err := proof.VerifyInclusion(hasher, e.Index, cp.Size, leaf[:], e.Inclusion, cp.Root); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchMapUpdate measures an integration of 1,000 entries, each about a
// new study and patient (2,000 new map keys), into a log whose map holds
// about 2·subjects keys already: with the map ("map"), and the same
// integration without it ("baseline-no-map", a second log built the same
// way). The map's update is O(log n) per key: its cost per key should
// grow by a constant step, not tenfold, from 10,000 subjects to 100,000.
func BenchMapUpdate(b *testing.B, h Harness, subjects int) {
	ctx := context.Background()
	for _, m := range []struct {
		name string
		on   bool
	}{{"map", true}, {"baseline-no-map", false}} {
		f := newBenchFixture(b, h, m.on)
		next := 0
		grow := func(n int) {
			if err := appendStudies(f.log, next, n); err != nil {
				b.Fatal(err)
			}
			next += n
		}
		for done := 0; done < subjects; done += 10_000 {
			grow(min(10_000, subjects-done))
			if _, _, err := f.log.Integrate(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(m.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				grow(1000)
				b.StartTimer()
				if _, _, err := f.log.Integrate(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*1000), "µs/entry")
		})
	}
}

// appendStudies appends n entries, from start, each about its own study
// and patient.
func appendStudies(l *custody.Log, start, n int) error {
	return appendRecords(l, start, n, func(i int) custody.Record {
		study := fmt.Sprintf("%s.%d", studyB, i)
		return chainedIngest(fmt.Sprintf("8.%d", i), study, "P-"+study, i)
	})
}

// appendRecords appends record(i) for i from start to start+n, with 16
// concurrent appenders (so that group commit forms real batches).
func appendRecords(l *custody.Log, start, n int, record func(i int) custody.Record) error {
	var wg sync.WaitGroup
	work := make(chan int)
	var failed atomic.Value
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, err := l.AppendIngest(context.Background(), record(i)); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := start; i < start+n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	err, _ := failed.Load().(error)
	return err
}
