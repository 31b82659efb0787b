package dicomfile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// A patient ID inside the Other Patient IDs Sequence is identity from
// digest version 2 on; version 1, which attestations made before still
// carry, did not see it, and must keep not seeing it.
func TestIdentitySequenceByDigestVersion(t *testing.T) {
	ct, err := os.ReadFile(filepath.Join("..", "testdata", "dicom", "pydicom-CT_small.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(ct, []byte("ABCD1234")) // in (0010,1002), not the top-level Patient ID
	if i < 0 {
		t.Fatal("fixture has no nested patient ID")
	}
	other := bytes.Clone(ct)
	copy(other[i:], "EFGH5678")
	analyze := func(b []byte) *dicomfile.Analysis {
		a, err := dicomfile.Analyze(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	salt := []byte("salt")
	a, b := analyze(ct), analyze(other)
	if x, y := a.DigestsVersion(2, salt).Attributes["OtherPatientIDsSequence"], b.DigestsVersion(2, salt).Attributes["OtherPatientIDsSequence"]; x == "" || x == y {
		t.Fatalf("version 2: nested patient ID change not committed (%q, %q)", x, y)
	}
	if a.DigestsVersion(2, salt).Identity == b.DigestsVersion(2, salt).Identity {
		t.Fatal("version 2: identity digest blind to the nested patient ID")
	}
	v1a, v1b := a.DigestsVersion(1, salt), b.DigestsVersion(1, salt)
	if v1a.Identity != v1b.Identity || v1a.Attributes["OtherPatientIDsSequence"] != "" {
		t.Fatal("version 1 digests changed meaning")
	}
}

// An allow-listed value too long to be one is refused, not left out of
// every comparison.
func TestOversizedAttributeIsRefused(t *testing.T) {
	var b bytes.Buffer
	synth.WithUIDs(&b, synth.ValidUIDs("1.2.826.0.1.3680043.10.99.3"))
	// (0010,1000) Other Patient IDs as UT (a 4-byte length), 70,000 bytes.
	b.Write([]byte{0x10, 0x00, 0x00, 0x10, 'U', 'T', 0, 0})
	b.Write(binary.LittleEndian.AppendUint32(nil, 70_000))
	b.Write(bytes.Repeat([]byte{' '}, 70_000))
	_, err := dicomfile.Parse(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if !errors.Is(err, dicomfile.ErrMalformed) || !strings.Contains(err.Error(), "(0010,1000)") {
		t.Fatalf("Parse = %v, want ErrMalformed naming (0010,1000)", err)
	}
}
