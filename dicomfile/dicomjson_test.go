package dicomfile_test

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// realFile is a stored file a test reads: name for messages, path on disk.
type realFile struct{ name, path string }

// realFiles are the real files the DICOMweb readers are tested on, all of
// them files Analyze accepts: the module's fixtures, suyashkumar/dicom's
// test files from the module cache (4.dcm, 7.5 MB; 5.dcm, multi-frame),
// and, when DICOMSEAL_TEST_PYDICOM_DIR is set, every file of pydicom's
// corpus the manifest says is ingested. With instancesOnly false, it also
// has the well-formed files refused only for want of a SOP Instance UID
// (DICOMDIRs, private sequences, a UN sequence): good tests of the model.
func realFiles(t *testing.T, instancesOnly bool) []realFile {
	t.Helper()
	var files []realFile
	fixtures, _ := filepath.Glob(filepath.Join("..", "testdata", "dicom", "*.dcm"))
	for _, p := range fixtures {
		files = append(files, realFile{filepath.Base(p), p})
	}
	if dir := moduleTestdata(t); dir != "" {
		for _, n := range []string{"1.dcm", "2.dcm", "3.dcm", "4.dcm", "5.dcm", "6.dcm"} {
			files = append(files, realFile{"suyashkumar/" + n, filepath.Join(dir, n)})
		}
	}
	if dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR"); dir != "" {
		for _, rel := range corpusFiles(t, instancesOnly) {
			files = append(files, realFile{"pydicom/" + rel, filepath.Join(dir, rel)})
		}
	} else {
		t.Log("DICOMSEAL_TEST_PYDICOM_DIR is not set: pydicom's corpus is left out (export DICOMSEAL_TEST_PYDICOM_DIR=$(scripts/pydicom-corpus.sh))")
	}
	var accepted []realFile
	for _, f := range files {
		data := readFile(t, f.path)
		_, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
		if err == nil || (!instancesOnly && errors.Is(err, dicomfile.ErrMissingAttribute)) {
			accepted = append(accepted, f)
		}
	}
	return accepted
}

// moduleTestdata is suyashkumar/dicom's testdata directory in the module
// cache, "" when the module is not there.
func moduleTestdata(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/suyashkumar/dicom").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	if _, statErr := os.Stat(filepath.Join(dir, "4.dcm")); err != nil || strings.TrimSpace(string(out)) == "" || statErr != nil {
		t.Logf("suyashkumar/dicom's test files are not in the module cache (go mod download fetches them): %v", err)
		return ""
	}
	return dir
}

// corpusFiles lists the corpus files testdata/corpus/pydicom.tsv says are
// ingested, and unless instancesOnly those refused for want of a SOP
// Instance UID.
func corpusFiles(t *testing.T, instancesOnly bool) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "corpus", "pydicom.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 2 || strings.HasPrefix(cols[0], "#") {
			continue
		}
		if cols[1] == "ingest" || (!instancesOnly && len(cols) > 2 && cols[2] == "SOP Instance UID") {
			out = append(out, cols[0])
		}
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metadata(t *testing.T, data []byte, opt dicomfile.JSONOptions) dicomfile.Dataset {
	t.Helper()
	ds, err := dicomfile.DefaultLimits.Metadata(bytes.NewReader(data), int64(len(data)), opt)
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	return ds
}

// TestMetadataMatchesDcm2json holds Metadata to dcmtk's dcm2json, an
// independent implementation of the same model, on every real file: the
// same tags, VRs and values everywhere. Numbers compare by value (FL as
// float32), binary values by presence, and exactly where both are inline;
// group lengths are left out by Metadata. dcm2json has no JSON form for
// encapsulated Pixel Data, so for those files it reads a copy without it
// (dcmodify -e).
func TestMetadataMatchesDcm2json(t *testing.T) {
	if _, err := exec.LookPath("dcm2json"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must cross-check with dcmtk (scripts/dcmtk.sh installs it)")
		}
		t.Skip("dcm2json is not installed; scripts/dcmtk.sh installs dcmtk")
	}
	bulk := func(tag uint32) string { return fmt.Sprintf("bulk/%08X", tag) }
	compared := 0
	for _, f := range realFiles(t, false) {
		t.Run(f.name, func(t *testing.T) {
			data := readFile(t, f.path)
			ours := metadata(t, data, dicomfile.JSONOptions{BulkDataURI: bulk, InlineMax: 1 << 20})
			theirs, pixels := dcm2json(t, f.path)
			compared++
			if !pixels {
				// dcmodify drops the trailing padding as it writes.
				delete(ours, "7FE00010")
				delete(ours, "FFFCFFFC")
			}
			var d jsonDiff
			d.compare("", generic(t, ours), theirs)
			for _, m := range d.mismatches {
				t.Error(m)
			}
			if d.values == 0 {
				t.Error("no value compared")
			}
		})
	}
	t.Logf("%d files compared with dcm2json", compared)
}

// dcm2json is dcmtk's JSON of the file, and whether it has its Pixel Data.
func dcm2json(t *testing.T, path string) (map[string]any, bool) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("dcm2json", "-fc", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && strings.Contains(stderr.String(), "character encoding") {
		t.Skipf("dcm2json cannot convert the file's Specific Character Set: %s", strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		// Encapsulated Pixel Data: convert a copy without it.
		cp := filepath.Join(t.TempDir(), "nopixels.dcm")
		if err := os.WriteFile(cp, readFile(t, path), 0o600); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("dcmodify", "-q", "-nb", "-e", "(7fe0,0010)", cp).CombinedOutput(); err != nil {
			t.Fatalf("dcmodify: %v\n%s", err, msg)
		}
		stderr.Reset()
		cmd := exec.Command("dcm2json", "-fc", cp)
		cmd.Stderr = &stderr
		if out, err = cmd.Output(); err != nil {
			if strings.Contains(stderr.String(), "character encoding") {
				t.Skipf("dcm2json cannot convert the file's Specific Character Set: %s", strings.TrimSpace(stderr.String()))
			}
			t.Fatalf("dcm2json fails on the file and on a copy without Pixel Data: %v\n%s", err, stderr.Bytes())
		}
		return decodeJSON(t, out), false
	}
	return decodeJSON(t, out), true
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decoding JSON: %v\n%.300s", err, b)
	}
	return m
}

// generic is ds as JSON decodes it: the comparison covers the encoding.
func generic(t *testing.T, ds dicomfile.Dataset) map[string]any {
	t.Helper()
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatalf("Metadata does not marshal: %v", err)
	}
	return decodeJSON(t, b)
}

type jsonDiff struct {
	mismatches []string
	values     int // values compared
}

func (d *jsonDiff) add(path, format string, args ...any) {
	if len(d.mismatches) < 30 {
		d.mismatches = append(d.mismatches, path+": "+fmt.Sprintf(format, args...))
	}
}

func (d *jsonDiff) compare(path string, ours, theirs map[string]any) {
	keys := map[string]bool{}
	for k := range ours {
		keys[k] = true
	}
	for k := range theirs {
		if !strings.HasSuffix(k, "0000") { // group lengths
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		o, _ := ours[k].(map[string]any)
		th, _ := theirs[k].(map[string]any)
		p := path + k
		switch {
		case o == nil:
			d.add(p, "missing; dcm2json has %v", theirs[k])
			continue
		case th == nil:
			d.add(p, "not in dcm2json; Metadata has %v", ours[k])
			continue
		case o["vr"] != th["vr"]:
			d.add(p, "vr %v, dcm2json %v", o["vr"], th["vr"])
			continue
		}
		d.attribute(p, o["vr"].(string), o, th)
	}
}

func (d *jsonDiff) attribute(path, vr string, o, th map[string]any) {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		op := o["InlineBinary"] != nil || o["BulkDataURI"] != nil
		tp := th["InlineBinary"] != nil || th["BulkDataURI"] != nil
		if op != tp {
			d.add(path, "binary value present %v, dcm2json %v", op, tp)
		}
		if oi, ok := o["InlineBinary"].(string); ok && th["InlineBinary"] != nil {
			d.values++
			a, _ := base64.StdEncoding.DecodeString(oi)
			b, _ := base64.StdEncoding.DecodeString(th["InlineBinary"].(string))
			if len(b) == len(a)+1 && len(a)%2 == 1 && b[len(a)] == 0 {
				b = b[:len(a)] // dcmtk pads an odd length value as it reads it
			}
			if !bytes.Equal(a, b) {
				d.add(path, "InlineBinary %x, dcm2json %x", a, b)
			}
		}
		return
	}
	ov, _ := o["Value"].([]any)
	tv, _ := th["Value"].([]any)
	if len(ov) != len(tv) {
		d.add(path, "Value %v, dcm2json %v", o["Value"], th["Value"])
		return
	}
	for i := range ov {
		p := fmt.Sprintf("%s[%d]", path, i)
		if vr == "SQ" {
			oi, _ := ov[i].(map[string]any)
			ti, _ := tv[i].(map[string]any)
			d.compare(p+".", oi, ti)
			continue
		}
		d.values++
		if !sameValue(vr, ov[i], tv[i]) {
			d.add(p, "%#v, dcm2json %#v", ov[i], tv[i])
		}
	}
}

// sameValue compares one value; numbers by value.
func sameValue(vr string, o, th any) bool {
	on, ook := o.(json.Number)
	tn, tok := th.(json.Number)
	if ook && tok {
		a, err1 := strconv.ParseFloat(string(on), 64)
		b, err2 := strconv.ParseFloat(string(tn), 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if vr == "FL" {
			return float32(a) == float32(b)
		}
		return a == b || math.Abs(a-b) <= 1e-15*math.Max(math.Abs(a), math.Abs(b))
	}
	return reflect.DeepEqual(o, th)
}

// TestMetadataValues covers the model's rules value by value, on
// synthetic files: each case is one element (after any it needs) and the
// attribute expected, as JSON.
func TestMetadataValues(t *testing.T) {
	le := binary.LittleEndian
	u16 := func(vs ...uint16) (b []byte) {
		for _, v := range vs {
			b = le.AppendUint16(b, v)
		}
		return b
	}
	u64 := func(v uint64) []byte { return le.AppendUint64(nil, v) }
	f32 := func(f float32) []byte { return le.AppendUint32(nil, math.Float32bits(f)) }
	f64 := func(f float64) []byte { return le.AppendUint64(nil, math.Float64bits(f)) }
	bulk := func(tag uint32) string { return fmt.Sprintf("https://example.org/bulk/%08X", tag) }
	opt := dicomfile.JSONOptions{BulkDataURI: bulk, InlineMax: 4}
	for _, tt := range []struct {
		name   string
		ts     string // explicitLE when empty
		before []elem // elements ahead of the one looked at
		e      elem
		opt    *dicomfile.JSONOptions
		want   string // the attribute of e.tag, as JSON; "" when absent
	}{
		{name: "PN groups", e: elem{tag: 0x00100010, vr: "PN", value: text("Doe^John=Ideo^Graphic=Pho^Netic")},
			want: `{"vr":"PN","Value":[{"Alphabetic":"Doe^John","Ideographic":"Ideo^Graphic","Phonetic":"Pho^Netic"}]}`},
		{name: "PN without trailing delimiters, empty value null", e: elem{tag: 0x00100010, vr: "PN", value: text(`Doe^John^^\^^`)},
			want: `{"vr":"PN","Value":[{"Alphabetic":"Doe^John"},null]}`},
		{name: "PN ideographic only", e: elem{tag: 0x00100010, vr: "PN", value: text("=Yamada")},
			want: `{"vr":"PN","Value":[{"Ideographic":"Yamada"}]}`},
		{name: "PN empty name", e: elem{tag: 0x00100010, vr: "PN", value: text("^^^^")}, want: `{"vr":"PN"}`},
		{name: "DS numbers, a non-number kept", e: elem{tag: 0x00280030, vr: "DS", value: text(` 1.50\ -2e3 \abc\\0x1p3\Inf\`)},
			want: `{"vr":"DS","Value":[1.5,-2000,"abc",null,"0x1p3","Inf",null]}`},
		{name: "IS numbers, a non-integer kept", e: elem{tag: 0x00200013, vr: "IS", value: text(`+12\-3\1.0`)},
			want: `{"vr":"IS","Value":[12,-3,"1.0"]}`},
		{name: "CS leading and trailing spaces", e: elem{tag: 0x00080008, vr: "CS", value: text(` ORIGINAL \PRIMARY`)},
			want: `{"vr":"CS","Value":["ORIGINAL","PRIMARY"]}`},
		{name: "LT keeps leading spaces and backslashes", e: elem{tag: 0x00204000, vr: "LT", value: text(`  two\lines  `)},
			want: `{"vr":"LT","Value":["  two\\lines"]}`},
		{name: "UI padding", e: elem{tag: 0x00080018, vr: "UI", value: uid("1.2.3")}, want: `{"vr":"UI","Value":["1.2.3"]}`},
		{name: "empty value", e: elem{tag: 0x00080050, vr: "SH"}, want: `{"vr":"SH"}`},
		{name: "only padding", e: elem{tag: 0x00080050, vr: "SH", value: text("  ")}, want: `{"vr":"SH"}`},
		{name: "US SS UL SL", e: elem{tag: 0x00280010, vr: "US", value: u16(512, 65535)}, want: `{"vr":"US","Value":[512,65535]}`},
		{name: "SS", e: elem{tag: 0x00281041, vr: "SS", value: u16(0xFFFE)}, want: `{"vr":"SS","Value":[-2]}`},
		{name: "UL", e: elem{tag: 0x00081197, vr: "UL", value: le.AppendUint32(nil, 4294967295)}, want: `{"vr":"UL","Value":[4294967295]}`},
		{name: "SL", e: elem{tag: 0x00189219, vr: "SL", value: le.AppendUint32(nil, 0xFFFFFFFB)}, want: `{"vr":"SL","Value":[-5]}`},
		{name: "FL shortest", e: elem{tag: 0x00189087, vr: "FL", value: append(f32(0.3), f32(float32(math.NaN()))...)},
			want: `{"vr":"FL","Value":[0.3,"NaN"]}`},
		{name: "FD infinities", e: elem{tag: 0x00189087, vr: "FD", value: append(f64(math.Inf(1)), f64(-1.25)...)},
			want: `{"vr":"FD","Value":["Infinity",-1.25]}`},
		{name: "AT", e: elem{tag: 0x00209165, vr: "AT", value: u16(0x0010, 0x0020, 0x7FE0, 0x0010)}, want: `{"vr":"AT","Value":["00100020","7FE00010"]}`},
		{name: "SV beyond 2^53 a string", e: elem{tag: 0x00101008, vr: "SV", value: append(u64(1<<60), u64(uint64(1<<64-5))...)},
			want: `{"vr":"SV","Value":["1152921504606846976",-5]}`},
		{name: "UV", e: elem{tag: 0x00101009, vr: "UV", value: append(u64(1<<53), u64(1<<53+1)...)},
			want: `{"vr":"UV","Value":[9007199254740992,"9007199254740993"]}`},
		{name: "binary inline up to InlineMax", e: elem{tag: 0x00091010, vr: "OB", value: []byte{1, 2, 3, 4}},
			want: `{"vr":"OB","InlineBinary":"AQIDBA=="}`},
		{name: "binary past InlineMax is bulk", e: elem{tag: 0x00091010, vr: "OB", value: []byte{1, 2, 3, 4, 5, 6}},
			want: `{"vr":"OB","BulkDataURI":"https://example.org/bulk/00091010"}`},
		{name: "no URI, bulk left out", e: elem{tag: 0x00091010, vr: "OB", value: []byte{1, 2, 3, 4, 5, 6}},
			opt: &dicomfile.JSONOptions{}, want: `{"vr":"OB"}`},
		{name: "Pixel Data always bulk", e: elem{tag: 0x7FE00010, vr: "OW", value: []byte{1, 2}},
			want: `{"vr":"OW","BulkDataURI":"https://example.org/bulk/7FE00010"}`},
		{name: "nested binary always inline", e: elem{tag: 0x00880200, vr: "SQ", undefined: true,
			value: items(explicitLE, []elem{{tag: 0x7FE00010, vr: "OB", value: []byte{1, 2, 3, 4, 5, 6}}})},
			want: `{"vr":"SQ","Value":[{"7FE00010":{"vr":"OB","InlineBinary":"AQIDBAUG"}}]}`},
		{name: "big endian numbers", ts: explicitBE, e: elem{tag: 0x00280010, vr: "US", value: []byte{0x02, 0x00}},
			want: `{"vr":"US","Value":[512]}`},
		{name: "big endian words swapped", ts: explicitBE, e: elem{tag: 0x00091010, vr: "OW", value: []byte{0x01, 0x02, 0x03, 0x04}},
			want: `{"vr":"OW","InlineBinary":"AgEEAw=="}`},
		{name: "Latin-1 decoded, the set then UTF-8", before: []elem{{tag: 0x00080005, vr: "CS", value: text("ISO_IR 100")}},
			e: elem{tag: 0x00100010, vr: "PN", value: text("M\xfcller^J\xfcrgen")}, want: `{"vr":"PN","Value":[{"Alphabetic":"Müller^Jürgen"}]}`},
		{name: "the set says UTF-8", e: elem{tag: 0x00080005, vr: "CS", value: text("ISO_IR 100")}, want: `{"vr":"CS","Value":["ISO_IR 192"]}`},
		{name: "a set not decoded is kept", e: elem{tag: 0x00080005, vr: "CS", value: text(`\ISO 2022 IR 87`)},
			want: `{"vr":"CS","Value":[null,"ISO 2022 IR 87"]}`},
		{name: "an item's own set", before: []elem{{tag: 0x00080005, vr: "CS", value: text("ISO_IR 100")}},
			e: elem{tag: 0x00400275, vr: "SQ", undefined: true, value: items(explicitLE,
				[]elem{{tag: 0x00080005, vr: "CS", value: text("ISO_IR 144")}, {tag: 0x00321060, vr: "LO", value: text("\xbc\xe0\xe2")}},
				[]elem{{tag: 0x00321060, vr: "LO", value: text("\xbc")}})},
			want: `{"vr":"SQ","Value":[{"00080005":{"vr":"CS","Value":["ISO_IR 144"]},"00321060":{"vr":"LO","Value":["Мрт"]}},{"00321060":{"vr":"LO","Value":["¼"]}}]}`},
		{name: "implicit VR from the dictionary", ts: implicitLE, e: elem{tag: 0x00100010, value: text("Doe^J")},
			want: `{"vr":"PN","Value":[{"Alphabetic":"Doe^J"}]}`},
		{name: "implicit US or SS, unsigned pixels", ts: implicitLE, before: []elem{{tag: 0x00280103, value: u16(0)}},
			e: elem{tag: 0x00280106, value: u16(0xFFFE)}, want: `{"vr":"US","Value":[65534]}`},
		{name: "implicit US or SS, signed pixels", ts: implicitLE, before: []elem{{tag: 0x00280103, value: u16(1)}},
			e: elem{tag: 0x00280106, value: u16(0xFFFE)}, want: `{"vr":"SS","Value":[-2]}`},
		{name: "implicit OB or OW, repeating group", ts: implicitLE, e: elem{tag: 0x60023000, value: []byte{1, 2}},
			want: `{"vr":"OW","InlineBinary":"AQI="}`},
		{name: "implicit private creator", ts: implicitLE, e: elem{tag: 0x00090010, value: text("ACME")}, want: `{"vr":"LO","Value":["ACME"]}`},
		{name: "implicit private element", ts: implicitLE, e: elem{tag: 0x00091001, value: []byte("ab")}, want: `{"vr":"UN","InlineBinary":"YWI="}`},
		{name: "implicit sequence", ts: implicitLE, e: elem{tag: 0x00081115, undefined: true,
			value: items(implicitLE, []elem{{tag: 0x00081150, value: uid("1.2")}}, nil)},
			want: `{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2"]}},{}]}`},
		{name: "UN of undefined length is a sequence", e: elem{tag: 0x00091002, vr: "UN", undefined: true,
			value: items(implicitLE, []elem{{tag: 0x00100020, value: text("ID1")}})},
			want: `{"vr":"SQ","Value":[{"00100020":{"vr":"LO","Value":["ID1"]}}]}`},
		{name: "unknown VR is UN", e: elem{tag: 0x00091003, vr: "ZZ", value: []byte("ab")}, want: `{"vr":"UN","InlineBinary":"YWI="}`},
		{name: "group length left out", e: elem{tag: 0x00080000, vr: "UL", value: le.AppendUint32(nil, 8)}, want: ""},
		{name: "deflated", ts: deflatedTS, e: elem{tag: 0x00100020, vr: "LO", value: text("ID2")}, want: `{"vr":"LO","Value":["ID2"]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := cmp.Or(tt.ts, explicitLE)
			o := opt
			if tt.opt != nil {
				o = *tt.opt
			}
			data := part10(ts, append(slices.Clone(tt.before), tt.e)...)
			ds := metadata(t, data, o)
			key := fmt.Sprintf("%08X", tt.e.tag)
			attr, ok := ds[key]
			if tt.want == "" {
				if ok {
					t.Fatalf("%s present: %+v", key, attr)
				}
				return
			}
			if !ok {
				t.Fatalf("%s absent from %v", key, ds)
			}
			got, err := json.Marshal(attr)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("%s =\n %s\nwant\n %s", key, got, tt.want)
			}
		})
	}
}

// Metadata is bounded as the walk is: the limits refuse, naming themselves.
func TestMetadataLimits(t *testing.T) {
	bomb := generated(t, func(w io.Writer) (int64, error) { return synth.DeflateBomb(w, 8<<20) })
	many := generated(t, func(w io.Writer) (int64, error) { return synth.ManyElements(w, 10_000) })
	for _, tt := range []struct {
		name   string
		data   []byte
		limits dicomfile.Limits
		want   string // "" accepts
	}{
		{"deflate bomb, ratio", bomb, dicomfile.Limits{MaxInflated: 1 << 30, MaxInflateRatio: 100}, "max-inflate-ratio"},
		{"deflate bomb, size", bomb, dicomfile.Limits{MaxInflated: 1 << 20}, "max-inflated"},
		{"deflate bomb within", bomb, dicomfile.Limits{MaxInflated: 16 << 20}, ""},
		{"many elements", many, dicomfile.Limits{MaxElements: 9_999}, "max-elements"},
		{"many elements within", many, dicomfile.Limits{MaxElements: 20_000}, ""},
		{"values held", heldValues(t, 65<<20), dicomfile.Limits{}, "MiB"},
		// 2 MiB of backslashes would be a million values, each costing
		// far more than its byte: charged before they are made.
		{"a million empty values", part10(explicitLE, elem{tag: 0x00091010, vr: "UC", value: bytes.Repeat([]byte{'\\'}, 2<<20)}),
			dicomfile.Limits{}, "MiB"},
		{"many values within", part10(explicitLE, elem{tag: 0x00081030, vr: "LO", value: bytes.Repeat([]byte(`a\`), 1000)}),
			dicomfile.Limits{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.limits.Metadata(bytes.NewReader(tt.data), int64(len(tt.data)), dicomfile.JSONOptions{})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused within the limits: %v", err)
				}
				return
			}
			if !errors.Is(err, dicomfile.ErrLimitExceeded) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrLimitExceeded saying %q", err, tt.want)
			}
		})
	}
}

// heldValues is a small deflated file whose one nested (so inline) value
// is n zero bytes.
func heldValues(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(fileMeta(deflatedTS))
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	var ds bytes.Buffer
	encode(&ds, explicitLE, elem{tag: 0x00080018, vr: "UI", value: uid("1.2.826.0.1.3680043.10.99.16")})
	ds.Write([]byte{0x08, 0x00, 0x15, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
	ds.Write([]byte{0x09, 0x00, 0x10, 0x10, 'O', 'B', 0, 0})
	ds.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	fw.Write(ds.Bytes())
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(zeros) {
		fw.Write(zeros[:min(left, len(zeros))])
	}
	fw.Write([]byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	fw.Close()
	return b.Bytes()
}

// FuzzMetadata feeds hostile bytes to the DICOMweb readers: Metadata (whose
// result must marshal), Frames with every frame read, and BulkData. None may
// panic or hang. Its seeds are FuzzParse's corpus (hostile files:
// deflate bombs, element floods) and the small fixtures, so that go test
// runs them all; fuzz longer with:
// go test ./dicomfile -run '^$' -fuzz FuzzMetadata -fuzztime 5m
func FuzzMetadata(f *testing.F) {
	corpus, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParse", "*"))
	for _, p := range corpus {
		data, err := fuzzCorpusEntry(readFileF(f, p))
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		f.Add(data)
	}
	fixtures, _ := filepath.Glob(filepath.Join("..", "testdata", "dicom", "*.dcm"))
	for _, p := range fixtures {
		if b := readFileF(f, p); len(b) <= 16<<10 {
			f.Add(b)
		}
	}
	f.Add(encapsulatedFile(jpeg, 3, []uint32{0, 10, 18}, nil, [][]byte{[]byte("a1"), []byte("b1"), []byte("c1")}))
	f.Add(bitPacked(3, 3, 2, []byte{0xFF, 0x0F, 0xF0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := dicomfile.Limits{MaxInflated: 16 << 20, MaxInflateRatio: 100, MaxElements: 20_000}
		if ds, err := l.Metadata(bytes.NewReader(data), int64(len(data)), dicomfile.JSONOptions{InlineMax: 64,
			BulkDataURI: func(tag uint32) string { return "bulk" }}); err == nil {
			if _, err := json.Marshal(ds); err != nil {
				t.Fatalf("Metadata does not marshal: %v", err)
			}
		}
		if fr, err := l.Frames(bytes.NewReader(data), int64(len(data))); err == nil {
			for n := 1; n <= min(fr.Count, 64); n++ {
				r, size, err := fr.Frame(n)
				if err != nil {
					t.Fatalf("Frame(%d) of %d: %v", n, fr.Count, err)
				}
				if got, err := io.Copy(io.Discard, r); err == nil && got != size {
					t.Fatalf("frame %d: %d bytes, announced %d", n, got, size)
				}
			}
		}
		if r, size, err := l.BulkData(bytes.NewReader(data), int64(len(data)), 0x7FE00010); err == nil {
			if got, err := io.Copy(io.Discard, r); err == nil && got != size {
				t.Fatalf("bulk data: %d bytes, announced %d", got, size)
			}
		}
	})
}

// fuzzCorpusEntry decodes a file of Go's fuzz corpus ("go test fuzz v1"
// and one []byte value).
func fuzzCorpusEntry(b []byte) ([]byte, error) {
	header, value, ok := strings.Cut(string(b), "\n")
	value = strings.TrimSpace(value)
	if !ok || header != "go test fuzz v1" || !strings.HasPrefix(value, "[]byte(") || !strings.HasSuffix(value, ")") {
		return nil, fmt.Errorf("not a fuzz corpus entry of one []byte")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(value, "[]byte("), ")"))
	return []byte(s), err
}

func readFileF(f *testing.F, path string) []byte {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// BenchmarkMetadata measures Metadata on suyashkumar/dicom's 4.dcm (7.5 MB,
// mostly Pixel Data, which is skipped as bulk data) and on a small CT.
func BenchmarkMetadata(b *testing.B) {
	files := map[string]string{"CT_small": filepath.Join("..", "testdata", "dicom", "pydicom-CT_small.dcm")}
	if dir := moduleTestdata(b); dir != "" {
		files["4.dcm"] = filepath.Join(dir, "4.dcm")
	}
	for name, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dicomfile.DefaultLimits.Metadata(bytes.NewReader(data), int64(len(data)), dicomfile.JSONOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
