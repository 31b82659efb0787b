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
