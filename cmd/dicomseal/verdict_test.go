package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dcmtk runs one of dcmtk's tools (installed by scripts/dcmtk.sh), on a
// copy of data, and returns the result.
type dcmtk struct {
	t   *testing.T
	dir string
}

func newDcmtk(t *testing.T) *dcmtk {
	t.Helper()
	for _, tool := range []string{"dcmconv", "dcmodify", "dcmcjpls", "dcmdjpls", "dcmcjpeg", "dcmdjpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI must run the verdict tests: %s is missing (scripts/dcmtk.sh installs dcmtk)", tool)
			}
			t.Skipf("%s is missing; scripts/test.sh (make test) installs dcmtk", tool)
		}
	}
	return &dcmtk{t: t, dir: t.TempDir()}
}

// convert writes data, runs the tool with args (IN and OUT stand for the
// input and output paths; without OUT the tool edits IN in place) and
// returns the output file.
func (d *dcmtk) convert(data []byte, tool string, args ...string) []byte {
	d.t.Helper()
	in, out := filepath.Join(d.dir, "in.dcm"), filepath.Join(d.dir, "out.dcm")
	os.Remove(out)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		d.t.Fatal(err)
	}
	inPlace := !slices.Contains(args, "OUT")
	for i, a := range args {
		args[i] = strings.NewReplacer("IN", in, "OUT", out).Replace(a)
	}
	if outb, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		d.t.Fatalf("%s %v: %v\n%s", tool, args, err, outb)
	}
	if inPlace {
		out = in
	}
	b, err := os.ReadFile(out)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

type verdictCase struct {
	name string
	make func() []byte
	// status is the verify verdict; changed the attributes it must list
	// (attribute:class:explained), in order.
	status  string
	changed []string
	// ingest is what ingesting the file answers: 201 (a revision), 409
	// (refused) and the problem slug when refused.
	ingest int
	slug   string
}

func changeList(v map[string]any) []string {
	var out []string
	cs, _ := v["changes"].([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		out = append(out, m["attribute"].(string)+":"+m["class"].(string)+":"+map[bool]string{true: "explained", false: "unexplained"}[m["explained"].(bool)])
	}
	return out
}

// TestVerdictsOnRealTransformations attests real files, transforms them
// with dcmtk the way archives and attackers do, and checks what verify and
// ingest say about each: benign re-encodings and documented reconciliations
// are never called tampered, pixel and geometry changes always are.
func TestVerdictsOnRealTransformations(t *testing.T) {
	tools := newDcmtk(t)
	srv := startServer(t, t.TempDir())
	ct := fixture(t, "pydicom-CT_small.dcm")
	if r := srv.ingest(ct); r.status != http.StatusCreated {
		t.Fatalf("ingest original: %d", r.status)
	}
	cases := []verdictCase{
		{"byte-identical", func() []byte { return ct }, "verified", nil, http.StatusOK, ""},
		{"explicit → implicit VR (dcmconv +ti)", func() []byte { return tools.convert(ct, "dcmconv", "+ti", "IN", "OUT") }, "pixels-intact", nil, 201, ""},
		{"little → big endian (dcmconv +tb)", func() []byte { return tools.convert(ct, "dcmconv", "+tb", "IN", "OUT") }, "pixels-intact", nil, 201, ""},
		{"preamble rewritten", func() []byte {
			b := bytes.Clone(ct)
			copy(b, bytes.Repeat([]byte("dicomseal"), 15)[:128])
			return b
		}, "pixels-intact", nil, 201, ""},
		{"private tag added (dcmodify)", func() []byte {
			return tools.convert(ct, "dcmodify", "-nb", "-i", "(0009,0010)=ACME 1.0", "-i", "(0009,1001)=added by a router", "IN")
		}, "pixels-intact", nil, 201, ""},
		{"JPEG-LS lossless round trip (dcmcjpls, dcmdjpls)", func() []byte {
			return tools.convert(tools.convert(ct, "dcmcjpls", "+el", "IN", "OUT"), "dcmdjpls", "IN", "OUT")
		}, "pixels-intact", nil, 201, ""},
		{"JPEG lossless round trip (dcmcjpeg, dcmdjpeg)", func() []byte {
			return tools.convert(tools.convert(ct, "dcmcjpeg", "+e1", "IN", "OUT"), "dcmdjpeg", "IN", "OUT")
		}, "pixels-intact", nil, 201, ""},
		{"Patient ID changed without a trace", func() []byte {
			return tools.convert(ct, "dcmodify", "-nb", "-m", "(0010,0020)=SOMEONE-ELSE", "IN")
		}, "pixels-intact", []string{"PatientID:identity:unexplained"}, 409, "identity-change-refused"},
		{"laterality flipped", func() []byte {
			return tools.convert(ct, "dcmodify", "-nb", "-i", "(0020,0060)=L", "IN")
		}, "pixels-intact", []string{"Laterality:metadata:unexplained"}, 409, "instance-conflict"},
		{"Pixel Spacing changed", func() []byte {
			return tools.convert(ct, "dcmodify", "-nb", "-m", "(0028,0030)=0.5\\0.5", "IN")
		}, "tampered", []string{"PixelSpacing:geometry:unexplained"}, 409, "instance-conflict"},
		{"one pixel changed", func() []byte {
			b := bytes.Clone(ct)
			b[pixelOffset(t, ct)+1] ^= 0x01
			return b
		}, "tampered", nil, 409, "instance-conflict"},
		{"re-encoded to JPEG-LS (dcmcjpls)", func() []byte { return tools.convert(ct, "dcmcjpls", "+el", "IN", "OUT") },
			"pixels-unverifiable", nil, 409, "unverifiable-reencoding"},
		// A sequence documents a change; it does not authorise one: only a
		// reconciler's identity correction may (identity_e2e_test.go).
		{"Patient ID reconciled with an Original Attributes Sequence", func() []byte {
			return tools.convert(ct, "dcmodify", "-nb", "-m", "(0010,0020)=RECONCILED-42",
				"-i", "(0400,0561)[0].(0400,0550)[0].(0010,0020)=1CT1",
				"-i", "(0400,0561)[0].(0400,0563)=PACS-MPI", "-i", "(0400,0561)[0].(0400,0565)=CORRECT", "IN")
		}, "pixels-intact", []string{"PatientID:identity:explained"}, 409, "identity-change-refused"},
		{"new SOP Instance UID", func() []byte { return tools.convert(ct, "dcmodify", "-nb", "-gin", "IN") }, "unknown", nil, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.make()
			v := srv.do(http.MethodPost, "/v1/verify", "application/dicom", data).json(t)
			if v["status"] != tc.status || !slices.Equal(changeList(v), tc.changed) {
				t.Fatalf("verify: %v %v, want %s %v (%v)", v["status"], changeList(v), tc.status, tc.changed, v["detail"])
			}
			if tc.status == "tampered" && tc.name == "one pixel changed" {
				if fr, _ := v["frames"].([]any); len(fr) != 1 || fr[0] != float64(0) {
					t.Fatalf("tampered frames %v, want [0]", v["frames"])
				}
			}
			r := srv.ingest(data)
			if tc.slug != "" {
				p := assertProblem(t, r, tc.ingest, tc.slug)
				if (tc.slug == "instance-conflict" || tc.slug == "identity-change-refused") && p["security_alert"] != true {
					t.Fatalf("a refused revision must be a security alert: %v", p)
				}
				return
			}
			if r.status != tc.ingest {
				t.Fatalf("ingest: %d %s, want %d", r.status, r.body, tc.ingest)
			}
		})
	}
	// Every revision stays retrievable by its ledger index; the latest is the default.
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	att := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil).json(t)
	if att["revises"] == nil {
		t.Fatal("the latest attestation is not a revision")
	}
	orig := srv.do(http.MethodGet, "/v1/instances/"+uid+"?revision=0", "", nil)
	if orig.status != http.StatusOK || !bytes.Equal(orig.body, ct) {
		t.Fatalf("revision 0: %d", orig.status)
	}
	assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+uid+"?revision=999", "", nil), http.StatusNotFound, "not-found")
}
