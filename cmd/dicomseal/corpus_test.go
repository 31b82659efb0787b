package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

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
	dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the corpus test: DICOMSEAL_TEST_PYDICOM_DIR is not set (run scripts/test.sh)")
		}
		t.Skip("DICOMSEAL_TEST_PYDICOM_DIR is not set; scripts/test.sh (make test) extracts pydicom's test files and sets it")
	}
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
		})
	}
	t.Logf("pydicom corpus: %v", counts)
}

// TestPydicomCorpusOnProductionBackends puts the whole corpus through one
// server on PostgreSQL and MinIO. Several files share a SOP Instance UID,
// so only the first of each (in name order) is created; the others must be
// refused as conflicts, never overwrite it.
func TestPydicomCorpusOnProductionBackends(t *testing.T) {
	dir := os.Getenv("DICOMSEAL_TEST_PYDICOM_DIR")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the corpus test: DICOMSEAL_TEST_PYDICOM_DIR is not set (run scripts/test.sh)")
		}
		t.Skip("DICOMSEAL_TEST_PYDICOM_DIR is not set; scripts/test.sh (make test) extracts pydicom's test files and sets it")
	}
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
	first := map[string][]byte{} // UID → the bytes attested for it
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r := srv.ingest(data)
		switch r.status {
		case http.StatusCreated:
			uid := r.json(t)["sop_instance_uid"].(string)
			if _, seen := first[uid]; seen {
				t.Fatalf("%s: a second instance created for UID %s", name, uid)
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
