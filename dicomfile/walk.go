package dicomfile

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The element walker checks a Part 10 file's structure without decoding
// values: every declared length must fit in the bytes actually present,
// sequences and items must be closed, nesting is bounded, and the data set
// must end exactly at the end of the file. The parser library cannot be
// relied on for this: it reads a truncated element header as a clean end of
// file, and it allocates a value's declared length before reading it.

const (
	maxNesting      = 64
	undefinedLength = 0xFFFFFFFF
	tsImplicitLE    = "1.2.840.10008.1.2"
	tsExplicitBE    = "1.2.840.10008.1.2.2"
	tsDeflatedLE    = "1.2.840.10008.1.2.1.99"
	tsExplicitLE    = "1.2.840.10008.1.2.1"
)

type tagID uint32

func (t tagID) String() string { return fmt.Sprintf("(%04X,%04X)", uint16(t>>16), uint16(t)) }

const (
	tagItem             tagID = 0xFFFEE000
	tagItemDelimitation tagID = 0xFFFEE00D
	tagSeqDelimitation  tagID = 0xFFFEE0DD
	tagTransferSyntax   tagID = 0x00020010
	tagPixelData        tagID = 0x7FE00010
)

// errEnd marks a clean end of input at an element boundary.
var errEnd = errors.New("end of data set")

type walker struct {
	r   *bufio.Reader
	pos int64 // offset of the next byte, in the (inflated) stream
	end int64 // stream length, or -1 when unknown (deflated)
	bo  binary.ByteOrder
	ts  string

	// With collect set, the walker also keeps the allow-listed top-level
	// values, the tags inside an Original Attributes Sequence, and hashes
	// Pixel Data as it streams past.
	collect bool
	limits  Limits
	// elements counts data elements and items against limits.MaxElements.
	elements int
	values   map[tagID]rawValue
	// oversized marks collected attributes too long to keep: an identifier
	// that long is invalid, never silently absent.
	oversized map[tagID]bool
	inOAS     bool
	oasTags   map[tagID]bool
	// oasValues are the previous values an Original Attributes Sequence
	// gives for correctable attributes (see correctable): the direct
	// children of a Modified Attributes Sequence item, the last item's
	// winning (items are appended, newest last: PS3.3 C.12.1.1.9.2).
	oasValues map[tagID]rawValue
	inMAS     bool
	// nested holds the values inside identity sequences (nestedIdentity),
	// by sequence; nestedTag is the one being walked.
	nested      map[tagID][]nestedValue
	nestedTag   tagID
	nestedItem  int
	nestedBytes int
	pixels      *PixelResult

	// visit, when set, is handed every data set element instead of the
	// collecting switch (Metadata, Frames, BulkData): they read through the
	// same checks, and the collecting walk pays one nil test per element.
	visit visitor
	// file is the whole file, for visitors that read a value where it
	// lies rather than through r.
	file io.ReaderAt
}

// visitor takes the elements of a visiting walk. element must consume the
// element's value (read it, or walk or skip it with w.walkValue); an error
// stops the walk and is returned as is. item is told when an item of a
// sequence starts and ends.
type visitor interface {
	element(w *walker, h header, explicit bool, limit int64, depth int) error
	item(start bool)
}

// walkResult is what a collecting walk found.
type walkResult struct {
	transferSyntax string
	byteOrder      binary.ByteOrder
	values         map[tagID]rawValue
	oversized      map[tagID]bool
	oasTags        map[tagID]bool
	oasValues      map[tagID]rawValue
	nested         map[tagID][]nestedValue
	pixels         *PixelResult
}

type header struct {
	tag    tagID
	vr     string
	length uint32
	at     int64 // offset of the element's first byte
}

// walk checks the file's structure; with collect it also gathers values
// and pixel digests (see walker).
func walk(r io.ReaderAt, size int64, collect bool, limits Limits) (*walkResult, error) {
	w := newWalker(r, size, limits)
	w.collect = collect
	if err := w.run(); err != nil {
		return nil, err
	}
	return &walkResult{transferSyntax: w.ts, byteOrder: w.bo, values: w.values, oversized: w.oversized,
		oasTags: w.oasTags, oasValues: w.oasValues, nested: w.nested, pixels: w.pixels}, nil
}

// visitWalk walks a Part 10 file handing its data set's elements to v; an
// error v returns comes back as is.
func visitWalk(r io.ReaderAt, size int64, limits Limits, v visitor) (*walker, error) {
	if err := checkMagic(r, size); err != nil {
		return nil, err
	}
	w := newWalker(r, size, limits)
	w.visit = v
	return w, w.run()
}

func newWalker(r io.ReaderAt, size int64, limits Limits) *walker {
	return &walker{r: bufio.NewReaderSize(io.NewSectionReader(r, preambleLen+4, size-preambleLen-4), 64<<10),
		file: r, pos: preambleLen + 4, end: size, bo: binary.LittleEndian, limits: limits,
		values: map[tagID]rawValue{}, oversized: map[tagID]bool{}, oasTags: map[tagID]bool{},
		oasValues: map[tagID]rawValue{}, nested: map[tagID][]nestedValue{}}
}

// run walks the File Meta group and the data set to its end.
func (w *walker) run() error {
	ts, err := w.walkMeta()
	if err != nil {
		return err
	}
	w.ts = ts
	explicit := ts != tsImplicitLE
	switch ts {
	case tsExplicitBE:
		w.bo = binary.BigEndian
	case tsDeflatedLE:
		// Offsets from here on count inflated bytes; the length is unknown.
		packed := w.end - w.pos
		budget, limit := w.limits.inflateBudget(packed)
		w.r = bufio.NewReader(&budgetReader{r: flate.NewReader(w.r), left: budget, budget: budget, limit: limit,
			ratio: w.limits.MaxInflateRatio, packed: packed})
		w.pos, w.end = 0, -1
	}
	if err := w.walkElements(explicit, -1, 0); !errors.Is(err, errEnd) {
		return err
	}
	return nil
}

// walkMeta walks the File Meta group (always explicit VR little endian) and
// returns the Transfer Syntax UID.
func (w *walker) walkMeta() (string, error) {
	var ts string
	for {
		b, err := w.r.Peek(2)
		if err != nil || binary.LittleEndian.Uint16(b) != 0x0002 {
			break
		}
		h, err := w.readHeader(true)
		if err != nil {
			return "", err
		}
		if h.length == undefinedLength {
			return "", fmt.Errorf("%w: File Meta element %s has undefined length", ErrMalformed, h.tag)
		}
		if err := w.checkFits(h, int64(h.length), -1); err != nil {
			return "", err
		}
		if h.tag == tagTransferSyntax && h.length <= 64 {
			v := make([]byte, h.length)
			if _, err := io.ReadFull(w.r, v); err != nil {
				return "", w.truncated(h, err)
			}
			w.pos += int64(h.length)
			ts = trimUID(string(v))
			continue
		}
		if err := w.skip(h, int64(h.length)); err != nil {
			return "", err
		}
	}
	if ts == "" {
		// Like dcmtk, infer the data set's encoding from its first
		// element: a VR after the tag means explicit VR little endian.
		b, err := w.r.Peek(6)
		if err != nil {
			return "", fmt.Errorf("%w: File Meta has no Transfer Syntax UID (0002,0010) and no data set follows", ErrMalformed)
		}
		ts = tsImplicitLE
		if longVRs[string(b[4:6])] || shortVRs[string(b[4:6])] {
			ts = tsExplicitLE
		}
	}
	return ts, nil
}

// shortVRs have a 2-byte length in explicit VR.
var shortVRs = map[string]bool{"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true, "DT": true,
	"FL": true, "FD": true, "IS": true, "LO": true, "LT": true, "PN": true, "SH": true, "SL": true, "SS": true,
	"ST": true, "TM": true, "UI": true, "UL": true, "US": true}

// walkElements walks elements until the end of input (errEnd), the end of
// a defined-length container at limit, or an item delimitation when
// inItem. depth bounds nesting.
func (w *walker) walkElements(explicit bool, limit int64, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("%w: sequences nested deeper than %d at offset %d", ErrMalformed, maxNesting, w.pos)
	}
	for {
		if limit >= 0 && w.pos == limit {
			return nil
		}
		if _, err := w.r.Peek(1); err == io.EOF {
			if limit >= 0 || depth > 0 {
				return fmt.Errorf("%w: data set ends at offset %d inside an unclosed sequence or item", ErrMalformed, w.pos)
			}
			return errEnd
		}
		h, err := w.readHeader(explicit)
		if err != nil {
			return err
		}
		if err := w.count(h); err != nil {
			return err
		}
		switch h.tag {
		case tagItemDelimitation:
			if depth == 0 {
				return fmt.Errorf("%w: item delimiter outside an item at offset %d", ErrMalformed, h.at)
			}
			return errItemEnd
		case tagItem, tagSeqDelimitation:
			return fmt.Errorf("%w: unexpected %s at offset %d", ErrMalformed, h.tag, h.at)
		}
		if w.visit != nil {
			if err := w.visit.element(w, h, explicit, limit, depth); err != nil {
				return err
			}
			continue
		}
		if w.inOAS && depth > 0 {
			w.oasTags[h.tag] = true
		}
		top := depth == 0 && limit < 0
		switch {
		case top && w.collect && h.tag == tagPixelData:
			err = w.walkPixelData(h, explicit, limit)
		case top && w.collect && collected(h.tag):
			if _, dup := w.values[h.tag]; dup || w.oversized[h.tag] {
				return fmt.Errorf("%w: attribute %s appears twice in the data set (offset %d)", ErrMalformed, h.tag, h.at)
			}
			if h.length > maxCollectedValue {
				w.oversized[h.tag] = true
				err = w.walkValue(h, explicit, limit, depth)
				break
			}
			err = w.readValue(h, explicit, limit)
		case top && w.collect && nestedIdentity(h.tag):
			if _, dup := w.nested[h.tag]; dup {
				return fmt.Errorf("%w: attribute %s appears twice in the data set (offset %d)", ErrMalformed, h.tag, h.at)
			}
			w.nested[h.tag], w.nestedTag, w.nestedItem = []nestedValue{}, h.tag, 0
			err = w.walkValue(h, explicit, limit, depth)
			w.nestedTag = 0
		case w.collect && w.nestedTag != 0 && depth > 0 && h.length != undefinedLength && !w.isSequence(h, explicit):
			if h.length > maxIdentityValue || w.nestedBytes+int(h.length) > maxNestedIdentity {
				return fmt.Errorf("%w: element %s at offset %d in identity sequence %s is longer than any identifier",
					ErrMalformed, h.tag, h.at, w.nestedTag)
			}
			var v rawValue
			if v, err = w.readRaw(h, explicit, limit); err == nil {
				w.nestedBytes += int(h.length)
				w.nested[w.nestedTag] = append(w.nested[w.nestedTag], nestedValue{item: w.nestedItem, tag: h.tag, raw: v})
			}
		case w.collect && w.inOAS && depth == 1 && h.tag == tagModifiedAttributesSeq:
			w.inMAS = true
			err = w.walkValue(h, explicit, limit, depth)
			w.inMAS = false
		case w.collect && w.inMAS && depth == 2 && correctable[h.tag] && h.length != undefinedLength &&
			h.length <= maxIdentityValue && !w.isSequence(h, explicit):
			var v rawValue
			if v, err = w.readRaw(h, explicit, limit); err == nil {
				w.oasValues[h.tag] = v
			}
		case top && w.collect && h.tag == tagOriginalAttributesSeq:
			w.inOAS = true
			err = w.walkValue(h, explicit, limit, depth)
			w.inOAS = false
		default:
			err = w.walkValue(h, explicit, limit, depth)
		}
		if err != nil {
			return err
		}
	}
}

// readValue keeps a small top-level value.
func (w *walker) readValue(h header, explicit bool, limit int64) error {
	v, err := w.readRaw(h, explicit, limit)
	if err == nil {
		w.values[h.tag] = v
	}
	return err
}

// readRaw reads a small value of defined length.
func (w *walker) readRaw(h header, explicit bool, limit int64) (rawValue, error) {
	if h.length == undefinedLength {
		return rawValue{}, fmt.Errorf("%w: element %s at offset %d has undefined length", ErrMalformed, h.tag, h.at)
	}
	if err := w.checkFits(h, int64(h.length), limit); err != nil {
		return rawValue{}, err
	}
	b := make([]byte, h.length)
	if err := w.read(b, h); err != nil {
		return rawValue{}, err
	}
	vr := h.vr
	if !explicit {
		vr = ""
	}
	return rawValue{vr: vr, bytes: b}, nil
}

var errItemEnd = errors.New("item delimitation")

func (w *walker) walkValue(h header, explicit bool, limit int64, depth int) error {
	seq := w.isSequence(h, explicit)
	if h.length != undefinedLength {
		if err := w.checkFits(h, int64(h.length), limit); err != nil {
			return err
		}
		if seq {
			// Walk into a defined-length sequence: its items and their
			// elements must fit inside it.
			end := w.pos + int64(h.length)
			return w.walkSequence(explicit, end, end, depth)
		}
		return w.skip(h, int64(h.length))
	}
	switch {
	case h.tag == tagPixelData && explicit && (h.vr == "OB" || h.vr == "OW"):
		return w.walkFragments(limit)
	case seq, !explicit:
		return w.walkSequence(explicit, -1, limit, depth)
	case h.vr == "UN":
		// A UN element of undefined length is a sequence encoded in
		// implicit VR little endian (PS3.5 6.2.2).
		return w.walkSequence(false, -1, limit, depth)
	}
	return fmt.Errorf("%w: element %s (VR %s) at offset %d has undefined length", ErrMalformed, h.tag, h.vr, h.at)
}

// isSequence tells whether an element holds a sequence: by its VR in
// explicit VR, by the data dictionary in implicit VR.
func (w *walker) isSequence(h header, explicit bool) bool {
	if explicit {
		return h.vr == "SQ"
	}
	info, err := tag.Find(tag.Tag{Group: uint16(h.tag >> 16), Element: uint16(h.tag)})
	return err == nil && slices.Contains(info.VRs, "SQ")
}

// walkSequence walks items until end, for a defined-length sequence, or
// (end = -1) until the sequence delimitation item; nothing may pass limit.
func (w *walker) walkSequence(explicit bool, end, limit int64, depth int) error {
	for end < 0 || w.pos < end {
		h, err := w.readItemHeader()
		if err != nil {
			return err
		}
		if err := w.count(h); err != nil {
			return err
		}
		if depth == 0 && h.tag == tagItem {
			// An item of a top-level sequence: numbered, so that an
			// identity sequence's values keep their items apart.
			w.nestedItem++
		}
		switch {
		case h.tag == tagSeqDelimitation && end < 0:
			return nil
		case h.tag != tagItem:
			return fmt.Errorf("%w: expected an item in a sequence at offset %d, found %s", ErrMalformed, h.at, h.tag)
		case h.length == undefinedLength:
			w.visitItem(true)
			if err := w.walkElements(explicit, limit, depth+1); !errors.Is(err, errItemEnd) {
				if err == nil {
					err = fmt.Errorf("%w: item at offset %d is not closed", ErrMalformed, h.at)
				}
				return err
			}
			w.visitItem(false)
		default:
			if err := w.checkFits(h, int64(h.length), limit); err != nil {
				return err
			}
			w.visitItem(true)
			if err := w.walkElements(explicit, w.pos+int64(h.length), depth+1); err != nil {
				return err
			}
			w.visitItem(false)
		}
	}
	if w.pos != end {
		return fmt.Errorf("%w: sequence items run past the sequence's end at offset %d", ErrMalformed, end)
	}
	return nil
}

func (w *walker) visitItem(start bool) {
	if w.visit != nil {
		w.visit.item(start)
	}
}

// walkFragments walks encapsulated Pixel Data: items of defined length up
// to the sequence delimitation.
func (w *walker) walkFragments(limit int64) error {
	for {
		h, err := w.readItemHeader()
		if err != nil {
			return err
		}
		if h.tag == tagSeqDelimitation {
			return nil
		}
		if err := w.count(h); err != nil {
			return err
		}
		if h.tag != tagItem || h.length == undefinedLength {
			return fmt.Errorf("%w: bad fragment %s at offset %d in encapsulated Pixel Data", ErrMalformed, h.tag, h.at)
		}
		if err := w.checkFits(h, int64(h.length), limit); err != nil {
			return err
		}
		if err := w.skip(h, int64(h.length)); err != nil {
			return err
		}
	}
}

func (w *walker) readItemHeader() (header, error) {
	h := header{at: w.pos}
	var b [8]byte
	if err := w.read(b[:], h); err != nil {
		return h, err
	}
	h.tag = tagID(uint32(w.bo.Uint16(b[0:]))<<16 | uint32(w.bo.Uint16(b[2:])))
	h.length = w.bo.Uint32(b[4:])
	return h, nil
}

// longVRs have a 2-byte reserved field and a 4-byte length in explicit VR.
var longVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

func (w *walker) readHeader(explicit bool) (header, error) {
	h := header{at: w.pos}
	var b [8]byte
	if err := w.read(b[:4], h); err != nil {
		return h, err
	}
	h.tag = tagID(uint32(w.bo.Uint16(b[0:]))<<16 | uint32(w.bo.Uint16(b[2:])))
	if uint16(h.tag>>16) == 0xFFFE || !explicit {
		if err := w.read(b[:4], h); err != nil {
			return h, err
		}
		h.length = w.bo.Uint32(b[:4])
		return h, nil
	}
	if err := w.read(b[:2], h); err != nil {
		return h, err
	}
	h.vr = string(b[:2])
	if !longVRs[h.vr] {
		if err := w.read(b[:2], h); err != nil {
			return h, err
		}
		h.length = uint32(w.bo.Uint16(b[:2]))
		return h, nil
	}
	if err := w.read(b[:6], h); err != nil {
		return h, err
	}
	h.length = w.bo.Uint32(b[2:6])
	return h, nil
}

func (w *walker) read(p []byte, h header) error {
	n, err := io.ReadFull(w.r, p)
	w.pos += int64(n)
	if err != nil {
		return w.truncated(h, err)
	}
	return nil
}

// checkFits rejects a value whose declared length runs past its container
// or past the end of the file.
func (w *walker) checkFits(h header, n int64, limit int64) error {
	if limit >= 0 && w.pos+n > limit {
		return fmt.Errorf("%w: element %s at offset %d declares %d bytes, past the end of its item at offset %d",
			ErrMalformed, h.tag, h.at, n, limit)
	}
	if w.end >= 0 && w.pos+n > w.end {
		return fmt.Errorf("%w: element %s at offset %d declares %d bytes but only %d remain (truncated file?)",
			ErrMalformed, h.tag, h.at, n, w.end-w.pos)
	}
	return nil
}

func (w *walker) skip(h header, n int64) error {
	m, err := w.r.Discard(int(n))
	w.pos += int64(m)
	if err != nil {
		return w.truncated(h, err)
	}
	return nil
}

// count charges one element or item against MaxElements.
func (w *walker) count(h header) error {
	w.elements++
	if w.limits.MaxElements > 0 && w.elements > w.limits.MaxElements {
		return fmt.Errorf("%w: the data set holds more than %d data elements and items (limit max-elements), the last at offset %d",
			ErrLimitExceeded, w.limits.MaxElements, h.at)
	}
	return nil
}

func (w *walker) truncated(h header, err error) error {
	if errors.Is(err, ErrLimitExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside element %s that starts at offset %d (truncated file?)", ErrMalformed, h.tag, h.at)
	}
	return fmt.Errorf("%w: reading element at offset %d: %v", ErrMalformed, h.at, err)
}

func trimUID(s string) string {
	for len(s) > 0 && (s[len(s)-1] == 0 || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
