// Package dicomfile reads DICOM Part 10 files: it checks that a byte stream
// is one, extracts the identifiers dicomseal attests, and (in later work)
// computes the DICOM-aware digests. It never writes and never trusts a
// declared length without checking it against the bytes present.
package dicomfile

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Sentinel errors; every error Parse returns wraps exactly one of them.
var (
	// ErrNotDICOM: the input is not a DICOM Part 10 file (no DICM magic word).
	ErrNotDICOM = errors.New("not a DICOM Part 10 file")
	// ErrMalformed: the input claims to be DICOM but cannot be parsed.
	ErrMalformed = errors.New("malformed DICOM")
	// ErrMissingAttribute: a required attribute is absent or empty.
	ErrMissingAttribute = errors.New("required DICOM attribute missing")
)

// preambleLen is the length of the Part 10 preamble before the magic word.
const preambleLen = 128

// Instance holds what dicomseal extracts from a Part 10 file.
type Instance struct {
	SOPClassUID       string
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string
	Modality          string
	TransferSyntaxUID string
	// Patient identifiers: never logged or attested in clear, only as salted
	// commitments (see attest).
	PatientName      string
	PatientID        string
	PatientBirthDate string
}

// Parse reads the Part 10 file of the given size from r: the structure
// walk, then the header through the parser library.
func Parse(r io.ReaderAt, size int64) (*Instance, error) {
	if err := checkMagic(r, size); err != nil {
		return nil, err
	}
	if _, err := walk(r, size, false); err != nil {
		return nil, err
	}
	return parseHeader(r, size)
}

// parseHeader extracts the identifiers with the parser library, skipping
// Pixel Data (which the walker streams).
func parseHeader(r io.ReaderAt, size int64) (inst *Instance, err error) {
	// The parser panics on some malformed inputs (e.g. type assertions in
	// its header handling); a hostile upload must get a 400, not a crash.
	defer func() {
		if p := recover(); p != nil {
			inst, err = nil, fmt.Errorf("%w: parser failed: %v", ErrMalformed, p)
		}
	}()
	ds, err := dicom.Parse(io.NewSectionReader(r, 0, size), size, nil,
		dicom.SkipPixelData(), dicom.AllowMissingMetaElementGroupLength())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	inst = &Instance{
		SOPClassUID:       stringValue(&ds, tag.SOPClassUID),
		SOPInstanceUID:    stringValue(&ds, tag.SOPInstanceUID),
		StudyInstanceUID:  stringValue(&ds, tag.StudyInstanceUID),
		SeriesInstanceUID: stringValue(&ds, tag.SeriesInstanceUID),
		Modality:          stringValue(&ds, tag.Modality),
		TransferSyntaxUID: stringValue(&ds, tag.TransferSyntaxUID),
		PatientName:       stringValue(&ds, tag.PatientName),
		PatientID:         stringValue(&ds, tag.PatientID),
		PatientBirthDate:  stringValue(&ds, tag.PatientBirthDate),
	}
	if inst.SOPInstanceUID == "" {
		return nil, fmt.Errorf("%w: SOP Instance UID (0008,0018)", ErrMissingAttribute)
	}
	return inst, nil
}

func checkMagic(r io.ReaderAt, size int64) error {
	if size < preambleLen+4 {
		return fmt.Errorf("%w: %d bytes is shorter than the 128-byte preamble and DICM magic word", ErrNotDICOM, size)
	}
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], preambleLen); err != nil {
		return fmt.Errorf("%w: reading offset 128: %v", ErrNotDICOM, err)
	}
	if string(magic[:]) != "DICM" {
		return fmt.Errorf("%w: expected \"DICM\" at offset 128, found %q", ErrNotDICOM, magic[:])
	}
	return nil
}

// stringValue returns the first value of a string element, trimmed of the
// padding DICOM allows, or "" when absent or not a string.
func stringValue(ds *dicom.Dataset, t tag.Tag) string {
	e, err := ds.FindElementByTag(t)
	if err != nil || e.Value == nil || e.Value.ValueType() != dicom.Strings {
		return ""
	}
	vs, ok := e.Value.GetValue().([]string)
	if !ok || len(vs) == 0 {
		return ""
	}
	return strings.TrimRight(vs[0], " \x00")
}
