package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
)

// scrubBenchObjects is the size of the log the scrub benchmark passes over.
const scrubBenchObjects = 10_000

// BenchmarkScrub is one full fixity pass over 10,000 attested objects in
// the embedded backends (each object: entry and signature check, read and
// SHA-256 of the stored file, progress saved every 64), beside its
// baseline in the same invocation — reading and hashing the same files
// with nothing else — and a pass at a configured rate, to show the limit
// holds. The files are in the page cache after their ingest: this is the
// scrubber's own cost, not the disk's.
func BenchmarkScrub(b *testing.B) {
	f, state, paths, size := scrubBenchFixture(b)
	b.Run("pass", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			res, err := attest.NewScrubber(f.svc, state, "bench").Pass(context.Background())
			if err != nil || res.Progress.Counts[fixity.OK] != scrubBenchObjects {
				b.Fatalf("pass: %v %v", res, err)
			}
		}
		b.ReportMetric(float64(scrubBenchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	b.Run("baseline-read-sha256", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, 32<<10)
		for b.Loop() {
			for _, p := range paths {
				fh, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				if _, err := io.CopyBuffer(h, fh, buf); err != nil {
					b.Fatal(err)
				}
				fh.Close()
			}
		}
		b.ReportMetric(float64(scrubBenchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	// The limit: 16 MiB/s over the first 2,000 objects (~78 MB, ~4.7 s).
	b.Run("rate-16MiB", func(b *testing.B) {
		const limit = 16 << 20
		for b.Loop() {
			sc := attest.NewScrubber(f.svc, state, "bench")
			sc.Rate = limit
			ctx, cancel := context.WithCancel(context.Background())
			start := time.Now()
			var read int64
			sc.OnFailure = func(fixity.Failure) {}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if st := sc.Status(); st.BytesRead >= 2000*(size/scrubBenchObjects) {
						read = st.BytesRead
						cancel()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			sc.Pass(ctx)
			<-done
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(read)/el/(1<<20), "MiB/s")
			b.ReportMetric(float64(read)/el/limit, "of-limit")
		}
	})
}

// scrubBenchFixture ingests scrubBenchObjects instances (8 at a time) in
// b's temporary directory, which lasts for b's sub-benchmarks.
func scrubBenchFixture(b *testing.B) (f fixtureService, state *sqlite.DB, paths []string, size int64) {
	f = newServiceIn(b, b.TempDir())
	files := uniqueInstances(b, "pydicom-CT_small.dcm", scrubBenchObjects)
	var wg sync.WaitGroup
	work := make(chan []byte)
	for range 8 {
		wg.Go(func() {
			for data := range work {
				if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(data)); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, data := range files {
		work <- data
		sum := sha256.Sum256(data)
		paths = append(paths, objectPath(filepath.Dir(f.ledgerDB), fmt.Sprintf("%x", sum)))
		size += int64(len(data))
	}
	close(work)
	wg.Wait()
	state, err := sqlite.Open(context.Background(), f.ledgerDB)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { state.Close() })
	return f, state, paths, size
}
