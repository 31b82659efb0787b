package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// deployment is where a test's service keeps its log and its objects,
// and how a test damages a stored object behind its back.
type deployment struct {
	name  string
	flags []string // storage flags, as serve and the offline commands take them
	// put replaces the stored object of data; remove deletes it.
	put    func(t *testing.T, data, replacement []byte)
	remove func(t *testing.T, data []byte)
}

// deploymentNames are the embedded defaults and PostgreSQL + MinIO.
var deploymentNames = []string{"embedded", "postgres+minio"}

// newDeployment prepares one over dataDir (PostgreSQL + MinIO skip without
// them, except under CI).
func newDeployment(t *testing.T, name, dataDir string) deployment {
	t.Helper()
	if name == "embedded" {
		path := func(data []byte) string {
			key, _ := store.Key(sha256Hex(data))
			return filepath.Join(dataDir, "objects", filepath.FromSlash(key))
		}
		return deployment{name: name,
			put: func(t *testing.T, data, b []byte) {
				if err := os.WriteFile(path(data), b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			remove: func(t *testing.T, data []byte) {
				if err := os.Remove(path(data)); err != nil {
					t.Fatal(err)
				}
			}}
	}
	cfg := s3test.Config(t)
	requireOrSkip(t, os.Getenv(pgtest.EnvURL) != "", "%s is not set; scripts/test.sh starts PostgreSQL", pgtest.EnvURL)
	client := s3test.Client(t, cfg)
	ctx := context.Background()
	return deployment{name: name, flags: append(s3Flags(cfg), "--database-url", pgtest.New(t).Service),
		put: func(t *testing.T, data, b []byte) {
			key, _ := store.Key(sha256Hex(data))
			if _, err := client.PutObject(ctx, cfg.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		remove: func(t *testing.T, data []byte) {
			key, _ := store.Key(sha256Hex(data))
			if err := client.RemoveObject(ctx, cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}}
}

// entriesOf returns the bodies of the custody log's entries of kind, in
// index order, each with its "index".
func (s *testServer) entriesOf(kind ledger.Kind) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	err := s.main.ledger.Scan(context.Background(), 0, func(e ledger.Entry) error {
		if e.Kind != kind {
			return nil
		}
		var body map[string]any
		if err := json.Unmarshal(e.Body, &body); err != nil {
			return err
		}
		body["index"] = float64(e.Index)
		out = append(out, body)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *testServer) transfer(path, destination string, push bool) response {
	body, _ := json.Marshal(map[string]any{"destination": destination, "purpose": "second opinion", "push": push})
	return s.do(http.MethodPost, path, "application/json", body)
}

// metric reads one sample of /metrics ("" when absent).
func (s *testServer) metric(name string) string {
	s.t.Helper()
	r := s.do(http.MethodGet, "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// The whole custody of images on both deployments: a verified transfer to
// a real Orthanc with its acknowledgement in the log, refusals and outages
// recorded as such, an export, then objects damaged behind dicomseal's
// back found by one scrub pass (and in the metrics), a transfer of the
// altered one blocked, re-ingest repairing all three, and the next scrub
// clean.
func TestCustodyOnTheMoveAndAtRest(t *testing.T) {
	for _, name := range deploymentNames {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			custodyOnTheMove(t, dataDir, newDeployment(t, name, dataDir))
		})
	}
}

func custodyOnTheMove(t *testing.T, dataDir string, dep deployment) {
	t.Logf("deployment: %s", dep.name)
	o := startOrthanc(t, nil)
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "pacs.token")
	if err := os.WriteFile(tokenFile, []byte(o.basicAuth()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exportDir := t.TempDir()
	destinations := []string{
		"--destination", "pacs=" + o.url + "/dicom-web", "--destination-token-file", "pacs=" + tokenFile,
		"--destination", "unauthorized=" + o.url + "/dicom-web",
		"--destination", "down=http://127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t)) + "/dicom-web",
		"--destination", "archive=file://" + exportDir,
	}
	srv := startServer(t, dataDir, append(append([]string{}, dep.flags...), destinations...)...)
	study := newCTStudy(t)
	sops := make([]string, 0, len(study.files))
	for sop, b := range study.files {
		if r := srv.ingest(b); r.status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
		sops = append(sops, sop)
	}
	slices.Sort(sops)
	a, b, c, d := sops[0], sops[1], sops[2], sops[3]

	// Pushed to a real Orthanc: its acknowledgement is in the entry.
	r := srv.transfer("/v1/instances/"+a+"/transfers", "pacs", true)
	if r.status != http.StatusCreated {
		t.Fatalf("push to Orthanc: %d %s", r.status, r.body)
	}
	tr := r.json(t)
	if tr["outcome"] != "delivered" || tr["kind"] != "transfer" || tr["file_sha256"] != sha256Hex(study.files[a]) {
		t.Fatalf("transfer answer: %v", tr)
	}
	if _, ok := o.lookup(a); !ok {
		t.Fatal("Orthanc does not have the instance dicomseal says it delivered")
	}
	entries := srv.entriesOf("transfer")
	if len(entries) != 1 {
		t.Fatalf("%d transfer entries", len(entries))
	}
	e := entries[0]
	ack, _ := e["acknowledgement"].(map[string]any)
	ref, _ := ack["00081155"].(map[string]any)
	if e["subject"] != a || e["destination"] != "pacs" || e["purpose"] != "second opinion" || e["actor"] != srv.tokenName(auth.RoleViewer) ||
		e["push"] != true || e["status"] != float64(200) || ref == nil || ref["Value"].([]any)[0] != a || e["ingest_entry_hash"] == "" {
		t.Fatalf("transfer entry: %v", e)
	}

	// A move the caller makes is recorded, once verified.
	if r := srv.transfer("/v1/instances/"+a+"/transfers", "courier-dvd", false); r.status != http.StatusCreated || r.json(t)["outcome"] != "recorded" {
		t.Fatalf("recorded move: %d %s", r.status, r.body)
	}
	// Exported into a directory: the file read back is the attested one.
	r = srv.transfer("/v1/instances/"+a+"/transfers", "archive", true)
	if r.status != http.StatusCreated || r.json(t)["kind"] != "export" || r.json(t)["outcome"] != "written" {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	if got, err := os.ReadFile(filepath.Join(exportDir, a+".dcm")); err != nil || !bytes.Equal(got, study.files[a]) {
		t.Fatalf("exported file: %v", err)
	}
	// Unconfigured, refusing, down: never a delivery.
	assertProblem(t, srv.transfer("/v1/instances/"+a+"/transfers", "nowhere", true), http.StatusBadRequest, "unknown-destination")
	p := assertProblem(t, srv.transfer("/v1/instances/"+a+"/transfers", "unauthorized", true), http.StatusBadGateway, "destination-refused")
	if p["outcome"] != "refused" {
		t.Fatalf("refusal: %v", p)
	}
	p = assertProblem(t, srv.transfer("/v1/instances/"+a+"/transfers", "down", true), http.StatusServiceUnavailable, "destination-unavailable")
	if p["outcome"] != "unreachable" {
		t.Fatalf("outage: %v", p)
	}
	var outcomes []string
	for _, e := range srv.entriesOf("transfer") {
		outcomes = append(outcomes, fmt.Sprintf("%s:%v:%v", e["destination"], e["outcome"], e["status"]))
	}
	if want := []string{"pacs:delivered:200", "courier-dvd:recorded:<nil>", "unauthorized:refused:401", "down:unreachable:<nil>"}; !slices.Equal(outcomes, want) {
		t.Fatalf("transfer entries %v, want %v", outcomes, want)
	}
	// Every send was audited before its bytes left.
	sends := 0
	for _, ev := range srv.auditEvents() {
		if ev["action"] == "instance.transfer.send" {
			sends++
		}
	}
	if sends != 4 { // pacs, archive, unauthorized, down
		t.Fatalf("%d instance.transfer.send audit events, want 4", sends)
	}

	// Damage behind dicomseal's back: a flipped byte, a truncation, a deletion.
	flipped := bytes.Clone(study.files[b])
	flipped[len(flipped)-64] ^= 0x01
	dep.put(t, study.files[b], flipped)
	dep.put(t, study.files[c], study.files[c][:len(study.files[c])-1000])
	dep.remove(t, study.files[d])
	srv.stop()

	// A scheduled scrub (the first pass starts with the server).
	srv = startServer(t, dataDir, append(append([]string{}, dep.flags...), append(destinations, "--scrub-interval", "1h", "--scrub-rate", "4MiB")...)...)
	deadline := time.Now().Add(60 * time.Second)
	for len(srv.entriesOf("fixity")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fixity summary after 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for outcome, want := range map[string]string{"OK": "1", "DIGEST_MISMATCH": "1", "SIZE_MISMATCH": "1", "MISSING": "1", "READ_ERROR": "0"} {
		if got := srv.metric(`dicomseal_fixity_pass_objects{outcome="` + outcome + `"}`); got != want {
			t.Errorf("dicomseal_fixity_pass_objects{outcome=%q} = %q, want %s", outcome, got, want)
		}
	}
	if got := srv.metric("dicomseal_fixity_pass_progress_ratio"); got != "1" {
		t.Errorf("progress ratio %q after the pass", got)
	}
	if age, err := strconv.ParseFloat(srv.metric("dicomseal_fixity_oldest_unverified_seconds"), 64); err != nil || age <= 0 || age > 120 {
		t.Errorf("oldest unverified: %v %v", age, err)
	}
	if srv.metric("dicomseal_fixity_scrubbing") != "1" {
		t.Error("the scrubbing server does not say it holds the lease")
	}
	summary := srv.entriesOf("fixity")[0]
	if summary["subject"] != "fixity" || summary["pass"] != float64(1) {
		t.Fatalf("fixity entry: %v", summary)
	}
	incidents := map[string]string{}
	for _, e := range srv.entriesOf("integrity-failure") {
		incidents[e["subject"].(string)] = e["reason"].(string)
	}
	if want := map[string]string{b: "altered", c: "altered", d: "missing"}; len(incidents) != 3 ||
		incidents[b] != want[b] || incidents[c] != want[c] || incidents[d] != want[d] {
		t.Fatalf("integrity failures %v, want %v", incidents, want)
	}
	if !strings.Contains(srv.logs.String(), `"event":"security-alert"`) {
		t.Error("no security-alert event in the log")
	}

	// The altered one cannot leave.
	p = assertProblem(t, srv.transfer("/v1/instances/"+b+"/transfers", "pacs", true), http.StatusBadGateway, "integrity-violation")
	if p["reason"] != "altered" {
		t.Fatalf("blocked transfer: %v", p)
	}
	if _, ok := o.lookup(b); ok {
		t.Fatal("Orthanc has the altered instance")
	}
	blocked := srv.entriesOf("transfer")
	last := blocked[len(blocked)-1]
	if last["subject"] != b || last["outcome"] != "blocked" || last["integrity_failure_index"] == nil {
		t.Fatalf("blocked transfer entry: %v", last)
	}
	// A study transfer with a damaged instance moves nothing.
	assertProblem(t, srv.transfer("/v1/studies/"+study.uid+"/transfers", "pacs", true), http.StatusBadGateway, "integrity-violation")
	if _, ok := o.lookup(c); ok {
		t.Fatal("a study transfer sent an instance while another was damaged")
	}

	// Re-ingesting the original bytes repairs each stored copy.
	for _, sop := range []string{b, c, d} {
		if r := srv.ingest(study.files[sop]); r.status != http.StatusOK {
			t.Fatalf("re-ingest %s: %d %s", sop, r.status, r.body)
		}
		if got := srv.do(http.MethodGet, "/v1/instances/"+sop, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, study.files[sop]) {
			t.Fatalf("after repair %s: %d", sop, got.status)
		}
	}
	var repairs []string
	for _, e := range srv.entriesOf("repair") {
		repairs = append(repairs, e["subject"].(string)+":"+e["found"].(string))
	}
	if want := []string{b + ":altered", c + ":altered", d + ":missing"}; !slices.Equal(repairs, want) {
		t.Fatalf("repair entries %v, want %v", repairs, want)
	}
	// Now the whole study leaves.
	r = srv.transfer("/v1/studies/"+study.uid+"/transfers", "pacs", true)
	if r.status != http.StatusCreated {
		t.Fatalf("study transfer: %d %s", r.status, r.body)
	}
	for _, sop := range sops {
		if _, ok := o.lookup(sop); !ok {
			t.Fatalf("Orthanc lacks %s after the study transfer", sop)
		}
	}
	srv.stop()

	// The next scrub, offline, finds everything intact.
	code, out := runCLI(append([]string{"scrub", "--data-dir", dataDir}, dep.flags...)...)
	if code != 0 || !strings.Contains(out, "pass 2: 4 objects, 4 OK, 0 failed") {
		t.Fatalf("scrub after repair: exit %d\n%s", code, out)
	}
	if code, out := runCLI(append([]string{"log", "verify", "--data-dir", dataDir}, dbFlags(dep.flags)...)...); code != 0 {
		t.Fatalf("log verify: exit %d\n%s", code, out)
	}
}

// dbFlags keeps the database flags of a deployment's flags.
func dbFlags(flags []string) []string {
	for i, f := range flags {
		if f == "--database-url" {
			return flags[i : i+2]
		}
	}
	return nil
}

// auditEvents returns the audit log's events.
func (s *testServer) auditEvents() []map[string]any {
	s.t.Helper()
	var out []map[string]any
	err := s.main.auditLog.Scan(context.Background(), 0, func(e ledger.Entry) error {
		var body map[string]any
		if err := json.Unmarshal(e.Body, &body); err != nil {
			return err
		}
		out = append(out, body)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}
