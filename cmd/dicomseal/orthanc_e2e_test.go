package main

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
)

// Interop with real peers, over dicomseal's DICOMweb (PS3.18) at
// <server>/dicomweb: Orthanc (1.10 with its DICOMweb plugin 1.7) pushes a
// study with STOW-RS, fetches it back with WADO-RS and searches it with
// QIDO-RS, as a PACS next to dicomseal would; OHIF Viewer v3's requests,
// replayed with the client OHIF uses, open a study as a radiologist's
// viewer would. The peers are the judges: a job Orthanc marks Success, a
// summary the replay prints. Each test has its own dicomseal and its own
// Orthanc (orthanc_helpers_test.go says what they need).
//
// TestOrthancHarness runs the same peers against Orthanc's own DICOMweb
// server: when it passes and a dicomseal test fails, the fault is
// dicomseal's, not the harness's.

// orthancStudy uploads files to Orthanc and returns the Orthanc ID of
// their study (they must share one).
func orthancStudy(t *testing.T, o *orthanc, files map[string][]byte) string {
	t.Helper()
	var study string
	for _, b := range files {
		_, s := o.upload(b)
		if study != "" && s != study {
			t.Fatalf("files of one study landed in two Orthanc studies (%s, %s)", study, s)
		}
		study = s
	}
	return study
}

// ingestAll stores files in dicomseal with its native API.
func ingestAll(t *testing.T, srv *testServer, files map[string][]byte) {
	t.Helper()
	for sop, b := range files {
		if r := srv.ingest(b); r.status != http.StatusCreated {
			t.Fatalf("ingest %s: %d %s", sop, r.status, r.body)
		}
	}
}

// storedIn is how a test reads back what a DICOMweb server holds: the
// bytes of one SOP instance, or false when it has none.
type storedIn func(t *testing.T, sop string) ([]byte, bool)

// inDicomseal reads dicomseal's copy with its native API, as a viewer.
func inDicomseal(srv *testServer) storedIn {
	return func(t *testing.T, sop string) ([]byte, bool) {
		t.Helper()
		r := srv.as(auth.RoleViewer).do(http.MethodGet, "/v1/instances/"+sop, "", nil)
		switch r.status {
		case http.StatusOK:
			return r.body, true
		case http.StatusNotFound:
			assertProblem(t, r, http.StatusNotFound, "not-found")
			return nil, false
		}
		t.Fatalf("GET /v1/instances/%s: %d %s", sop, r.status, r.body)
		return nil, false
	}
}

// inOrthanc reads an Orthanc's copy.
func inOrthanc(o *orthanc) storedIn {
	return func(t *testing.T, sop string) ([]byte, bool) {
		t.Helper()
		id, ok := o.lookup(sop)
		if !ok {
			return nil, false
		}
		status, b := o.call(http.MethodGet, "/instances/"+id+"/file", nil)
		if status != http.StatusOK {
			t.Fatalf("Orthanc /instances/%s/file → %d", id, status)
		}
		return b, true
	}
}

// A PACS pushes whole studies: Orthanc's STOW-RS client sends three real
// studies (CT_small as four instances in two series, an uncompressed PET,
// a JPEG 2000 NM) in one job, marks the job Success — which it does only
// when the answer's Referenced SOP Sequence counts every instance sent and
// no Failed SOP Sequence item — and dicomseal then hands every instance
// back, with its native API, byte for byte as Orthanc holds it.
func TestOrthancPushesStudies(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	o := startOrthancFor(t, srv)
	testPush(t, o, inDicomseal(srv))
}

func testPush(t *testing.T, o *orthanc, stored storedIn) {
	t.Helper()
	ct := newCTStudy(t)
	studies := []string{orthancStudy(t, o, ct.files)}
	for _, name := range []string{"suyashkumar-1-pet.dcm", "pydicom-JPEG2000.dcm"} {
		_, s := o.upload(fixture(t, name))
		studies = append(studies, s)
	}
	held := map[string][]byte{}
	for _, s := range studies {
		for sop, b := range o.files(s) {
			held[sop] = b
		}
	}
	if len(held) != len(ct.files)+2 {
		t.Fatalf("Orthanc holds %d instances, want %d", len(held), len(ct.files)+2)
	}

	job := o.stow(orthancStow, studies...)
	if job.State != "Success" {
		t.Fatalf("STOW-RS job: %v", job)
	}
	if n := job.Content["InstancesCount"]; n != "6" {
		t.Errorf("the job sent %v instances, want 6", n)
	}
	for sop, want := range held {
		got, ok := stored(t, sop)
		if !ok {
			t.Errorf("%s: not stored after a successful STOW-RS job", sop)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes stored, not the %d Orthanc sent", sop, len(got), len(want))
		}
	}
}

// Without the right credential the push fails and stores nothing: a token
// dicomseal never issued, a viewer's (viewers do not store: separation of
// duties) and none. Orthanc marks the job Failure for a 401 or 403
// ("Bad credentials", not "Unknown resource": the route is there); no
// instance is stored. Then the ingest token pushes the same study.
func TestOrthancPushRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	o := startOrthancFor(t, srv)
	ct := newCTStudy(t)
	study := orthancStudy(t, o, ct.files)
	stored := inDicomseal(srv)
	for _, tc := range []struct{ name, authorization string }{
		{"unknown token", "Bearer dsk_" + randomSuffix() + randomSuffix()},
		{"viewer token", "Bearer " + srv.tokens[auth.RoleViewer]},
		{"no token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.setPeer(orthancStow, dicomwebPeer{URL: srv.url + "/dicomweb/", Authorization: tc.authorization})
			requireRefused(t, o.stow(orthancStow, study), orthancBadCredentials)
			for sop := range ct.files {
				if _, ok := stored(t, sop); ok {
					t.Errorf("%s: stored by a refused push", sop)
				}
			}
		})
	}
	t.Run("ingest token", func(t *testing.T) {
		o.setPeer(orthancStow, dicomwebPeer{URL: srv.url + "/dicomweb/", Authorization: "Bearer " + srv.tokens[auth.RoleIngest]})
		if job := o.stow(orthancStow, study); job.State != "Success" {
			t.Fatalf("STOW-RS job: %v", job)
		}
		for sop := range ct.files {
			if _, ok := stored(t, sop); !ok {
				t.Errorf("%s: not stored", sop)
			}
		}
	})
}

// Orthanc's errors (Orthanc::ErrorCode) for a DICOMweb server's refusal.
const (
	// orthancBadCredentials: an answer 401 or 403 (ErrorCode_Unauthorized).
	orthancBadCredentials = 29
	// orthancNetworkProtocol: what the WADO-RS client reports for any
	// error answer, 403 included — it streams the answer and checks its
	// Content-Type (multipart/related) before its status.
	orthancNetworkProtocol = 9
)

// requireRefused holds a job to having failed with one of codes: for
// STOW-RS orthancBadCredentials, which tells a refusal from a missing
// route ("Unknown resource"); for WADO-RS, which cannot tell them apart,
// the test must show the same retrieval succeeding with the right token.
func requireRefused(t *testing.T, job orthancJob, codes ...int) {
	t.Helper()
	if job.State != "Failure" {
		t.Fatalf("job %v, want Failure", job)
	}
	code, _ := job.Content["FunctionErrorCode"].(float64)
	if !slices.Contains(codes, int(code)) {
		t.Fatalf("job failed with Orthanc error %v, want one of %v: %v", code, codes, job)
	}
}

// A PACS fetches studies back: dicomseal holds the study, Orthanc does not
// (it had it, and deleted it); Orthanc's WADO-RS client retrieves the
// study, one series, or one instance, and stores exactly the bytes that
// were ingested.
func TestOrthancRetrievesStudy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	o := startOrthancFor(t, srv)
	ct := newCTStudy(t)
	ingestAll(t, srv, ct.files)
	testRetrieve(t, o, ct) // with the viewer token: the control for what follows
	// Ingest stores and does not read (separation of duties).
	t.Run("ingest token refused", func(t *testing.T) {
		o.deleteStudy(orthancStudy(t, o, ct.files))
		o.setPeer(orthancViewer, dicomwebPeer{URL: srv.url + "/dicomweb/", Authorization: "Bearer " + srv.tokens[auth.RoleIngest]})
		requireRefused(t, o.retrieve(orthancViewer, wadoResource{Study: ct.uid}), orthancBadCredentials, orthancNetworkProtocol)
		if _, ok := o.lookup(ct.uid); ok {
			t.Error("a refused retrieval stored the study in Orthanc")
		}
	})
}

func testRetrieve(t *testing.T, o *orthanc, ct ctStudy) {
	t.Helper()
	sop := ct.sopsOf(ct.series[1])[0]
	for _, tc := range []struct {
		name     string
		resource wadoResource
		want     []string // SOP Instance UIDs
	}{
		{"study", wadoResource{Study: ct.uid}, slices.Collect(maps.Keys(ct.files))},
		{"series", wadoResource{Study: ct.uid, Series: ct.series[0]}, ct.sopsOf(ct.series[0])},
		{"instance", wadoResource{Study: ct.uid, Series: ct.series[1], Instance: sop}, []string{sop}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Orthanc had the study, and no longer has it.
			study := orthancStudy(t, o, ct.files)
			o.deleteStudy(study)
			if _, ok := o.lookup(ct.uid); ok {
				t.Fatal("the study is still in Orthanc after DELETE")
			}

			job := o.retrieve(orthancViewer, tc.resource)
			if job.State != "Success" {
				t.Fatalf("WADO-RS job: %v", job)
			}
			study, ok := o.lookup(ct.uid)
			if !ok {
				t.Fatalf("a successful WADO-RS job stored nothing: %v", job)
			}
			got := o.files(study)
			if len(got) != len(tc.want) {
				t.Errorf("Orthanc retrieved %d instances, want %d (%v)", len(got), len(tc.want), job.Content)
			}
			for _, sop := range tc.want {
				if b, ok := got[sop]; !ok {
					t.Errorf("%s: not retrieved", sop)
				} else if !bytes.Equal(b, ct.files[sop]) {
					t.Errorf("%s: Orthanc stored %d bytes, not the %d ingested", sop, len(b), len(ct.files[sop]))
				}
			}
		})
	}
}

// A PACS searches: Orthanc's QIDO-RS client finds the study by its UID
// among two, lists its two series and each one's instances, and gets an
// empty list — a JSON array, which is all the 1.7 client accepts — for a
// study nobody has.
func TestOrthancQueries(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	o := startOrthancFor(t, srv)
	ct := newCTStudy(t)
	ingestAll(t, srv, ct.files)
	if r := srv.ingest(fixture(t, "pydicom-MR_small.dcm")); r.status != http.StatusCreated {
		t.Fatalf("ingest MR_small: %d %s", r.status, r.body)
	}
	testQueries(t, o, ct)
}

func testQueries(t *testing.T, o *orthanc, ct ctStudy) {
	t.Helper()
	uids := func(ms []qidoMatch, tag string) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.str(tag))
		}
		slices.Sort(out)
		return out
	}
	query := func(t *testing.T, uri string, args map[string]string) []qidoMatch {
		t.Helper()
		status, ms, body := o.qido(orthancViewer, uri, args)
		if status != http.StatusOK {
			t.Fatalf("QIDO-RS %s %v through Orthanc → %d: %.500s", uri, args, status, body)
		}
		return ms
	}

	t.Run("all studies", func(t *testing.T) {
		ms := query(t, "/studies", nil)
		if got := uids(ms, "0020000D"); len(got) != 2 || !slices.Contains(got, ct.uid) {
			t.Errorf("studies %v, want CT_small's %s and MR_small's", got, ct.uid)
		}
	})
	t.Run("study by UID", func(t *testing.T) {
		ms := query(t, "/studies", map[string]string{"StudyInstanceUID": ct.uid})
		if got := uids(ms, "0020000D"); !slices.Equal(got, []string{ct.uid}) {
			t.Fatalf("studies %v, want [%s]", got, ct.uid)
		}
		if m := ms[0]; m["0020000D"].VR != "UI" {
			t.Errorf("StudyInstanceUID with VR %q, want UI", m["0020000D"].VR)
		}
	})
	t.Run("series of the study", func(t *testing.T) {
		ms := query(t, "/studies/"+ct.uid+"/series", nil)
		want := slices.Sorted(slices.Values(ct.series))
		if got := uids(ms, "0020000E"); !slices.Equal(got, want) {
			t.Errorf("series %v, want %v", got, want)
		}
		for _, m := range ms {
			if m.str("00080060") != "CT" {
				t.Errorf("series %s: Modality %q, want CT", m.str("0020000E"), m.str("00080060"))
			}
		}
	})
	for i, series := range ct.series {
		t.Run("instances of series "+strconv.Itoa(i+1), func(t *testing.T) {
			ms := query(t, "/studies/"+ct.uid+"/series/"+series+"/instances", nil)
			want := slices.Sorted(slices.Values(ct.sopsOf(series)))
			if got := uids(ms, "00080018"); !slices.Equal(got, want) {
				t.Errorf("instances %v, want %v", got, want)
			}
		})
	}
	t.Run("no such study", func(t *testing.T) {
		if ms := query(t, "/studies", map[string]string{"StudyInstanceUID": "1.2.826.0.1.3680043.2.1143.4242"}); len(ms) != 0 {
			t.Errorf("%d matches for a study nobody has", len(ms))
		}
	})
}

// A radiologist opens a study in OHIF Viewer v3: the work list finds it,
// its two series are listed, the viewer loads both series' metadata (four
// instances) and fetches frame 1 of the first image, whose length is
// Rows × Columns × Samples per Pixel × Bits Allocated / 8 and whose bytes
// are the file's Pixel Data. Only a viewer's token opens it.
func TestOHIFViewerOpensStudy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	ct := newCTStudy(t)
	ingestAll(t, srv, ct.files)
	base := srv.url + "/dicomweb"
	t.Run("viewer", func(t *testing.T) {
		r, err := replayOHIF(t, base, "Bearer "+srv.tokens[auth.RoleViewer], ct.uid)
		if err != nil {
			t.Fatalf("OHIF's requests failed: %v", err)
		}
		checkOHIFReplay(t, r, ct)
	})
	for _, tc := range []struct{ name, authorization string }{
		{"ingest token", "Bearer " + srv.tokens[auth.RoleIngest]},
		{"auditor token", "Bearer " + srv.tokens[auth.RoleAuditor]},
		{"no token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replayOHIF(t, base, tc.authorization, ct.uid)
			if err == nil {
				t.Fatalf("OHIF opened the study with %s", tc.name)
			}
			if !strings.Contains(err.Error(), "HTTP 401") && !strings.Contains(err.Error(), "HTTP 403") {
				t.Errorf("refused, but not with 401 or 403: %v", err)
			}
		})
	}
}

// checkOHIFReplay holds a replay of OHIF's requests to what the viewer
// must have parsed from a server holding ct.
func checkOHIFReplay(t *testing.T, r ohifReplay, ct ctStudy) {
	t.Helper()
	if !slices.ContainsFunc(r.Studies, func(s ohifStudy) bool { return s.StudyInstanceUID == ct.uid }) {
		t.Errorf("the work list %+v lacks study %s", r.Studies, ct.uid)
	}
	if r.SeriesCount != len(ct.series) {
		t.Errorf("%d series, want %d", r.SeriesCount, len(ct.series))
	}
	if r.MetadataInstances != len(ct.files) {
		t.Errorf("metadata of %d instances, want %d", r.MetadataInstances, len(ct.files))
	}
	for _, m := range r.Metadata {
		got := slices.Sorted(slices.Values(m.SOPInstanceUIDs))
		if want := slices.Sorted(slices.Values(ct.sopsOf(m.SeriesInstanceUID))); !slices.Equal(got, want) {
			t.Errorf("series %s: metadata of %v, want %v", m.SeriesInstanceUID, got, want)
		}
	}
	img := r.Image
	if img.Rows != ctRows || img.Columns != ctColumns || img.SamplesPerPixel != ctSamples || img.BitsAllocated != ctBitsAllocated {
		t.Errorf("image %+v, want %d×%d, %d sample of %d bits", img, ctRows, ctColumns, ctSamples, ctBitsAllocated)
	}
	file, ok := ct.files[img.SOPInstanceUID]
	if !ok {
		t.Fatalf("the viewer opened instance %q, not one of the study's", img.SOPInstanceUID)
	}
	pixels := nativePixelData(t, file)
	want := ctRows * ctColumns * ctSamples * ctBitsAllocated / 8
	for name, f := range map[string]ohifFrame{"dicomweb-client": r.Frame, "cornerstone": r.CornerstoneFrame} {
		if f.Bytes != want || len(pixels) != want {
			t.Errorf("%s: frame 1 of %d bytes, want %d (the file's Pixel Data: %d)", name, f.Bytes, want, len(pixels))
		}
		if f.SHA256 != sha256Hex(pixels) {
			t.Errorf("%s: frame 1 is not the file's Pixel Data", name)
		}
		// Native pixels: octet-stream, in the file's (or an unnamed) little-endian syntax.
		if !strings.HasPrefix(f.PartContentType, "application/octet-stream") {
			t.Errorf("%s: frame part of type %q, want application/octet-stream", name, f.PartContentType)
		}
		if f.TransferSyntax != "" && f.TransferSyntax != explicitVRLittleEndian {
			t.Errorf("%s: frame in transfer syntax %s, want %s", name, f.TransferSyntax, explicitVRLittleEndian)
		}
	}
	for _, q := range r.Requests {
		if !q.Authorization {
			t.Errorf("%s (%s): sent without Authorization", q.URL, q.Step)
		}
		t.Logf("%s: Accept %q → %d %s", q.Step, q.Accept, q.Status, q.ContentType)
	}
}

// The harness against Orthanc's own DICOMweb server, in dicomseal's
// place: in each case a second Orthanc plays the PACS of the tests above,
// pointed at the first's /dicom-web/, and the OHIF replay opens the study
// on the first. It proves the peers, their configuration and these
// checks; a dicomseal test failing while this passes is dicomseal's fault.
func TestOrthancHarness(t *testing.T) {
	t.Parallel()
	ct := newCTStudy(t)
	// pair starts the Orthanc in dicomseal's place and the one that calls it.
	pair := func(t *testing.T) (server, peer *orthanc) {
		server = startOrthanc(t, nil)
		base := server.url + "/dicom-web/"
		return server, startOrthanc(t, map[string]dicomwebPeer{
			orthancViewer: {URL: base, Authorization: server.basicAuth()},
			orthancStow:   {URL: base, Authorization: server.basicAuth()},
		})
	}
	t.Run("push", func(t *testing.T) {
		t.Parallel()
		server, peer := pair(t)
		testPush(t, peer, inOrthanc(server))
	})
	t.Run("push refused", func(t *testing.T) {
		t.Parallel()
		server, peer := pair(t)
		peer.setPeer(orthancStow, dicomwebPeer{URL: server.url + "/dicom-web/", Authorization: "Bearer " + randomSuffix()})
		requireRefused(t, peer.stow(orthancStow, orthancStudy(t, peer, ct.files)), orthancBadCredentials)
		if _, ok := server.lookup(ct.uid); ok {
			t.Error("a refused push stored the study")
		}
	})
	t.Run("retrieve", func(t *testing.T) {
		t.Parallel()
		server, peer := pair(t)
		orthancStudy(t, server, ct.files)
		testRetrieve(t, peer, ct)
	})
	t.Run("queries", func(t *testing.T) {
		t.Parallel()
		server, peer := pair(t)
		orthancStudy(t, server, ct.files)
		server.upload(fixture(t, "pydicom-MR_small.dcm"))
		testQueries(t, peer, ct)
	})
	t.Run("OHIF", func(t *testing.T) {
		t.Parallel()
		server := startOrthanc(t, nil)
		orthancStudy(t, server, ct.files)
		r, err := replayOHIF(t, server.url+"/dicom-web", server.basicAuth(), ct.uid)
		if err != nil {
			t.Fatalf("OHIF's requests to Orthanc failed: %v", err)
		}
		checkOHIFReplay(t, r, ct)
	})
}
