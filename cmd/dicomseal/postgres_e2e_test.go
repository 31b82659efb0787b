package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// instanceWithUID returns CT_small with its SOP Instance UID made unique
// by n (same length, so the file stays well-formed).
func instanceWithUID(t testing.TB, n int) []byte {
	t.Helper()
	data := fixture(t, "pydicom-CT_small.dcm")
	return bytes.ReplaceAll(data, []byte("20040119072730.12322"), []byte(fmt.Sprintf("1%013d.12322", n)))
}

func migrateCLI(t *testing.T, db pgtest.Database) {
	t.Helper()
	r := pgtest.Roles
	if code, out := runCLI("migrate", "--database-url", db.Admin, "--owner-role", r.Owner, "--service-role", r.Service,
		"--service-role-password", r.ServicePassword); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
}

func TestServeOnPostgres(t *testing.T) {
	db := pgtest.NewEmpty(t)
	dataDir := t.TempDir()

	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--database-url", db.Admin}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "dicomseal migrate") {
		m.Close()
		t.Fatalf("serve on an unmigrated database: %v, want a pointer to `dicomseal migrate`", err)
	}
	migrateCLI(t, db)
	migrateCLI(t, db) // idempotent

	srv := startServer(t, dataDir, "--database-url", db.Service, "--checkpoint-interval", "20ms")
	ready := srv.do(http.MethodGet, "/readyz", "", nil).json(t)
	if w, _ := ready["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "synchronous standby") {
		t.Fatalf("readyz without a synchronous standby should warn: %v", ready)
	}
	if strings.Contains(srv.logs.String(), "SECURITY") {
		t.Fatal("the service role was warned about as if it were privileged")
	}
	v, _ := srv.logVerifier()
	n := 0
	for name := range ingestible {
		data := fixture(t, name)
		r := srv.ingest(data)
		if r.status != http.StatusCreated && r.status != http.StatusConflict {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		if r.status == http.StatusCreated {
			uid := r.json(t)["sop_instance_uid"].(string)
			if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); !bytes.Equal(got.body, data) {
				t.Fatalf("%s: retrieval differs", name)
			}
		}
		n++
	}
	srv.waitForCheckpoint(v, uint64(n))
	if code, out := runCLI("log", "verify", "--data-dir", dataDir, "--database-url", db.Service); code != 0 {
		t.Fatalf("log verify on PostgreSQL: exit %d\n%s", code, out)
	}
	srv.stop()

	strict := startServer(t, dataDir, "--database-url", db.Service, "--require-sync-replica")
	assertProblem(t, strict.do(http.MethodGet, "/readyz", "", nil), http.StatusServiceUnavailable, "sync-replica-missing")
	strict.stop()

	super := startServer(t, dataDir, "--database-url", db.Admin)
	if !strings.Contains(super.logs.String(), "SECURITY") {
		t.Fatal("serving as a superuser must warn loudly")
	}
}

// replica is a real dicomseal process.
type replica struct {
	cmd *exec.Cmd
	url string
}

func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dicomseal")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startReplica(t testing.TB, bin string, args ...string) *replica {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "dicomseal serving" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return &replica{cmd: cmd, url: "http://" + a}
	case <-time.After(30 * time.Second):
		t.Fatal("replica did not start")
		return nil
	}
}

// cliToken creates a token with the tokens command and returns it (the
// last line of its output).
func cliToken(t testing.TB, role auth.Role, storeArgs ...string) string {
	t.Helper()
	initKeys(t, storeArgs...)
	var stdout, stderr bytes.Buffer
	args := append([]string{"tokens", "create", "--role", string(role), "--name", string(role) + "-" + randomSuffix()}, storeArgs...)
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("tokens create: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

// initKeys starts serve once over storeArgs (--data-dir, --database-url),
// unless its keys are there already: only serve generates keys, and the
// tokens command needs them at hand.
func initKeys(t testing.TB, storeArgs ...string) {
	t.Helper()
	var dataDir string
	for i, a := range storeArgs {
		if a == "--data-dir" && i+1 < len(storeArgs) {
			dataDir = storeArgs[i+1]
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "keys", auditKeyFile)); err == nil {
		return
	}
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0"}, storeArgs...)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("serve, to make the keys: %v", err)
	}
	m.Close()
}

type ingestAnswer struct {
	status int
	UID    string `json:"sop_instance_uid"`
	Index  uint64 `json:"ledger_index"`
	Hash   string `json:"entry_hash"`
}

func post(url, token string, body []byte) (ingestAnswer, error) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/instances", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/dicom")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ingestAnswer{}, err
	}
	defer resp.Body.Close()
	var a ingestAnswer
	json.NewDecoder(resp.Body).Decode(&a)
	a.status = resp.StatusCode
	return a, nil
}

// Three service processes append to one PostgreSQL concurrently; one is
// killed mid-run and the survivors keep integrating. Afterwards the log
// audits clean, and every 2xx any client got is in it exactly once.
func TestThreeReplicasOnePostgres(t *testing.T) {
	db := pgtest.New(t)
	bin := buildBinary(t)
	shared := t.TempDir() // one object store and one key set for all replicas
	ingestToken := cliToken(t, auth.RoleIngest, "--data-dir", shared, "--database-url", db.Service)
	auditorToken := cliToken(t, auth.RoleAuditor, "--data-dir", shared, "--database-url", db.Service)
	var reps []*replica
	for range 3 {
		reps = append(reps, startReplica(t, bin, "--data-dir", shared, "--database-url", db.Service, "--checkpoint-interval", "50ms"))
	}

	const perClient = 25
	var mu sync.Mutex
	var answers []ingestAnswer
	ingestRound := func(round int, targets []*replica) {
		var wg sync.WaitGroup
		for c := 0; c < 6; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perClient; i++ {
					n := round*10000 + c*100 + i
					// Every instance goes to two replicas: one creates it, the other answers 200.
					for k := 0; k < 2; k++ {
						a, err := post(targets[(c+k)%len(targets)].url, ingestToken, instanceWithUID(t, n))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						answers = append(answers, a)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}
	ingestRound(1, reps)
	// The integrator of replica 0 dies with it; the others take over.
	reps[0].cmd.Process.Signal(syscall.SIGKILL)
	reps[0].cmd.Wait()
	ingestRound(2, reps[1:])

	created := map[string]ingestAnswer{}
	for _, a := range answers {
		switch a.status {
		case http.StatusCreated:
			if _, dup := created[a.UID]; dup {
				t.Fatalf("%s created twice", a.UID)
			}
			created[a.UID] = a
		case http.StatusOK:
		default:
			t.Fatalf("unexpected status %d", a.status)
		}
	}
	if len(created) != 2*6*perClient {
		t.Fatalf("%d instances created, want %d", len(created), 2*6*perClient)
	}

	// Wait for a checkpoint that covers everything, served by a survivor:
	// past the last index given, and its subject map.
	var last uint64
	for _, a := range created {
		last = max(last, a.Index)
	}
	live := reps[1].url
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(live + "/v1/log/checkpoint")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lines := strings.Split(string(body), "\n")
			var size uint64
			if len(lines) > 1 {
				fmt.Sscan(lines[1], &size)
			}
			if size > last+1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("survivors did not integrate every entry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every 2xx is in the log exactly once, at the index it was given.
	perUID := map[string]int{}
	maps := 0
	for i := 0; i <= int(last); i++ {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/log/entries/%d", live, i), nil)
		req.Header.Set("Authorization", "Bearer "+auditorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			LeafHash string `json:"leaf_hash"`
			Entry    string `json:"entry"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		body, _ := base64.StdEncoding.DecodeString(e.Entry)
		var entry struct {
			Kind string `json:"kind"`
			UID  string `json:"subject"`
		}
		json.Unmarshal(body, &entry)
		if entry.Kind == "subject-map" {
			maps++ // a checkpoint's subject map, between batches
			continue
		}
		perUID[entry.UID]++
		if a := created[entry.UID]; a.Index != uint64(i) || a.Hash != e.LeafHash || entry.Kind != "ingest" {
			t.Fatalf("entry %d (%s) does not match the 201 its client got: %+v", i, entry.UID, a)
		}
	}
	if len(perUID) != len(created) || len(perUID)+maps != int(last)+1 {
		t.Fatalf("%d instances and %d subject maps in the log's first %d entries, want %d instances", len(perUID), maps, last+1, len(created))
	}
	for uid, n := range perUID {
		if n != 1 {
			t.Fatalf("%s is in the log %d times", uid, n)
		}
	}
	for _, r := range reps[1:] {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
	}
	if code, out := runCLI("log", "verify", "--data-dir", shared, "--database-url", db.Service); code != 0 {
		t.Fatalf("log verify after three writers: exit %d\n%s", code, out)
	}
}
