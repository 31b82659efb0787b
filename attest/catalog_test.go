package attest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

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
	// A Latin-1 name in a file that declares no character set: bytes that
	// are not UTF-8, which PostgreSQL's text refuses.
	latin1, err := os.ReadFile("../testdata/dicom/pydicom-MR_small.dcm")
	if err != nil {
		t.Fatal(err)
	}
	latin1 = bytes.Replace(latin1, []byte("CompressedSamples^MR1"), []byte("Compr\xe9ssedSamples^MR1"), 1)
	checked := 0
	for _, f := range append(files, "latin1") {
		data, err := os.ReadFile(f)
		if f == "latin1" {
			data, err = latin1, nil
		}
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
		if !utf8.ValidString(got.PatientName) || !utf8.Valid(got.Attributes) {
			t.Errorf("%s: a row that is not UTF-8: %q", filepath.Base(f), got.PatientName)
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

// A row keeps at most maxCatalogAttributes of attributes: long private
// values are left out, the keys stay.
func TestCatalogRowIsBounded(t *testing.T) {
	data, err := os.ReadFile("../testdata/dicom/pydicom-CT_small.dcm") // explicit VR LE, Pixel Data last
	if err != nil {
		t.Fatal(err)
	}
	el := func(elem uint16, vr string, v []byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, 0x7FE1)
		b = binary.LittleEndian.AppendUint16(b, elem)
		b = append(b, vr...)
		if vr == "UT" {
			b = append(b, 0, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		} else {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		}
		return append(b, v...)
	}
	data = append(data, el(0x0010, "LO", []byte("DICOMSEAL TEST "))...)
	for i := range 100 {
		data = append(data, el(0x1000+uint16(i), "UT", bytes.Repeat([]byte("x"), 4000))...)
	}
	e, err := CatalogEntry(dicomfile.DefaultLimits, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Attributes) > maxCatalogAttributes || !bytes.Contains(e.Attributes, []byte(`"00100010"`)) || e.PatientName == "" {
		t.Fatalf("row of %d bytes (keys %q)", len(e.Attributes), e.PatientName)
	}
	if n := bytes.Count(e.Attributes, []byte(`"7FE11`)); n == 0 || n == 100 {
		t.Fatalf("%d of the 100 long values kept: want some, not all", n)
	}
}
