package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
)

// Orthanc gated by dicomseal (integrations/orthanc/dicomseal_gate.py):
// a modality sends C-STORE with dcmtk's storescu to Orthanc's DICOM port,
// and Orthanc keeps only what dicomseal attested.

// gate is a dicomseal on a fixed loopback address (so that it can be
// stopped and started again under the same URL) and an Orthanc gated by
// it, with a DICOM port.
type gate struct {
	t       *testing.T
	addr    string
	dataDir string
	srv     *testServer
	orthanc *orthanc
	outbox  string
	quar    string
}

func startGate(t *testing.T, mode string) *gate {
	t.Helper()
	_, err := exec.LookPath("storescu")
	requireOrSkip(t, err == nil, "storescu (dcmtk) is missing; scripts/test.sh installs dcmtk")
	g := &gate{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t)), dataDir: t.TempDir(),
		outbox: t.TempDir(), quar: t.TempDir()}
	g.start()
	tokenFile := filepath.Join(t.TempDir(), "ingest.token")
	if err := os.WriteFile(tokenFile, []byte(g.srv.tokens[auth.RoleIngest]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "integrations", "orthanc", "dicomseal_gate.py"))
	if err != nil {
		t.Fatal(err)
	}
	g.orthanc = startOrthancWith(t, nil, orthancOptions{dicom: true, python: script, env: []string{
		"DICOMSEAL_URL=http://" + g.addr, "DICOMSEAL_TOKEN_FILE=" + tokenFile, "DICOMSEAL_UNREACHABLE=" + mode,
		"DICOMSEAL_OUTBOX_DIR=" + g.outbox, "DICOMSEAL_QUARANTINE_DIR=" + g.quar, "DICOMSEAL_TIMEOUT=10",
	}})
	return g
}

// start runs dicomseal (again) on the gate's address and data directory.
func (g *gate) start() {
	g.t.Helper()
	tokens := map[auth.Role]string{}
	if g.srv != nil {
		tokens = g.srv.tokens
	}
	g.srv = startServer(g.t, g.dataDir, "--addr", g.addr)
	for role, tok := range tokens {
		g.srv.tokens[role] = tok // the tokens made the first time still hold
	}
}

// store sends files with storescu to Orthanc's DICOM port and returns its
// exit status and output.
func (g *gate) store(files ...[]byte) (int, string) {
	g.t.Helper()
	dir := g.t.TempDir()
	args := []string{"-v", "-R", "-aec", "ORTHANC", "-aet", "MODALITY", "127.0.0.1", fmt.Sprint(g.orthanc.dicomPort)}
	for i, f := range files {
		p := filepath.Join(dir, fmt.Sprintf("%d.dcm", i))
		if err := os.WriteFile(p, f, 0o600); err != nil {
			g.t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command("storescu", args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		g.t.Fatal(err)
	}
	return code, string(out)
}

// kept tells whether Orthanc holds an instance of that SOP Instance UID.
func (g *gate) kept(uid string) bool {
	g.t.Helper()
	_, ok := g.orthanc.lookup(uid)
	return ok
}

func (g *gate) attested(uid string) bool {
	g.t.Helper()
	return g.srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil).status == http.StatusOK
}

func TestOrthancGateRefuses(t *testing.T) {
	tools := newDcmtk(t)
	g := startGate(t, "refuse")
	study := "1.2.826.0.1.3680043.10.1501.1"
	files := studyFiles(t, tools, study, "pydicom-CT_small.dcm", "pydicom-MR_small.dcm", "suyashkumar-1-pet.dcm", "suyashkumar-3-mr.dcm")
	uids := []string{study + ".1.1", study + ".1.2", study + ".2.3", study + ".2.4"}

	// A study over C-STORE: every instance attested, and kept.
	if code, out := g.store(files...); code != 0 || strings.Count(out, "Received Store Response (Success)") != len(files) {
		t.Fatalf("storescu of a study: exit %d\n%s", code, out)
	}
	for _, uid := range uids {
		id, kept := g.orthanc.lookup(uid)
		if !g.attested(uid) || !kept {
			t.Fatalf("%s: attested %v, kept by Orthanc %v", uid, g.attested(uid), kept)
		}
		// What Orthanc keeps is byte for byte what dicomseal attested.
		_, stored := g.orthanc.call(http.MethodGet, "/instances/"+id+"/file", nil)
		if got := g.srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); !bytes.Equal(got.body, stored) {
			t.Fatalf("%s: Orthanc holds other bytes than dicomseal attested", uid)
		}
	}

	// A pixel-altered copy of an attested instance: refused by dicomseal,
	// not kept by Orthanc (the attested one stays), failed for storescu,
	// saved in the quarantine folder.
	altered := bytes.Clone(files[0])
	altered[len(altered)-2] ^= 0xFF // CT_small ends with its Pixel Data
	id, _ := g.orthanc.lookup(uids[0])
	// Orthanc's file is not the sent file byte for byte: a C-STORE SCP
	// writes its own File Meta Information. It is what dicomseal attested
	// through the gate.
	_, before := g.orthanc.call(http.MethodGet, "/instances/"+id+"/file", nil)
	code, out := g.store(altered)
	if !strings.Contains(out, "Received Store Response (Error: CannotUnderstand)") { // 0xC000
		t.Fatalf("storescu of a tampered copy: exit %d\n%s", code, out)
	}
	t.Logf("storescu's answer for an instance the gate discarded: exit %d, %s", code, storeStatus(out))
	if now, _ := g.orthanc.lookup(uids[0]); now != id {
		t.Fatalf("Orthanc's instance changed: %s → %s", id, now)
	}
	if _, b := g.orthanc.call(http.MethodGet, "/instances/"+id+"/file", nil); !bytes.Equal(b, before) {
		t.Fatal("Orthanc no longer holds the attested bytes")
	}
	if q, _ := os.ReadDir(g.quar); len(q) != 1 {
		t.Fatalf("quarantine holds %d files, want the refused one", len(q))
	}
	if !strings.Contains(g.orthanc.logs.String(), "dicomseal refused an instance (409 https://dicomseal.dev/problems/") {
		t.Fatalf("Orthanc's log does not name dicomseal's problem:\n%s", g.orthanc.logs.String())
	}

	// Through Orthanc's REST API (the received-instance callback): a
	// tampered copy of an instance attested elsewhere is not kept.
	direct := studyFiles(t, tools, "1.2.826.0.1.3680043.10.1501.3", "pydicom-MR_small.dcm")[0]
	if r := g.srv.ingest(direct); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	tampered := bytes.Clone(direct)
	tampered[len(tampered)-2] ^= 0xFF // MR_small ends with its Pixel Data
	g.orthanc.call(http.MethodPost, "/instances", tampered)
	if g.kept("1.2.826.0.1.3680043.10.1501.3.1.1") {
		t.Fatal("Orthanc kept a tampered copy uploaded to its REST API")
	}
	if q, _ := os.ReadDir(g.quar); len(q) != 2 {
		t.Fatalf("quarantine holds %d files, want both refused copies", len(q))
	}

	// dicomseal down: nothing is kept unattested.
	g.srv.stop()
	late := studyFiles(t, tools, "1.2.826.0.1.3680043.10.1501.2", "pydicom-CT_small.dcm")[0]
	if code, out := g.store(late); !strings.Contains(out, "Received Store Response (Refused: OutOfResources)") { // 0xA700
		t.Fatalf("storescu with dicomseal down: exit %d\n%s", code, out)
	} else {
		t.Logf("storescu with dicomseal down: exit %d, %s", code, storeStatus(out))
	}
	if g.kept("1.2.826.0.1.3680043.10.1501.2.1.1") {
		t.Fatal("Orthanc kept an instance dicomseal never attested")
	}
	g.orthanc.call(http.MethodPost, "/instances", late) // through the REST API
	if g.kept("1.2.826.0.1.3680043.10.1501.2.1.1") {
		t.Fatal("Orthanc kept an instance uploaded to its REST API while dicomseal was down")
	}
}

func TestOrthancGateOutbox(t *testing.T) {
	tools := newDcmtk(t)
	g := startGate(t, "outbox")
	study := "1.2.826.0.1.3680043.10.1502.1"
	files := studyFiles(t, tools, study, "pydicom-CT_small.dcm", "pydicom-MR_small.dcm")
	if code, out := g.store(files[0]); code != 0 {
		t.Fatalf("storescu: exit %d\n%s", code, out)
	}
	id0, _ := g.orthanc.lookup(study + ".1.1")
	_, original := g.orthanc.call(http.MethodGet, "/instances/"+id0+"/file", nil)
	// Attested in dicomseal, never sent to Orthanc: a tampered copy of it
	// is new to Orthanc, which keeps it while dicomseal is down.
	direct := studyFiles(t, tools, "1.2.826.0.1.3680043.10.1502.2", "pydicom-MR_small.dcm")[0]
	if r := g.srv.ingest(direct); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	tamperedNew := bytes.Clone(direct)
	tamperedNew[len(tamperedNew)-2] ^= 0xFF
	// dicomseal down: Orthanc keeps what arrives, each durably in the
	// outbox first; a tampered copy of an attested instance too, for now.
	g.srv.stop()
	altered := bytes.Clone(files[0])
	altered[len(altered)-2] ^= 0xFF
	if code, out := g.store(files[1], altered, tamperedNew); code != 0 {
		t.Fatalf("storescu with dicomseal down, outbox mode: exit %d\n%s", code, out)
	}
	if box, _ := os.ReadDir(g.outbox); len(box) != 3 || !g.kept(study+".2.2") || !g.kept("1.2.826.0.1.3680043.10.1502.2.1.1") {
		t.Fatalf("outbox holds %d files (want 3); Orthanc kept the new ones: %v, %v\n%s", len(box), g.kept(study+".2.2"),
			g.kept("1.2.826.0.1.3680043.10.1502.2.1.1"), g.orthanc.logs.String())
	}
	// dicomseal back: the outbox drains; the new instance is attested, the
	// tampered copy refused (Orthanc kept its attested original, not it).
	g.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		box, _ := os.ReadDir(g.outbox)
		if len(box) == 0 && g.attested(study+".2.2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain: %d files left\n%s", len(box), g.orthanc.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	id, ok := g.orthanc.lookup(study + ".1.1")
	if _, b := g.orthanc.call(http.MethodGet, "/instances/"+id+"/file", nil); !ok || !bytes.Equal(b, original) {
		t.Fatal("Orthanc lost the attested original")
	}
	if q, _ := os.ReadDir(g.quar); len(q) != 2 {
		t.Fatalf("quarantine holds %d files, want the two tampered copies", len(q))
	}
	// The tampered copy Orthanc had kept is out of it again; the drained
	// instance is kept, byte for byte as attested.
	if g.kept("1.2.826.0.1.3680043.10.1502.2.1.1") {
		t.Fatal("Orthanc still holds the tampered copy dicomseal refused after the outage")
	}
	id2, _ := g.orthanc.lookup(study + ".2.2")
	_, kept2 := g.orthanc.call(http.MethodGet, "/instances/"+id2+"/file", nil)
	if got := g.srv.do(http.MethodGet, "/v1/instances/"+study+".2.2", "", nil); !bytes.Equal(got.body, kept2) {
		t.Fatal("the drained instance is not kept as dicomseal attested it")
	}
}

// storeStatus is the Store Response line storescu printed.
func storeStatus(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Store Response") || strings.Contains(line, "Status") {
			return strings.TrimSpace(line)
		}
	}
	return "(no status line)"
}
