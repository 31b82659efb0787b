package spool_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/spool"
)

func TestSpool(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		inMemory bool
	}{
		{"empty", 0, true},
		{"fits in memory", 1000, true},
		{"exactly the bound", 4096, true},
		{"overflows to a file", 4097, false},
		{"large", 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := bytes.Repeat([]byte("dicom!"), tt.size/6+1)[:tt.size]
			s, err := spool.Fill(dir, 4096, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if s.InMemory() != tt.inMemory {
				t.Errorf("InMemory = %v, want %v", s.InMemory(), tt.inMemory)
			}
			sum := sha256.Sum256(data)
			if s.SHA256Hex() != hex.EncodeToString(sum[:]) || s.Size() != int64(tt.size) {
				t.Errorf("digest/size = %s/%d, want %x/%d", s.SHA256Hex(), s.Size(), sum, tt.size)
			}
			for i := 0; i < 2; i++ { // readers are independent and repeatable
				got, err := io.ReadAll(s.Reader())
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d: %d bytes, err %v", i, len(got), err)
				}
			}
			files, _ := os.ReadDir(dir)
			if !tt.inMemory {
				if len(files) != 1 {
					t.Fatalf("want one spool file, have %d", len(files))
				}
				info, _ := files[0].Info()
				if info.Mode().Perm() != 0o600 {
					t.Errorf("spool file mode %v, want 0600", info.Mode().Perm())
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if files, _ := os.ReadDir(dir); len(files) != 0 {
				t.Errorf("Close left %d files behind", len(files))
			}
		})
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestFillErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := spool.Fill(dir, 16, &failingReader{n: 100}); err == nil {
		t.Fatal("Fill succeeded on a failing reader")
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("failed Fill left %d files behind", len(files))
	}
}

// TestFillWith spools with a size hint that is right, short, long or
// absent, with chunk leaves computed on the way: the same bytes, digest
// and leaves whichever, in memory or overflowed.
func TestFillWith(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000)[:300001]
	want := chunks.NewHasher(4096)
	want.Write(data)
	wantLeaves := want.Leaves()
	sum := sha256.Sum256(data)
	for _, memory := range []int64{1 << 20, 100000} {
		for _, hint := range []int64{0, int64(len(data)), 1000, 2 * int64(len(data))} {
			s, err := spool.FillWith(spool.Options{Dir: t.TempDir(), Memory: memory, SizeHint: hint, ChunkSize: 4096},
				io.MultiReader(bytes.NewReader(data[:77]), bytes.NewReader(data[77:])))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(s.Reader())
			if !bytes.Equal(got, data) || s.SHA256() != sum || s.InMemory() != (memory > int64(len(data))) {
				t.Fatalf("memory %d, hint %d: bytes or digest differ (in memory %v)", memory, hint, s.InMemory())
			}
			leaves := s.ChunkLeaves()
			if len(leaves) != len(wantLeaves) || leaves[len(leaves)-1] != wantLeaves[len(wantLeaves)-1] || leaves[3] != wantLeaves[3] {
				t.Fatalf("memory %d, hint %d: chunk leaves differ", memory, hint)
			}
			r := s.Reader()
			if d, ok := r.WholeSHA256(); !ok || d != sum {
				t.Fatal("a fresh reader does not know its digest")
			}
			r.Read(make([]byte, 10))
			if _, ok := r.WholeSHA256(); ok {
				t.Fatal("a reader that moved still claims the whole digest")
			}
			s.Close()
			if n, _ := io.ReadAll(r); len(n) != 0 {
				t.Fatal("a closed spool still yields bytes")
			}
		}
	}
}
