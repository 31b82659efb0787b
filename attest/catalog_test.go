package attest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/dicomfile"
)

// Ingest reads a catalog row's keys from the decoded data set; the index
// rebuild and any other reader of stored attributes from their JSON. The
// two must agree on every real file.
func TestCatalogEntryAgreesWithItsJSON(t *testing.T) {
	files, _ := filepath.Glob("../testdata/dicom/*.dcm")
	if dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR"); dir != "" {
		more, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
		files = append(files, more...)
	}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data))); err != nil {
			continue // not ingestible: never indexed
		}
		got, err := CatalogEntry(dicomfile.DefaultLimits, bytes.NewReader(data), int64(len(data)))
		if errors.Is(err, catalog.ErrNotIndexable) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		want, err := catalog.FromJSON(got.Attributes)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: from the data set %+v\nfrom its JSON %+v", filepath.Base(f), got, want)
		}
		checked++
	}
	t.Logf("%d files checked", checked)
	if checked < 5 {
		t.Fatalf("only %d files checked", checked)
	}
}
