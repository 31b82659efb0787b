package dicomfile

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Analysis is a parsed instance with everything its digests need; Digests
// then keys the per-attribute digests with a record's salt.
type Analysis struct {
	Instance *Instance
	walk     *walkResult
}

// Analyze checks and parses a Part 10 file within DefaultLimits.
func Analyze(r io.ReaderAt, size int64) (*Analysis, error) { return DefaultLimits.Analyze(r, size) }

// Analyze checks and parses a Part 10 file in one streaming pass over its
// elements, hashing Pixel Data on the way. Memory is bounded whatever the
// file's size, and the work by l.
func (l Limits) Analyze(r io.ReaderAt, size int64) (*Analysis, error) {
	if err := checkMagic(r, size); err != nil {
		return nil, err
	}
	w, err := walk(r, size, true, l)
	if err != nil {
		return nil, err
	}
	inst, err := w.instance()
	if err != nil {
		return nil, err
	}
	return &Analysis{Instance: inst, walk: w}, nil
}

// instance builds the identifiers from the walker's values and checks the
// UIDs that name the instance.
func (w *walkResult) instance() (*Instance, error) {
	get := func(t tagID) string {
		v, ok := w.values[t]
		if !ok {
			return ""
		}
		vals := decode(v, t, w.byteOrder, w.charset())
		if len(vals) == 0 {
			return ""
		}
		return vals[0]
	}
	inst := &Instance{
		SOPClassUID: get(0x00080016), SOPInstanceUID: get(tagSOPInstanceUID),
		StudyInstanceUID: get(0x0020000D), SeriesInstanceUID: get(0x0020000E), Modality: get(0x00080060),
		TransferSyntaxUID: w.transferSyntax,
		PatientName:       get(0x00100010), PatientID: get(0x00100020), PatientBirthDate: get(0x00100030),
	}
	if err := w.checkUIDs(); err != nil {
		return nil, err
	}
	for t := range w.oversized {
		// An allow-listed value this long is no value of that attribute;
		// left out, it would hide a change from every comparison.
		return nil, fmt.Errorf("%w: %s %s is longer than %d bytes", ErrMalformed, byTag[t].keyword, t, maxCollectedValue)
	}
	if inst.SOPInstanceUID == "" {
		return nil, fmt.Errorf("%w: SOP Instance UID (0008,0018)", ErrMissingAttribute)
	}
	return inst, nil
}

func (w *walkResult) charset() string {
	v, ok := w.values[tagSpecificCharacterSet]
	if !ok {
		return ""
	}
	return string(v.bytes)
}

// Digests are what an attestation records about an instance beyond its
// bytes. See the README's "Digests and verdicts" for the canonical forms.
type Digests struct {
	// Pixel is the SHA-256 of the Pixel Data (canonical, see pixels.go)
	// together with the pixel-describing attributes; "" without Pixel Data.
	Pixel string
	// PixelEncoding is "native" or the encapsulated transfer syntax: pixel
	// digests compare only within one encoding.
	PixelEncoding string
	// Frames are per-frame digests where frames are separable.
	Frames []string
	// Metadata is the SHA-256 of the canonical metadata and geometry
	// allow-list (it holds the UIDs, so it is not guessable).
	Metadata string
	// Identity is HMAC-SHA-256, keyed by the record's salt, over the
	// canonical identity allow-list: patient data is low-entropy.
	Identity string
	// Attributes has one digest per present allow-listed attribute:
	// HMAC-SHA-256(salt, keyword ‖ 0x00 ‖ canonical value).
	Attributes map[string]string
	// OriginalAttributes lists the allow-listed attributes that appear in
	// the Original Attributes Sequence (0400,0561): documented changes.
	OriginalAttributes []string
	// PreviousValues holds, per correctable attribute, the commitments of
	// the previous values the Original Attributes Sequence gives (keyed like
	// Attributes, so they compare with an attestation's). An empty previous
	// value also stands as "" (absent): an attribute that was not there.
	PreviousValues map[string][]string
}

// Digests computes the digests of the current DigestVersion, keying the
// per-attribute and identity digests with salt.
func (a *Analysis) Digests(salt []byte) *Digests { return a.DigestsVersion(DigestVersion, salt) }

// DigestsVersion computes the digests as version v defines them (1 or 2),
// so that a file is always compared with an attestation in the
// attestation's own terms.
func (a *Analysis) DigestsVersion(v int, salt []byte) *Digests {
	w := a.walk
	d := &Digests{Attributes: map[string]string{}}
	cs := w.charset()
	meta := sha256.New()
	meta.Write([]byte("dicomseal-metadata/v1\n"))
	ident := hmac.New(sha256.New, salt)
	ident.Write([]byte("dicomseal-identity/v1\n"))
	pixelAttrs := sha256.New()
	for _, attr := range sortedAttributes {
		if attr.since > v {
			continue
		}
		value, ok := w.canonicalValue(attr, cs, v)
		if !ok {
			continue
		}
		d.Attributes[attr.keyword] = commit(salt, attr.keyword, value)
		switch attr.class {
		case classMetadata, classGeometry:
			writeField(meta, attr.tag, value)
		case classIdentity:
			writeField(ident, attr.tag, value)
		case classPixel:
			writeField(pixelAttrs, attr.tag, value)
		}
	}
	d.Metadata = hex.EncodeToString(meta.Sum(nil))
	d.Identity = hex.EncodeToString(ident.Sum(nil))
	if p := w.pixels; p != nil {
		h := sha256.New()
		h.Write([]byte("dicomseal-pixel/v1\n" + p.Encoding + "\n"))
		h.Write(pixelAttrs.Sum(nil))
		h.Write(p.Whole[:])
		d.Pixel = hex.EncodeToString(h.Sum(nil))
		d.PixelEncoding = p.Encoding
		for _, f := range p.Frames {
			d.Frames = append(d.Frames, hex.EncodeToString(f[:]))
		}
	}
	for t, raw := range w.oasValues {
		attr := byTag[t]
		if attr.since > v {
			continue
		}
		if d.PreviousValues == nil {
			d.PreviousValues = map[string][]string{}
		}
		value := w.canonicalText(raw, t, cs, v)
		d.PreviousValues[attr.keyword] = append(d.PreviousValues[attr.keyword], commit(salt, attr.keyword, value))
		if value == "" {
			d.PreviousValues[attr.keyword] = append(d.PreviousValues[attr.keyword], "")
		}
	}
	for t := range w.oasTags {
		if attr, ok := byTag[t]; ok && attr.since <= v {
			d.OriginalAttributes = append(d.OriginalAttributes, attr.keyword)
		}
	}
	slices.Sort(d.OriginalAttributes)
	return d
}

// canonicalValue is an attribute's canonical value in version v, and
// whether the file has the attribute.
func (w *walkResult) canonicalValue(attr attribute, cs string, v int) (string, bool) {
	if attr.nested {
		values, ok := w.nested[attr.tag]
		if !ok {
			return "", false
		}
		// item ‖ tag ‖ value per line: the same identifiers in the same
		// items, whatever their encoding.
		var b strings.Builder
		for _, nv := range values {
			fmt.Fprintf(&b, "%d %08X %s\n", nv.item, uint32(nv.tag), w.canonicalText(nv.raw, nv.tag, cs, v))
		}
		return b.String(), true
	}
	raw, ok := w.values[attr.tag]
	if !ok {
		return "", false
	}
	return w.canonicalText(raw, attr.tag, cs, v), true
}

// canonicalText decodes one value. From version 2, text in a character
// set dicomseal does not decode carries the set's name: the same bytes
// under another set are other text.
func (w *walkResult) canonicalText(raw rawValue, t tagID, cs string, v int) string {
	value := canonical(decode(raw, t, w.byteOrder, cs))
	vr := raw.vr
	if vr == "" || vr == "UN" {
		vr = dictionaryVR(t)
	}
	if v >= 2 && charsetVRs[vr] && !charsetDecoded(cs) {
		value = "charset " + strings.TrimRight(cs, " \x00") + "\n" + value
	}
	return value
}

// writeField writes tag ‖ length ‖ value: unambiguous whatever the value holds.
func writeField(w io.Writer, t tagID, value string) {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(t))
	binary.BigEndian.PutUint32(b[4:], uint32(len(value)))
	w.Write(b[:])
	io.WriteString(w, value)
}

// commit is HMAC-SHA-256(key = salt, message = keyword ‖ 0x00 ‖ value).
func commit(salt []byte, keyword, value string) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(keyword))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// Class tells how a verdict treats a change of the named attribute.
func Class(keyword string) string {
	for _, a := range attributes {
		if a.keyword == keyword {
			return [...]string{"metadata", "geometry", "identity", "pixel"}[a.class]
		}
	}
	return ""
}
