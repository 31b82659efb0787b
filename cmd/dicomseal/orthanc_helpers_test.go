package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
)

// The peers of the interop tests (orthanc_e2e_test.go): a real Orthanc —
// Debian's orthanc 1.10 with its DICOMweb plugin 1.7, installed by
// scripts/orthanc.sh — and OHIF Viewer v3's requests replayed by
// testdata/ohif/replay.mjs with the client OHIF uses. The tests read
//
//	DICOMSEAL_TEST_ORTHANC           the Orthanc binary
//	DICOMSEAL_TEST_ORTHANC_DICOMWEB  the DICOMweb plugin (libOrthancDicomWeb.so)
//	DICOMSEAL_TEST_OHIF_REPLAY       testdata/ohif/replay.mjs, its packages
//	                                 installed (scripts/ohif.sh)
//
// and skip without them, except under CI, where they fail.

// Orthanc's names for the two DICOMweb servers it knows dicomseal as:
// separation of duties, one token each.
const (
	orthancViewer = "dicomseal"      // QIDO-RS and WADO-RS, with a viewer token
	orthancStow   = "dicomseal-stow" // STOW-RS, with an ingest token
)

// dicomwebPeer is a DICOMweb server in Orthanc's "DicomWeb"."Servers".
type dicomwebPeer struct {
	URL string
	// Authorization is the header value Orthanc sends it ("HttpHeaders").
	Authorization string
}

// config is p as Orthanc configures a DICOMweb server.
func (p dicomwebPeer) config() map[string]any {
	c := map[string]any{"Url": p.URL}
	if p.Authorization != "" {
		c["HttpHeaders"] = map[string]string{"Authorization": p.Authorization}
	}
	return c
}

// orthanc is a real Orthanc started for one test, with its own storage,
// jobs and DICOMweb servers. Its REST API (url) needs HTTP Basic
// credentials: Orthanc 1.10 cannot bind to loopback only, so
// RemoteAccessAllowed false refuses other hosts and the random user
// everyone else.
type orthanc struct {
	t              testing.TB
	url            string
	user, password string
	client         *http.Client
	logs           *syncBuffer
	dicomPort      int // with orthancOptions.dicom
}

// startOrthancFor starts an Orthanc that knows srv as its two DICOMweb
// servers: orthancViewer with srv's viewer token, orthancStow with its
// ingest token.
func startOrthancFor(t *testing.T, srv *testServer) *orthanc {
	t.Helper()
	base := srv.url + "/dicomweb/"
	return startOrthanc(t, map[string]dicomwebPeer{
		orthancViewer: {URL: base, Authorization: "Bearer " + srv.tokens[auth.RoleViewer]},
		orthancStow:   {URL: base, Authorization: "Bearer " + srv.tokens[auth.RoleIngest]},
	})
}

// startOrthanc runs Orthanc on a free port, HTTP only (no DICOM port),
// with peers as its DICOMweb servers, and waits until it answers /system.
func startOrthanc(t testing.TB, peers map[string]dicomwebPeer) *orthanc {
	t.Helper()
	return startOrthancWith(t, peers, orthancOptions{})
}

// orthancOptions add to the Orthanc startOrthanc runs.
type orthancOptions struct {
	// dicom opens Orthanc's DICOM port (C-STORE SCP, AE title ORTHANC) on
	// a free loopback port (orthanc.dicomPort).
	dicom bool
	// python loads the Python plugin (DICOMSEAL_TEST_ORTHANC_PYTHON) with
	// this script; env is added to Orthanc's environment.
	python string
	env    []string
}

func startOrthancWith(t testing.TB, peers map[string]dicomwebPeer, opts orthancOptions) *orthanc {
	t.Helper()
	bin, plugin := os.Getenv("DICOMSEAL_TEST_ORTHANC"), os.Getenv("DICOMSEAL_TEST_ORTHANC_DICOMWEB")
	requireOrSkip(t, bin != "" && plugin != "",
		"DICOMSEAL_TEST_ORTHANC and DICOMSEAL_TEST_ORTHANC_DICOMWEB are not set; scripts/test.sh (make test) installs Orthanc with scripts/orthanc.sh and sets them")
	for _, p := range []string{bin, plugin} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Orthanc (scripts/orthanc.sh install): %v", err)
		}
	}
	servers := map[string]any{}
	for name, p := range peers {
		servers[name] = p.config()
	}
	o := &orthanc{t: t, user: "test" + randomSuffix(), password: randomSuffix() + randomSuffix(),
		client: &http.Client{Timeout: 60 * time.Second}, logs: &syncBuffer{}}
	dir := t.TempDir()
	// A port that was free may be taken before Orthanc binds it: try again.
	for attempt := 1; ; attempt++ {
		port := freeLoopbackPort(t)
		plugins := []string{plugin}
		config := map[string]any{
			"Name":                  "dicomseal-peer",
			"StorageDirectory":      filepath.Join(dir, "storage"),
			"IndexDirectory":        filepath.Join(dir, "storage"),
			"HttpPort":              port,
			"RemoteAccessAllowed":   false,
			"AuthenticationEnabled": true,
			"RegisteredUsers":       map[string]string{o.user: o.password},
			"DicomServerEnabled":    false,
			"HttpTimeout":           30, // Orthanc's own HTTP client, seconds
			"SaveJobs":              false,
			"DicomWeb":              map[string]any{"Enable": true, "Root": "/dicom-web/", "Servers": servers},
		}
		if opts.dicom {
			o.dicomPort = freeLoopbackPort(t)
			config["DicomServerEnabled"], config["DicomPort"], config["DicomAet"] = true, o.dicomPort, "ORTHANC"
		}
		if opts.python != "" {
			py := os.Getenv("DICOMSEAL_TEST_ORTHANC_PYTHON")
			requireOrSkip(t, py != "", "DICOMSEAL_TEST_ORTHANC_PYTHON is not set; scripts/orthanc.sh installs orthanc-python and sets it")
			plugins = append(plugins, py)
			config["PythonScript"], config["PythonVerbose"] = opts.python, false
		}
		config["Plugins"] = plugins
		b, err := json.MarshalIndent(config, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "orthanc.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		o.url = fmt.Sprintf("http://127.0.0.1:%d", port)
		cmd := exec.Command(bin, path)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, o.logs, o.logs
		cmd.Env = append(os.Environ(), opts.env...)
		started := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start Orthanc: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		err = o.waitReady(exited, 30*time.Second)
		if err == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("Orthanc logs:\n%s", o.logs.String())
				}
			})
			t.Logf("Orthanc on %s, ready in %v", o.url, time.Since(started).Round(time.Millisecond))
			return o
		}
		cmd.Process.Kill()
		if attempt == 3 {
			t.Fatalf("Orthanc on %s: %v\n%s", o.url, err, o.logs.String())
		}
	}
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls /system until Orthanc answers it, exits, or timeout passes.
func (o *orthanc) waitReady(exited <-chan error, timeout time.Duration) error {
	probe := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		req, _ := http.NewRequest(http.MethodGet, o.url+"/system", nil)
		req.SetBasicAuth(o.user, o.password)
		if resp, err := probe.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("Orthanc exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer on /system within %v", timeout)
}

// basicAuth is the Authorization header value of Orthanc's own user, for
// a client of Orthanc's DICOMweb server.
func (o *orthanc) basicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(o.user+":"+o.password))
}

// call sends one request to Orthanc's REST API and returns its status and body.
func (o *orthanc) call(method, path string, body []byte) (int, []byte) {
	o.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, o.url+path, rd)
	if err != nil {
		o.t.Fatal(err)
	}
	req.SetBasicAuth(o.user, o.password)
	resp, err := o.client.Do(req)
	if err != nil {
		o.t.Fatalf("Orthanc %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		o.t.Fatalf("Orthanc %s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// json sends in (when not nil) as JSON and decodes the answer into out
// (when not nil); anything but a 2xx fails the test.
func (o *orthanc) json(method, path string, in, out any) {
	o.t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			o.t.Fatal(err)
		}
	}
	status, b := o.call(method, path, body)
	if status/100 != 2 {
		o.t.Fatalf("Orthanc %s %s → %d: %.1000s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			o.t.Fatalf("Orthanc %s %s: %v: %.500s", method, path, err, b)
		}
	}
}

// upload stores one file in Orthanc (POST /instances) and returns the
// Orthanc IDs of the instance and its study.
func (o *orthanc) upload(data []byte) (instance, study string) {
	o.t.Helper()
	var r struct{ ID, ParentStudy, Status string }
	status, b := o.call(http.MethodPost, "/instances", data)
	if status != http.StatusOK || json.Unmarshal(b, &r) != nil {
		o.t.Fatalf("Orthanc POST /instances → %d: %.500s", status, b)
	}
	if r.Status != "Success" && r.Status != "AlreadyStored" {
		o.t.Fatalf("Orthanc refused an upload: %+v", r)
	}
	return r.ID, r.ParentStudy
}

// lookup returns the Orthanc ID of the resource with a DICOM UID.
func (o *orthanc) lookup(uid string) (string, bool) {
	o.t.Helper()
	var r []struct{ ID, Type string }
	status, b := o.call(http.MethodPost, "/tools/lookup", []byte(uid))
	if status != http.StatusOK || json.Unmarshal(b, &r) != nil {
		o.t.Fatalf("Orthanc /tools/lookup %s → %d: %s", uid, status, b)
	}
	if len(r) == 0 {
		return "", false
	}
	return r[0].ID, true
}

// files returns the files of an Orthanc study (an Orthanc ID) as Orthanc
// holds them, by SOP Instance UID.
func (o *orthanc) files(study string) map[string][]byte {
	o.t.Helper()
	var instances []struct {
		ID            string
		MainDicomTags struct{ SOPInstanceUID string }
	}
	o.json(http.MethodGet, "/studies/"+study+"/instances", nil, &instances)
	out := map[string][]byte{}
	for _, in := range instances {
		status, b := o.call(http.MethodGet, "/instances/"+in.ID+"/file", nil)
		if status != http.StatusOK {
			o.t.Fatalf("Orthanc /instances/%s/file → %d", in.ID, status)
		}
		out[in.MainDicomTags.SOPInstanceUID] = b
	}
	return out
}

// deleteStudy removes a study (an Orthanc ID) from Orthanc.
func (o *orthanc) deleteStudy(study string) {
	o.t.Helper()
	o.json(http.MethodDelete, "/studies/"+study, nil, nil)
}

// setPeer defines (or redefines) one of Orthanc's DICOMweb servers while
// it runs (PUT /dicom-web/servers/{name}, DICOMweb plugin ≥ 1.5).
func (o *orthanc) setPeer(name string, p dicomwebPeer) {
	o.t.Helper()
	o.json(http.MethodPut, "/dicom-web/servers/"+url.PathEscape(name), p.config(), nil)
}

// orthancJob is an Orthanc job as GET /jobs/{id} describes it.
type orthancJob struct {
	ID, State, Type, ErrorDescription string
	ErrorCode                         int
	// Content: STOW counts "InstancesCount", WADO "ReceivedInstancesCount";
	// a failed function adds "FunctionErrorDescription".
	Content map[string]any
}

func (j orthancJob) String() string {
	b, _ := json.Marshal(j)
	return string(b)
}

// runJob submits a DICOMweb client call as an asynchronous job (body gets
// "Synchronous": false) and waits until it succeeds or fails.
func (o *orthanc) runJob(path string, body map[string]any) orthancJob {
	o.t.Helper()
	body["Synchronous"] = false
	var submitted struct{ ID string }
	o.json(http.MethodPost, path, body, &submitted)
	if submitted.ID == "" {
		o.t.Fatalf("Orthanc %s: no job ID", path)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var j orthancJob
		o.json(http.MethodGet, "/jobs/"+submitted.ID, nil, &j)
		switch j.State {
		case "Success", "Failure":
			return j
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("Orthanc job %s (%s) still %s after 2 minutes: %v", j.ID, path, j.State, j)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stow makes Orthanc send resources (Orthanc IDs of studies, series or
// instances) to a DICOMweb server with STOW-RS.
func (o *orthanc) stow(server string, resources ...string) orthancJob {
	o.t.Helper()
	return o.runJob("/dicom-web/servers/"+url.PathEscape(server)+"/stow", map[string]any{"Resources": resources})
}

// wadoResource names what Orthanc retrieves with WADO-RS: a study, or a
// series or an instance of it.
type wadoResource struct {
	Study    string `json:"Study"`
	Series   string `json:"Series,omitempty"`
	Instance string `json:"Instance,omitempty"`
}

// retrieve makes Orthanc fetch resources from a DICOMweb server with
// WADO-RS and store them.
func (o *orthanc) retrieve(server string, resources ...wadoResource) orthancJob {
	o.t.Helper()
	return o.runJob("/dicom-web/servers/"+url.PathEscape(server)+"/retrieve", map[string]any{"Resources": resources})
}

// qidoMatch is one answer of Orthanc's QIDO-RS client, which flattens
// DICOM JSON: tag → its first value.
type qidoMatch map[string]struct {
	VR    string `json:"vr"`
	Value any
}

func (m qidoMatch) str(tag string) string {
	if v, ok := m[tag].Value.(string); ok {
		return v
	}
	return ""
}

// qido makes Orthanc search a DICOMweb server with QIDO-RS: uri without a
// query (the plugin refuses '?'), args as its query parameters. It returns
// the status of Orthanc's answer and, when 200, the matches.
func (o *orthanc) qido(server, uri string, args map[string]string) (int, []qidoMatch, []byte) {
	o.t.Helper()
	req := map[string]any{"Uri": uri}
	if len(args) > 0 { // null is refused
		req["Arguments"] = args
	}
	in, err := json.Marshal(req)
	if err != nil {
		o.t.Fatal(err)
	}
	status, b := o.call(http.MethodPost, "/dicom-web/servers/"+url.PathEscape(server)+"/qido", in)
	var matches []qidoMatch
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &matches); err != nil {
			o.t.Fatalf("Orthanc qido %s: %v: %.500s", uri, err, b)
		}
	}
	return status, matches, b
}

// ohifReplay is what testdata/ohif/replay.mjs prints: what OHIF's viewer
// parsed from each step of opening a study.
type ohifReplay struct {
	Studies []ohifStudy
	Study   string
	Series  []struct {
		SeriesInstanceUID string
		Modality          string
	}
	SeriesCount int
	Metadata    []struct {
		SeriesInstanceUID string
		Instances         int `json:"instances"`
		SOPInstanceUIDs   []string
	}
	MetadataInstances int
	Image             struct {
		SOPInstanceUID, SeriesInstanceUID                             string
		Rows, Columns, SamplesPerPixel, BitsAllocated, NumberOfFrames int
	}
	Frame, CornerstoneFrame ohifFrame
	Requests                []struct {
		Step, URL, Accept, ContentType string
		Authorization                  bool
		Status                         int
	}
}

// ohifStudy is one row of OHIF's work list.
type ohifStudy struct {
	StudyInstanceUID  string
	ModalitiesInStudy []string
}

// ohifFrame is one frames answer as the viewer saw it.
type ohifFrame struct {
	Bytes                                        int
	SHA256                                       string `json:"sha256"`
	ContentType, PartContentType, TransferSyntax string
}

// replayOHIF runs replay.mjs against a DICOMweb base URL, sending
// authorization (empty: none), opening study. It returns the summary, or
// the error and what the replay said when it failed.
func replayOHIF(t *testing.T, base, authorization, study string) (ohifReplay, error) {
	t.Helper()
	script := os.Getenv("DICOMSEAL_TEST_OHIF_REPLAY")
	requireOrSkip(t, script != "", "DICOMSEAL_TEST_OHIF_REPLAY is not set; scripts/test.sh (make test) installs testdata/ohif with scripts/ohif.sh and sets it")
	node, err := exec.LookPath("node")
	requireOrSkip(t, err == nil, "node is needed to replay OHIF's requests: %v (scripts/ohif.sh installs it)", err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, base, "--study", study)
	// The credential goes in the environment, not the arguments.
	cmd.Env = append(os.Environ(), "DICOMWEB_AUTHORIZATION="+authorization)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", script, err)
		}
		return ohifReplay{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r ohifReplay
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("replay.mjs printed no summary: %v\n%s\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return r, nil
}

// ctStudy is one study of four real instances in two series: pydicom's
// CT_small with its SOP Instance UID and Series Instance UID rewritten
// in place (same length, so the file stays well-formed; the pixels stay
// the same).
type ctStudy struct {
	uid    string
	series []string          // Series Instance UIDs, in order
	files  map[string][]byte // by SOP Instance UID
	bySOP  map[string]string // SOP Instance UID → Series Instance UID
}

const (
	ctStudyUID  = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
	ctSeriesUID = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
	ctSOPUID    = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
)

// CT_small's image, from its header (dcmdump): 128×128, one sample of 16
// bits, Explicit VR Little Endian.
const (
	ctRows, ctColumns, ctSamples, ctBitsAllocated = 128, 128, 1, 16
	explicitVRLittleEndian                        = "1.2.840.10008.1.2.1"
)

func newCTStudy(t testing.TB) ctStudy {
	t.Helper()
	data := fixture(t, "pydicom-CT_small.dcm")
	s := ctStudy{uid: ctStudyUID, files: map[string][]byte{}, bySOP: map[string]string{}}
	for se := 1; se <= 2; se++ {
		series := strings.Replace(ctSeriesUID, ".1.3.1.1.", fmt.Sprintf(".1.3.1.%d.", se), 1)
		s.series = append(s.series, series)
		for in := 1; in <= 2; in++ {
			sop := strings.Replace(ctSOPUID, ".1.1.1.1.1.", fmt.Sprintf(".1.1.1.1.%d.", (se-1)*2+in), 1)
			b := bytes.ReplaceAll(data, []byte(ctSOPUID), []byte(sop))
			b = bytes.ReplaceAll(b, []byte(ctSeriesUID), []byte(series))
			if bytes.Count(b, []byte(sop)) != 2 || !bytes.Contains(b, []byte(series)) {
				t.Fatal("CT_small's UIDs are not where newCTStudy expects them")
			}
			s.files[sop], s.bySOP[sop] = b, series
		}
	}
	return s
}

// sopsOf returns the SOP Instance UIDs of one series of the study.
func (s ctStudy) sopsOf(series string) []string {
	var out []string
	for sop, se := range s.bySOP {
		if se == series {
			out = append(out, sop)
		}
	}
	return out
}

// nativePixelData returns the value of the (explicit VR, defined length)
// Pixel Data element of a native file: its one frame, as WADO-RS frames
// must answer it.
func nativePixelData(t testing.TB, data []byte) []byte {
	t.Helper()
	for _, vr := range []string{"OW", "OB"} {
		tag := append([]byte{0xE0, 0x7F, 0x10, 0x00}, vr...)
		if i := bytes.LastIndex(data, tag); i >= 0 && i+12 <= len(data) {
			n := int(binary.LittleEndian.Uint32(data[i+8 : i+12]))
			if i+12+n <= len(data) {
				return data[i+12 : i+12+n]
			}
		}
	}
	t.Fatal("no native explicit-VR Pixel Data")
	return nil
}
