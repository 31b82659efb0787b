package synth_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

func TestInstanceIsWellFormed(t *testing.T) {
	data := synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.1", Rows: 512, Columns: 512})
	if len(data) < 512*1024 {
		t.Fatalf("%d bytes", len(data))
	}
	inst, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil || inst.SOPInstanceUID != "1.2.826.0.1.3680043.10.99.1" {
		t.Fatalf("Parse: %+v %v", inst, err)
	}
	// dcmtk, an independent parser, must read it too (when installed).
	if dcmdump, err := exec.LookPath("dcmdump"); err == nil {
		p := filepath.Join(t.TempDir(), "synth.dcm")
		os.WriteFile(p, data, 0o644)
		if out, err := exec.Command(dcmdump, "-q", p).CombinedOutput(); err != nil {
			t.Fatalf("dcmdump rejects the synthetic file: %v\n%s", err, out)
		}
	}
}

// A file declaring a vast number of tiny frames keeps no per-frame
// digests (each would be held in memory and in the attestation); the
// whole-pixel digest still covers every byte.
func TestManyTinyFramesKeepNoFrameDigests(t *testing.T) {
	data := synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.99.2", Rows: 1, Columns: 1, Frames: 200_000})
	a, err := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	d := a.Digests([]byte("salt"))
	if d.Frames != nil || len(d.Pixel) != 64 {
		t.Fatalf("%d frame digests kept (pixel %q)", len(d.Frames), d.Pixel)
	}
	data[len(data)-1] ^= 1
	b, _ := dicomfile.Analyze(bytes.NewReader(data), int64(len(data)))
	if b.Digests([]byte("salt")).Pixel == d.Pixel {
		t.Fatal("a changed pixel did not change the pixel digest")
	}
}
