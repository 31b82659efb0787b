package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// benchFile is one instance of a bench run, as its manifest lists it.
type benchFile struct {
	Path   string `json:"path"`
	SOP    string `json:"sop"`
	Study  string `json:"study"`
	Series string `json:"series"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// benchSet is the files of a run and where they came from.
type benchSet struct {
	files     []benchFile
	manifests []string // one per source file made into copies
	written   int      // copies written by this call (0: all from the cache)
}

// defaultBenchCache is $XDG_CACHE_HOME/dicomseal (~/.cache/dicomseal), the
// project's cache, which the scripts call DICOMSEAL_CACHE: the variable
// that sets --cache means the same directory to both.
func defaultBenchCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "dicomseal")
	}
	return filepath.Join(dir, "dicomseal")
}

// prepareBenchFiles expands sources (files, or directories of .dcm files)
// and, with copies > 0, makes that many unique copies of each, or reuses
// the ones an earlier call made: copies are written once to
// cacheDir/bench, under a name of the source's digest, the number of
// copies and the seed.
// With copies == 0 the sources are used as they are.
func prepareBenchFiles(sources []string, copies int, seed, cacheDir string) (*benchSet, error) {
	paths, err := expandBenchSources(sources)
	if err != nil {
		return nil, err
	}
	set := &benchSet{}
	for _, p := range paths {
		if copies == 0 {
			f, err := describeBenchFile(p)
			if err != nil {
				return nil, err
			}
			set.files = append(set.files, f)
			continue
		}
		files, manifest, written, err := benchCopies(p, copies, seed, filepath.Join(cacheDir, "bench"))
		if err != nil {
			return nil, err
		}
		set.files = append(set.files, files...)
		set.manifests = append(set.manifests, manifest)
		set.written += written
	}
	return set, nil
}

func expandBenchSources(sources []string) ([]string, error) {
	if len(sources) == 0 {
		return nil, errors.New("no --files given")
	}
	var out []string
	for _, s := range sources {
		st, err := os.Stat(s)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, s)
			continue
		}
		var found []string
		err = filepath.WalkDir(s, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".dcm") {
				found = append(found, p)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s holds no .dcm files", s)
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}

// describeBenchFile reads a file's identifiers as dicomseal reads them.
func describeBenchFile(path string) (benchFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return benchFile{}, err
	}
	inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return benchFile{}, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return benchFile{Path: path, SOP: inst.SOPInstanceUID, Study: inst.StudyInstanceUID, Series: inst.SeriesInstanceUID,
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}, nil
}

// benchCopies returns n unique copies of src from the cache, making them
// first when they are not there. The copies are written to a temporary
// directory renamed into place with their manifest, so a directory that
// exists is complete, and two runs preparing the same copies do not mix.
func benchCopies(src string, n int, seed, cacheDir string) ([]benchFile, string, int, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, "", 0, err
	}
	sum := sha256.Sum256(data)
	srcSHA := hex.EncodeToString(sum[:])
	dir := filepath.Join(cacheDir, fmt.Sprintf("%s-n%d-seed-%s", srcSHA[:16], n, seed))
	manifest := filepath.Join(dir, "manifest.jsonl")
	if files, err := readBenchManifest(manifest); err == nil && len(files) == n && filesPresent(files) {
		return files, manifest, 0, nil
	}
	tmpl, err := newUIDTemplate(data)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%s: %w", src, err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, "", 0, err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".making-")
	if err != nil {
		return nil, "", 0, err
	}
	defer os.RemoveAll(tmp)
	key := seed + "/" + srcSHA
	files := make([]benchFile, n)
	seen := make(map[string]bool, n)
	for i := range n {
		uid, err := newUID(tmpl.sop, key, i, n)
		if err != nil {
			return nil, "", 0, fmt.Errorf("%s: %w", src, err)
		}
		if seen[uid] || uid == tmpl.sop {
			return nil, "", 0, fmt.Errorf("%s: copy %d would repeat SOP Instance UID %s", src, i, uid)
		}
		seen[uid] = true
		copyData := tmpl.with(uid)
		if err := checkBenchCopy(copyData, uid, tmpl); err != nil {
			return nil, "", 0, fmt.Errorf("%s: copy %d: %w", src, i, err)
		}
		name := fmt.Sprintf("%06d.dcm", i)
		if err := os.WriteFile(filepath.Join(tmp, name), copyData, 0o644); err != nil {
			return nil, "", 0, err
		}
		s := sha256.Sum256(copyData)
		files[i] = benchFile{Path: filepath.Join(dir, name), SOP: uid, Study: tmpl.study, Series: tmpl.series,
			SHA256: hex.EncodeToString(s[:]), Size: int64(len(copyData))}
	}
	if err := writeBenchManifest(filepath.Join(tmp, "manifest.jsonl"), files); err != nil {
		return nil, "", 0, err
	}
	// A stale or partial directory (copies deleted by hand) is replaced.
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		// Another run made the same copies meanwhile: theirs are as good.
		if got, rerr := readBenchManifest(manifest); rerr == nil && len(got) == n && filesPresent(got) {
			return got, manifest, 0, nil
		}
		return nil, "", 0, fmt.Errorf("cache %s: %w", dir, err)
	}
	return files, manifest, n, nil
}

// checkBenchCopy parses a copy as dicomseal will and holds it to what it
// must be: the new SOP Instance UID, the study and series of the source.
func checkBenchCopy(data []byte, uid string, t *uidTemplate) error {
	a, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	in := a.Instance
	if in.SOPInstanceUID != uid || in.StudyInstanceUID != t.study || in.SeriesInstanceUID != t.series {
		return fmt.Errorf("parses as SOP %s study %s series %s, want %s %s %s",
			in.SOPInstanceUID, in.StudyInstanceUID, in.SeriesInstanceUID, uid, t.study, t.series)
	}
	return nil
}

func filesPresent(files []benchFile) bool {
	for _, f := range files {
		st, err := os.Stat(f.Path)
		if err != nil || st.Size() != f.Size {
			return false
		}
	}
	return true
}

func writeBenchManifest(path string, files []benchFile) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, f := range files {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func readBenchManifest(path string) ([]benchFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []benchFile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var bf benchFile
		if err := json.Unmarshal(sc.Bytes(), &bf); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, bf)
	}
	return out, sc.Err()
}

// uidTemplate is a source file and where its SOP Instance UID's values
// are: the file meta's Media Storage SOP Instance UID (0002,0003) and the
// data set's SOP Instance UID (0008,0018). A copy is the bytes with those
// values overwritten by a UID of the same length, so every length and
// offset in the file stays what it was.
type uidTemplate struct {
	data               []byte
	sop, study, series string
	at                 []int // offsets of the values to overwrite
}

// Transfer syntaxes whose data set is not explicit VR little endian.
const (
	implicitLittleEndian = "1.2.840.10008.1.2"
	explicitBigEndian    = "1.2.840.10008.1.2.2"
	deflatedLittleEndian = "1.2.840.10008.1.2.1.99"
)

// newUIDTemplate reads the data set's identifiers as dicomseal does
// (dicomfile), the file meta with a scanner of its own (it is always
// explicit VR little endian), and finds the data set's SOP Instance UID
// by its exact encoding: tag, VR and length header, then the value,
// expected exactly once.
func newUIDTemplate(data []byte) (*uidTemplate, error) {
	inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	t := &uidTemplate{data: data, sop: inst.SOPInstanceUID, study: inst.StudyInstanceUID, series: inst.SeriesInstanceUID}
	meta, err := scanFileMeta(data)
	if err != nil {
		return nil, err
	}
	syntax := meta[0x00020010].value
	if syntax == deflatedLittleEndian {
		return nil, errors.New("a deflated data set cannot be rewritten in place: inflate it first (dcmconv +te)")
	}
	if m, ok := meta[0x00020003]; ok {
		if m.value != t.sop {
			return nil, fmt.Errorf("the file meta's Media Storage SOP Instance UID %s is not the data set's %s", m.value, t.sop)
		}
		t.at = append(t.at, m.at)
	}
	at, err := findUIDValue(data, 0x0008, 0x0018, t.sop, syntax)
	if err != nil {
		return nil, err
	}
	t.at = append(t.at, at)
	return t, nil
}

// metaValue is a file meta element's value (trailing padding dropped)
// and its offset.
type metaValue struct {
	value string
	at    int
}

// scanFileMeta reads the group 0002 elements after the preamble and the
// magic word, explicit VR little endian as PS3.10 fixes them.
func scanFileMeta(data []byte) (map[uint32]metaValue, error) {
	if len(data) < 132 || string(data[128:132]) != "DICM" {
		return nil, errors.New("not a DICOM Part 10 file")
	}
	out := map[uint32]metaValue{}
	for i := 132; i+8 <= len(data); {
		group := binary.LittleEndian.Uint16(data[i:])
		if group != 0x0002 {
			break
		}
		t := uint32(group)<<16 | uint32(binary.LittleEndian.Uint16(data[i+2:]))
		vr := string(data[i+4 : i+6])
		var n, head int
		switch vr {
		case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
			if i+12 > len(data) {
				return nil, errors.New("file meta cut short")
			}
			n, head = int(binary.LittleEndian.Uint32(data[i+8:])), 12
		default:
			n, head = int(binary.LittleEndian.Uint16(data[i+6:])), 8
		}
		if n < 0 || i+head+n > len(data) {
			return nil, fmt.Errorf("file meta element (%04X,%04X) runs past the end", group, t&0xFFFF)
		}
		out[t] = metaValue{value: strings.TrimRight(string(data[i+head:i+head+n]), "\x00 "), at: i + head}
		i += head + n
	}
	return out, nil
}

// findUIDValue returns the offset of the one value uid of element
// (group,elem) encoded in data with syntax's header (the file meta is
// always explicit VR little endian). The value may be padded to even
// length with a NUL or a space.
func findUIDValue(data []byte, group, elem uint16, uid, syntax string) (int, error) {
	padded := len(uid) + len(uid)%2
	var h []byte
	switch syntax {
	case implicitLittleEndian:
		h = binary.LittleEndian.AppendUint16(h, group)
		h = binary.LittleEndian.AppendUint16(h, elem)
		h = binary.LittleEndian.AppendUint32(h, uint32(padded))
	case explicitBigEndian:
		h = binary.BigEndian.AppendUint16(h, group)
		h = binary.BigEndian.AppendUint16(h, elem)
		h = append(h, 'U', 'I')
		h = binary.BigEndian.AppendUint16(h, uint16(padded))
	default:
		h = binary.LittleEndian.AppendUint16(h, group)
		h = binary.LittleEndian.AppendUint16(h, elem)
		h = append(h, 'U', 'I')
		h = binary.LittleEndian.AppendUint16(h, uint16(padded))
	}
	pattern := append(h, uid...)
	var found []int
	for i := 0; ; {
		j := bytes.Index(data[i:], pattern)
		if j < 0 {
			break
		}
		end := i + j + len(pattern)
		if padded == len(uid) || (end < len(data) && (data[end] == 0 || data[end] == ' ')) {
			found = append(found, i+j+len(h))
		}
		i = end
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("(%04X,%04X) %s is encoded %d times, want exactly once", group, elem, uid, len(found))
	}
	return found[0], nil
}

// with is the template's bytes with uid in place of the SOP Instance UID.
func (t *uidTemplate) with(uid string) []byte {
	out := bytes.Clone(t.data)
	for _, at := range t.at {
		copy(out[at:], uid)
	}
	return out
}

// minUIDHashDigits keeps copies made with different seeds apart: the
// digits before the copy's number come from the seed and the source.
const minUIDHashDigits = 8

// newUID is copy i of n's SOP Instance UID: as long as old, with old's
// leading components and a last component of digits (no leading zero),
// from a hash of key, then i. Copies of one source and seed differ by
// construction; other seeds or sources differ with overwhelming odds.
func newUID(old, key string, i, n int) (string, error) {
	width := len(strconv.Itoa(max(n-1, 0)))
	need := 1 + minUIDHashDigits + width // the dot, the hash digits, the number
	comps := strings.Split(old, ".")
	prefix := ""
	for k := len(comps) - 1; k >= 1; k-- {
		p := strings.Join(comps[:k], ".")
		if len(p)+need <= len(old) {
			prefix = p
			break
		}
	}
	if prefix == "" {
		return "", fmt.Errorf("SOP Instance UID %s is too short to make %d copies of the same length", old, n)
	}
	digits := len(old) - len(prefix) - 1
	h := sha256.Sum256([]byte(key))
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteByte('1' + h[0]%9)
	for k := 1; k < digits-width; k++ {
		b.WriteByte('0' + h[k%len(h)]%10)
	}
	fmt.Fprintf(&b, "%0*d", width, i)
	return b.String(), nil
}
