package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/dicomseal/dicomseal/store/fs"
)

// uniqueInstances returns n copies of a real file, each with its own SOP
// Instance UID (same length, so the file stays well-formed).
func uniqueInstances(b testing.TB, name string, n int) [][]byte {
	b.Helper()
	data := fixture(b, name)
	const uidTail = "20040119072730.12322"
	if !bytes.Contains(data, []byte(uidTail)) {
		b.Fatalf("%s has no %s", name, uidTail)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.ReplaceAll(data, []byte(uidTail), []byte(fmt.Sprintf("1%013d.12322", i)))
	}
	return out
}

// BenchmarkIngest is the whole ingest path into the embedded backends:
// spool, structure walk, parse, store with fsync, sign, ledger commit with
// fsync. Compare with the baselines below, run in the same invocation.
func BenchmarkIngest(b *testing.B) {
	f := newService(b)
	files := uniqueInstances(b, "pydicom-CT_small.dcm", b.N)
	b.SetBytes(int64(len(files[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(files[i])); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestParallel is the same with concurrent clients.
func BenchmarkIngestParallel(b *testing.B) {
	f := newService(b)
	files := uniqueInstances(b, "pydicom-CT_small.dcm", b.N)
	b.SetBytes(int64(len(files[0])))
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(files[i])); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBaselineSHA256 hashes the same bytes: the floor of any integrity check.
func BenchmarkBaselineSHA256(b *testing.B) {
	data := fixture(b, "pydicom-CT_small.dcm")
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		sha256.Sum256(data)
	}
}

// BenchmarkBaselineStorePut writes the same objects with the filesystem
// store alone (hash, temp file, fsync, rename, fsync dir).
func BenchmarkBaselineStorePut(b *testing.B) {
	s, err := fs.Open(filepath.Join(b.TempDir(), "objects"))
	if err != nil {
		b.Fatal(err)
	}
	files := uniqueInstances(b, "pydicom-CT_small.dcm", b.N)
	b.SetBytes(int64(len(files[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum := sha256.Sum256(files[i])
		if err := s.Put(context.Background(), fmt.Sprintf("%x", sum), bytes.NewReader(files[i]), int64(len(files[i]))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRetrieve is a verified retrieval: ledger lookup, signature
// check, read and re-hash of the stored object.
func BenchmarkRetrieve(b *testing.B) {
	f := newService(b)
	res, err := f.svc.Ingest(context.Background(), bytes.NewReader(fixture(b, "pydicom-CT_small.dcm")))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(res.Size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := f.svc.Retrieve(context.Background(), res.SOPInstanceUID, nil)
		if err != nil {
			b.Fatal(err)
		}
		got.Close()
	}
}
