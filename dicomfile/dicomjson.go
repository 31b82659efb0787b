package dicomfile

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The DICOM JSON model (PS3.18 Annex F.2) of a stored file's data set, for
// DICOMweb. It is built by a visiting walk, so that the metadata a viewer
// is shown passes the same structural checks as the file did at ingest;
// nothing here decides what is attested.

// Attribute is one attribute in the DICOM JSON model.
type Attribute struct {
	VR           string `json:"vr"`
	Value        []any  `json:"Value,omitempty"`
	InlineBinary string `json:"InlineBinary,omitempty"`
	BulkDataURI  string `json:"BulkDataURI,omitempty"`
}

// Dataset maps "GGGGEEEE" (8 upper-case hex digits) to its attribute; an
// SQ's Value items are Dataset values.
//
// Values are typed as encoding/json writes them: strings (null for an
// empty value), PersonName for PN, int64 for IS, US, SS, UL and SL,
// float64 for DS, FL and FD, int64 or uint64 for SV and UV (a decimal
// string beyond ±2^53, which PS3.18 allows), "GGGGEEEE" strings for AT.
// A DS or IS that is not a number stays a string, and a floating point
// NaN or infinity becomes the string "NaN", "Infinity" or "-Infinity", so
// that any Dataset marshals.
type Dataset map[string]*Attribute

// PersonName is a PN value: its component groups (PS3.18 F.2.2), empty
// ones left out.
type PersonName struct {
	Alphabetic  string `json:"Alphabetic,omitempty"`
	Ideographic string `json:"Ideographic,omitempty"`
	Phonetic    string `json:"Phonetic,omitempty"`
}

// JSONOptions say how Metadata renders binary values.
type JSONOptions struct {
	// BulkDataURI names the URI of a top-level bulk value (Pixel Data, and
	// any OB/OD/OF/OL/OV/OW/UN value longer than InlineMax). Nil: such
	// values are left out (the attribute keeps its vr and no value).
	BulkDataURI func(tag uint32) string
	// InlineMax is the longest binary value given as InlineBinary (base64)
	// instead of a bulk URI; nested binary values are always inline.
	InlineMax int
}

// maxMetadataBytes bounds the values Metadata holds (bulk data excluded):
// a real data set's metadata is kilobytes, a waveform or an icon a few
// megabytes; a stored file may still have been built to exhaust memory.
const maxMetadataBytes = 64 << 20

// Metadata is the DICOM JSON model of the file's data set, the File Meta
// group (0002) and group lengths (gggg,0000) left out. The walk is bounded
// by l like Analyze's, and the values held by maxMetadataBytes (beyond it:
// ErrLimitExceeded). Private elements are included.
//
// Text is decoded by the Specific Character Set (as decodeCharset does);
// where that gives UTF-8, the top-level (0008,0005) says "ISO_IR 192", as
// dcmtk's dcm2json says. Binary values (OB, OD, OF, OL, OV, OW, UN) are
// little endian, as PS3.18 has them: a big endian file's words are swapped
// by the VR's unit. An implicit VR file's elements take the data
// dictionary's VR (repeating groups 50xx and 60xx included), the choices
// it leaves made as dcmtk makes them: US or SS by Pixel Representation, OB
// or OW as OW; a private element it cannot know is UN, a private creator
// LO. An undefined length UN is the sequence it holds (SQ).
func (l Limits) Metadata(r io.ReaderAt, size int64, opt JSONOptions) (Dataset, error) {
	b := &jsonBuilder{opt: opt, frames: []jsonFrame{{ds: Dataset{}}}}
	if _, err := visitWalk(r, size, l, b); err != nil {
		return nil, err
	}
	return b.frames[0].ds, nil
}

// jsonFrame is a data set being built: the top level or an item.
type jsonFrame struct {
	ds Dataset
	// charset is the Specific Character Set in force: an item's own
	// (0008,0005) overrides its parent's (PS3.5 7.5.1).
	charset string
}

type jsonBuilder struct {
	opt    JSONOptions
	frames []jsonFrame
	// seqs are the sequences being walked, innermost last.
	seqs []*Attribute
	// skipping counts the values being walked only to be skipped, whose
	// nested elements and items are not part of the model.
	skipping int
	held     int64
	// signed is the top-level Pixel Representation: 1 when pixel values
	// (and so implicit VR "US or SS" attributes) are signed.
	signed bool
}

func (b *jsonBuilder) item(start bool) {
	if b.skipping > 0 || len(b.seqs) == 0 {
		return
	}
	if !start {
		if len(b.frames) > 1 {
			b.frames = b.frames[:len(b.frames)-1]
		}
		return
	}
	ds := Dataset{}
	seq := b.seqs[len(b.seqs)-1]
	seq.Value = append(seq.Value, ds)
	b.frames = append(b.frames, jsonFrame{ds: ds, charset: b.frames[len(b.frames)-1].charset})
}

// skip walks a value that is not part of the model.
func (b *jsonBuilder) skip(w *walker, h header, explicit bool, limit int64, depth int) error {
	b.skipping++
	err := w.walkValue(h, explicit, limit, depth)
	b.skipping--
	return err
}

func (b *jsonBuilder) element(w *walker, h header, explicit bool, limit int64, depth int) error {
	if b.skipping > 0 || uint16(h.tag>>16) == 0x0002 || uint16(h.tag) == 0x0000 {
		return b.skip(w, h, explicit, limit, depth)
	}
	frame := &b.frames[len(b.frames)-1]
	attr := &Attribute{VR: h.vr}
	if !explicit {
		attr.VR = b.implicitVR(h.tag)
	} else if !knownVRs[attr.VR] {
		attr.VR = "UN"
	}
	frame.ds[jsonKey(h.tag)] = attr
	encapsulated := h.tag == tagPixelData && explicit && h.length == undefinedLength && (h.vr == "OB" || h.vr == "OW")
	switch {
	case encapsulated:
		if depth == 0 && b.opt.BulkDataURI != nil {
			attr.BulkDataURI = b.opt.BulkDataURI(uint32(h.tag))
		}
		// Nested encapsulated data (an icon) has no inline form: left out.
		return b.skip(w, h, explicit, limit, depth)
	case w.isSequence(h, explicit) || h.length == undefinedLength:
		// An undefined length UN, or any undefined length element in
		// implicit VR, is a sequence (the walker walks it as one).
		attr.VR = "SQ"
		b.seqs = append(b.seqs, attr)
		err := w.walkValue(h, explicit, limit, depth)
		b.seqs = b.seqs[:len(b.seqs)-1]
		return err
	case depth == 0 && (h.tag == tagPixelData || (binaryVRs[attr.VR] && int64(h.length) > int64(b.opt.InlineMax))):
		if b.opt.BulkDataURI != nil {
			attr.BulkDataURI = b.opt.BulkDataURI(uint32(h.tag))
		}
		return b.skip(w, h, explicit, limit, depth)
	}
	if b.held += int64(h.length); b.held > maxMetadataBytes {
		return fmt.Errorf("%w: the data set's values outside bulk data exceed %d MiB, at element %s (offset %d)",
			ErrLimitExceeded, maxMetadataBytes>>20, h.tag, h.at)
	}
	v, err := w.readGrow(h, explicit, limit)
	if err != nil {
		return err
	}
	if binaryVRs[attr.VR] {
		if len(v) > 0 {
			if w.bo == binary.BigEndian {
				swapUnits(v, byteSwapUnit[attr.VR])
			}
			attr.InlineBinary = base64.StdEncoding.EncodeToString(v)
		}
		return nil
	}
	// Each value becomes a Go value (an interface, a string header, an
	// int64): charged before it is made, so that a text of nothing but
	// backslashes cannot make millions of them out of a few megabytes.
	if b.held += valueCount(attr.VR, v) * valueOverhead; b.held > maxMetadataBytes {
		return fmt.Errorf("%w: the data set's values outside bulk data exceed %d MiB, at element %s (offset %d)",
			ErrLimitExceeded, maxMetadataBytes>>20, h.tag, h.at)
	}
	attr.Value = jsonValues(attr.VR, v, w.bo, frame.charset)
	switch h.tag {
	case tagSpecificCharacterSet:
		frame.charset = string(v)
		if depth == 0 && charsetDecoded(frame.charset) {
			// The text is UTF-8 now, as JSON is: say so, as dcmtk does
			// (an item's own set it leaves as written), so that whoever
			// encodes the model back does not misread it.
			attr.Value = []any{"ISO_IR 192"}
		}
	case tagPixelRepresentation:
		if depth == 0 && len(v) == 2 {
			b.signed = w.bo.Uint16(v) == 1
		}
	}
	return nil
}

const tagPixelRepresentation tagID = 0x00280103

// readGrow reads a value of defined length. In a deflated stream, whose
// length is unknown, the buffer grows with the bytes actually inflated
// rather than being allocated at the declared length.
func (w *walker) readGrow(h header, explicit bool, limit int64) ([]byte, error) {
	if w.end >= 0 || h.length <= 1<<20 {
		v, err := w.readRaw(h, explicit, limit)
		return v.bytes, err
	}
	if err := w.checkFits(h, int64(h.length), limit); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, w.r, int64(h.length))
	w.pos += n
	if err != nil {
		return nil, w.truncated(h, err)
	}
	return buf.Bytes(), nil
}

// jsonKey is a tag as the model's key: 8 upper-case hex digits.
func jsonKey(t tagID) string {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	for i := range b {
		b[i] = digits[(t>>(28-4*i))&0xF]
	}
	return string(b[:])
}

// knownVRs are the VRs PS3.5 defines; any other in a file stands as UN.
var knownVRs = map[string]bool{"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true, "DT": true,
	"FD": true, "FL": true, "IS": true, "LO": true, "LT": true, "OB": true, "OD": true, "OF": true, "OL": true,
	"OV": true, "OW": true, "PN": true, "SH": true, "SL": true, "SQ": true, "SS": true, "ST": true, "SV": true,
	"TM": true, "UC": true, "UI": true, "UL": true, "UN": true, "UR": true, "US": true, "UT": true, "UV": true}

// binaryVRs are rendered as InlineBinary or a bulk data URI.
var binaryVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true, "UN": true}

// byteSwapUnit is the unit a big endian value is swapped by to be little
// endian; bytes (OB, UN) and text are not swapped.
var byteSwapUnit = map[string]int{"OW": 2, "US": 2, "SS": 2, "AT": 2, "OF": 4, "OL": 4, "UL": 4, "SL": 4,
	"FL": 4, "OD": 8, "OV": 8, "FD": 8, "SV": 8, "UV": 8}

func swapUnits(b []byte, unit int) {
	if unit < 2 {
		return
	}
	for i := 0; i+unit <= len(b); i += unit {
		slices.Reverse(b[i : i+unit])
	}
}

// implicitVR is the VR of an implicit VR element: the data dictionary's,
// with the choices it leaves open made the way dcmtk makes them.
func (b *jsonBuilder) implicitVR(t tagID) string {
	g, e := uint16(t>>16), uint16(t)
	if g%2 == 1 {
		if e >= 0x0010 && e <= 0x00FF {
			return "LO" // a private creator (PS3.5 7.8.1)
		}
		return "UN"
	}
	if g&0xFF00 == 0x5000 || g&0xFF00 == 0x6000 {
		g &= 0xFF00 // repeating groups: curves and overlays
	}
	info, err := tag.Find(tag.Tag{Group: g, Element: e})
	if err != nil || len(info.VRs) == 0 {
		return "UN"
	}
	switch vrs := info.VRs; {
	case len(vrs) == 1:
		if !knownVRs[vrs[0]] {
			return "UN"
		}
		return vrs[0]
	case slices.Contains(vrs, "OW"):
		// OB or OW, US or OW: implicit VR data is words (PS3.5 A.1).
		return "OW"
	case slices.Contains(vrs, "SS") && b.signed:
		return "SS"
	default:
		return vrs[0]
	}
}

// jsonValues decodes a non-binary value; nil when the value is empty.
// valueOverhead is what one value of the model costs beyond its bytes,
// roughly: an interface, a string or number, a slot of a slice.
const valueOverhead = 48

// valueCount is how many values jsonValues makes of b.
func valueCount(vr string, b []byte) int64 {
	if size := byteSwapUnit[vr]; size > 0 && !textVRs[vr] {
		return int64(len(b) / size)
	}
	if vr == "LT" || vr == "ST" || vr == "UT" || vr == "UR" {
		return 1
	}
	return int64(bytes.Count(b, []byte{'\\'})) + 1
}

func jsonValues(vr string, b []byte, bo binary.ByteOrder, charset string) []any {
	if textVRs[vr] {
		return textValues(vr, b, charset)
	}
	var out []any
	size := map[string]int{"US": 2, "SS": 2, "AT": 4, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8}[vr]
	if size == 0 {
		// A VR with no JSON form of its own (none reaches here from a
		// file): its bytes, as text.
		return textValues("UT", b, charset)
	}
	for i := 0; i+size <= len(b); i += size {
		v := b[i : i+size]
		switch vr {
		case "US":
			out = append(out, int64(bo.Uint16(v)))
		case "SS":
			out = append(out, int64(int16(bo.Uint16(v))))
		case "UL":
			out = append(out, int64(bo.Uint32(v)))
		case "SL":
			out = append(out, int64(int32(bo.Uint32(v))))
		case "AT":
			out = append(out, fmt.Sprintf("%04X%04X", bo.Uint16(v), bo.Uint16(v[2:])))
		case "FL":
			// The float32's shortest decimal form: 0.3, not 0.30000001192092896.
			f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(math.Float32frombits(bo.Uint32(v))), 'g', -1, 32), 64)
			out = append(out, jsonFloat(f))
		case "FD":
			out = append(out, jsonFloat(math.Float64frombits(bo.Uint64(v))))
		case "SV":
			n := int64(bo.Uint64(v))
			if n > 1<<53 || n < -(1<<53) {
				out = append(out, strconv.FormatInt(n, 10))
			} else {
				out = append(out, n)
			}
		case "UV":
			n := bo.Uint64(v)
			if n > 1<<53 {
				out = append(out, strconv.FormatUint(n, 10))
			} else {
				out = append(out, n)
			}
		}
	}
	return out
}

// jsonFloat keeps a float JSON can hold, and names the others.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// leadingSpaceVRs are the text VRs whose leading spaces are padding too
// (PS3.5 Table 6.2-1); the others keep them.
var leadingSpaceVRs = map[string]bool{"AE": true, "AS": true, "CS": true, "DA": true, "DS": true, "DT": true,
	"IS": true, "LO": true, "SH": true, "TM": true, "UI": true}

// textValues splits and trims a text value: values of LT, ST, UT and UR
// are single, the others split on '\'. Trailing spaces are padding (and
// NULs, which some writers pad with, UI's padding among them).
func textValues(vr string, b []byte, charset string) []any {
	s := string(b)
	if charsetVRs[vr] {
		s = decodeCharset(b, charset)
	}
	parts := []string{s}
	if vr != "LT" && vr != "ST" && vr != "UT" && vr != "UR" {
		parts = strings.Split(s, `\`)
	}
	out := make([]any, 0, len(parts))
	empty := true
	for _, p := range parts {
		p = strings.TrimRight(p, " \x00")
		if leadingSpaceVRs[vr] {
			p = strings.TrimLeft(p, " ")
		}
		var pn any
		if vr == "PN" {
			pn = personName(p)
		}
		if p == "" || (vr == "PN" && pn == nil) {
			out = append(out, nil)
			continue
		}
		empty = false
		switch vr {
		case "PN":
			out = append(out, pn)
		case "IS":
			if n, err := strconv.ParseInt(p, 10, 64); err == nil {
				out = append(out, n)
			} else {
				out = append(out, p)
			}
		case "DS":
			if f, err := strconv.ParseFloat(p, 64); err == nil && decimalString(p) {
				out = append(out, f)
			} else {
				out = append(out, p)
			}
		default:
			out = append(out, p)
		}
	}
	if empty {
		return nil
	}
	return out
}

// personName splits a PN value into its component groups.
func personName(s string) any {
	groups := strings.SplitN(s, "=", 3)
	for i := range groups {
		// Trailing component delimiters mean nothing (PS3.5 6.2.1.1):
		// "^^^^" is an empty name.
		groups[i] = strings.TrimRight(groups[i], " ^")
	}
	groups = append(groups, "", "")
	pn := PersonName{Alphabetic: groups[0], Ideographic: groups[1], Phonetic: groups[2]}
	if pn == (PersonName{}) {
		return nil
	}
	return pn
}

// decimalString tells whether s is a DS number as PS3.5 writes one
// ([+-]digits[.digits][(e|E)[+-]digits], a side of the point may be
// empty), which strconv.ParseFloat alone would widen to "Inf", "0x1p3".
func decimalString(s string) bool {
	i, digits := 0, 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}
