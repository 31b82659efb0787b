package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// `store migrate` from the filesystem to MinIO: killed half way, it
// resumes without copying twice; every object arrives verified, with one
// storage-migration entry each; the service then serves from MinIO. And
// back, from MinIO to a filesystem store the service then serves from.
func TestStoreMigrate(t *testing.T) {
	cfg := s3test.Config(t)
	client := s3test.Client(t, cfg)
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	const n = 120
	files := map[string][]byte{}
	for i := range n {
		data := instanceWithUID(t, 9000+i)
		r := srv.ingest(data)
		if r.status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
		files[r.json(t)["sop_instance_uid"].(string)] = data
	}
	srv.stop()
	to := "s3://" + cfg.AccessKey + "@" + cfg.Endpoint + "/" + cfg.Bucket + "?tls=false&lookup=path"
	t.Setenv("DICOMSEAL_TO_S3_SECRET_KEY", cfg.SecretKey)

	// Killed once it is under way.
	cmd := exec.Command(buildBinary(t), "store", "migrate", "--data-dir", dataDir, "--to", to, "--workers", "1", "--progress-interval", "10ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progress := regexp.MustCompile(`^store migrate: (\d+)/(\d+) objects`)
	sc := bufio.NewScanner(stderr)
	killed := false
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if m := progress.FindStringSubmatch(sc.Text()); m != nil {
			if done, _ := strconv.Atoi(m[1]); done >= 10 && done < n {
				cmd.Process.Kill()
				killed = true
				break
			}
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("the migration was never seen half way:\n%s", strings.Join(seen, "\n"))
	}
	stored := func() int {
		c := 0
		for obj := range client.ListObjects(context.Background(), cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			c++
		}
		return c
	}
	if c := stored(); c == 0 || c >= n {
		t.Fatalf("%d of %d objects in the bucket after the kill", c, n)
	}

	// Resumed: what was recorded is skipped, nothing is copied twice.
	code, out := runCLI("store", "migrate", "--data-dir", dataDir, "--to", to)
	m := regexp.MustCompile(`(\d+) copied, (\d+) already there, (\d+) skipped \(migrated before\), 0 damaged`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("resumed migration: exit %d\n%s", code, out)
	}
	copied, present, skipped := atoi(m[1]), atoi(m[2]), atoi(m[3])
	if skipped < 10 || present > 1 || copied+present+skipped != n {
		t.Fatalf("resumed: %d copied, %d already there, %d skipped; want ≥10 skipped, at most the one in flight already there, %d in all", copied, present, skipped, n)
	}
	if c := stored(); c != n {
		t.Fatalf("%d objects in the bucket, want %d", c, n)
	}
	if code, out := runCLI("store", "migrate", "--data-dir", dataDir, "--to", to); code != 0 || !strings.Contains(out, "0 copied, 0 already there, 120 skipped") {
		t.Fatalf("a finished migration, again: exit %d\n%s", code, out)
	}

	// One entry per object, each naming both stores and both digests.
	srv = startServer(t, dataDir, s3Flags(cfg)...)
	entries := srv.entriesOf("storage-migration")
	objectsDir, _ := filepath.Abs(filepath.Join(dataDir, "objects"))
	bySHA := map[string]bool{}
	for _, e := range entries {
		sha := e["file_sha256"].(string)
		if bySHA[sha] || e["source_sha256"] != sha || e["destination_sha256"] != sha ||
			e["from_store"] != "file://"+objectsDir || e["to_store"] != "s3://"+cfg.Endpoint+"/"+cfg.Bucket {
			t.Fatalf("storage-migration entry: %v", e)
		}
		bySHA[sha] = true
	}
	if len(bySHA) != n {
		t.Fatalf("%d storage-migration entries for %d objects", len(bySHA), n)
	}
	// Served from MinIO: the local copies are gone.
	if err := os.RemoveAll(filepath.Join(dataDir, "objects")); err != nil {
		t.Fatal(err)
	}
	for uid, data := range files {
		if r := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, data) {
			t.Fatalf("from MinIO, %s: %d", uid, r.status)
		}
	}
	srv.stop()

	// And back, to a filesystem store.
	back := filepath.Join(t.TempDir(), "objects")
	code, out = runCLI(append([]string{"store", "migrate", "--data-dir", dataDir, "--to", "file://" + back}, s3Flags(cfg)...)...)
	if code != 0 || !strings.Contains(out, "120 copied") {
		t.Fatalf("migration back: exit %d\n%s", code, out)
	}
	if err := os.Rename(back, filepath.Join(dataDir, "objects")); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, dataDir)
	for uid, data := range files {
		if r := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, data) {
			t.Fatalf("back on the filesystem, %s: %d", uid, r.status)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
