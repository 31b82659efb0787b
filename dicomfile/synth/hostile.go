package synth

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// Hostile inputs: files that are small on the wire but costly to read
// (deflate and element bombs), and files whose identifiers are not UIDs.
// Each generator streams to an io.Writer and returns the bytes written; none
// holds more than a few MiB, whatever size it is asked for.

const (
	deflatedLE = "1.2.840.10008.1.2.1.99"
	// hostileCreator is the private creator of the generators' private
	// elements.
	hostileCreator = "DICOMSEAL HOSTILE"
)

// UIDs are the four identifiers a generated file carries in its data set.
// They are written byte for byte (plus one NUL when odd, the padding PS3.5
// gives UI values), so they may hold anything.
type UIDs struct {
	SOPClass, SOPInstance, Study, Series string
}

// ValidUIDs returns well-formed identifiers derived from sopInstance
// (itself a valid UID): Secondary Capture, and .1/.2 for study and series.
func ValidUIDs(sopInstance string) UIDs {
	return UIDs{SOPClass: secondaryCapture, SOPInstance: sopInstance, Study: sopInstance + ".1", Series: sopInstance + ".2"}
}

// hostileUIDs are the identifiers of the bombs: valid, so that only their
// size is hostile.
var hostileUIDs = ValidUIDs("1.2.826.0.1.3680043.10.99.666")

// counter passes writes through to w, counting bytes and keeping the first
// error, so that generators can write without checking every call.
type counter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *counter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// head returns the preamble, the DICM magic word and the File Meta group
// (explicit VR little endian, with its group length) for transfer syntax ts,
// naming the data set's SOP Class and Instance (u). Meta UIDs are always
// valid: where u's are not, the bombs' stand in, so that a test of the data
// set's identifiers is not refused for the meta group's.
func head(ts string, u UIDs) []byte {
	if !plainUID(u.SOPClass) {
		u.SOPClass = hostileUIDs.SOPClass
	}
	if !plainUID(u.SOPInstance) {
		u.SOPInstance = hostileUIDs.SOPInstance
	}
	var meta bytes.Buffer
	element(&meta, 0x0002, 0x0001, "OB", []byte{0, 1})
	element(&meta, 0x0002, 0x0002, "UI", pad(u.SOPClass, "UI"))
	element(&meta, 0x0002, 0x0003, "UI", pad(u.SOPInstance, "UI"))
	element(&meta, 0x0002, 0x0010, "UI", pad(ts, "UI"))
	element(&meta, 0x0002, 0x0012, "UI", pad("1.2.826.0.1.3680043.10.1", "UI"))
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	element(&b, 0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(meta.Len())))
	b.Write(meta.Bytes())
	return b.Bytes()
}

// plainUID reports whether s is 1 to 64 digits and dots, without checking
// components: enough to choose the meta group's UIDs.
func plainUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// identifiers appends the data set's leading elements: the UIDs (as given,
// NUL-padded to even length), Modality and the patient, in tag order. Elements of groups
// 0x0021 and above may follow.
func identifiers(ds *bytes.Buffer, u UIDs) {
	element(ds, 0x0008, 0x0016, "UI", pad(u.SOPClass, "UI"))
	element(ds, 0x0008, 0x0018, "UI", pad(u.SOPInstance, "UI"))
	element(ds, 0x0008, 0x0060, "CS", pad("OT", "CS"))
	element(ds, 0x0010, 0x0010, "PN", pad("Hostile^Input", "PN"))
	element(ds, 0x0010, 0x0020, "LO", pad("HOSTILE-0001", "LO"))
	element(ds, 0x0020, 0x000D, "UI", pad(u.Study, "UI"))
	element(ds, 0x0020, 0x000E, "UI", pad(u.Series, "UI"))
}

// WithUIDs writes a small explicit VR little endian file (no pixels) whose
// SOP Class, SOP Instance, Study Instance and Series Instance UIDs are the
// bytes of u exactly, plus one NUL when a value's length is odd: a value
// is never refused for its length's parity, only for what it holds. For
// identifier validation tests: start from ValidUIDs and replace one field.
func WithUIDs(w io.Writer, u UIDs) (int64, error) {
	var b bytes.Buffer
	b.Write(head(explicitLE, u))
	identifiers(&b, u)
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

// DeflateBomb writes a Deflated Explicit VR Little Endian file (transfer
// syntax 1.2.840.10008.1.2.1.99: explicit VR little endian File Meta, then
// the data set as raw DEFLATE, RFC 1951) whose data set inflates to about
// inflated bytes: valid identifiers, then one private OB element
// (0029,1010) of defined length full of zeros. Zeros deflate about 1000:1,
// so a 1 GB bomb is a file of about 1 MiB.
func DeflateBomb(w io.Writer, inflated int64) (int64, error) {
	var ds bytes.Buffer
	identifiers(&ds, hostileUIDs)
	element(&ds, 0x0029, 0x0010, "LO", pad(hostileCreator, "LO"))
	value := (inflated - int64(ds.Len()) - 12) &^ 1
	value = max(0, min(value, 0xFFFFFFFE))
	binary.Write(&ds, binary.LittleEndian, [2]uint16{0x0029, 0x1010})
	ds.WriteString("OB\x00\x00")
	binary.Write(&ds, binary.LittleEndian, uint32(value))
	return deflated(w, ds.Bytes(), value)
}

// Zeros writes explicit VR little endian File Meta followed by n zero
// bytes. Each 8 zero bytes read as one empty element (0000,0000) with VR
// "\0\0" and a 2-byte length of 0, so 64 MiB is 8 Mi elements; n should be
// a multiple of 8.
func Zeros(w io.Writer, n int64) (int64, error) {
	c := &counter{w: w}
	c.Write(head(explicitLE, hostileUIDs))
	zero := make([]byte, 64<<10)
	for left := n; left > 0 && c.err == nil; {
		k := min(left, int64(len(zero)))
		c.Write(zero[:k])
		left -= k
	}
	return c.n, c.err
}

// DeflatedZeros is Zeros in Deflated Explicit VR Little Endian: the data
// set is n zero bytes (n/8 empty elements) once inflated, about n/1000 on
// the wire.
func DeflatedZeros(w io.Writer, n int64) (int64, error) {
	return deflated(w, nil, n)
}

// ManyElements writes a valid explicit VR little endian file: valid
// identifiers, then n tiny private elements of 10 bytes each (LO "X "), so
// that 1,000,000 elements make about 10 MB. They fill odd groups from
// 0x0021 up, each with up to 240 private creators (gggg,0010-00FF) and the
// 256 elements each reserves (gggg,1000-FFFF), in ascending tag order.
func ManyElements(w io.Writer, n int) (int64, error) {
	c := &counter{w: w}
	var b bytes.Buffer
	b.Write(head(explicitLE, hostileUIDs))
	identifiers(&b, hostileUIDs)
	x := []byte("X ")
	for left, group := n, uint16(0x0021); left > 0 && c.err == nil; group += 2 {
		// creators+data ≤ left, data ≤ 256 per creator, ≤ 240 creators.
		creators := min(240, (left+256)/257)
		data := min(left-creators, 256*creators)
		for i := 0; i < creators; i++ {
			element(&b, group, uint16(0x0010+i), "LO", x)
		}
		for i := 0; i < data; i++ {
			element(&b, group, uint16(0x1000+i), "LO", x)
			if b.Len() >= 1<<20 {
				c.Write(b.Bytes())
				b.Reset()
			}
		}
		left -= creators + data
	}
	c.Write(b.Bytes())
	return c.n, c.err
}

// deflated writes File Meta for the deflated transfer syntax, then prefix
// followed by zeros zero bytes, deflated.
func deflated(w io.Writer, prefix []byte, zeros int64) (int64, error) {
	c := &counter{w: w}
	c.Write(head(deflatedLE, hostileUIDs))
	fw, _ := flate.NewWriter(c, flate.BestCompression)
	fw.Write(prefix)
	deflateZeros(fw, c, zeros)
	fw.Close()
	return c.n, c.err
}

// zeroUnit is the size of the precompressed run of zeros deflateZeros
// repeats.
const zeroUnit = 4 << 20

// zeroBlocks is zeroUnit zero bytes deflated at best compression after at
// least 32 KiB of zeros, ending on a flush: byte-aligned, non-final blocks
// that refer back only to zeros.
var zeroBlocks = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	writeZeros(fw, 64<<10)
	fw.Flush()
	mark := b.Len()
	writeZeros(fw, zeroUnit)
	fw.Flush()
	return bytes.Clone(b.Bytes()[mark:])
})

// deflateZeros writes n zero bytes into the deflate stream fw, whose output
// goes to out. Rather than compress gigabytes of zeros, it compresses 64 KiB
// through fw, flushes (which byte-aligns the stream), then copies
// zeroBlocks to out for every whole zeroUnit: a deflate block refers back at
// most 32 KiB, and whatever precedes a copy is zeros, so each copy inflates
// to zeroUnit zeros. fw, whose own window also holds only zeros by then,
// compresses the rest.
func deflateZeros(fw *flate.Writer, out io.Writer, n int64) {
	lead := min(n, 64<<10)
	writeZeros(fw, lead)
	n -= lead
	if n >= zeroUnit {
		fw.Flush()
		blocks := zeroBlocks()
		for ; n >= zeroUnit; n -= zeroUnit {
			out.Write(blocks)
		}
	}
	writeZeros(fw, n)
}

func writeZeros(w io.Writer, n int64) {
	zero := make([]byte, min(n, 64<<10))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := w.Write(zero[:k]); err != nil {
			return
		}
		n -= k
	}
}

// FragmentBomb writes an encapsulated (JPEG baseline) file whose Pixel Data
// holds a Basic Offset Table for frames frames and then n empty fragments:
// a few bytes each, so a small file carries a great many items.
func FragmentBomb(w io.Writer, frames, n int) (int64, error) {
	var b bytes.Buffer
	b.Write(head("1.2.840.10008.1.2.4.50", hostileUIDs))
	identifiers(&b, hostileUIDs)
	element(&b, 0x0028, 0x0008, "IS", pad(fmt.Sprint(frames), "IS"))
	b.Write([]byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	item := func(length int) {
		b.Write([]byte{0xFE, 0xFF, 0x00, 0xE0})
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(length)))
	}
	item(4 * frames)
	b.Write(make([]byte, 4*frames)) // every frame at offset 0: sorted, and all fragments in the last
	for range n {
		item(0)
	}
	b.Write([]byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	m, err := w.Write(b.Bytes())
	return int64(m), err
}
