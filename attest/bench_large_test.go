package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/dicomfile"
)

// realCT is a real 1 MB two-frame CT (cornerstone's CT0012 by way of
// suyashkumar/dicom), native 16-bit little endian: the size class of a
// PACS' everyday instance, where per-byte costs dominate.
const realCT = "suyashkumar-5-ct-multiframe.dcm"

// copiesOf returns n copies of a real file, each with its own SOP Instance
// UID of the same length (in the file meta and the data set).
func copiesOf(b testing.TB, name string, n int) [][]byte {
	b.Helper()
	data := fixture(b, name)
	a, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	uid := a.Instance.SOPInstanceUID
	if got := bytes.Count(data, []byte(uid)); got != 2 {
		b.Fatalf("%s: SOP Instance UID found %d times, want 2", name, got)
	}
	out := make([][]byte, n)
	for i := range out {
		tail := fmt.Sprintf("%012d", i)
		out[i] = bytes.ReplaceAll(data, []byte(uid), []byte(uid[:len(uid)-len(tail)-1]+"9"+tail))
	}
	return out
}

// BenchmarkIngestRealCT is the whole ingest path of a real 1 MB CT into
// the embedded backends, one client, beside plain SHA-256 of the same
// bytes in the same run.
func BenchmarkIngestRealCT(b *testing.B) {
	b.Run("dicomseal", func(b *testing.B) {
		f := newService(b)
		files := copiesOf(b, realCT, b.N)
		b.SetBytes(int64(len(files[0])))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(files[i])); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		f := newService(b)
		files := copiesOf(b, realCT, b.N)
		b.SetBytes(int64(len(files[0])))
		b.ReportAllocs()
		var next atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(files[next.Add(1)-1])); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("sha256", func(b *testing.B) {
		data := fixture(b, realCT)
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			sha256.Sum256(data)
		}
	})
}

// BenchmarkRetrieveRealCT is a verified retrieval of the same file, read
// to the end: verified whole into a spool first (Retrieve: ranges,
// attestations before chunk trees), and verified chunk by chunk as it is
// written (Stream: what GET /v1/instances/{uid} does).
func BenchmarkRetrieveRealCT(b *testing.B) {
	for name, open := range map[string]func(*attest.Service, context.Context, string, *uint64) (*attest.Retrieved, error){
		"whole": (*attest.Service).Retrieve, "streamed": (*attest.Service).Stream,
	} {
		b.Run(name, func(b *testing.B) {
			f := newService(b)
			res, err := f.svc.Ingest(context.Background(), bytes.NewReader(fixture(b, realCT)))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(res.Size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := open(f.svc, context.Background(), res.SOPInstanceUID, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := got.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
				got.Close()
			}
		})
	}
}
