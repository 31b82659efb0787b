package synth

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// split checks the preamble, magic word and File Meta group of a generated
// file and returns its transfer syntax and the data set's bytes.
func split(t *testing.T, data []byte) (string, []byte) {
	t.Helper()
	if len(data) < 144 || string(data[128:132]) != "DICM" {
		t.Fatalf("no DICM at offset 128")
	}
	if binary.LittleEndian.Uint32(data[132:]) != 0x00000002 || string(data[136:138]) != "UL" {
		t.Fatalf("no File Meta group length at offset 132")
	}
	end := 144 + int(binary.LittleEndian.Uint32(data[140:]))
	var ts string
	for _, e := range elements(t, data[144:end]) {
		if e.tag>>16 != 0x0002 {
			t.Fatalf("element %08X in the File Meta group", e.tag)
		}
		if e.tag == 0x00020010 {
			ts = string(bytes.TrimRight(e.value, "\x00"))
		}
	}
	return ts, data[end:]
}

type elem struct {
	tag   uint32
	vr    string
	value []byte
}

// elements decodes explicit VR little endian elements (no sequences) and
// fails unless they fill b exactly.
func elements(t *testing.T, b []byte) []elem {
	t.Helper()
	var out []elem
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("%d bytes left after %d elements", len(b), len(out))
		}
		e := elem{tag: uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:])), vr: string(b[4:6])}
		n, hdr := int(binary.LittleEndian.Uint16(b[6:])), 8
		if longVR[e.vr] {
			n, hdr = int(binary.LittleEndian.Uint32(b[8:])), 12
		}
		if hdr+n > len(b) {
			t.Fatalf("element %08X declares %d bytes, %d left", e.tag, n, len(b)-hdr)
		}
		e.value = b[hdr : hdr+n]
		out = append(out, e)
		b = b[hdr+n:]
	}
	return out
}

func ascending(t *testing.T, es []elem) {
	t.Helper()
	for i := 1; i < len(es); i++ {
		if es[i].tag <= es[i-1].tag {
			t.Fatalf("element %d (%08X) does not follow %08X", i, es[i].tag, es[i-1].tag)
		}
	}
}

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// dcmdump has dcmtk, an independent parser, read the file when installed.
func dcmdump(t *testing.T, data []byte) {
	t.Helper()
	bin, err := exec.LookPath("dcmdump")
	if err != nil {
		return
	}
	p := filepath.Join(t.TempDir(), "hostile.dcm")
	os.WriteFile(p, data, 0o644)
	if out, err := exec.Command(bin, "-q", p).CombinedOutput(); err != nil {
		t.Fatalf("dcmdump rejects the file: %v\n%.2000s", err, out)
	}
}

func generate(t *testing.T, gen func(io.Writer) (int64, error)) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := gen(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("wrote %d (buffer %d): %v", n, b.Len(), err)
	}
	return b.Bytes()
}

func TestDeflateBomb(t *testing.T) {
	const size = 64<<20 + 6
	data := generate(t, func(w io.Writer) (int64, error) { return DeflateBomb(w, size) })
	ts, ds := split(t, data)
	if ts != deflatedLE {
		t.Fatalf("transfer syntax %q", ts)
	}
	if len(data) > size/800 {
		t.Fatalf("%d bytes inflate to %d: not a bomb", len(data), size)
	}
	plain := inflate(t, ds)
	if len(plain) != size {
		t.Fatalf("inflates to %d bytes, want %d", len(plain), size)
	}
	es := elements(t, plain)
	ascending(t, es)
	last := es[len(es)-1]
	if last.tag != 0x00291010 || last.vr != "OB" || len(last.value) < size-1024 || bytes.ContainsFunc(last.value, func(r rune) bool { return r != 0 }) {
		t.Fatalf("last element %08X %s of %d bytes, want a zero-filled OB of about %d", last.tag, last.vr, len(last.value), size)
	}
	// Re-encoded as explicit VR little endian, the library parser reads
	// the identifiers.
	inst, err := dicomfile.Parse(bytes.NewReader(append(head(explicitLE, hostileUIDs), plain...)), int64(len(head(explicitLE, hostileUIDs))+len(plain)))
	if err != nil || inst.SOPInstanceUID != hostileUIDs.SOPInstance || inst.StudyInstanceUID != hostileUIDs.Study {
		t.Fatalf("Parse: %+v %v", inst, err)
	}
	dcmdump(t, generate(t, func(w io.Writer) (int64, error) { return DeflateBomb(w, 1<<20) }))

	// The bomb of the issue: about 1 MiB on the wire, about 1 GB inflated,
	// generated without compressing a gigabyte.
	c := &counter{w: io.Discard}
	if _, err := DeflateBomb(c, 1<<30); err != nil || c.n > 1<<20+64<<10 || c.n < 512<<10 {
		t.Fatalf("a 1 GiB bomb is %d bytes (%v), want about 1 MiB", c.n, err)
	}
}

func TestZeros(t *testing.T) {
	data := generate(t, func(w io.Writer) (int64, error) { return Zeros(w, 16000) })
	ts, ds := split(t, data)
	if ts != explicitLE || len(ds) != 16000 || bytes.ContainsFunc(ds, func(r rune) bool { return r != 0 }) {
		t.Fatalf("transfer syntax %q, %d data set bytes", ts, len(ds))
	}
	if es := elements(t, ds); len(es) != 2000 || es[0].tag != 0 || len(es[0].value) != 0 {
		t.Fatalf("%d elements, want 2000 empty (0000,0000)", len(es))
	}
	c := &counter{w: io.Discard}
	if _, err := Zeros(c, 64<<20); err != nil || c.n != int64(len(data))-16000+64<<20 {
		t.Fatalf("64 MiB of zeros: %d bytes, %v", c.n, err)
	}
}

func TestDeflatedZeros(t *testing.T) {
	const size = 64 << 20
	data := generate(t, func(w io.Writer) (int64, error) { return DeflatedZeros(w, size) })
	ts, ds := split(t, data)
	if ts != deflatedLE || len(data) > size/800 {
		t.Fatalf("transfer syntax %q, %d bytes", ts, len(data))
	}
	plain := inflate(t, ds)
	if len(plain) != size || bytes.ContainsFunc(plain, func(r rune) bool { return r != 0 }) {
		t.Fatalf("inflates to %d bytes, want %d zeros", len(plain), size)
	}
	// Sizes around the precompressed unit inflate exactly too.
	for _, n := range []int64{0, 8, 64 << 10, 64<<10 + zeroUnit - 8, 64<<10 + zeroUnit, 64<<10 + 2*zeroUnit + 8} {
		_, ds := split(t, generate(t, func(w io.Writer) (int64, error) { return DeflatedZeros(w, n) }))
		if got := int64(len(inflate(t, ds))); got != n {
			t.Fatalf("DeflatedZeros(%d) inflates to %d", n, got)
		}
	}
}

func TestManyElements(t *testing.T) {
	const n = 70_000 // two private groups
	data := generate(t, func(w io.Writer) (int64, error) { return ManyElements(w, n) })
	ts, ds := split(t, data)
	if ts != explicitLE {
		t.Fatalf("transfer syntax %q", ts)
	}
	es := elements(t, ds)
	ascending(t, es)
	if len(es) != 7+n {
		t.Fatalf("%d elements, want 7 identifying ones and %d private", len(es), n)
	}
	// Every private element lies in a block its group's creator reserves.
	creators := map[uint32]bool{}
	for _, e := range es[7:] {
		g, el := e.tag>>16, e.tag&0xFFFF
		switch {
		case g%2 == 0:
			t.Fatalf("element %08X is not private", e.tag)
		case el >= 0x10 && el <= 0xFF:
			creators[g<<16|el] = true
		case !creators[g<<16|el>>8]:
			t.Fatalf("element %08X has no private creator", e.tag)
		}
	}
	inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil || inst.SOPInstanceUID != hostileUIDs.SOPInstance {
		t.Fatalf("Parse: %+v %v", inst, err)
	}
	dcmdump(t, data)

	c := &counter{w: io.Discard}
	if _, err := ManyElements(c, 1_000_000); err != nil || c.n < 10_000_000 || c.n > 10_001_000 {
		t.Fatalf("a million elements: %d bytes, %v; want about 10 MB", c.n, err)
	}
}

func TestWithUIDs(t *testing.T) {
	u := ValidUIDs("1.2.826.0.1.3680043.10.99.7") // odd: padded with one NUL
	data := generate(t, func(w io.Writer) (int64, error) { return WithUIDs(w, u) })
	inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil || inst.SOPClassUID != u.SOPClass || inst.SOPInstanceUID != u.SOPInstance ||
		inst.StudyInstanceUID != u.Study || inst.SeriesInstanceUID != u.Series {
		t.Fatalf("Parse: %+v %v", inst, err)
	}
	if !bytes.Contains(data, []byte(u.SOPInstance+"\x00")) {
		t.Fatal("odd UID not NUL-padded")
	}
	dcmdump(t, data)

	// Hostile values are written byte for byte in the data set; the meta
	// group keeps valid UIDs.
	for _, v := range []string{"../../etc/passwd", "\xff\xfe", "1.2.3\n4"} {
		bad := u
		bad.Study = v
		_, ds := split(t, generate(t, func(w io.Writer) (int64, error) { return WithUIDs(w, bad) }))
		var got []byte
		for _, e := range elements(t, ds) {
			if e.tag == 0x0020000D {
				got = e.value
			}
		}
		if string(bytes.TrimSuffix(got, []byte{0})) != v || len(got)%2 != 0 {
			t.Fatalf("Study Instance UID written as %q, want %q", got, v)
		}
	}
}

// TestWriteFuzzSeeds writes small hostile inputs (each ≤ 16 KiB) to the
// FuzzParse seed corpus, ../testdata/fuzz/FuzzParse. They are committed;
// regenerate them with
//
//	DICOMSEAL_WRITE_FUZZ_SEEDS=1 go test ./dicomfile/synth -run TestWriteFuzzSeeds
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("DICOMSEAL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set DICOMSEAL_WRITE_FUZZ_SEEDS=1 to rewrite the FuzzParse seed corpus")
	}
	bad := ValidUIDs("1.2.826.0.1.3680043.10.99.8")
	bad.SOPInstance = "\xff\xfe"
	seeds := map[string]func(io.Writer) (int64, error){
		"hostile-deflate-bomb-8MiB":     func(w io.Writer) (int64, error) { return DeflateBomb(w, 8<<20) },
		"hostile-deflated-zeros-8MiB":   func(w io.Writer) (int64, error) { return DeflatedZeros(w, 8<<20) },
		"hostile-zeros-2000-elements":   func(w io.Writer) (int64, error) { return Zeros(w, 2000*8) },
		"hostile-many-elements-1000":    func(w io.Writer) (int64, error) { return ManyElements(w, 1000) },
		"hostile-sop-instance-uid-fffe": func(w io.Writer) (int64, error) { return WithUIDs(w, bad) },
	}
	dir := filepath.Join("..", "testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, gen := range seeds {
		data := generate(t, gen)
		if len(data) > 16<<10 {
			t.Fatalf("%s: %d bytes, over 16 KiB", name, len(data))
		}
		// The format of Go's fuzzing corpus files (internal/fuzz).
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
