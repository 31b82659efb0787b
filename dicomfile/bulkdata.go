package dicomfile

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bulk data: the stored value of one top-level element, located by a
// visiting walk that stops at it. In a file that is not deflated the value
// is then read lazily from the file, where it lies; in a deflated one the
// walk reads it into memory as it inflates (bounded by the inflate limits).

// ErrNoSuchElement: the data set has no such top-level element (or it is
// a sequence, which has no bulk value).
var ErrNoSuchElement = errors.New("no such top-level element")

// BulkData is the value of the top-level element tag, and its length.
// Multi-byte binary values (OW, OF, OL, OD, OV and the numeric VRs) of a
// big endian file are swapped to little endian, the byte order PS3.18
// gives bulk data; all others are the bytes as stored. For encapsulated
// Pixel Data the value is the item sequence as stored: from the Basic
// Offset Table item's tag through the Sequence Delimitation Item.
func (l Limits) BulkData(r io.ReaderAt, size int64, tag uint32) (io.Reader, int64, error) {
	v, err := l.locate(r, size, tagID(tag))
	if err != nil {
		return nil, 0, err
	}
	if v.sequence {
		return nil, 0, fmt.Errorf("%w: %s is a sequence, which has no bulk value", ErrNoSuchElement, tagID(tag))
	}
	n := v.end - v.start
	return v.reader(v.start, n), n, nil
}

// located is where a top-level element's value lies: bytes [start, end)
// of src, which is the file or, for a deflated one, the value read into
// memory.
type located struct {
	h          header
	src        io.ReaderAt
	start, end int64
	bo         binary.ByteOrder
	ts         string
	sequence   bool
	// encapsulated: the value is items (Basic Offset Table first), whose
	// values lie in src as items says.
	encapsulated bool
	items        []span
	// values are the Image Pixel module's top-level values, read on the
	// way when locating Pixel Data.
	values map[tagID]rawValue
}

// span is bytes [off, off+n) of a located value's src; at is where its
// item's tag was in the stream, for offset tables.
type span struct{ at, off, n int64 }

// reader reads bytes [off, off+n) of the value, little endian.
func (v *located) reader(off, n int64) io.Reader {
	unit := byteSwapUnit[v.h.vr]
	if v.bo != binary.BigEndian || unit < 2 || v.encapsulated {
		return io.NewSectionReader(v.src, off, n)
	}
	// Swap from the value's unit boundary before off.
	head := (off - v.start) % int64(unit)
	r := &swapReader{r: io.NewSectionReader(v.src, off-head, n+head), unit: unit}
	if head > 0 {
		return io.LimitReader(&skipReader{r: r, skip: head}, n)
	}
	return io.LimitReader(r, n)
}

// errFound stops a locating walk at the element.
var errFound = errors.New("element found")

// pixelTags are the top-level values Frames reads.
var pixelTags = map[tagID]bool{0x00280002: true, 0x00280004: true, tagNumberOfFrames: true, 0x00280010: true,
	0x00280011: true, 0x00280100: true, tagExtendedOffsetTable: true, tagExtendedOffsetTableLengths: true}

const (
	tagExtendedOffsetTable        tagID = 0x7FE00001
	tagExtendedOffsetTableLengths tagID = 0x7FE00002
	// maxPixelValue bounds a pixel-describing value read on the way; an
	// Extended Offset Table of 2^16 frames is 512 KiB.
	maxPixelValue = 1 << 20
)

type locator struct {
	target tagID
	found  *located
	values map[tagID]rawValue
}

func (l Limits) locate(r io.ReaderAt, size int64, target tagID) (*located, error) {
	loc := &locator{target: target, values: map[tagID]rawValue{}}
	w, err := visitWalk(r, size, l, loc)
	switch {
	case errors.Is(err, errFound):
		loc.found.values = loc.values
		loc.found.bo, loc.found.ts = w.bo, w.ts
		return loc.found, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", ErrNoSuchElement, target)
}

func (loc *locator) item(bool) {}

func (loc *locator) element(w *walker, h header, explicit bool, limit int64, depth int) error {
	if depth > 0 || h.tag != loc.target {
		if depth == 0 && pixelTags[h.tag] && h.length <= maxPixelValue {
			v, err := w.readRaw(h, explicit, limit)
			if err == nil {
				loc.values[h.tag] = v
			}
			return err
		}
		return w.walkValue(h, explicit, limit, depth)
	}
	if !explicit {
		h.vr = dictionaryVR(h.tag)
	}
	v := &located{h: h, src: w.file}
	loc.found = v
	switch {
	case h.length == undefinedLength && h.tag == tagPixelData && explicit && (h.vr == "OB" || h.vr == "OW"):
		v.encapsulated = true
		if err := w.locateItems(h, v); err != nil {
			return err
		}
	case w.isSequence(h, explicit) || h.length == undefinedLength:
		v.sequence = true
	case w.end < 0:
		b, err := w.readGrow(h, explicit, limit)
		if err != nil {
			return err
		}
		v.src, v.start, v.end = bytes.NewReader(b), 0, int64(len(b))
	default:
		if err := w.checkFits(h, int64(h.length), limit); err != nil {
			return err
		}
		v.start, v.end = w.pos, w.pos+int64(h.length)
	}
	return errFound
}

// locateItems finds the items of encapsulated Pixel Data. In the file they
// are found by their headers alone, read where they lie, so that not a
// byte of the pixels is read; a deflated stream is read through, the item
// sequence kept as stored.
func (w *walker) locateItems(h header, v *located) error {
	if w.end < 0 {
		return w.readItems(v)
	}
	pos := w.pos
	v.start = pos
	var b [8]byte
	for {
		ih := header{at: pos}
		if pos+8 > w.end {
			return fmt.Errorf("%w: encapsulated Pixel Data at offset %d runs past the end of the file", ErrMalformed, h.at)
		}
		if n, err := w.file.ReadAt(b[:], pos); n < len(b) {
			return w.truncated(ih, cmp.Or(err, io.ErrUnexpectedEOF))
		}
		ih.tag = tagID(uint32(w.bo.Uint16(b[0:]))<<16 | uint32(w.bo.Uint16(b[2:])))
		ih.length = w.bo.Uint32(b[4:])
		pos += 8
		if ih.tag == tagSeqDelimitation {
			v.end = pos
			return nil
		}
		if err := w.count(ih); err != nil {
			return err
		}
		if ih.tag != tagItem || ih.length == undefinedLength || pos+int64(ih.length) > w.end {
			return fmt.Errorf("%w: bad fragment %s at offset %d in encapsulated Pixel Data", ErrMalformed, ih.tag, ih.at)
		}
		v.items = append(v.items, span{at: ih.at, off: pos, n: int64(ih.length)})
		pos += int64(ih.length)
	}
}

// readItems reads encapsulated Pixel Data from the (inflated) stream into
// memory, as stored.
func (w *walker) readItems(v *located) error {
	var buf bytes.Buffer
	for {
		ih, err := w.readItemHeader()
		if err != nil {
			return err
		}
		binary.Write(&buf, binary.LittleEndian, [2]uint16{uint16(ih.tag >> 16), uint16(ih.tag)})
		binary.Write(&buf, binary.LittleEndian, ih.length)
		if ih.tag == tagSeqDelimitation {
			v.src, v.start, v.end = bytes.NewReader(buf.Bytes()), 0, int64(buf.Len())
			return nil
		}
		if err := w.count(ih); err != nil {
			return err
		}
		if ih.tag != tagItem || ih.length == undefinedLength {
			return fmt.Errorf("%w: bad fragment %s at offset %d in encapsulated Pixel Data", ErrMalformed, ih.tag, ih.at)
		}
		v.items = append(v.items, span{at: ih.at, off: int64(buf.Len()), n: int64(ih.length)})
		n, err := io.CopyN(&buf, w.r, int64(ih.length))
		w.pos += n
		if err != nil {
			return w.truncated(ih, err)
		}
	}
}

// swapReader swaps each unit of bytes it reads: big endian words to
// little endian. A last partial unit is passed as is.
type swapReader struct {
	r       io.Reader
	unit    int
	buf     []byte
	pending []byte
	err     error
}

func (s *swapReader) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.buf == nil {
			s.buf = make([]byte, 32<<10) // a multiple of every unit
		}
		n, err := io.ReadFull(s.r, s.buf)
		swapUnits(s.buf[:n-n%s.unit], s.unit)
		s.pending = s.buf[:n]
		switch err {
		case nil:
		case io.ErrUnexpectedEOF:
			s.err = io.EOF
		default:
			s.err = err
		}
		if n == 0 {
			return 0, s.err
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// skipReader drops the first skip bytes of r.
type skipReader struct {
	r    io.Reader
	skip int64
}

func (s *skipReader) Read(p []byte) (int, error) {
	if s.skip > 0 {
		if _, err := io.CopyN(io.Discard, s.r, s.skip); err != nil {
			return 0, err
		}
		s.skip = 0
	}
	return s.r.Read(p)
}
