package dicomfile

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
)

// Pixel digests. Native Pixel Data is hashed as canonical samples: each
// sample's Bits Stored window (ending at High Bit) extracted and written
// little endian in Bits Allocated, so byte order and the unused high bits
// do not count. Encapsulated Pixel Data is hashed as each frame's
// compressed bitstream: the concatenated fragments of the frame, whatever
// the fragmentation, the Basic Offset Table only telling frames apart.
// Both stream: nothing holds a frame in memory.

// maxFrameDigests bounds the per-frame digests kept: a hostile file could
// otherwise declare millions of one-pixel frames (or empty fragments) and
// have each digest kept in memory and in the attestation. Past it, frames
// are reported as not separable; the whole-pixel digest still covers all.
const maxFrameDigests = 1 << 16

// PixelResult is what the walker computed over Pixel Data.
type PixelResult struct {
	// Encoding is "native", or the transfer syntax of an encapsulated stream.
	Encoding string
	// Whole is the SHA-256 of all canonical bytes, frames in order.
	Whole [32]byte
	// Frames are per-frame digests; nil when frames are not separable.
	Frames [][32]byte
}

type nativeHasher struct {
	// swap is the VR's unit to byte-swap for big endian data (OW: 2,
	// OL/OF: 4, OD: 8); 0 when the data is little endian or bytes (OB).
	swap     int
	width    int // bytes per sample: 1, 2 or 4; 0 hashes raw bytes
	shift    uint
	mask     uint32
	frameLen int64 // canonical bytes per frame; 0: frames not separable
	// single: the value is exactly one frame, whose digest is then the
	// whole digest (one pass over the bytes, not two).
	single bool
	// highBits has every bit of a 64-bit word set that lies outside some
	// sample's Bits Stored window; valid only when shift is 0 and there is
	// no swap. A word with none of them set is already canonical.
	highBits uint64
	whole    hash.Hash
	frame    hash.Hash
	inFrame  int64
	frames   [][32]byte
	carry    []byte
	buf      []byte
}

// newNativeHasher reads the pixel description; length is the value
// length. Big endian values are first brought to little endian by their
// VR's unit (an OW value is 16-bit words whatever Bits Allocated says), so
// that a conversion between transfer syntaxes hashes the same.
func newNativeHasher(d pixelDescription, bo binary.ByteOrder, vr string, length int64) *nativeHasher {
	h := &nativeHasher{whole: sha256.New(), frame: sha256.New(), buf: make([]byte, 64<<10)}
	if bo == binary.BigEndian {
		h.swap = map[string]int{"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}[vr]
	}
	if d.bitsAllocated%8 == 0 && d.bitsAllocated <= 32 && d.bitsAllocated > 0 && d.bitsStored > 0 &&
		d.bitsStored <= d.bitsAllocated && d.highBit+1 >= d.bitsStored && d.highBit < d.bitsAllocated {
		h.width = d.bitsAllocated / 8
		h.shift = uint(d.highBit + 1 - d.bitsStored)
		h.mask = uint32(1<<uint(d.bitsStored)) - 1
		if d.bitsStored == 32 {
			h.mask = 0xFFFFFFFF
		}
	}
	frameLen := int64(d.rows) * int64(d.columns) * int64(max(d.samples, 1)) * int64(d.bitsAllocated) / 8
	if frames := int64(max(d.frames, 1)); h.width > 0 && frameLen > 0 && frames <= maxFrameDigests &&
		(length == frames*frameLen || length == frames*frameLen+1) {
		h.frameLen = frameLen
		h.single = frames == 1 && length == frameLen && length%int64(max(h.width, h.swap)) == 0
	}
	if h.width > 0 && h.shift == 0 {
		unused := uint64(^h.mask) & (1<<(8*uint(h.width)) - 1)
		for i := 0; i < 64; i += 8 * h.width {
			h.highBits |= unused << uint(i)
		}
	}
	return h
}

// canonical reports whether p (whole samples, little endian) is already in
// canonical form: no swap, no shift, and no sample with a bit set above
// Bits Stored — the usual CT and MR, hashed then without a copy.
func (h *nativeHasher) canonical(p []byte) bool {
	if h.swap > 1 || h.shift != 0 {
		return false
	}
	if h.highBits == 0 {
		return true
	}
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&h.highBits != 0 {
			return false
		}
	}
	var tail [8]byte
	copy(tail[:], p[i:])
	return binary.LittleEndian.Uint64(tail[:])&h.highBits == 0
}

// Write takes raw Pixel Data bytes in any chunking.
func (h *nativeHasher) Write(p []byte) (int, error) {
	n := len(p)
	if h.width == 0 {
		h.emit(p)
		return n, nil
	}
	if len(h.carry) > 0 {
		need := max(h.width, h.swap) - len(h.carry)
		if len(p) < need {
			h.carry = append(h.carry, p...)
			return n, nil
		}
		h.carry = append(h.carry, p[:need]...)
		p = p[need:]
		h.samples(h.carry)
		h.carry = h.carry[:0]
	}
	unit := max(h.width, h.swap)
	whole := len(p) - len(p)%unit
	h.samples(p[:whole])
	h.carry = append(h.carry, p[whole:]...)
	return n, nil
}

func (h *nativeHasher) samples(p []byte) {
	if h.canonical(p) {
		h.emit(p)
		return
	}
	unit := max(h.width, h.swap)
	for len(p) > 0 {
		n := min(len(p), len(h.buf))
		n -= n % unit
		out := h.buf[:n]
		copy(out, p[:n])
		if h.swap > 1 {
			for i := 0; i < n; i += h.swap {
				slices.Reverse(out[i : i+h.swap])
			}
		}
		for i := 0; i < n; i += h.width {
			switch h.width {
			case 1:
				out[i] = byte((uint32(out[i]) >> h.shift) & h.mask)
			case 2:
				binary.LittleEndian.PutUint16(out[i:], uint16((uint32(binary.LittleEndian.Uint16(out[i:]))>>h.shift)&h.mask))
			case 4:
				binary.LittleEndian.PutUint32(out[i:], (binary.LittleEndian.Uint32(out[i:])>>h.shift)&h.mask)
			}
		}
		h.emit(out)
		p = p[n:]
	}
}

// emit feeds canonical bytes to the whole digest and, frame by frame, to
// the frame digests.
func (h *nativeHasher) emit(p []byte) {
	h.whole.Write(p)
	if h.frameLen == 0 || h.single {
		return
	}
	for len(p) > 0 {
		n := min(int64(len(p)), h.frameLen-h.inFrame)
		h.frame.Write(p[:n])
		h.inFrame += n
		p = p[n:]
		if h.inFrame == h.frameLen {
			var d [32]byte
			h.frame.Sum(d[:0])
			h.frames = append(h.frames, d)
			h.frame.Reset()
			h.inFrame = 0
		}
	}
}

func (h *nativeHasher) result() *PixelResult {
	// Bytes that do not fill a sample still count, raw.
	h.whole.Write(h.carry)
	r := &PixelResult{Encoding: "native", Frames: h.frames}
	h.whole.Sum(r.Whole[:0])
	if h.single {
		r.Frames = [][32]byte{r.Whole}
	}
	return r
}

// encapsulatedHasher follows fragments into frames.
type encapsulatedHasher struct {
	ts        string
	frames    int
	bot       []uint32 // frame offsets from the first fragment's item tag
	whole     hash.Hash
	fragments [][32]byte
	fragment  hash.Hash
	byBOT     []hash.Hash
	tooMany   bool // more fragments than frames: fragments are not frames
	// botFrame is the frame the last fragment belonged to.
	botFrame int
}

func newEncapsulatedHasher(ts string, frames int) *encapsulatedHasher {
	return &encapsulatedHasher{ts: ts, frames: max(frames, 1), whole: sha256.New(), fragment: sha256.New()}
}

// setBOT reads the Basic Offset Table (little endian offsets).
func (e *encapsulatedHasher) setBOT(b []byte) {
	if len(b)/4 != e.frames || e.frames < 2 || e.frames > maxFrameDigests {
		return
	}
	for i := 0; i+4 <= len(b); i += 4 {
		off := binary.LittleEndian.Uint32(b[i:])
		if len(e.bot) > 0 && off < e.bot[len(e.bot)-1] {
			e.bot = nil // offsets out of order: no frames to tell apart
			return
		}
		e.bot = append(e.bot, off)
	}
	for range e.bot {
		e.byBOT = append(e.byBOT, sha256.New())
	}
}

// fragment hashes one fragment's bytes from r; at is its item tag's offset
// from the first fragment's.
func (e *encapsulatedHasher) hashFragment(r io.Reader, n int64, at uint32) error {
	e.fragment.Reset()
	sinks := []io.Writer{e.whole, e.fragment}
	if e.bot != nil {
		// Fragments come in offset order and the table is sorted: the
		// frame only moves forward (a rescan per fragment was quadratic).
		for e.botFrame+1 < len(e.bot) && at >= e.bot[e.botFrame+1] {
			e.botFrame++
		}
		sinks = append(sinks, e.byBOT[e.botFrame])
	}
	if _, err := io.CopyN(io.MultiWriter(sinks...), r, n); err != nil {
		return err
	}
	if len(e.fragments) <= e.frames && len(e.fragments) < maxFrameDigests {
		var d [32]byte
		e.fragment.Sum(d[:0])
		e.fragments = append(e.fragments, d)
	} else {
		e.tooMany = true
	}
	return nil
}

func (e *encapsulatedHasher) result() *PixelResult {
	r := &PixelResult{Encoding: e.ts}
	e.whole.Sum(r.Whole[:0])
	switch {
	case e.frames == 1:
		r.Frames = [][32]byte{r.Whole}
	case e.bot != nil:
		for _, h := range e.byBOT {
			var d [32]byte
			h.Sum(d[:0])
			r.Frames = append(r.Frames, d)
		}
	case !e.tooMany && len(e.fragments) == e.frames:
		r.Frames = e.fragments
	}
	return r
}

// pixelDescription is the Image Pixel module, decoded.
type pixelDescription struct {
	samples, rows, columns, frames     int
	bitsAllocated, bitsStored, highBit int
}

func (w *walker) pixelDescription() pixelDescription {
	num := func(t tagID) int {
		v, ok := w.values[t]
		if !ok {
			return 0
		}
		vals := decode(v, t, w.bo, "")
		if len(vals) == 0 {
			return 0
		}
		f, err := strconv.ParseFloat(vals[0], 64)
		if err != nil {
			return 0
		}
		return int(f)
	}
	return pixelDescription{
		samples: num(0x00280002), rows: num(0x00280010), columns: num(0x00280011), frames: num(tagNumberOfFrames),
		bitsAllocated: num(0x00280100), bitsStored: num(0x00280101), highBit: num(0x00280102),
	}
}

// walkPixelData hashes top-level Pixel Data as it streams.
func (w *walker) walkPixelData(h header, explicit bool, limit int64) error {
	d := w.pixelDescription()
	if h.length == undefinedLength {
		if !explicit || (h.vr != "OB" && h.vr != "OW") {
			return fmt.Errorf("%w: Pixel Data at offset %d has undefined length outside an encapsulated transfer syntax", ErrMalformed, h.at)
		}
		return w.walkFragmentsHashed(limit, newEncapsulatedHasher(w.ts, d.frames))
	}
	if err := w.checkFits(h, int64(h.length), limit); err != nil {
		return err
	}
	nh := newNativeHasher(d, w.bo, h.vr, int64(h.length))
	n, err := io.CopyN(nh, w.r, int64(h.length))
	w.pos += n
	if err != nil {
		return w.truncated(h, err)
	}
	w.pixels = nh.result()
	return nil
}

// walkFragmentsHashed is walkFragments that also hashes: the first item is
// the Basic Offset Table, the rest are fragments.
func (w *walker) walkFragmentsHashed(limit int64, e *encapsulatedHasher) error {
	var first int64 = -1
	for i := 0; ; i++ {
		h, err := w.readItemHeader()
		if err != nil {
			return err
		}
		if h.tag == tagSeqDelimitation {
			w.pixels = e.result()
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
		if i == 0 {
			if h.length > 1<<20 {
				return fmt.Errorf("%w: Basic Offset Table of %d bytes", ErrMalformed, h.length)
			}
			bot := make([]byte, h.length)
			if err := w.read(bot, h); err != nil {
				return err
			}
			e.setBOT(bot)
			continue
		}
		if first < 0 {
			first = h.at
		}
		start := w.pos
		err = e.hashFragment(w.r, int64(h.length), uint32(h.at-first))
		w.pos = start + int64(h.length)
		if err != nil {
			return w.truncated(h, err)
		}
	}
}
