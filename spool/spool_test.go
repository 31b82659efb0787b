package spool_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

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
