package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
)

// kill -9 during concurrent ingests and verifications, round after round:
// every answer a client received has its audit event, every acknowledged
// ingest is in the log and the store, and both logs verify afterwards.
func TestKill9KeepsEveryAnswerAudited(t *testing.T) {
	const rounds, clients = 10, 8
	bin := hostileBinary(t)
	dataDir := t.TempDir()
	ingestTok := cliToken(t, auth.RoleIngest, "--data-dir", dataDir)
	viewerTok := cliToken(t, auth.RoleViewer, "--data-dir", dataDir)
	auditorTok := cliToken(t, auth.RoleAuditor, "--data-dir", dataDir)

	ct := fixture(t, "pydicom-CT_small.dcm") // made unique per request below, as instanceWithUID does
	var mu sync.Mutex
	answered := map[string]string{} // request id → what was answered
	var acked []string              // SOP Instance UIDs acknowledged with 2xx
	var n atomic.Int64
	send := func(url, method, token, reqID string, body []byte) (int, error) {
		var rd *bytes.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, nil)
		if rd != nil {
			req, _ = http.NewRequest(method, url, rd)
			req.Header.Set("Content-Type", "application/dicom")
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Request-Id", reqID)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for round := range rounds {
		rep := startReplica(t, bin, "--data-dir", dataDir, "--checkpoint-interval", "50ms")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := int(n.Add(1))
					id := fmt.Sprintf("kill9-%d-%d-%d", round, c, i)
					data := bytes.ReplaceAll(ct, []byte("20040119072730.12322"), []byte(fmt.Sprintf("1%013d.12322", 900000+i)))
					status, err := send(rep.url+"/v1/instances", http.MethodPost, ingestTok, id, data)
					if err != nil {
						continue // the server died mid-request: no answer, nothing owed
					}
					mu.Lock()
					answered[id] = fmt.Sprintf("ingest %d", status)
					if status == http.StatusCreated {
						acked = append(acked, ctUID(900000+i))
					}
					mu.Unlock()
					vid := id + "-v"
					if status, err := send(rep.url+"/v1/verify?sha256="+sha256Hex(data), http.MethodGet, viewerTok, vid, nil); err == nil {
						mu.Lock()
						answered[vid] = fmt.Sprintf("verify %d", status)
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(300+100*(round%5)) * time.Millisecond)
		rep.cmd.Process.Signal(syscall.SIGKILL)
		close(stop)
		wg.Wait()
		rep.cmd.Wait()
	}

	// A last, clean run: read the audit log and the instances back.
	rep := startReplica(t, bin, "--data-dir", dataDir, "--checkpoint-interval", "50ms")
	seen := map[string]bool{}
	{
		req, _ := http.NewRequest(http.MethodGet, rep.url+"/v1/audit?limit=10000", nil)
		req.Header.Set("Authorization", "Bearer "+auditorTok)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Entries []struct {
				RequestID string `json:"request_id"`
			} `json:"entries"`
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("audit query: %d", resp.StatusCode)
		}
		if len(doc.Entries) >= 10000 {
			t.Fatal("the audit log holds more events than one query returns: lower the load")
		}
		for _, e := range doc.Entries {
			seen[e.RequestID] = true
		}
	}
	missing := 0
	for id, what := range answered {
		if !seen[id] {
			missing++
			if missing <= 5 {
				t.Errorf("answered %s (%s) without an audit event", id, what)
			}
		}
	}
	for _, uid := range acked {
		req, _ := http.NewRequest(http.MethodGet, rep.url+"/v1/instances/"+uid, nil)
		req.Header.Set("Authorization", "Bearer "+viewerTok)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("acknowledged ingest %s: retrieval %d", uid, resp.StatusCode)
		}
	}
	rep.cmd.Process.Signal(syscall.SIGTERM)
	rep.cmd.Wait()
	code, out := runCLI("log", "verify", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("log verify after %d kill -9 rounds: exit %d\n%s", rounds, code, out)
	}
	t.Logf("%d rounds: %d answers, %d acknowledged ingests, %d without an audit event; %s",
		rounds, len(answered), len(acked), missing, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	if len(acked) == 0 {
		t.Fatal("no ingest was acknowledged: the test proved nothing")
	}
}
