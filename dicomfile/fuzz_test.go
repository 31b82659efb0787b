package dicomfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// FuzzParse feeds hostile bytes through the whole parse and digest path
// (Parse, and Analyze with its pixel hashing and value decoding). Neither
// may panic or hang, and whatever they accept must name an instance.
// scripts/test.sh runs it for a bounded time; run longer with:
// go test ./dicomfile -run '^$' -fuzz FuzzParse -fuzztime 10m
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "dicom", "*.dcm"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 16<<10 { // small seeds mutate faster
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(append(make([]byte, 128), "DICM"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
		if err == nil && inst.SOPInstanceUID == "" {
			t.Fatal("accepted a file without a SOP Instance UID")
		}
		a, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if a.Instance.SOPInstanceUID == "" {
			t.Fatal("Analyze accepted a file without a SOP Instance UID")
		}
		if d := a.Digests([]byte("salt")); len(d.Metadata) != 64 || len(d.Identity) != 64 {
			t.Fatalf("digests %+v", d)
		}
	})
}
