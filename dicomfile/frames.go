package dicomfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Frames of Pixel Data as stored, for WADO-RS frame retrieval: native
// frames are cut by the Image Pixel module, encapsulated ones follow the
// Basic (or Extended) Offset Table, or one fragment per frame. The pixels
// are never decoded here.

var (
	// ErrNoPixelData: the data set has no top-level Pixel Data (7FE0,0010).
	ErrNoPixelData = errors.New("no Pixel Data")
	// ErrNoSuchFrame: a frame number outside 1..Count.
	ErrNoSuchFrame = errors.New("no such frame")
	// ErrFramesNotSeparable: encapsulated Pixel Data whose frames cannot be
	// told apart (no usable offset table, fragments not one per frame).
	ErrFramesNotSeparable = errors.New("frames cannot be told apart")
)

// Frames locates the frames of a file's top-level Pixel Data.
type Frames struct {
	TransferSyntaxUID string
	Encapsulated      bool
	Count             int

	v *located
	// frameLen is a native frame's length in bytes; frameBits, when not 0,
	// the length in bits of bit-packed frames (Bits Allocated 1) that do
	// not end on a byte.
	frameLen, frameBits int64
	// frames are each encapsulated frame's fragments.
	frames [][]span
}

// Frames locates the frames of the file's top-level Pixel Data, within l.
// Errors: ErrNoPixelData; ErrFramesNotSeparable; ErrMalformed when the
// Image Pixel module does not describe the native Pixel Data present.
// Frame reads r, which must stay readable as long as frames are read.
func (l Limits) Frames(r io.ReaderAt, size int64) (*Frames, error) {
	v, err := l.locate(r, size, tagPixelData)
	switch {
	case errors.Is(err, ErrNoSuchElement):
		return nil, fmt.Errorf("%w: the data set has no top-level %s", ErrNoPixelData, tagPixelData)
	case err != nil:
		return nil, err
	case v.sequence:
		return nil, fmt.Errorf("%w: Pixel Data %s at offset %d is a sequence", ErrMalformed, tagPixelData, v.h.at)
	}
	d := (&walker{values: v.values, bo: v.bo}).pixelDescription()
	f := &Frames{TransferSyntaxUID: v.ts, Encapsulated: v.encapsulated, Count: max(d.frames, 1), v: v}
	if f.Encapsulated {
		return f, f.splitFragments()
	}
	photometric := strings.Trim(string(v.values[0x00280004].bytes), " \x00")
	return f, f.cutNative(d, photometric)
}

// cutNative checks that the Pixel Data holds Count frames as the Image
// Pixel module describes them.
func (f *Frames) cutNative(d pixelDescription, photometric string) error {
	if d.rows <= 0 || d.columns <= 0 || d.bitsAllocated <= 0 {
		return fmt.Errorf("%w: native Pixel Data without Rows, Columns and Bits Allocated cannot be cut into frames", ErrMalformed)
	}
	samples := int64(max(d.samples, 1))
	if strings.HasSuffix(photometric, "_422") {
		// Two samples per pixel: chrominance is shared by pixel pairs
		// (PS3.3 C.7.6.3.1.2).
		samples = 2
	}
	bits := int64(d.rows) * int64(d.columns) * samples * int64(d.bitsAllocated)
	length := f.v.end - f.v.start
	if int64(f.Count) > length*8/bits {
		return fmt.Errorf("%w: Pixel Data holds %d bytes, fewer than the %d frames of %d bits each that the Image Pixel module describes",
			ErrMalformed, length, f.Count, bits)
	}
	switch {
	case bits%8 == 0:
		f.frameLen = bits / 8
	case d.bitsAllocated == 1:
		f.frameBits, f.frameLen = bits, (bits+7)/8
	default:
		return fmt.Errorf("%w: Bits Allocated %d leaves frames that do not end on a byte", ErrMalformed, d.bitsAllocated)
	}
	return nil
}

// splitFragments assigns the fragments to frames (see Frame).
func (f *Frames) splitFragments() error {
	v := f.v
	if len(v.items) == 0 {
		return fmt.Errorf("%w: encapsulated Pixel Data at offset %d has no Basic Offset Table item", ErrMalformed, v.h.at)
	}
	bot, fragments := v.items[0], v.items[1:]
	if len(fragments) == 0 {
		return fmt.Errorf("%w: encapsulated Pixel Data at offset %d has no fragments", ErrMalformed, v.h.at)
	}
	var offsets []uint64
	switch {
	case bot.n > 0:
		if bot.n > 1<<20 || bot.n%4 != 0 {
			return fmt.Errorf("%w: Basic Offset Table of %d bytes", ErrMalformed, bot.n)
		}
		b := make([]byte, bot.n)
		if n, err := v.src.ReadAt(b, bot.off); n < len(b) {
			return fmt.Errorf("%w: reading the Basic Offset Table: %v", ErrMalformed, err)
		}
		for i := 0; i < len(b); i += 4 {
			offsets = append(offsets, uint64(binary.LittleEndian.Uint32(b[i:])))
		}
	default:
		if eot, ok := v.values[tagExtendedOffsetTable]; ok && len(eot.bytes)%8 == 0 {
			for i := 0; i < len(eot.bytes); i += 8 {
				offsets = append(offsets, binary.LittleEndian.Uint64(eot.bytes[i:]))
			}
		}
	}
	if frames := byOffsets(offsets, fragments); frames != nil && len(frames) == f.Count {
		f.frames = frames
		return nil
	}
	switch {
	case len(fragments) == f.Count:
		for _, s := range fragments {
			f.frames = append(f.frames, []span{s})
		}
	case f.Count == 1:
		f.frames = [][]span{fragments}
	default:
		return fmt.Errorf("%w: %d fragments for %d frames, and no offset table that separates them",
			ErrFramesNotSeparable, len(fragments), f.Count)
	}
	return nil
}

// byOffsets groups fragments by frame offsets (each the offset of a frame's
// first fragment's item from the first fragment's, PS3.5 A.4); nil when the
// offsets are not those of fragments, in order.
func byOffsets(offsets []uint64, fragments []span) [][]span {
	if len(offsets) == 0 || offsets[0] != 0 {
		return nil
	}
	var frames [][]span
	next := 0 // the next offset to meet
	for _, s := range fragments {
		at := uint64(s.at - fragments[0].at)
		if next < len(offsets) && at == offsets[next] {
			frames = append(frames, nil)
			next++
		} else if next < len(offsets) && at > offsets[next] {
			return nil // an offset between fragments, or out of order
		}
		frames[len(frames)-1] = append(frames[len(frames)-1], s)
	}
	if next != len(offsets) {
		return nil
	}
	return frames
}

// Frame returns frame n (1-based) and its length: for native data the
// frame's bytes (Rows × Columns × Samples per Pixel × Bits Allocated / 8,
// little endian as in Bulk Data, a big endian file's words swapped;
// bit-packed frames are shifted to begin on a byte, their last byte's
// unused bits zero), for encapsulated data the frame's fragments
// concatenated. The reader reads the file lazily; a deflated file's Pixel
// Data was inflated into memory by Frames.
func (f *Frames) Frame(n int) (io.Reader, int64, error) {
	if n < 1 || n > f.Count {
		return nil, 0, fmt.Errorf("%w: frame %d of %d", ErrNoSuchFrame, n, f.Count)
	}
	v := f.v
	if f.Encapsulated {
		var readers []io.Reader
		var total int64
		for _, s := range f.frames[n-1] {
			readers = append(readers, io.NewSectionReader(v.src, s.off, s.n))
			total += s.n
		}
		return io.MultiReader(readers...), total, nil
	}
	if f.frameBits == 0 {
		return v.reader(v.start+int64(n-1)*f.frameLen, f.frameLen), f.frameLen, nil
	}
	first := int64(n-1) * f.frameBits
	from, to := first/8, (first+f.frameBits+7)/8
	r := &bitShiftReader{r: v.reader(v.start+from, to-from), shift: uint(first % 8), left: f.frameLen,
		buf: make([]byte, min(f.frameLen, 32<<10))}
	if rest := f.frameBits % 8; rest != 0 {
		r.lastMask = byte(1<<rest) - 1
	}
	return r, f.frameLen, nil
}

// bitShiftReader yields left bytes of a bit stream that begins shift bits
// into r's first byte (least significant bit first, PS3.5 8.1.1).
type bitShiftReader struct {
	r        io.Reader
	shift    uint
	left     int64
	lastMask byte // the bits of the last byte that belong to the frame
	primed   bool
	prev     [1]byte
	buf      []byte
}

func (s *bitShiftReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if !s.primed {
		if _, err := io.ReadFull(s.r, s.prev[:]); err != nil {
			return 0, unexpectedEOF(err)
		}
		s.primed = true
	}
	n := int(min(int64(len(p)), s.left, int64(len(s.buf))))
	m, err := io.ReadFull(s.r, s.buf[:n])
	// The frame's last bits may end in the byte already read: only then
	// is there no next byte to take from.
	if err != nil && (m < n-1 || s.left > int64(n)) {
		return 0, unexpectedEOF(err)
	}
	clear(s.buf[m:n])
	for i := range n {
		next := s.buf[i]
		p[i] = s.prev[0]>>s.shift | next<<(8-s.shift)
		s.prev[0] = next
	}
	if s.left -= int64(n); s.left == 0 && s.lastMask != 0 {
		p[n-1] &= s.lastMask
	}
	return n, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
