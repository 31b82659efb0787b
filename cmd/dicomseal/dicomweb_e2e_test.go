package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

const ohifFrameAccept = `multipart/related; type="application/octet-stream"; transfer-syntax=*`

// TestSTOWStoresAndRefusesPartByPart stores real files through STOW-RS in
// every framing a sender may use, and refuses bad parts one by one.
func TestSTOWStoresAndRefusesPartByPart(t *testing.T) {
	tools := newDcmtk(t)
	s := startServer(t, t.TempDir())
	study := "1.2.826.0.1.3680043.10.1401.1"
	files := studyFiles(t, tools, study, stowFixtures...)

	framings := []struct {
		name, contentType string
		body              multipartBody
	}{
		{"quoted boundary, lengths", `multipart/related; type="application/dicom"; boundary="b-1"`, multipartBody{boundary: "b-1"}},
		{"unquoted boundary, no lengths, no final CRLF", `multipart/related; type=application/dicom; boundary=xyz`,
			multipartBody{boundary: "xyz", noLength: true, noFinalEOL: true}},
	}
	for i, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			r := s.do(http.MethodPost, "/dicomweb/studies", f.contentType, f.body.build(files...))
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			stored, failed := stowAnswer(t, r)
			if len(stored) != len(files) || len(failed) != 0 {
				t.Fatalf("stored %d, failed %v; want all %d (the second time as identical re-stores)", len(stored), failed, len(files))
			}
			for j, it := range stored {
				want := fmt.Sprintf("%s/dicomweb/studies/%s/series/%s.%d/instances/%s", s.url, study, study, 1+j*2/len(files), it.instance)
				if it.url != want || it.class == "" {
					t.Fatalf("item %d: %+v, want RetrieveURL %s", j, it, want)
				}
			}
			if doc := r.json(t); i == 0 && fmt.Sprint(doc["00081190"]) != fmt.Sprint(map[string]any{"vr": "UR", "Value": []any{s.url + "/dicomweb/studies/" + study}}) {
				t.Fatalf("RetrieveURL %v", doc["00081190"])
			}
		})
	}
	t.Run("chunked body to the study's URL", func(t *testing.T) {
		body := multipartBody{boundary: "chunky"}.build(files[0])
		req, _ := http.NewRequest(http.MethodPost, s.url+"/dicomweb/studies/"+study, io.MultiReader(bytes.NewReader(body)))
		req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=chunky`)
		req.Header.Set("Authorization", "Bearer "+s.tokens[auth.RoleIngest])
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusOK {
			t.Fatalf("chunked STOW: %d (content length %d)", resp.StatusCode, req.ContentLength)
		}
	})
	t.Run("single application/dicom body", func(t *testing.T) {
		r := s.do(http.MethodPost, "/dicomweb/studies", "application/dicom", files[1])
		if stored, _ := stowAnswer(t, r); r.status != http.StatusOK || len(stored) != 1 {
			t.Fatalf("%d: %s", r.status, r.body)
		}
	})

	other := studyFiles(t, tools, "1.2.826.0.1.3680043.10.1401.2", "pydicom-CT_small.dcm")[0]
	conflicting := tools.convert(files[0], "dcmodify", "-nb", "-m", "(0028,0030)=9\\9", "IN") // geometry changed
	mb := multipartBody{boundary: "mixed"}
	ct := `multipart/related; type="application/dicom"; boundary=mixed`
	cases := []struct {
		name        string
		path        string
		parts       [][]byte
		partType    string
		status      int
		stored      int
		wantReasons []int
	}{
		{"one good, one not DICOM", "/dicomweb/studies", [][]byte{files[2], []byte("not a DICOM file")}, "", http.StatusAccepted, 1, []int{0xC000}},
		{"a single part that is not DICOM", "/dicomweb/studies", [][]byte{[]byte("hello")}, "", http.StatusConflict, 0, []int{0xC000}},
		{"a truncated file", "/dicomweb/studies", [][]byte{files[0][:len(files[0])/2]}, "", http.StatusConflict, 0, []int{0xC000}},
		{"a conflicting re-store", "/dicomweb/studies", [][]byte{conflicting, files[3]}, "", http.StatusAccepted, 1, []int{0x0111}},
		{"another study than the URL's", "/dicomweb/studies/" + study, [][]byte{other, files[4]}, "", http.StatusAccepted, 1, []int{0xC409}},
		{"a nested multipart part", "/dicomweb/studies", [][]byte{multipartBody{boundary: "inner"}.build(files[0])}, `multipart/related; type="application/dicom"; boundary=inner`,
			http.StatusConflict, 0, []int{0xC000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mb
			b.partType = tc.partType
			r := s.do(http.MethodPost, tc.path, ct, b.build(tc.parts...))
			stored, failed := stowAnswer(t, r)
			if r.status != tc.status || len(stored) != tc.stored || len(failed) != len(tc.wantReasons) {
				t.Fatalf("status %d, stored %d, failed %+v; want %d, %d, reasons %v", r.status, len(stored), failed, tc.status, tc.stored, tc.wantReasons)
			}
			for i, f := range failed {
				if f.reason != tc.wantReasons[i] {
					t.Fatalf("failure %d: reason %#x, want %#x", i, f.reason, tc.wantReasons[i])
				}
			}
		})
	}
	// The refused re-store overwrote nothing: the attested bytes come back.
	got := s.do(http.MethodGet, "/v1/instances/"+study+".1.1", "", nil)
	if got.status != http.StatusOK || !bytes.Equal(got.body, files[0]) {
		t.Fatalf("after a refused re-store: %d, %d bytes", got.status, len(got.body))
	}
	// The other study's file was not stored at all.
	if r := s.do(http.MethodGet, "/v1/instances/1.2.826.0.1.3680043.10.1401.2.1.1", "", nil); r.status != http.StatusNotFound {
		t.Fatalf("a part refused for its study was stored: %d", r.status)
	}

	t.Run("request-level errors", func(t *testing.T) {
		assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", `multipart/related; type="application/dicom"`, mb.build(files[0])),
			http.StatusBadRequest, "invalid-multipart")
		assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", "application/json", []byte("{}")),
			http.StatusUnsupportedMediaType, "unsupported-media-type")
		assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", `multipart/related; type="application/dicom+json"; boundary=mixed`, mb.build(files[0])),
			http.StatusUnsupportedMediaType, "unsupported-media-type")
		// A body cut inside a part: the parts before it stand, the cut one
		// is not stored in part or at all.
		fresh := studyFiles(t, tools, "1.2.826.0.1.3680043.10.1401.3", "pydicom-CT_small.dcm", "pydicom-MR_small.dcm")
		truncated := mb.build(fresh...)
		truncated = truncated[:len(truncated)-len(fresh[1])/2]
		p := assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", ct, truncated), http.StatusBadRequest, "invalid-multipart")
		if p["parts_stored"] != float64(1) {
			t.Fatalf("the problem does not say the first part was stored: %v", p)
		}
		if r := s.do(http.MethodGet, "/v1/instances/1.2.826.0.1.3680043.10.1401.3.2.2", "", nil); r.status != http.StatusNotFound {
			t.Fatalf("the part cut short was stored: %d", r.status)
		}
		assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", ct, []byte("--mixed--\r\n")), http.StatusBadRequest, "invalid-multipart")
		// Cut between parts, or in a part's headers: no closing delimiter.
		whole := mb.build(files[0])
		for _, cut := range []string{"--mixed", "--mixed\r\n", "--mixed\r\nContent-Type: appl", "--mixed\r\nContent-Type: application/dicom\r\n\r\n"} {
			body := append(whole[:len(whole)-len("--mixed--\r\n"):len(whole)-len("--mixed--\r\n")], cut...)
			assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies", ct, body), http.StatusBadRequest, "invalid-multipart")
		}
		assertProblem(t, s.do(http.MethodPost, "/dicomweb/studies/not-a-uid", ct, mb.build(files[0])), http.StatusBadRequest, "invalid-request")
		assertProblem(t, s.as(auth.RoleViewer).do(http.MethodPost, "/dicomweb/studies", ct, mb.build(files[0])), http.StatusForbidden, "forbidden")
	})
	t.Run("a body over --max-body", func(t *testing.T) {
		small := startServer(t, t.TempDir(), "--max-body", "64KiB")
		body := mb.build(files...)
		assertProblem(t, small.do(http.MethodPost, "/dicomweb/studies", ct, body), http.StatusRequestEntityTooLarge, "body-too-large")
		// Chunked, the limit is found on the way: the parts before it are
		// stored, and said to be.
		req, _ := http.NewRequest(http.MethodPost, small.url+"/dicomweb/studies", io.MultiReader(bytes.NewReader(body)))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+small.tokens[auth.RoleIngest])
		resp, err := small.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		validateResponse(t, req, resp, b)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte(`"parts_stored":4`)) {
			t.Fatalf("chunked STOW over --max-body: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("100,000 tiny parts", func(t *testing.T) {
		tiny := make([][]byte, 100_000)
		for i := range tiny {
			tiny[i] = []byte{'x'}
		}
		r := s.do(http.MethodPost, "/dicomweb/studies", ct, multipartBody{boundary: "mixed", noLength: true}.build(tiny...))
		assertProblem(t, r, http.StatusRequestEntityTooLarge, "too-many-parts")
	})

	// Every part was recorded as an ingest, as the native API records its own.
	if got := auditStatuses(t, s, "instance.ingest", study+".1.2"); len(got) < 2 || got[0] != http.StatusCreated {
		t.Fatalf("a STOW part's ingests in the audit trail: %v, want 201 then 200s", got)
	}
	if got := auditStatuses(t, s, "instance.ingest", study+".1.1"); !slices.Contains(got, http.StatusConflict) {
		t.Fatalf("the refused re-store is not in the audit trail: %v", got)
	}
}

// entriesContaining counts the log entries of a SQLite ledger whose
// bytes hold s.
func entriesContaining(t *testing.T, path, s string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, all int
	if err := db.QueryRow(`SELECT count(*) FROM entries`).Scan(&all); err != nil || all == 0 {
		t.Fatalf("%s: %d entries, %v", path, all, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM entries WHERE instr(CAST(body AS BLOB), CAST(? AS BLOB)) > 0`, s).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// auditStatuses are the statuses the audit trail recorded for action on
// object (waiting a little for records written off the response path).
func auditStatuses(t *testing.T, s *testServer, action, object string) []int {
	t.Helper()
	var out []int
	for range 50 {
		r := s.as(auth.RoleAuditor).do(http.MethodGet, "/v1/audit?object="+url.QueryEscape(object), "", nil)
		var doc struct {
			Entries []struct {
				Action string
				Status int
			} `json:"entries"`
		}
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for _, e := range doc.Entries {
			if e.Action == action {
				out = append(out, e.Status)
			}
		}
		if len(out) > 0 {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// TestWADOServesVerifiedBytes retrieves a study, a series and an instance,
// their metadata, frames and bulk data, as a viewer does.
func TestWADOServesVerifiedBytes(t *testing.T) {
	tools := newDcmtk(t)
	s := startServer(t, t.TempDir())
	study := "1.2.826.0.1.3680043.10.1402.1"
	files := studyFiles(t, tools, study, stowFixtures...)
	if r := s.do(http.MethodPost, "/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b`, multipartBody{boundary: "b"}.build(files...)); r.status != http.StatusOK {
		t.Fatalf("STOW: %d %s", r.status, r.body)
	}
	byUID := map[string][]byte{}
	for i, f := range files {
		byUID[fmt.Sprintf("%s.%d.%d", study, 1+i*2/len(files), i+1)] = f
	}

	for _, tc := range []struct {
		path, accept string
		n            int
	}{
		{"/dicomweb/studies/" + study, "", len(files)},
		{"/dicomweb/studies/" + study, `multipart/related; type="application/dicom"; transfer-syntax=*`, len(files)},
		{"/dicomweb/studies/" + study + "/series/" + study + ".1", `multipart/related; type=application/dicom`, 3},
		{"/dicomweb/studies/" + study + "/series/" + study + ".1/instances/" + study + ".1.1", "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1", 1},
	} {
		resp := s.getRaw(tc.path, tc.accept)
		parts, _, err := readMultipart(t, resp.Header.Get("Content-Type"), resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(parts) != tc.n {
			t.Fatalf("%s: %d, %d parts, %v", tc.path, resp.StatusCode, len(parts), err)
		}
		for _, p := range parts {
			if !strings.HasPrefix(p.contentType, "application/dicom; transfer-syntax=1.2.840.10008.") {
				t.Fatalf("part Content-Type %q", p.contentType)
			}
			found := false
			for _, f := range byUID {
				found = found || bytes.Equal(f, p.body)
			}
			if !found {
				t.Fatalf("%s: a part is not the bytes stored", tc.path)
			}
		}
	}
	// Another transfer syntax asked for by name: never transcoded, 406.
	jpeg2000 := study + ".2.4"
	r := s.doWithHeader(http.MethodGet, "/dicomweb/studies/"+study+"/series/"+study+".2/instances/"+jpeg2000, "", nil,
		"Accept", `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`)
	assertProblem(t, r, http.StatusNotAcceptable, "not-acceptable")

	t.Run("metadata", func(t *testing.T) {
		r := s.doWithHeader(http.MethodGet, "/dicomweb/studies/"+study+"/series/"+study+".1/metadata", "", nil, "Accept", "application/dicom+json")
		var sets []map[string]struct {
			VR          string            `json:"vr"`
			Value       []json.RawMessage `json:"Value"`
			BulkDataURI string            `json:"BulkDataURI"`
		}
		if err := json.Unmarshal(r.body, &sets); err != nil || r.status != http.StatusOK || len(sets) != 3 {
			t.Fatalf("%d, %d sets, %v: %.300s", r.status, len(sets), err, r.body)
		}
		for _, ds := range sets {
			for tag, a := range ds {
				if len(tag) != 8 || len(a.VR) != 2 {
					t.Fatalf("attribute %s: vr %q", tag, a.VR)
				}
			}
			pn := ds["00100010"]
			if pn.VR != "PN" || len(pn.Value) != 1 || !bytes.Contains(pn.Value[0], []byte(`"Alphabetic"`)) {
				t.Fatalf("PatientName %+v", pn)
			}
			px := ds["7FE00010"]
			if !strings.HasPrefix(px.BulkDataURI, s.url+"/dicomweb/studies/"+study+"/") {
				t.Fatalf("Pixel Data BulkDataURI %q", px.BulkDataURI)
			}
			// The bulk data URI works with the same token.
			resp := s.getRaw(strings.TrimPrefix(px.BulkDataURI, s.url), "")
			parts, _, err := readMultipart(t, resp.Header.Get("Content-Type"), resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || len(parts) != 1 || len(parts[0].body) == 0 {
				t.Fatalf("bulk data: %d, %v", resp.StatusCode, err)
			}
		}
	})

	t.Run("frames", func(t *testing.T) {
		ct := study + ".1.1" // CT_small: 128 x 128, 16 bits, native
		resp := s.getRaw("/dicomweb/studies/"+study+"/series/"+study+".1/instances/"+ct+"/frames/1", ohifFrameAccept)
		parts, _, err := readMultipart(t, resp.Header.Get("Content-Type"), resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(parts) != 1 {
			t.Fatalf("frames: %d, %v", resp.StatusCode, err)
		}
		if parts[0].contentType != "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" || len(parts[0].body) != 128*128*2 {
			t.Fatalf("frame part %q, %d bytes", parts[0].contentType, len(parts[0].body))
		}
		if !bytes.HasSuffix(files[0], parts[0].body) { // Pixel Data is CT_small's last element

			t.Fatal("frame 1 is not the stored pixels")
		}
		enc := s.getRaw("/dicomweb/studies/"+study+"/series/"+study+".2/instances/"+jpeg2000+"/frames/1",
			`multipart/related; type=application/octet-stream; transfer-syntax=*`)
		parts, _, err = readMultipart(t, enc.Header.Get("Content-Type"), enc.Body)
		enc.Body.Close()
		if err != nil || len(parts) != 1 || !strings.HasSuffix(parts[0].contentType, "transfer-syntax=1.2.840.10008.1.2.4.91") ||
			!bytes.HasPrefix(parts[0].body, []byte{0xFF, 0x4F}) { // a JPEG 2000 codestream's SOC marker
			t.Fatalf("encapsulated frame: %v, %+v", err, parts)
		}
		assertProblem(t, s.do(http.MethodGet, "/dicomweb/studies/"+study+"/series/"+study+".1/instances/"+ct+"/frames/2", "", nil),
			http.StatusBadRequest, "invalid-request")
		assertProblem(t, s.do(http.MethodGet, "/dicomweb/studies/"+study+"/series/"+study+".1/instances/"+ct+"/frames/x", "", nil),
			http.StatusBadRequest, "invalid-request")
	})

	t.Run("an instance that fails verification is never sent", func(t *testing.T) {
		victim := study + ".2.5" // the last instance of series 2
		att := s.do(http.MethodGet, "/v1/instances/"+victim+"/attestation", "", nil).json(t)
		sha := att["digests"].(map[string]any)["file"].(string)
		path := objectPath(s.dataDir, sha)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xFF
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		assertProblem(t, s.do(http.MethodGet, "/dicomweb/studies/"+study+"/series/"+study+".2/instances/"+victim, "", nil),
			http.StatusBadGateway, "integrity-violation")
		// In a series, after the instances that verify, the stream is cut:
		// the client sees an incomplete multipart body, never the bytes.
		resp := s.getRaw("/dicomweb/studies/"+study+"/series/"+study+".2", "")
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("a series with a failing instance: %d, read error %v; want a cut stream", resp.StatusCode, err)
		}
		if !bytes.Contains(raw, byUID[study+".2.4"]) || bytes.Contains(raw, b) || bytes.Contains(raw, byUID[victim]) {
			t.Fatal("the stream should hold the instance before the failing one, and nothing of the failing one")
		}
		if _, _, err := readMultipart(t, resp.Header.Get("Content-Type"), bytes.NewReader(raw)); err == nil {
			t.Fatal("the cut stream reads as a whole multipart body")
		}
		if got := auditStatuses(t, s, "instance.retrieve", victim); !slices.Contains(got, http.StatusBadGateway) {
			t.Fatalf("the failed instance in the audit trail: %v", got)
		}
	})
}

// TestQIDOSearchesTheCatalog answers OHIF's searches and the matching keys
// PS3.18 names; patient names never reach the audit log in clear.
func TestQIDOSearchesTheCatalog(t *testing.T) {
	tools := newDcmtk(t)
	s := startServer(t, t.TempDir(), "--cors-origins", "http://viewer.example:3000")
	study := "1.2.826.0.1.3680043.10.1403.1"
	files := studyFiles(t, tools, study, stowFixtures...)
	for i := range files {
		files[i] = tools.convert(files[i], "dcmodify", "-nb", "-i", "(0010,0010)=Quixote^Alonso", "-i", "(0008,0050)=ACC-1403",
			"-i", "(0008,0020)=20240315", "-i", "(0008,1030)=Knee 50%_off", "IN")
	}
	if r := s.do(http.MethodPost, "/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b`, multipartBody{boundary: "b"}.build(files...)); r.status != http.StatusOK {
		t.Fatalf("STOW: %d %s", r.status, r.body)
	}
	search := func(path string) []map[string]map[string]any {
		t.Helper()
		r := s.doWithHeader(http.MethodGet, path, "", nil, "Accept", "application/dicom+json")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var out []map[string]map[string]any
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	value := func(a map[string]map[string]any, tag string) string {
		if v, ok := a[tag]["Value"].([]any); ok && len(v) > 0 {
			if m, ok := v[0].(map[string]any); ok {
				return fmt.Sprint(m["Alphabetic"])
			}
			return fmt.Sprint(v[0])
		}
		return ""
	}
	// OHIF's study list query, exactly.
	found := search("/dicomweb/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060")
	if len(found) != 1 || value(found[0], "0020000D") != study || value(found[0], "00201206") != "2" ||
		value(found[0], "00201208") != fmt.Sprint(len(files)) || value(found[0], "00081030") != "Knee 50%_off" {
		t.Fatalf("OHIF's study search: %v", found)
	}
	for _, tc := range []struct {
		query string
		n     int
	}{
		{"PatientName=Quix*", 1},
		{"patientname=Quixote*", 1}, // keywords in any case
		{"00100010=Quixote*", 1},
		{"PatientName=quix*", 0},
		{"PatientName=alonso&fuzzymatching=true", 1},
		{"00100010=Quixote%5EAlonso", 1},
		{"PatientName=Q%3Fxote*", 0}, // '?' is one character: "Q?xote" does not match "Quixote"
		{"PatientName=Qu%3Fxote*", 1},
		{"StudyDate=20240101-20241231", 1},
		{"StudyDate=-20231231", 0},
		{"StudyDate=20240315-", 1},
		{"AccessionNumber=ACC-1403", 1},
		{"StudyInstanceUID=1.2.3%5C" + study, 1},
		{"ModalitiesInStudy=MR", 1},
		{"ModalitiesInStudy=US", 0},
		{"StudyDescription=Knee%2050%25_off", 1},
		{"StudyDescription=Knee%2050%25%25off", 0},
		{"PatientID=nobody", 0},
	} {
		if got := search("/dicomweb/studies?" + tc.query); len(got) != tc.n {
			t.Errorf("studies?%s: %d results, want %d", tc.query, len(got), tc.n)
		}
	}
	series := search("/dicomweb/studies/" + study + "/series")
	if len(series) != 2 || value(series[0], "00201209") == "" {
		t.Fatalf("series: %v", series)
	}
	instances := search("/dicomweb/studies/" + study + "/series/" + study + ".1/instances?limit=1&offset=1")
	if len(instances) != 1 || value(instances[0], "00080018") != study+".1.2" {
		t.Fatalf("instances page 2: %v", instances)
	}
	if all := search("/dicomweb/instances?SOPInstanceUID=" + study + ".2.4&includefield=all"); len(all) != 1 || all[0]["00100010"] == nil {
		t.Fatalf("includefield=all: %v", all)
	}
	if got := search("/dicomweb/series?Modality=CT"); len(got) != 1 {
		t.Fatalf("series?Modality=CT: %v", got)
	}
	assertProblem(t, s.do(http.MethodGet, "/dicomweb/studies?NoSuchKey=1", "", nil), http.StatusBadRequest, "invalid-query")
	assertProblem(t, s.do(http.MethodGet, "/dicomweb/studies?StudyDate=March", "", nil), http.StatusBadRequest, "invalid-query")
	assertProblem(t, s.as(auth.RoleIngest).do(http.MethodGet, "/dicomweb/studies", "", nil), http.StatusForbidden, "forbidden")

	// The query is in the audit trail, the name in it is not.
	audit := s.as(auth.RoleAuditor).do(http.MethodGet, "/v1/audit?limit=1000", "", nil)
	if !bytes.Contains(audit.body, []byte("PatientName=(redacted)")) || bytes.Contains(audit.body, []byte("Quix")) ||
		bytes.Contains(audit.body, []byte("alonso")) {
		t.Fatalf("audit trail of searches: %s", audit.body)
	}
	for _, db := range []string{"ledger.db", "audit.db"} {
		if n := entriesContaining(t, filepath.Join(s.dataDir, db), "Quixote"); n != 0 {
			t.Fatalf("%d entries of %s hold the patient's name in clear", n, db)
		}
	}

	t.Run("CORS", func(t *testing.T) {
		pre := func(origin string) *http.Response {
			req, _ := http.NewRequest(http.MethodOptions, s.url+"/dicomweb/studies", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "authorization, accept")
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		ok := pre("http://viewer.example:3000")
		if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "http://viewer.example:3000" ||
			ok.Header.Get("Access-Control-Allow-Headers") != "Authorization, Accept, Content-Type" {
			t.Fatalf("preflight: %d %v", ok.StatusCode, ok.Header)
		}
		if no := pre("http://evil.example"); no.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("an origin not configured got %q", no.Header.Get("Access-Control-Allow-Origin"))
		}
		req, _ := http.NewRequest(http.MethodGet, s.url+"/dicomweb/studies?NoSuchKey=1", nil)
		req.Header.Set("Origin", "http://viewer.example:3000")
		req.Header.Set("Authorization", "Bearer "+s.tokens[auth.RoleViewer])
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != "http://viewer.example:3000" {
			t.Fatalf("an error answer to a configured origin: %d, %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("the index is rebuilt from the stored objects", func(t *testing.T) {
		s.stop()
		var out, errb bytes.Buffer
		if code := run(t.Context(), []string{"index", "rebuild", "--reset", "--data-dir", s.dataDir}, &out, &errb); code != 0 ||
			!strings.Contains(out.String(), fmt.Sprintf("indexed %d instances, 0 failed", len(files)+0)) {
			t.Fatalf("index rebuild: exit %d\n%s%s", code, out.String(), errb.String())
		}
		s2 := startServer(t, s.dataDir)
		r := s2.doWithHeader(http.MethodGet, "/dicomweb/studies?PatientName="+url.QueryEscape("Quixote*"), "", nil)
		if !bytes.Contains(r.body, []byte(study)) {
			t.Fatalf("after a rebuild: %s", r.body)
		}
	})
}

// DICOMweb on the production backend: the catalog is a PostgreSQL table
// the service role may correct (and empty, for a rebuild) but the log's
// tables it may only append to.
func TestDICOMwebOnPostgres(t *testing.T) {
	tools := newDcmtk(t)
	db := pgtest.NewEmpty(t)
	migrateCLI(t, db)
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--database-url", db.Service)
	study := "1.2.826.0.1.3680043.10.1404.1"
	files := studyFiles(t, tools, study, stowFixtures...)
	if r := s.do(http.MethodPost, "/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b`, multipartBody{boundary: "b"}.build(files...)); r.status != http.StatusOK {
		t.Fatalf("STOW: %d %s", r.status, r.body)
	}
	found := s.do(http.MethodGet, "/dicomweb/studies?StudyInstanceUID="+study, "", nil)
	if !bytes.Contains(found.body, []byte(`"00201208":{"vr":"IS","Value":[5]}`)) {
		t.Fatalf("QIDO on PostgreSQL: %s", found.body)
	}
	resp := s.getRaw("/dicomweb/studies/"+study, "")
	parts, _, err := readMultipart(t, resp.Header.Get("Content-Type"), resp.Body)
	resp.Body.Close()
	if err != nil || len(parts) != len(files) {
		t.Fatalf("WADO on PostgreSQL: %d parts, %v", len(parts), err)
	}
	s.stop()
	if code, out := runCLI("index", "rebuild", "--reset", "--data-dir", dataDir, "--database-url", db.Service); code != 0 ||
		!strings.Contains(out, "indexed 5 instances, 0 failed") {
		t.Fatalf("index rebuild on PostgreSQL as the service role: exit %d\n%s", code, out)
	}
}
