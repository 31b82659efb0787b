package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
)

// `dicomseal scrub`, offline: one line per failure, a summary, exit 1;
// refused (exit 2) while a server holds the lease, which that server
// releases when it stops.
func TestScrubCommand(t *testing.T) {
	dataDir := t.TempDir()
	dep := newDeployment(t, "embedded", dataDir)
	srv := startServer(t, dataDir)
	var files [][]byte
	var uids []string
	for i := range 3 {
		data := instanceWithUID(t, 7000+i)
		r := srv.ingest(data)
		if r.status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
		files, uids = append(files, data), append(uids, r.json(t)["sop_instance_uid"].(string))
	}
	flipped := bytes.Clone(files[1])
	flipped[len(flipped)-1] ^= 0x80
	dep.put(t, files[1], flipped)
	srv.stop()

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"scrub", "--data-dir", dataDir}, &stdout, &stderr)
	if code != 1 || stdout.String() != uids[1]+" DIGEST_MISMATCH\n" ||
		!strings.Contains(stderr.String(), "pass 1: 3 objects, 2 OK, 1 failed, 1 DIGEST_MISMATCH") ||
		!strings.Contains(stderr.String(), "to repair: re-ingest") || !strings.Contains(stderr.String(), `"event":"security-alert"`) {
		t.Fatalf("scrub: exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	if code, out := runCLI("scrub", "--data-dir", dataDir, "--no-such-flag"); code != 2 {
		t.Fatalf("scrub with a bad flag: exit %d\n%s", code, out)
	}

	held := startServer(t, dataDir, "--scrub-interval", "1h")
	if code, out := runCLI("scrub", "--data-dir", dataDir); code != 2 || !strings.Contains(out, "another replica is scrubbing") {
		t.Fatalf("scrub while a server holds the lease: exit %d\n%s", code, out)
	}
	// Repaired through the server, then released by its stop.
	if r := held.ingest(files[1]); r.status != http.StatusOK {
		t.Fatalf("repair: %d %s", r.status, r.body)
	}
	held.stop()
	if code, out := runCLI("scrub", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "3 OK, 0 failed") {
		t.Fatalf("scrub after the server stopped: exit %d\n%s", code, out)
	}
}
