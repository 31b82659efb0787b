//go:build faults

package main

// The fault suite's load and its audit: clients ingest new instances,
// verify them by digest and retrieve acknowledged ones against a set of
// dicomseal processes while a test breaks things; afterwards check holds
// the service to what it answered. Run with the README's test command, or
//
//	go test -tags faults -count=1 -run '^TestFault' ./cmd/dicomseal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
)

// faultLoad drives the load and remembers every answer a client received.
type faultLoad struct {
	t                                *testing.T
	name                             string // prefix of request ids, unique per test
	ingestTok, viewerTok, auditorTok string
	ct                               []byte
	uidBase                          int
	cli                              cliFunc
	ledgerArgs, objectArgs           []string

	mu       sync.Mutex
	targets  []string            // base URLs currently serving
	answered map[string]int      // request id → status the client received
	acked    map[string][32]byte // SOP Instance UID → SHA-256 of the bytes acknowledged with 201
	ackedUID []string
	n        atomic.Int64
	sent     atomic.Int64 // ingests sent, answered or not
	// unchecked are the answers 503 credentials-unavailable: counted per
	// source in the trail, not recorded one by one.
	unchecked map[string]bool
}

// cliFunc runs a dicomseal command where the data is: exit code, standard
// output, standard error.
type cliFunc func(args ...string) (int, string, string)

// localCLI runs commands in this process.
func localCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// newFaultLoad makes its tokens with cli; ledgerArgs (--data-dir,
// --database-url) name the logs for every command, objectArgs (--s3-*)
// the object store for reconcile.
func newFaultLoad(t *testing.T, name string, uidBase int, cli cliFunc, ledgerArgs []string, objectArgs ...string) *faultLoad {
	l := &faultLoad{t: t, name: name, uidBase: uidBase, ct: fixture(t, "pydicom-CT_small.dcm"), cli: cli,
		ledgerArgs: ledgerArgs, objectArgs: objectArgs,
		answered: map[string]int{}, acked: map[string][32]byte{},
		unchecked: map[string]bool{}}
	initKeys(t, ledgerArgs...) // only serve makes keys
	token := func(role auth.Role) string {
		actor := name + "-" + string(role)
		code, stdout, stderr := cli(append([]string{"tokens", "create", "--role", string(role), "--name", actor}, ledgerArgs...)...)
		if code != 0 {
			t.Fatalf("tokens create: exit %d\n%s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		tok := lines[len(lines)-1]
		return tok
	}
	l.ingestTok, l.viewerTok, l.auditorTok = token(auth.RoleIngest), token(auth.RoleViewer), token(auth.RoleAuditor)
	return l
}

// serve sets the URLs clients send to (replicas come and go).
func (l *faultLoad) serve(urls ...string) {
	l.mu.Lock()
	l.targets = append([]string(nil), urls...)
	l.mu.Unlock()
}

func (l *faultLoad) target() string { return l.pick(&l.targets) }

// pick is a random element of *from ("" when empty), read under l.mu.
func (l *faultLoad) pick(from *[]string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(*from) == 0 {
		return ""
	}
	return (*from)[rand.IntN(len(*from))]
}

// loadClient bounds every request, so that a test waiting on the load
// cannot stall; a request that hits the bound is a hang, and fails the
// test.
var loadClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// checkClient reads back, after the load: an audit page verifies up to
// 10,000 inclusion proofs.
var checkClient = &http.Client{Timeout: 2 * time.Minute}

// send is one request with its id; err when no answer came (the server
// died mid-request: nothing is owed then).
func (l *faultLoad) send(method, path, token, id string, body []byte) (int, []byte, error) {
	base := l.target()
	if base == "" {
		return 0, nil, fmt.Errorf("no replica serving")
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/dicom")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", id)
	resp, err := loadClient.Do(req)
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			l.t.Errorf("%s %s (%s): no answer within %s", method, path, id, loadClient.Timeout)
		}
		return 0, nil, err // no answer: the server died mid-request, nothing is owed
	}
	defer resp.Body.Close()
	// A status received is an answer, even if the body was cut short (the
	// server killed while sending): its record was owed before the first
	// byte.
	l.mu.Lock()
	l.answered[id] = resp.StatusCode
	l.mu.Unlock()
	got, err := io.ReadAll(resp.Body)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		l.t.Errorf("%s %s (%s): answered %d, then the body stalled past %s", method, path, id, resp.StatusCode, loadClient.Timeout)
	}
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(got, []byte(`/problems/credentials-unavailable"`)) {
		l.mu.Lock()
		l.unchecked[id] = true
		l.mu.Unlock()
	}
	return resp.StatusCode, got, nil
}

// run starts clients that loop until stop is closed; wait for them with
// the returned WaitGroup.
func (l *faultLoad) run(clients int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(l.n.Add(1))
				id := fmt.Sprintf("%s-%d-%d", l.name, c, i)
				uid := ctUID(l.uidBase + i)
				data := bytes.ReplaceAll(l.ct, []byte("20040119072730.12322"), []byte(fmt.Sprintf("1%013d.12322", l.uidBase+i)))
				l.sent.Add(1)
				status, _, err := l.send(http.MethodPost, "/v1/instances", l.ingestTok, id+"-i", data)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // a replica restarting: do not spin
					continue
				}
				if status == http.StatusCreated {
					l.mu.Lock()
					l.acked[uid] = sha256.Sum256(data)
					l.ackedUID = append(l.ackedUID, uid)
					l.mu.Unlock()
				}
				refused := status >= 400
				status, _, _ = l.send(http.MethodGet, "/v1/verify?sha256="+sha256Hex(data), l.viewerTok, id+"-v", nil)
				refused = refused || status >= 400
				if old := l.someAcked(); old != "" {
					status, got, err := l.send(http.MethodGet, "/v1/instances/"+old, l.viewerTok, id+"-r", nil)
					if err == nil && status == http.StatusOK && sha256.Sum256(got) != l.ackedSum(old) {
						l.t.Errorf("retrieval of %s answered other bytes than were acknowledged", old)
					}
					refused = refused || status >= 400
				}
				if refused {
					time.Sleep(50 * time.Millisecond) // as a client honouring Retry-After would, roughly
				}
			}
		})
	}
	return &wg
}

func (l *faultLoad) someAcked() string { return l.pick(&l.ackedUID) }

func (l *faultLoad) ackedSum(uid string) [32]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked[uid]
}

// statuses counts the answers by status, for the test's log.
func (l *faultLoad) statuses() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts := map[int]int{}
	for _, s := range l.answered {
		counts[s]++
	}
	return fmt.Sprint(counts)
}

// check holds the service to its answers, through base (a sound, serving
// replica, no load running): every answer a client received is in the
// audit trail with the status it was sent with; every acknowledged ingest
// is retrievable, byte for byte; both logs verify and reconcile finds no
// entry without its object.
func (l *faultLoad) check(base string) {
	t := l.t
	t.Helper()
	if len(l.acked) == 0 {
		t.Fatal("no ingest was acknowledged: the test proved nothing")
	}
	// Queued events (refusals while the audit log was down) reach it
	// within the writer's flush interval, or its retries.
	var problems []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		events, unchecked := l.auditEvents(base)
		problems = problems[:0]
		var refusedUnchecked []string
		for id, status := range l.answered {
			got := events[id]
			switch {
			case slices.Contains(got, status):
			case len(got) == 0 && l.unchecked[id]:
				// Credentials that could not be checked are counted per
				// source, not recorded per request.
				refusedUnchecked = append(refusedUnchecked, id)
			case len(got) == 0:
				problems = append(problems, fmt.Sprintf("%s answered %d without an audit event", id, status))
			default:
				problems = append(problems, fmt.Sprintf("%s answered %d, audited as %v", id, status, got))
			}
		}
		if int64(len(refusedUnchecked)) > unchecked {
			problems = append(problems, fmt.Sprintf("%d answers 503 credentials-unavailable (e.g. %s), and only %d counted as %s",
				len(refusedUnchecked), refusedUnchecked[0], unchecked, audit.ActionUnchecked))
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d of %d answers not audited as sent, e.g.:\n%s", len(problems), len(l.answered),
			strings.Join(problems[:min(len(problems), 8)], "\n"))
	}
	for uid, sum := range l.acked {
		status, got, err := l.sendTo(base, http.MethodGet, "/v1/instances/"+uid, l.viewerTok)
		if err != nil || status != http.StatusOK || sha256.Sum256(got) != sum {
			t.Fatalf("acknowledged ingest %s: retrieval %d %v", uid, status, err)
		}
	}
	code, out, errOut := l.cli(append([]string{"log", "verify"}, l.ledgerArgs...)...)
	if code != 0 || !strings.Contains(out, "custody: OK") || !strings.Contains(out, "audit: OK") {
		t.Fatalf("log verify: exit %d\n%s%s", code, out, errOut)
	}
	// The custody log holds every acknowledged ingest and nothing nobody
	// sent: between the two (an ingest may commit and lose its answer to
	// a crash). Each checkpoint's subject map is an entry of its own.
	var entries, batches, checkpoints, latest, maps int
	if _, err := fmt.Sscanf(out[strings.Index(out, "custody: OK, "):],
		"custody: OK, %d entries, %d signed batches, %d checkpoints (latest verified: size %d), %d subject maps",
		&entries, &batches, &checkpoints, &latest, &maps); err != nil {
		t.Fatalf("log verify: %v\n%s", err, out)
	}
	entries -= maps
	if entries < len(l.acked) || int64(entries) > l.sent.Load() {
		t.Fatalf("the custody log holds %d entries: %d ingests were acknowledged, %d sent", entries, len(l.acked), l.sent.Load())
	}
	if code, out, errOut = l.cli(append(append([]string{"reconcile"}, l.ledgerArgs...), l.objectArgs...)...); strings.Contains(out, "missing ") || code == 2 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%s: %d answers %s, all audited as sent; %d ingests acknowledged of %d sent, %d in the custody log; both logs verify",
		l.name, len(l.answered), l.statuses(), len(l.acked), l.sent.Load(), entries)
}

func (l *faultLoad) sendTo(base, method, path, token string) (int, []byte, error) {
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := checkClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, got, err
}

// auditEvents reads the whole audit trail (this test's alone is in it),
// a page at a time: request id → the statuses recorded for it (a retried
// append may record one twice), and how many requests were refused because
// their credentials could not be checked (counted, without ids).
func (l *faultLoad) auditEvents(base string) (map[string][]int, int64) {
	t := l.t
	t.Helper()
	const page = 10000
	out := map[string][]int{}
	var unchecked int64
	for from := uint64(0); ; {
		status, body, err := l.sendTo(base, http.MethodGet, fmt.Sprintf("/v1/audit?limit=%d&from=%d", page, from), l.auditorTok)
		if err != nil || status != http.StatusOK {
			t.Fatalf("audit query: %d %v %.300s", status, err, body)
		}
		var doc struct {
			Entries []struct {
				Index     uint64 `json:"index"`
				Action    string `json:"action"`
				Count     int64  `json:"count"`
				RequestID string `json:"request_id"`
				Status    int    `json:"status"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range doc.Entries {
			if e.Action == audit.ActionUnchecked {
				unchecked += e.Count
			}
			out[e.RequestID] = append(out[e.RequestID], e.Status)
		}
		if len(doc.Entries) < page {
			return out, unchecked
		}
		from = doc.Entries[len(doc.Entries)-1].Index + 1
	}
}
