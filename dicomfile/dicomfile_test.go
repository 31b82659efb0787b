package dicomfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
)

func parseFile(t *testing.T, name string) (*dicomfile.Instance, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "dicom", name))
	if err != nil {
		t.Fatal(err)
	}
	return dicomfile.Parse(bytes.NewReader(b), int64(len(b)))
}

// Expected values were read with dcmtk's dcmdump, an independent parser.
func TestParseRealFiles(t *testing.T) {
	tests := []struct {
		file string
		want dicomfile.Instance
	}{
		{"pydicom-CT_small.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
			StudyInstanceUID: "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322", SeriesInstanceUID: "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
			Modality: "CT", TransferSyntaxUID: "1.2.840.10008.1.2.1", PatientName: "CompressedSamples^CT1", PatientID: "1CT1"}},
		{"pydicom-MR_small_implicit.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.4", SOPInstanceUID: "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
			StudyInstanceUID: "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457", SeriesInstanceUID: "1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457",
			Modality: "MR", TransferSyntaxUID: "1.2.840.10008.1.2", PatientName: "CompressedSamples^MR1", PatientID: "4MR1"}},
		{"pydicom-MR_small_bigendian.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.4", SOPInstanceUID: "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
			StudyInstanceUID: "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457", SeriesInstanceUID: "1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457",
			Modality: "MR", TransferSyntaxUID: "1.2.840.10008.1.2.2", PatientName: "CompressedSamples^MR1", PatientID: "4MR1"}},
		{"pydicom-JPEG2000.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457",
			StudyInstanceUID: "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457", SeriesInstanceUID: "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457",
			Modality: "NM", TransferSyntaxUID: "1.2.840.10008.1.2.4.91", PatientName: "CompressedSamples^NM1", PatientID: "8NM1"}},
		{"pydicom-rtplan.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.481.5", SOPInstanceUID: "1.2.777.777.77.7.7777.7777.20030903150023",
			StudyInstanceUID: "1.22.333.4.555555.6.7777777777777777777777777777", SeriesInstanceUID: "1.2.333.444.55.6.7777.8888",
			Modality: "RTPLAN", TransferSyntaxUID: "1.2.840.10008.1.2", PatientName: "Last^First^mid^pre", PatientID: "id00001"}},
		{"suyashkumar-1-pet.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.128", SOPInstanceUID: "1.3.6.1.4.1.14519.5.2.1.7009.2401.264581068966524608390523682945",
			StudyInstanceUID: "1.3.6.1.4.1.14519.5.2.1.7009.2401.541147157881199293470020980360", SeriesInstanceUID: "1.3.6.1.4.1.14519.5.2.1.7009.2401.156320467167446933671661793694",
			Modality: "PT", TransferSyntaxUID: "1.2.840.10008.1.2.1", PatientName: "ACRIN-FLT-Breast_029", PatientID: "ACRIN-FLT-Breast_029"}},
		{"suyashkumar-6-deflated.dcm", dicomfile.Instance{
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.3.6.1.4.1.5962.1.1.0.0.0.977067309.6001.0",
			StudyInstanceUID: "1.3.6.1.4.1.5962.1.2.0.977067310.6001.0", SeriesInstanceUID: "1.3.6.1.4.1.5962.1.3.0.0.977067310.6001.0",
			Modality: "OT", TransferSyntaxUID: "1.2.840.10008.1.2.1.99", PatientName: "^^^^"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseFile(t, tt.file)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if *got != tt.want {
				t.Errorf("Parse =\n %+v\nwant\n %+v", *got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	ct, err := os.ReadFile(filepath.Join("..", "testdata", "dicom", "pydicom-CT_small.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	noSOP := bytes.Clone(ct)
	// Rename (0008,0018) to (0008,0019), a tag of the same length: still
	// well-formed, but without a SOP Instance UID.
	i := bytes.Index(noSOP, []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I'})
	if i < 0 {
		t.Fatal("fixture has no explicit-VR SOP Instance UID element")
	}
	noSOP[i+2] = 0x19

	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, dicomfile.ErrNotDICOM},
		{"short", []byte("DICM"), dicomfile.ErrNotDICOM},
		{"no magic word", bytes.Repeat([]byte{0}, 200), dicomfile.ErrNotDICOM},
		{"gzip", append([]byte{0x1f, 0x8b, 0x08, 0}, bytes.Repeat([]byte{1}, 300)...), dicomfile.ErrNotDICOM},
		{"magic word then garbage", append(append(make([]byte, 128), "DICM"...), bytes.Repeat([]byte{0xff}, 64)...), dicomfile.ErrMalformed},
		{"truncated inside an element header", ct[:700], dicomfile.ErrMalformed},
		{"truncated inside a value", ct[:1500], dicomfile.ErrMalformed},
		{"truncated inside Pixel Data", ct[:len(ct)-1], dicomfile.ErrMalformed},
		{"missing SOP Instance UID", noSOP, dicomfile.ErrMissingAttribute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dicomfile.Parse(bytes.NewReader(tt.input), int64(len(tt.input)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseRealBrokenFiles(t *testing.T) {
	for file, want := range map[string]struct {
		err    error
		detail string
	}{
		"pydicom-no_meta.dcm":      {dicomfile.ErrNotDICOM, "DICM"},         // no preamble, no File Meta
		"pydicom-MR_truncated.dcm": {dicomfile.ErrMalformed, "(7FE0,0010)"}, // Pixel Data cut short
		// Found by fuzzing: rtplan.dcm with an element inside a
		// defined-length sequence declaring 2.3 GB, which the parser
		// library would allocate before noticing.
		"regress-hidden-length-in-sequence.dcm": {dicomfile.ErrMalformed, "past the end of its item"},
	} {
		_, err := parseFile(t, file)
		if !errors.Is(err, want.err) || !strings.Contains(err.Error(), want.detail) {
			t.Errorf("%s: error = %v, want %v mentioning %q", file, err, want.err, want.detail)
		}
	}
}

// A data set nested deeper than any real one is refused, not recursed into.
func TestDeepNestingIsRefused(t *testing.T) {
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	meta := []byte{0x02, 0x00, 0x10, 0x00, 'U', 'I', 20, 0}
	meta = append(meta, "1.2.840.10008.1.2.1\x00"...)
	b.Write(meta)
	for range 100 { // (0008,1115) SQ, undefined length, then an item of undefined length
		b.Write([]byte{0x08, 0x00, 0x15, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
	}
	data := b.Bytes()
	_, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, dicomfile.ErrMalformed) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("Parse = %v, want a refusal of the nesting", err)
	}
}
