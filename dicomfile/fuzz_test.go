package dicomfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// FuzzParse feeds hostile bytes through the whole parse path. Parse must
// never panic or hang, and whatever it accepts must name an instance.
// Run longer with: go test ./dicomfile -run '^$' -fuzz FuzzParse -fuzztime 60s
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
	})
}
