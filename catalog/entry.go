package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// attribute is one attribute of a DICOM JSON object (PS3.18 F.2.2).
type attribute struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// FromJSON builds an Entry's keys from a DICOM JSON object ("GGGGEEEE" →
// {"vr", "Value"}; PN values are {"Alphabetic": …}); Attributes is set to
// (a copy of) attrs, and LedgerIndex, FileSHA256 and IndexedAt are left to
// the caller. An instance without a Study, Series or SOP Instance UID has
// no place in a DICOMweb hierarchy: an error. Values are trimmed of their
// padding (spaces, NULs); a study date that is not YYYYMMDD (after
// dropping an ACR-NEMA "." or "-") is left out, and so is a series or
// instance number that is not an integer.
//
// Errors: ErrNotIndexable for an instance without the UIDs DICOMweb names
// it by (no study or series: attested, but nothing to search it under).
func FromJSON(attrs []byte) (Entry, error) {
	// Only the keys are decoded, not the data set: on every ingest, a
	// full decode cost more than walking the file.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(attrs, &obj); err != nil {
		return Entry{}, fmt.Errorf("catalog: the attributes are not a DICOM JSON object: %w", err)
	}
	if obj == nil {
		return Entry{}, fmt.Errorf("catalog: the attributes are null, not a DICOM JSON object")
	}
	upper := make(map[string]json.RawMessage, len(obj))
	for k, a := range obj {
		upper[strings.ToUpper(k)] = a
	}
	var bad error
	e, err := NewEntry(attrs, func(tag uint32) string {
		raw, ok := upper[tagKey(tag)]
		if !ok {
			return ""
		}
		var a attribute
		if err := json.Unmarshal(raw, &a); err != nil && bad == nil {
			bad = fmt.Errorf("catalog: attribute %s is not DICOM JSON: %w", tagKey(tag), err)
		}
		return firstText(a)
	})
	if bad != nil {
		return Entry{}, bad
	}
	return e, err
}

// NewEntry is FromJSON for a caller that has the data set decoded already
// (ingest does): text gives an attribute's first value as text — a PN's
// alphabetic form, a number as written, "" when absent — and attrs is
// kept as the entry's Attributes.
func NewEntry(attrs []byte, text func(tag uint32) string) (Entry, error) {
	// PostgreSQL's text refuses what is not UTF-8, and the JSON would be
	// handed back as stored: refused here, with the reason.
	if !utf8.Valid(attrs) {
		return Entry{}, fmt.Errorf("catalog: the attributes are not UTF-8")
	}
	trimmed := func(tag uint32) string {
		// NULs pad UIDs in files, and PostgreSQL's text cannot hold them;
		// nor bytes that are not UTF-8 (a Latin-1 name in a file that
		// declares no character set): one such row would fail its whole
		// batch of appends.
		return strings.ToValidUTF8(strings.Trim(strings.ReplaceAll(text(tag), "\x00", ""), " "), "\uFFFD")
	}
	e := Entry{
		StudyInstanceUID:  trimmed(tagStudyInstanceUID),
		SeriesInstanceUID: trimmed(tagSeriesInstanceUID),
		SOPInstanceUID:    trimmed(tagSOPInstanceUID),
		SOPClassUID:       trimmed(tagSOPClassUID),
		PatientName:       trimmed(tagPatientName),
		PatientID:         trimmed(tagPatientID),
		AccessionNumber:   trimmed(tagAccessionNumber),
		StudyDate:         studyDate(trimmed(tagStudyDate)),
		StudyTime:         strings.ReplaceAll(trimmed(tagStudyTime), ":", ""),
		StudyDescription:  trimmed(tagStudyDescription),
		Modality:          trimmed(tagModality),
		SeriesNumber:      integer(trimmed(tagSeriesNumber)),
		InstanceNumber:    integer(trimmed(tagInstanceNumber)),
		TransferSyntaxUID: trimmed(tagTransferSyntaxUID),
		Attributes:        bytes.Clone(attrs),
	}
	for _, required := range []struct {
		value string
		tag   uint32
		name  string
	}{
		{e.StudyInstanceUID, tagStudyInstanceUID, "Study Instance UID"},
		{e.SeriesInstanceUID, tagSeriesInstanceUID, "Series Instance UID"},
		{e.SOPInstanceUID, tagSOPInstanceUID, "SOP Instance UID"},
	} {
		if required.value == "" {
			return Entry{}, fmt.Errorf("%w: the attributes have no %s (%s)", ErrNotIndexable, required.name, tagKey(required.tag))
		}
	}
	return e, nil
}

// firstText is an attribute's first value as text: a string, a number as
// written, or a PN's alphabetic form.
func firstText(a attribute) string {
	if len(a.Value) == 0 {
		return ""
	}
	raw := bytes.TrimSpace(a.Value[0])
	var s string
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '"':
		json.Unmarshal(raw, &s)
	case raw[0] == '{':
		var pn struct{ Alphabetic string }
		json.Unmarshal(raw, &pn)
		s = pn.Alphabetic
	case raw[0] != '[':
		s = string(raw) // a number (IS, US…)
	}
	// NULs pad UIDs in files, and PostgreSQL's text cannot hold them.
	return strings.Trim(strings.ReplaceAll(s, "\x00", ""), " ")
}

func studyDate(s string) string {
	if len(s) == 10 && (s[4] == '.' || s[4] == '-') && s[7] == s[4] {
		s = s[:4] + s[5:7] + s[8:]
	}
	if !isDate(s) {
		return ""
	}
	return s
}

// integer reads an IS value (a 32-bit integer, PS3.5 6.2); nil if it is not one.
func integer(s string) *int {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil
	}
	i := int(n)
	return &i
}
