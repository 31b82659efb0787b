package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reconcile names orphans and missing objects, removes only orphans older
// than the window, and never a referenced object.
func TestReconcile(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	ct, mr := fixture(t, "pydicom-CT_small.dcm"), fixture(t, "pydicom-MR_small.dcm")
	srv.ingest(ct)
	srv.ingest(mr)
	srv.stop()
	if code, out := runCLI("reconcile", "--data-dir", dataDir); code != 0 {
		t.Fatalf("reconcile of a consistent data directory: exit %d\n%s", code, out)
	}

	objectPath := func(data []byte) (string, string) {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		return h, filepath.Join(dataDir, "objects", "sha256", h[0:2], h[2:4], h)
	}
	put := func(data []byte, age time.Duration) string {
		h, p := objectPath(data)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		os.Chtimes(p, old, old)
		return h
	}
	oldOrphan := put([]byte("an ingest that crashed before logging, long ago"), 48*time.Hour)
	newOrphan := put([]byte("an ingest in flight"), time.Minute)
	_, mrPath := objectPath(mr)
	os.Remove(mrPath)

	code, out := runCLI("reconcile", "--data-dir", dataDir)
	for _, want := range []string{"orphan " + oldOrphan, "orphan " + newOrphan, "missing 1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"} {
		if !strings.Contains(out, want) {
			t.Fatalf("reconcile does not report %q: exit %d\n%s", want, code, out)
		}
	}
	if code != 1 {
		t.Fatalf("reconcile with findings: exit %d, want 1", code)
	}
	if code, out := runCLI("reconcile", "--data-dir", dataDir, "--remove-orphans", "--older-than", "24h"); code != 1 ||
		!strings.Contains(out, oldOrphan+" (removed)") || !strings.Contains(out, newOrphan+" (kept") {
		t.Fatalf("reconcile --remove-orphans: exit %d\n%s", code, out)
	}
	if _, p := objectPath([]byte("an ingest that crashed before logging, long ago")); fileExists(p) {
		t.Fatal("the old orphan is still there")
	}
	if _, p := objectPath(ct); !fileExists(p) {
		t.Fatal("a referenced object was removed")
	}
	put(mr, 0)
	if code, out := runCLI("reconcile", "--data-dir", dataDir, "--remove-orphans", "--older-than", "0s"); code != 0 {
		t.Fatalf("reconcile after removing every orphan and restoring the object: exit %d\n%s", code, out)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
