// Package dicomfile reads DICOM Part 10 files: it checks that a byte stream
// is one, extracts the identifiers dicomseal attests and computes the
// DICOM-aware digests, in one streaming walk over the elements. For
// DICOMweb it also reads a stored file's DICOM JSON model, frames and bulk
// data, by the same walk. It never writes, never trusts a declared length
// without checking it against the bytes present, and builds no tree of the
// elements but the JSON model (bounded, its bulk data left in the file):
// what one file may cost is bounded by Limits. The parser library
// (suyashkumar/dicom) supplies the data dictionary; its element tree, which
// allocates every declared value, is kept off the path of hostile input.
package dicomfile

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors; every error Parse returns wraps exactly one of them.
var (
	// ErrNotDICOM: the input is not a DICOM Part 10 file (no DICM magic word).
	ErrNotDICOM = errors.New("not a DICOM Part 10 file")
	// ErrMalformed: the input claims to be DICOM but cannot be parsed.
	ErrMalformed = errors.New("malformed DICOM")
	// ErrMissingAttribute: a required attribute is absent or empty.
	ErrMissingAttribute = errors.New("required DICOM attribute missing")
	// ErrInvalidUID: an identifying UID is not a valid UI value.
	ErrInvalidUID = errors.New("invalid UID")
	// ErrLimitExceeded: reading the data set would cost more than Limits allow.
	ErrLimitExceeded = errors.New("DICOM limit exceeded")
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

// Parse reads the Part 10 file of the given size from r within
// DefaultLimits and returns its identifiers.
func Parse(r io.ReaderAt, size int64) (*Instance, error) {
	a, err := DefaultLimits.Analyze(r, size)
	if err != nil {
		return nil, err
	}
	return a.Instance, nil
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
