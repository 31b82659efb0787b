package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
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

// A retrieval that finds one altered object has its whole series checked:
// the other damaged instance of the series is found (and recorded) without
// anyone asking for it, and the other series is left alone.
func TestAlteredRetrievalChecksItsSeries(t *testing.T) {
	dataDir := t.TempDir()
	dep := newDeployment(t, "embedded", dataDir)
	srv := startServer(t, dataDir)
	study := newCTStudy(t)
	for _, b := range study.files {
		if r := srv.ingest(b); r.status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
	}
	series := study.sopsOf(study.series[0])
	first, second := series[0], series[1]
	flipped := bytes.Clone(study.files[first])
	flipped[len(flipped)-3] ^= 0x04
	dep.put(t, study.files[first], flipped)
	dep.remove(t, study.files[second])
	other := study.sopsOf(study.series[1])[0]
	dep.remove(t, study.files[other]) // in the other series: not checked

	assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+first, "", nil), http.StatusBadGateway, "integrity-violation")
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := map[string]string{}
		for _, e := range srv.entriesOf("integrity-failure") {
			found[e["subject"].(string)] = e["reason"].(string)
		}
		if found[second] == "missing" {
			if _, ok := found[other]; ok {
				t.Fatalf("the other series was checked too: %v", found)
			}
			if found[first] != "altered" {
				t.Fatalf("incidents %v", found)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the series was not checked: incidents %v", found)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
