package dicomfile_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

func frames(t *testing.T, data []byte) *dicomfile.Frames {
	t.Helper()
	f, err := dicomfile.DefaultLimits.Frames(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Frames: %v", err)
	}
	return f
}

// frame reads frame n whole, and checks the length Frame announced.
func frame(t *testing.T, f *dicomfile.Frames, n int) []byte {
	t.Helper()
	r, size, err := f.Frame(n)
	if err != nil {
		t.Fatalf("Frame(%d): %v", n, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading frame %d: %v", n, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("frame %d: read %d bytes, Frame said %d", n, len(b), size)
	}
	return b
}

func bulkData(t *testing.T, data []byte, tag uint32) []byte {
	t.Helper()
	r, size, err := dicomfile.DefaultLimits.BulkData(bytes.NewReader(data), int64(len(data)), tag)
	if err != nil {
		t.Fatalf("BulkData(%08X): %v", tag, err)
	}
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("BulkData(%08X): read %d bytes (%v), announced %d", tag, len(b), err, size)
	}
	return b
}

// dcmtk finds a dcmtk tool, skipping the test without it.
func dcmtk(t *testing.T, tool string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must cross-check with dcmtk (scripts/dcmtk.sh installs it): %v", err)
		}
		t.Skipf("%s is not installed; scripts/dcmtk.sh installs dcmtk", tool)
	}
	return bin
}

// numberOfFrames is the top-level Number of Frames as dcmdump reads it (1
// when absent or not a number), and whether the file gives a number.
func numberOfFrames(t *testing.T, path string) (int, bool) {
	t.Helper()
	out, err := exec.Command(dcmtk(t, "dcmdump"), "-q", "+P", "0028,0008", path).Output()
	if err != nil {
		t.Fatalf("dcmdump: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "(0028,0008)") { // top level: not indented
			if i, j := strings.Index(line, "["), strings.Index(line, "]"); i >= 0 && j > i {
				n, err := strconv.Atoi(strings.TrimSpace(line[i+1 : j]))
				if err == nil {
					return n, true
				}
				return 1, false
			}
		}
	}
	return 1, true
}

// TestNativeFrames cuts every native real file into frames and holds them
// to dcmtk: as many frames as dcmdump's Number of Frames, and all of them
// together the Pixel Data dcm2json gives (little endian, so big endian
// files are checked to be swapped), which BulkData must give as well.
func TestNativeFrames(t *testing.T) {
	dcmtk(t, "dcm2json")
	seen := 0
	for _, file := range realFiles(t, true) {
		t.Run(file.name, func(t *testing.T) {
			data := readFile(t, file.path)
			f, err := dicomfile.DefaultLimits.Frames(bytes.NewReader(data), int64(len(data)))
			if errors.Is(err, dicomfile.ErrNoPixelData) {
				t.Skip("no Pixel Data")
			}
			if err != nil {
				t.Fatalf("Frames: %v", err)
			}
			if f.Encapsulated {
				t.Skip("encapsulated (TestEncapsulatedFrames)")
			}
			seen++
			count, valid := numberOfFrames(t, file.path)
			if f.Count != count {
				t.Fatalf("Count %d, dcmdump's Number of Frames %d", f.Count, count)
			}
			theirs, _ := dcm2json(t, file.path)
			inline, _ := theirs["7FE00010"].(map[string]any)["InlineBinary"].(string)
			want, err := base64.StdEncoding.DecodeString(inline)
			if err != nil || len(want) == 0 {
				t.Fatalf("dcm2json has no Pixel Data: %v", err)
			}
			var all []byte
			for n := 1; n <= f.Count; n++ {
				all = append(all, frame(t, f, n)...)
			}
			if !bytes.HasPrefix(want, all) {
				t.Fatalf("frames hold %d bytes, differing from the %d of dcm2json's Pixel Data", len(all), len(want))
			}
			// What is left over is padding, less than a frame, unless
			// Number of Frames is no number (badVR.dcm's is "1A").
			if left := len(want) - len(all); left >= len(all)/f.Count && valid {
				t.Fatalf("frames hold %d bytes, %d less than dcm2json's Pixel Data", len(all), left)
			}
			// dcmtk pads an odd length value as it reads it.
			if got := bulkData(t, data, 0x7FE00010); !bytes.HasPrefix(want, got) || len(want)-len(got) > 1 {
				t.Fatalf("BulkData holds %d bytes, differing from the %d of dcm2json's Pixel Data", len(got), len(want))
			}
		})
	}
	if seen == 0 {
		t.Fatal("no native file")
	}
}

// TestEncapsulatedFrames splits every encapsulated real file into frames
// and holds them to the items dcmdump +W writes out: one fragment per
// frame, or grouped by the Basic Offset Table, or all of them for a single
// frame; an RLE frame must begin with an RLE header (PS3.5 G.3.1).
func TestEncapsulatedFrames(t *testing.T) {
	dcmdump := dcmtk(t, "dcmdump")
	multi := 0
	for _, file := range realFiles(t, true) {
		t.Run(file.name, func(t *testing.T) {
			data := readFile(t, file.path)
			f, err := dicomfile.DefaultLimits.Frames(bytes.NewReader(data), int64(len(data)))
			if errors.Is(err, dicomfile.ErrNoPixelData) {
				t.Skip("no Pixel Data")
			}
			if err != nil {
				t.Fatalf("Frames: %v", err)
			}
			if !f.Encapsulated {
				t.Skip("native (TestNativeFrames)")
			}
			if want, _ := numberOfFrames(t, file.path); f.Count != want {
				t.Fatalf("Count %d, dcmdump's Number of Frames %d", f.Count, want)
			}
			if f.Count > 1 {
				multi++
			}
			items := dcmdumpItems(t, dcmdump, file.path)
			want := expectedFrames(t, items, f.Count)
			for n := 1; n <= f.Count; n++ {
				got := frame(t, f, n)
				if !bytes.Equal(got, want[n-1]) {
					t.Errorf("frame %d: %d bytes, differing from the %d dcmdump's items give", n, len(got), len(want[n-1]))
				}
				if f.TransferSyntaxUID == "1.2.840.10008.1.2.5" {
					checkRLEHeader(t, n, got)
				}
			}
			// BulkData gives the item sequence as stored.
			seq := bulkData(t, data, 0x7FE00010)
			if i := bytes.Index(data, seq); i < 0 || !bytes.HasPrefix(seq, []byte{0xFE, 0xFF, 0x00, 0xE0}) ||
				!bytes.HasSuffix(seq, []byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}) {
				t.Errorf("BulkData of encapsulated Pixel Data is not its item sequence as stored")
			}
		})
	}
	if os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR") != "" && multi == 0 {
		t.Fatal("no multi-frame encapsulated file in the corpus")
	}
}

// dcmdumpItems are the top-level Pixel Data's items, Basic Offset Table
// first, as dcmdump +W writes them.
func dcmdumpItems(t *testing.T, dcmdump, path string) [][]byte {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command(dcmdump, "-q", "+L", "+W", dir, path).Output()
	if err != nil {
		t.Fatalf("dcmdump +W: %v", err)
	}
	// The top-level Pixel Data's items are those that follow its line.
	var items [][]byte
	in := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "(7fe0,0010)"):
			in = true
		case in && strings.HasPrefix(line, "  (fffe,e000) pi ="):
			name := strings.Fields(strings.TrimPrefix(line, "  (fffe,e000) pi ="))[0]
			if !strings.HasPrefix(name, dir) {
				t.Fatalf("dcmdump names an item file %q outside %s", name, dir)
			}
			items = append(items, readFile(t, name))
		case in:
			in = false
		}
	}
	if len(items) < 2 {
		t.Fatalf("dcmdump +W wrote %d items of Pixel Data", len(items))
	}
	return items
}

// expectedFrames groups the fragments into frames as PS3.5 A.4 does.
func expectedFrames(t *testing.T, items [][]byte, count int) [][]byte {
	t.Helper()
	bot, fragments := items[0], items[1:]
	switch {
	case count == 1:
		return [][]byte{bytes.Join(fragments, nil)}
	case len(bot) == 4*count:
		frames := make([][]byte, count)
		var at uint32 // offset of the fragment's item from the first's
		k := 0
		for _, frag := range fragments {
			for k+1 < count && at >= binary.LittleEndian.Uint32(bot[4*(k+1):]) {
				k++
			}
			frames[k] = append(frames[k], frag...)
			at += 8 + uint32(len(frag))
		}
		return frames
	case len(fragments) == count:
		return fragments
	}
	t.Fatalf("%d fragments for %d frames and no Basic Offset Table", len(fragments), count)
	return nil
}

// checkRLEHeader checks an RLE frame's 64-byte header: the number of
// segments (1 to 15), the first segment right after the header, offsets
// in order and within the frame.
func checkRLEHeader(t *testing.T, n int, frame []byte) {
	t.Helper()
	if len(frame) < 64 {
		t.Fatalf("frame %d: %d bytes, shorter than an RLE header", n, len(frame))
	}
	segments := binary.LittleEndian.Uint32(frame)
	if segments < 1 || segments > 15 || binary.LittleEndian.Uint32(frame[4:]) != 64 {
		t.Fatalf("frame %d: RLE header says %d segments, the first at %d", n, segments, binary.LittleEndian.Uint32(frame[4:]))
	}
	for i := uint32(1); i < segments; i++ {
		prev, off := binary.LittleEndian.Uint32(frame[4*i:]), binary.LittleEndian.Uint32(frame[4*(i+1):])
		if off < prev || off > uint32(len(frame)) {
			t.Fatalf("frame %d: RLE segment %d at %d (previous at %d, frame of %d bytes)", n, i+1, off, prev, len(frame))
		}
	}
}

// The same image in both byte orders has the same frames: Frame gives a
// big endian file's words little endian. (Not rtdose_expb.dcm: its 32-bit
// samples are swapped by 4 bytes, while OW is 16-bit words whatever Bits
// Allocated says, as dcmtk and the pixel digest read it.)
func TestFramesAcrossByteOrders(t *testing.T) {
	dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR")
	if dir == "" {
		t.Skip("DICOMSEAL_TEST_PYDICOM_DIR is not set; export DICOMSEAL_TEST_PYDICOM_DIR=$(scripts/pydicom-corpus.sh)")
	}
	for _, tt := range []struct{ little, big string }{
		{"MR_small.dcm", "MR_small_bigendian.dcm"},
		{"MR_small.dcm", "MR_small_expb.dcm"},
		{"liver_1frame.dcm", "liver_expb_1frame.dcm"},
	} {
		t.Run(tt.big, func(t *testing.T) {
			le, be := frames(t, readFile(t, filepath.Join(dir, tt.little))), frames(t, readFile(t, filepath.Join(dir, tt.big)))
			if le.Count != be.Count || be.TransferSyntaxUID != "1.2.840.10008.1.2.2" {
				t.Fatalf("%d frames (%s), big endian %d (%s)", le.Count, le.TransferSyntaxUID, be.Count, be.TransferSyntaxUID)
			}
			for n := 1; n <= le.Count; n++ {
				if !bytes.Equal(frame(t, le, n), frame(t, be, n)) {
					t.Fatalf("frame %d differs", n)
				}
			}
		})
	}
}

// TestFrameNumbers: frames are numbered from 1 to Count, no further.
func TestFrameNumbers(t *testing.T) {
	native := frames(t, synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.10", Rows: 3, Columns: 5, Frames: 4}))
	encapsulated := frames(t, generated(t, func(w io.Writer) (int64, error) { return synth.FragmentBomb(w, 1, 3) }))
	for _, tt := range []struct {
		name string
		f    *dicomfile.Frames
		n    int
		want error
	}{
		{"native first", native, 1, nil},
		{"native last", native, 4, nil},
		{"native zero", native, 0, dicomfile.ErrNoSuchFrame},
		{"native negative", native, -1, dicomfile.ErrNoSuchFrame},
		{"native past the last", native, 5, dicomfile.ErrNoSuchFrame},
		{"encapsulated only", encapsulated, 1, nil},
		{"encapsulated past it", encapsulated, 2, dicomfile.ErrNoSuchFrame},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.f.Frame(tt.n)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Frame(%d) = %v, want %v", tt.n, err, tt.want)
			}
		})
	}
}

// Synthetic frames whose content is known: native 16-bit frames pixel by
// pixel, and bit-packed ones (Bits Allocated 1) whose frames do not start
// on a byte.
func TestSyntheticFrames(t *testing.T) {
	fill := func(frame, i int) uint16 { return uint16(frame*1000 + i) }
	f := frames(t, synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.11", Rows: 3, Columns: 5, Frames: 4, Fill: fill}))
	if f.Count != 4 || f.Encapsulated {
		t.Fatalf("Count %d, Encapsulated %v", f.Count, f.Encapsulated)
	}
	for n := 1; n <= 4; n++ {
		got := frame(t, f, n)
		for i := range 15 {
			if v := binary.LittleEndian.Uint16(got[2*i:]); v != fill(n-1, i) {
				t.Fatalf("frame %d pixel %d = %d, want %d", n, i, v, fill(n-1, i))
			}
		}
	}

	for _, tt := range []struct{ rows, columns, frames int }{
		{3, 3, 5}, // 9 bits a frame: frames start mid-byte
		{4, 4, 3}, // 16 bits: on bytes
		{1, 7, 9},
	} {
		t.Run(fmt.Sprintf("1-bit %dx%dx%d", tt.rows, tt.columns, tt.frames), func(t *testing.T) {
			bits := tt.rows * tt.columns
			pixel := func(frame, i int) bool { return (frame*7+i*3)%5 < 2 }
			packed := make([]byte, (bits*tt.frames+7)/8)
			for k := range tt.frames {
				for i := range bits {
					if pixel(k, i) {
						b := k*bits + i
						packed[b/8] |= 1 << (b % 8)
					}
				}
			}
			f := frames(t, bitPacked(tt.rows, tt.columns, tt.frames, packed))
			for n := 1; n <= tt.frames; n++ {
				got := frame(t, f, n)
				if len(got) != (bits+7)/8 {
					t.Fatalf("frame %d: %d bytes, want %d", n, len(got), (bits+7)/8)
				}
				for i := range len(got) * 8 {
					set := got[i/8]&(1<<(i%8)) != 0
					if want := i < bits && pixel(n-1, i); set != want {
						t.Fatalf("frame %d bit %d = %v, want %v", n, i, set, want)
					}
				}
			}
		})
	}
}

// Encapsulated frames are grouped by the Basic Offset Table, else by the
// Extended Offset Table, else one fragment per frame, else (one frame) all
// fragments; deflated files the same.
func TestSyntheticEncapsulatedFrames(t *testing.T) {
	frags := [][]byte{[]byte("a1"), []byte("a2a2"), []byte("b1"), []byte("c1c1c1"), []byte("c2")}
	// Offsets of each fragment's item from the first's.
	at := func(i int) uint32 {
		var n uint32
		for _, f := range frags[:i] {
			n += 8 + uint32(len(f))
		}
		return n
	}
	grouped := [][]byte{[]byte("a1a2a2"), []byte("b1"), []byte("c1c1c1c2")}
	for _, tt := range []struct {
		name   string
		ts     string
		frames int
		bot    []uint32
		eot    []uint64
		frags  [][]byte
		want   [][]byte
	}{
		{"Basic Offset Table", jpeg, 3, []uint32{0, at(2), at(3)}, nil, frags, grouped},
		{"deflated, Basic Offset Table", deflatedTS, 3, []uint32{0, at(2), at(3)}, nil, frags, grouped},
		{"Extended Offset Table", jpeg, 3, nil, []uint64{0, uint64(at(2)), uint64(at(3))}, frags, grouped},
		{"a table that does not match, one fragment a frame", jpeg, 5, []uint32{0, 1, 2, 3, 4}, nil, frags, frags},
		{"no table, one fragment a frame", jpeg, 5, nil, nil, frags, frags},
		{"deflated, one fragment a frame", deflatedTS, 5, nil, nil, frags, frags},
		{"one frame of all fragments", jpeg, 1, nil, nil, frags, [][]byte{bytes.Join(frags, nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := encapsulatedFile(tt.ts, tt.frames, tt.bot, tt.eot, tt.frags)
			if _, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("the synthetic file is refused: %v", err)
			}
			f := frames(t, data)
			if !f.Encapsulated || f.Count != len(tt.want) || f.TransferSyntaxUID != tt.ts {
				t.Fatalf("Encapsulated %v, Count %d (%s), want %d frames", f.Encapsulated, f.Count, f.TransferSyntaxUID, len(tt.want))
			}
			for n := 1; n <= f.Count; n++ {
				if got := frame(t, f, n); !bytes.Equal(got, tt.want[n-1]) {
					t.Errorf("frame %d = %q, want %q", n, got, tt.want[n-1])
				}
			}
			seq := bulkData(t, data, 0x7FE00010)
			if want := itemSequence(tt.bot, tt.frags); !bytes.Equal(seq, want) {
				t.Errorf("BulkData = %x, want the item sequence %x", seq, want)
			}
		})
	}
}

// encapsulatedFile is a file of encapsulated Pixel Data.
func encapsulatedFile(ts string, frames int, bot []uint32, eot []uint64, frags [][]byte) []byte {
	elems := []elem{{tag: 0x00080016, vr: "UI", value: uid("1.2.840.10008.5.1.4.1.1.7")},
		{tag: 0x00080018, vr: "UI", value: uid("1.2.826.0.1.3680043.10.99.15")},
		{tag: 0x00280008, vr: "IS", value: text(strconv.Itoa(frames))}}
	if eot != nil {
		var table, lengths []byte
		for i, off := range eot {
			table = binary.LittleEndian.AppendUint64(table, off)
			lengths = binary.LittleEndian.AppendUint64(lengths, uint64(i)) // not read
		}
		elems = append(elems, elem{tag: 0x7FE00001, vr: "OV", value: table}, elem{tag: 0x7FE00002, vr: "OV", value: lengths})
	}
	elems = append(elems, elem{tag: 0x7FE00010, vr: "OB", value: itemSequence(bot, frags), undefined: true})
	return part10(ts, elems...)
}

// itemSequence is encapsulated Pixel Data's value: the Basic Offset Table
// item, the fragments' items, the Sequence Delimitation Item.
func itemSequence(bot []uint32, frags [][]byte) []byte {
	var b []byte
	item := func(v []byte) {
		b = append(b, 0xFE, 0xFF, 0x00, 0xE0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	var table []byte
	for _, off := range bot {
		table = binary.LittleEndian.AppendUint32(table, off)
	}
	item(table)
	for _, f := range frags {
		item(f)
	}
	return append(b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
}

// Files whose frames cannot be served say why.
func TestFramesRefused(t *testing.T) {
	var noPixels bytes.Buffer
	synth.WithUIDs(&noPixels, synth.ValidUIDs("1.2.826.0.1.3680043.10.99.12"))
	short := synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.13", Rows: 4, Columns: 4, Frames: 2})
	// Claim a third frame the Pixel Data does not hold.
	i := bytes.Index(short, []byte("IS\x02\x002 "))
	if i < 0 {
		t.Fatal("no Number of Frames in the synthetic file")
	}
	short[i+4] = '3'
	for _, tt := range []struct {
		name string
		data []byte
		want error
	}{
		{"no Pixel Data", noPixels.Bytes(), dicomfile.ErrNoPixelData},
		{"fragments are not frames", generated(t, func(w io.Writer) (int64, error) { return synth.FragmentBomb(w, 16, 500) }),
			dicomfile.ErrFramesNotSeparable},
		{"fewer bytes than frames", short, dicomfile.ErrMalformed},
		{"not DICOM", []byte("not DICOM"), dicomfile.ErrNotDICOM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dicomfile.DefaultLimits.Frames(bytes.NewReader(tt.data), int64(len(tt.data)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Frames = %v, want %v", err, tt.want)
			}
		})
	}
}

// BulkData gives a top-level value, or says there is none.
func TestBulkData(t *testing.T) {
	ct := readFile(t, filepath.Join("..", "testdata", "dicom", "pydicom-CT_small.dcm"))
	for _, tt := range []struct {
		name string
		tag  uint32
		want string // a substring of the value, or of the error
		err  error
	}{
		{"text value", 0x00080060, "CT", nil},
		{"private binary value", 0x00431029, "\x00\x00\x00\x01", nil},
		{"absent", 0x00091234, "(0009,1234)", dicomfile.ErrNoSuchElement},
		{"a sequence", 0x00101002, "sequence", dicomfile.ErrNoSuchElement},
		{"only nested", 0x00100022, "(0010,0022)", dicomfile.ErrNoSuchElement}, // in (0010,1002)
		{"File Meta", 0x00020010, "", dicomfile.ErrNoSuchElement},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := dicomfile.DefaultLimits.BulkData(bytes.NewReader(ct), int64(len(ct)), tt.tag)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("BulkData = %v, want %v saying %q", err, tt.err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			if int64(len(b)) != n || !strings.Contains(string(b), tt.want) {
				t.Fatalf("BulkData = %q (%d bytes announced), want it to hold %q", b, n, tt.want)
			}
		})
	}
}

func generated(t *testing.T, gen func(io.Writer) (int64, error)) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := gen(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bitPacked is an explicit VR little endian file of 1-bit frames.
func bitPacked(rows, columns, frames int, pixels []byte) []byte {
	us := func(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }
	if len(pixels)%2 == 1 {
		pixels = append(pixels, 0)
	}
	return part10("1.2.840.10008.1.2.1",
		elem{tag: 0x00080016, vr: "UI", value: uid("1.2.840.10008.5.1.4.1.1.7")},
		elem{tag: 0x00080018, vr: "UI", value: uid("1.2.826.0.1.3680043.10.99.14")},
		elem{tag: 0x00280002, vr: "US", value: us(1)}, elem{tag: 0x00280004, vr: "CS", value: text("MONOCHROME2")},
		elem{tag: 0x00280008, vr: "IS", value: text(strconv.Itoa(frames))}, elem{tag: 0x00280010, vr: "US", value: us(rows)},
		elem{tag: 0x00280011, vr: "US", value: us(columns)}, elem{tag: 0x00280100, vr: "US", value: us(1)},
		elem{tag: 0x00280101, vr: "US", value: us(1)}, elem{tag: 0x00280102, vr: "US", value: us(0)},
		elem{tag: 0x00280103, vr: "US", value: us(0)}, elem{tag: 0x7FE00010, vr: "OB", value: pixels})
}
