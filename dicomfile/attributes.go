package dicomfile

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding/charmap"
)

// Attribute classes. The allow-lists below are dicomseal's contract for
// what a verdict compares; they follow what must not change as images move
// (PS3.15 C.2's creator-signature profile is the model) and are documented
// in the README.
type class int

const (
	// classMetadata: clinically significant, must stay the same within one
	// instance; a change is reported (verify) or refused (ingest).
	classMetadata class = iota
	// classGeometry: how pixels map to the patient; a change is tampering.
	classGeometry
	// classIdentity: patient and order identifiers; may change only as a
	// documented reconciliation (Original Attributes Sequence).
	classIdentity
	// classPixel: describes the Pixel Data; part of the pixel digest.
	classPixel
)

type attribute struct {
	tag     tagID
	keyword string
	class   class
	// since is the digest version that added the attribute (0: the first).
	since int
	// nested: a sequence, committed as its items' values (see nestedValue).
	nested bool
}

var attributes = []attribute{
	{0x00080008, "ImageType", classMetadata, 0, false},
	{0x00080016, "SOPClassUID", classMetadata, 0, false},
	{0x00080018, "SOPInstanceUID", classMetadata, 0, false},
	{0x00080020, "StudyDate", classMetadata, 0, false},
	{0x00080021, "SeriesDate", classMetadata, 0, false},
	{0x00080022, "AcquisitionDate", classMetadata, 0, false},
	{0x00080023, "ContentDate", classMetadata, 0, false},
	{0x00080030, "StudyTime", classMetadata, 0, false},
	{0x00080031, "SeriesTime", classMetadata, 0, false},
	{0x00080032, "AcquisitionTime", classMetadata, 0, false},
	{0x00080033, "ContentTime", classMetadata, 0, false},
	{0x00080050, "AccessionNumber", classIdentity, 0, false},
	{0x00080060, "Modality", classMetadata, 0, false},
	{0x00100010, "PatientName", classIdentity, 0, false},
	{0x00100020, "PatientID", classIdentity, 0, false},
	{0x00100021, "IssuerOfPatientID", classIdentity, 0, false},
	{0x00100024, "IssuerOfPatientIDQualifiersSequence", classIdentity, 2, true},
	{0x00100030, "PatientBirthDate", classIdentity, 0, false},
	{0x00100040, "PatientSex", classIdentity, 0, false},
	{0x00101000, "OtherPatientIDs", classIdentity, 0, false},
	{0x00101001, "OtherPatientNames", classIdentity, 2, false},
	{0x00101002, "OtherPatientIDsSequence", classIdentity, 2, true},
	{0x00180015, "BodyPartExamined", classMetadata, 0, false},
	{0x00180050, "SliceThickness", classGeometry, 0, false},
	{0x00180088, "SpacingBetweenSlices", classGeometry, 0, false},
	{0x00181164, "ImagerPixelSpacing", classGeometry, 0, false},
	{0x00185100, "PatientPosition", classMetadata, 0, false},
	{0x00185101, "ViewPosition", classMetadata, 0, false},
	{0x0020000D, "StudyInstanceUID", classMetadata, 0, false},
	{0x0020000E, "SeriesInstanceUID", classMetadata, 0, false},
	{0x00200010, "StudyID", classIdentity, 0, false},
	{0x00200011, "SeriesNumber", classMetadata, 0, false},
	{0x00200013, "InstanceNumber", classMetadata, 0, false},
	{0x00200032, "ImagePositionPatient", classGeometry, 0, false},
	{0x00200037, "ImageOrientationPatient", classGeometry, 0, false},
	{0x00200052, "FrameOfReferenceUID", classMetadata, 0, false},
	{0x00200060, "Laterality", classMetadata, 0, false},
	{0x00200062, "ImageLaterality", classMetadata, 0, false},
	{0x00201041, "SliceLocation", classGeometry, 0, false},
	{0x00280002, "SamplesPerPixel", classPixel, 0, false},
	{0x00280004, "PhotometricInterpretation", classPixel, 0, false},
	{0x00280006, "PlanarConfiguration", classPixel, 0, false},
	{0x00280008, "NumberOfFrames", classPixel, 0, false},
	{0x00280010, "Rows", classPixel, 0, false},
	{0x00280011, "Columns", classPixel, 0, false},
	{0x00280030, "PixelSpacing", classGeometry, 0, false},
	{0x00280100, "BitsAllocated", classPixel, 0, false},
	{0x00280101, "BitsStored", classPixel, 0, false},
	{0x00280102, "HighBit", classPixel, 0, false},
	{0x00280103, "PixelRepresentation", classPixel, 0, false},
	{0x00281052, "RescaleIntercept", classGeometry, 0, false},
	{0x00281053, "RescaleSlope", classGeometry, 0, false},
}

const (
	tagSpecificCharacterSet  tagID = 0x00080005
	tagOriginalAttributesSeq tagID = 0x04000561
	tagSOPInstanceUID        tagID = 0x00080018
	tagNumberOfFrames        tagID = 0x00280008
	tagModifiedAttributesSeq tagID = 0x04000550
	maxCollectedValue              = 64 << 10
	// maxIdentityValue bounds one value inside an identity sequence or an
	// Original Attributes Sequence (no identifier is longer), and
	// maxNestedIdentity all of an identity sequence's values.
	maxIdentityValue  = 1 << 10
	maxNestedIdentity = 64 << 10
)

// DigestVersion is the version of the digests new attestations carry.
// Version 1 compared top-level identity attributes only; version 2 also
// commits OtherPatientNames and the identity sequences (OtherPatientIDs
// Sequence, Issuer of Patient ID Qualifiers Sequence) and, for a Specific
// Character Set it does not decode, the set itself, so a change of either
// cannot pass unseen. An attestation is always judged in its own version.
const DigestVersion = 2

var byTag = func() map[tagID]attribute {
	m := make(map[tagID]attribute, len(attributes))
	for _, a := range attributes {
		m[a.tag] = a
	}
	return m
}()

// correctable are the attributes an identity correction may change: the
// patient and order identifiers, and the study and series the instance is
// filed under. An Original Attributes Sequence's previous values of these
// are kept, to be checked against the attested ones.
var correctable = func() map[tagID]bool {
	m := map[tagID]bool{0x0020000D: true, 0x0020000E: true}
	for _, a := range attributes {
		if a.class == classIdentity {
			m[a.tag] = true
		}
	}
	return m
}()

// CorrectableAttributes lists the keywords of correctable, sorted.
func CorrectableAttributes() []string {
	var out []string
	for t := range correctable {
		out = append(out, byTag[t].keyword)
	}
	slices.Sort(out)
	return out
}

// collected tells whether the walker keeps a top-level element's value.
func collected(t tagID) bool {
	a, ok := byTag[t]
	return (ok && !a.nested) || t == tagSpecificCharacterSet
}

// nestedIdentity tells whether a top-level element is an identity sequence.
func nestedIdentity(t tagID) bool {
	a, ok := byTag[t]
	return ok && a.nested
}

// nestedValue is one value inside an identity sequence: its item, its tag.
type nestedValue struct {
	item int
	tag  tagID
	raw  rawValue
}

// decodedCharsets are the Specific Character Sets decodeCharset turns into
// text; text in any other is compared as bytes, with the set named.
var decodedCharsets = map[string]bool{"": true, "ISO_IR 6": true, "ISO 2022 IR 6": true, "ISO_IR 100": true,
	"ISO 2022 IR 100": true, "ISO_IR 101": true, "ISO_IR 144": true, "ISO_IR 148": true, "ISO_IR 192": true}

func charsetDecoded(charset string) bool {
	return !strings.Contains(charset, `\`) && decodedCharsets[strings.TrimSpace(charset)]
}

// rawValue is an element's value as found in the file.
type rawValue struct {
	vr    string
	bytes []byte
}

// dictionaryVR is the VR the data dictionary gives a tag ("UN" when unknown).
func dictionaryVR(t tagID) string {
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	if err != nil || len(info.VRs) == 0 {
		return "UN"
	}
	return info.VRs[0]
}

var textVRs = map[string]bool{"AE": true, "AS": true, "CS": true, "DA": true, "DS": true, "DT": true, "IS": true,
	"LO": true, "LT": true, "PN": true, "SH": true, "ST": true, "TM": true, "UC": true, "UI": true, "UR": true, "UT": true}

// charsetVRs are decoded with the Specific Character Set; the others are ASCII.
var charsetVRs = map[string]bool{"LO": true, "LT": true, "PN": true, "SH": true, "ST": true, "UC": true, "UT": true}

// decode turns a raw value into its decoded values, canonical: text
// trimmed of padding and split on '\', decimal and integer strings as
// numbers, binary numbers in decimal. A character-set or VR re-encoding of
// the same values decodes the same. bo is the data set's byte order.
func decode(v rawValue, t tagID, bo binary.ByteOrder, charset string) []string {
	vr := v.vr
	if vr == "UN" || vr == "" {
		// UN holds the value as implicit VR little endian would.
		vr, bo = dictionaryVR(t), binary.LittleEndian
	}
	b := v.bytes
	switch {
	case textVRs[vr]:
		s := string(b)
		if charsetVRs[vr] {
			s = decodeCharset(b, charset)
		}
		var parts []string
		if vr == "LT" || vr == "ST" || vr == "UT" || vr == "UR" {
			parts = []string{s}
		} else {
			parts = strings.Split(s, `\`)
		}
		out := make([]string, 0, len(parts))
		for _, p := range parts {
			p = strings.Trim(p, " \x00")
			if vr == "DS" || vr == "IS" {
				if f, err := strconv.ParseFloat(p, 64); err == nil {
					p = strconv.FormatFloat(f, 'g', -1, 64)
				}
			}
			out = append(out, p)
		}
		for len(out) > 0 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		return out
	case vr == "US" || vr == "SS":
		var out []string
		for i := 0; i+2 <= len(b); i += 2 {
			u := bo.Uint16(b[i:])
			if vr == "SS" {
				out = append(out, strconv.Itoa(int(int16(u))))
			} else {
				out = append(out, strconv.Itoa(int(u)))
			}
		}
		return out
	case vr == "UL" || vr == "SL":
		var out []string
		for i := 0; i+4 <= len(b); i += 4 {
			u := bo.Uint32(b[i:])
			if vr == "SL" {
				out = append(out, strconv.Itoa(int(int32(u))))
			} else {
				out = append(out, strconv.FormatUint(uint64(u), 10))
			}
		}
		return out
	case vr == "FL" || vr == "FD":
		var out []string
		for i, n := 0, map[string]int{"FL": 4, "FD": 8}[vr]; i+n <= len(b); i += n {
			f := 0.0
			if n == 4 {
				f = float64(math.Float32frombits(bo.Uint32(b[i:])))
			} else {
				f = math.Float64frombits(bo.Uint64(b[i:]))
			}
			out = append(out, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return out
	}
	return []string{hex.EncodeToString(b)}
}

// decodeCharset decodes text per Specific Character Set. The common
// single-byte sets and UTF-8 are decoded; anything else is kept as bytes
// (both sides of a comparison then decode the same way).
func decodeCharset(b []byte, charset string) string {
	sets := strings.Split(charset, `\`)
	switch strings.TrimSpace(sets[0]) {
	case "ISO_IR 100", "ISO 2022 IR 100":
		if s, err := charmap.ISO8859_1.NewDecoder().Bytes(b); err == nil {
			return string(s)
		}
	case "ISO_IR 101":
		if s, err := charmap.ISO8859_2.NewDecoder().Bytes(b); err == nil {
			return string(s)
		}
	case "ISO_IR 144":
		if s, err := charmap.ISO8859_5.NewDecoder().Bytes(b); err == nil {
			return string(s)
		}
	case "ISO_IR 148":
		if s, err := charmap.ISO8859_9.NewDecoder().Bytes(b); err == nil {
			return string(s)
		}
	}
	return string(b)
}

// canonical is one attribute's decoded values in the form dicomseal hashes:
// the values joined by '\'.
func canonical(values []string) string { return strings.Join(values, `\`) }

// sortedAttributes lists the allow-list in tag order.
var sortedAttributes = func() []attribute {
	a := slices.Clone(attributes)
	slices.SortFunc(a, func(x, y attribute) int { return int(int64(x.tag) - int64(y.tag)) })
	return a
}()
