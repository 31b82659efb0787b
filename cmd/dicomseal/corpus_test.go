package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// pydicomDir is where scripts/test.sh extracted pydicom's test files; the
// test is skipped without them (and fails under CI).
func pydicomDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the corpus test: DICOMSEAL_TEST_PYDICOM_DIR is not set (run scripts/test.sh)")
		}
		t.Skip("DICOMSEAL_TEST_PYDICOM_DIR is not set; scripts/test.sh (make test) extracts pydicom's test files and sets it")
	}
	return dir
}

// corpusEntry is one line of testdata/corpus/pydicom.tsv.
type corpusEntry struct {
	file, outcome, detail string
}

func readManifest(t *testing.T) map[string]corpusEntry {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "corpus", "pydicom.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]corpusEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		e := corpusEntry{file: cols[0], outcome: cols[1]}
		if len(cols) > 2 {
			e.detail = cols[2]
		}
		switch e.outcome {
		case "ingest", "reject", "unsupported":
		default:
			t.Fatalf("manifest: %s: unknown outcome %q", e.file, e.outcome)
		}
		m[e.file] = e
	}
	return m
}

// TestPydicomCorpus drives the real server over every file of pydicom's
// test files (extracted from Debian's python3-pydicom by scripts/test.sh)
// and checks each against the committed manifest. Each file gets a fresh
// data directory, because several files share a SOP Instance UID.
func TestPydicomCorpus(t *testing.T) {
	dir := pydicomDir(t)
	manifest := readManifest(t)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) != len(manifest) {
		t.Errorf("corpus has %d files, manifest %d", len(files), len(manifest))
	}
	counts := map[string]int{}
	for _, rel := range files {
		e, ok := manifest[rel]
		if !ok {
			t.Errorf("%s is not in the manifest", rel)
			continue
		}
		counts[e.outcome]++
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, t.TempDir())
			r := srv.ingest(data)
			if e.outcome != "ingest" {
				p := assertProblem(t, r, http.StatusBadRequest, "invalid-dicom")
				if !strings.Contains(p["detail"].(string), e.detail) {
					t.Fatalf("detail %q does not say %q", p["detail"], e.detail)
				}
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("ingest: %d %s", r.status, r.body)
			}
			uid := r.json(t)["sop_instance_uid"].(string)
			got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
			if got.status != http.StatusOK || !bytes.Equal(got.body, data) {
				t.Fatalf("retrieve: %d, %d of %d bytes", got.status, len(got.body), len(data))
			}
			if v := srv.do(http.MethodPost, "/v1/verify", "application/dicom", data).json(t); v["status"] != "verified" {
				t.Fatalf("verify: %v", v)
			}
			crossCheck(t, srv, filepath.Join(dir, rel), r.json(t))
		})
	}
	t.Logf("pydicom corpus: %v", counts)
}

// crossCheck compares the identifiers dicomseal extracted with dcmtk's
// dcm2json, and checks that a transfer syntax conversion of the file by
// dcmconv is never judged tampered (when dcmtk is installed; CI has it).
func crossCheck(t *testing.T, srv *testServer, path string, att map[string]any) {
	t.Helper()
	if _, err := exec.LookPath("dcm2json"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must cross-check with dcmtk (scripts/dcmtk.sh installs it)")
		}
		return
	}
	fields := map[string]string{"00080018": "sop_instance_uid", "0020000D": "study_instance_uid",
		"0020000E": "series_instance_uid", "00080016": "sop_class_uid", "00080060": "modality"}
	want := map[string]string{}
	if out, err := exec.Command("dcm2json", path).Output(); err == nil {
		var doc map[string]struct {
			Value []any `json:"Value"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("dcm2json output: %v", err)
		}
		for tag := range fields {
			if v := doc[tag].Value; len(v) > 0 {
				want[tag], _ = v[0].(string)
			}
		}
	} else {
		// dcm2json refuses compressed Pixel Data (no inline binary for
		// it); dcmdump, from the same toolkit, reads the same elements.
		out, err := exec.Command("dcmdump", "-q", "-Un", "+L", "+P", "0008,0018", "+P", "0020,000d", "+P", "0020,000e",
			"+P", "0008,0016", "+P", "0008,0060", path).Output()
		if err != nil {
			t.Fatalf("dcm2json and dcmdump both fail: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if len(line) < 16 {
				continue
			}
			tag := strings.ToUpper(line[1:5] + line[6:10])
			if _, ok := want[tag]; ok {
				continue
			}
			switch {
			case strings.Contains(line, "["):
				want[tag] = line[strings.Index(line, "[")+1 : strings.Index(line, "]")]
			case line[12:14] == "UN":
				// dcmdump shows UN values as hex bytes: decode them.
				var b []byte
				for _, x := range strings.Split(strings.Fields(line[15:])[0], `\`) {
					v, _ := strconv.ParseUint(x, 16, 8)
					b = append(b, byte(v))
				}
				want[tag] = strings.TrimRight(string(b), " \x00")
			}
		}
	}
	for tag, field := range fields {
		if att[field] != want[tag] {
			t.Errorf("%s: dicomseal %q, dcmtk %q", field, att[field], want[tag])
		}
	}
	converted := filepath.Join(t.TempDir(), "converted.dcm")
	for _, xfer := range []string{"+ti", "+te"} {
		if exec.Command("dcmconv", xfer, path, converted).Run() != nil {
			continue // compressed data: dcmconv does not transcode it
		}
		data, _ := os.ReadFile(converted)
		v := srv.do(http.MethodPost, "/v1/verify", "application/dicom", data).json(t)
		if v["status"] == "tampered" || v["status"] == "unknown" {
			t.Fatalf("dcmconv %s of an attested file judged %v: %v", xfer, v["status"], v["detail"])
		}
	}
}

// TestPydicomCorpusOnProductionBackends puts the whole corpus through one
// server on PostgreSQL and MinIO. Several files share a SOP Instance UID:
// the first of each (in name order) is created, the others are judged
// against it and become revisions (the same image re-encoded) or are
// refused (other pixels); retrieval serves the latest revision.
func TestPydicomCorpusOnProductionBackends(t *testing.T) {
	dir := pydicomDir(t)
	flags := append(s3Flags(s3test.Config(t)), "--database-url", pgtest.New(t).Service)
	srv := startServer(t, t.TempDir(), flags...)
	manifest := readManifest(t)
	var names []string
	for name, e := range manifest {
		if e.outcome == "ingest" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	first := map[string][]byte{} // UID → the latest bytes attested for it
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r := srv.ingest(data)
		switch r.status {
		case http.StatusCreated:
			att := r.json(t)
			uid := att["sop_instance_uid"].(string)
			if _, seen := first[uid]; seen != (att["revises"] != nil) {
				t.Fatalf("%s: created for UID %s: seen before %v, revises %v", name, uid, seen, att["revises"])
			}
			first[uid] = data
		case http.StatusOK, http.StatusConflict:
			uid := r.json(t)["sop_instance_uid"].(string)
			if _, seen := first[uid]; !seen {
				t.Fatalf("%s: %d for a UID never created", name, r.status)
			}
		default:
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	for uid, data := range first {
		if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, data) {
			t.Fatalf("%s: retrieval %d", uid, got.status)
		}
	}
	t.Logf("%d corpus files, %d distinct instances on PostgreSQL and MinIO", len(names), len(first))
}
