package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

// samplePath fills a route pattern's parameters with real values.
func samplePath(pattern, uid string) string {
	p := strings.ReplaceAll(pattern, "{sopInstanceUID}", uid)
	p = strings.ReplaceAll(p, "{index}", "0")
	p = strings.ReplaceAll(p, "{name}", "no-such-token")
	switch p {
	case "/v1/verify":
		return p + "?sha256=" + strings.Repeat("0", 64)
	case "/v1/log/proof/inclusion":
		return p + "?index=0"
	case "/v1/log/proof/consistency":
		return p + "?from=0"
	}
	return p
}

// Every route × every role × no, invalid, expired and revoked
// credentials, built from the router's own route table: the exact status
// class each must get.
func TestEveryRouteEveryCredential(t *testing.T) {
	// Hundreds of deliberate failures from one address: the lockout that
	// would follow is TestFailedLoginsAreLimited's subject, not this one's.
	srv := startServer(t, t.TempDir(), "--checkpoint-interval", "20ms", "--auth-fail-limit", "0")
	ct := fixture(t, "pydicom-CT_small.dcm")
	if r := srv.ingest(ct); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d", r.status)
	}
	v, _ := srv.logVerifier()
	srv.waitForCheckpoint(v, 1)
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"

	expired := srv.makeToken("expired-"+randomSuffix(), auth.RoleViewer, time.Nanosecond)
	revokedName := "revoked-" + randomSuffix()
	revoked := srv.makeToken(revokedName, auth.RoleViewer, 0)
	if err := srv.main.Tokens().RevokeToken(context.Background(), revokedName, time.Now()); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"none":         "",
		"garbage":      "not-a-token",
		"unknown":      "dst_0123456789abcdef_" + strings.Repeat("A", 43),
		"wrong secret": srv.tokens[auth.RoleViewer][:len(srv.tokens[auth.RoleViewer])-4] + "AAAA",
		"expired":      expired,
		"revoked":      revoked,
	}
	routes := (&api.Server{PublicLog: true}).Routes()
	for _, rt := range routes {
		path := samplePath(rt.Pattern, uid)
		var body []byte
		if rt.Method == http.MethodPost {
			body = ct
		}
		send := func(token string) int {
			req, _ := http.NewRequest(rt.Method, srv.url+path, bytes.NewReader(body))
			if body != nil {
				req.Header.Set("Content-Type", "application/dicom")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for name, token := range bad {
			got := send(token)
			if rt.Public && (got == 401 || got == 403) {
				t.Errorf("%s %s public, with %s credentials: %d", rt.Method, path, name, got)
			}
			if !rt.Public && got != http.StatusUnauthorized {
				t.Errorf("%s %s with %s credentials: %d, want 401", rt.Method, path, name, got)
			}
		}
		for _, role := range auth.Roles {
			got := send(srv.tokens[role])
			allowed := rt.Public || slices.Contains(rt.Roles, role)
			switch {
			case allowed && (got == 401 || got == 403):
				t.Errorf("%s %s as %s: %d, want it allowed", rt.Method, path, role, got)
			case !allowed && got != http.StatusForbidden:
				t.Errorf("%s %s as %s: %d, want 403", rt.Method, path, role, got)
			case allowed && got >= 500:
				t.Errorf("%s %s as %s: %d", rt.Method, path, role, got)
			}
		}
	}
	// With --public-log=false the log's public routes want a token too.
	private := startServer(t, t.TempDir(), "--public-log=false")
	for _, p := range []string{"/v1/keys", "/v1/log/checkpoint"} {
		assertProblem(t, private.as(anonymous).do(http.MethodGet, p, "", nil), http.StatusUnauthorized, "unauthenticated")
	}
}

// The tokens command prints the token alone on its last line; a revoke
// takes effect at once in the running server; both are audited with who
// did them.
func TestTokensCommandAgainstARunningServer(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--checkpoint-interval", "20ms")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"tokens", "create", "--data-dir", dataDir, "--role", "viewer",
		"--name", "pacs-viewer", "--actor", "alice", "--expires", "720h"}, &stdout, &stderr)
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	token := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(token, "dst_") || strings.Contains(token, " ") {
		t.Fatalf("tokens create: exit %d, last line %q\n%s", code, token, stderr.String())
	}
	if code, out := runCLI("tokens", "create", "--data-dir", dataDir, "--role", "viewer", "--name", "pacs-viewer"); code == 0 {
		t.Fatalf("a second active token with the same name was created:\n%s", out)
	}
	ask := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv.url+"/v1/verify?sha256="+strings.Repeat("0", 64), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ask(); got != http.StatusOK {
		t.Fatalf("new token: %d", got)
	}
	if code, out := runCLI("tokens", "list", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "pacs-viewer") || strings.Contains(out, token[20:]) {
		t.Fatalf("tokens list (must show the token, never its secret): exit %d\n%s", code, out)
	}
	if code, out := runCLI("tokens", "revoke", "--data-dir", dataDir, "--actor", "bob", "pacs-viewer"); code != 0 {
		t.Fatalf("tokens revoke: exit %d\n%s", code, out)
	}
	if got := ask(); got != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401 at once", got)
	}
	found := auditEntries(t, srv, "actor=alice", 1)
	if found[0]["action"] != "token.create" || !strings.Contains(found[0]["object"].(string), "pacs-viewer") {
		t.Fatalf("token creation not audited: %v", found)
	}
	if found := auditEntries(t, srv, "actor=bob", 1); found[0]["action"] != "token.revoke" {
		t.Fatalf("token revocation not audited: %v", found)
	}
}

// auditEntries polls /v1/audit (as an auditor) until at least n entries
// match query, within a second and a half.
func auditEntries(t *testing.T, srv *testServer, query string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		r := srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/audit?"+query, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("audit?%s: %d %s", query, r.status, r.body)
		}
		var entries []map[string]any
		for _, e := range r.json(t)["entries"].([]any) {
			entries = append(entries, e.(map[string]any))
		}
		if len(entries) >= n {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit?%s: %d entries within 1.5 s, want %d", query, len(entries), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every authenticated request leaves an audit entry with the right
// fields, visible within a second, provably in the audit log; a flood of
// unauthenticated requests adds a bounded number of entries.
func TestAuditTrail(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--checkpoint-interval", "50ms", "--audit-window", "100ms")
	ct := fixture(t, "pydicom-CT_small.dcm")
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	srv.ingest(ct)
	srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
	srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/instances/"+uid, "", nil) // denied: auditors see no pixel data

	viewerName := ""
	for _, e := range auditEntries(t, srv, "", 3) {
		if e["action"] == "instance.retrieve" && e["outcome"] == "allowed" {
			viewerName = e["actor"].(string)
			if e["object"] != uid || e["status"] != float64(200) || e["role"] != "viewer" || e["source"] != "127.0.0.1" {
				t.Fatalf("retrieval entry: %v", e)
			}
		}
	}
	if !strings.HasPrefix(viewerName, "test-viewer-") {
		t.Fatal("no allowed retrieval in the audit trail")
	}
	var deniedOne map[string]any
	for _, e := range auditEntries(t, srv, "", 4) {
		if e["action"] == "instance.retrieve" && e["outcome"] == "denied" {
			deniedOne = e
		}
	}
	if deniedOne == nil || deniedOne["status"] != float64(403) || deniedOne["role"] != "auditor" {
		t.Fatalf("the denied retrieval is not audited: %v", deniedOne)
	}

	// Inclusion proofs verify against the audit log's checkpoint, signed
	// by its own key.
	v, _ := srv.auditLogVerifier()
	deadline := time.Now().Add(3 * time.Second)
	for {
		entries := auditEntries(t, srv, "actor="+viewerName, 1)
		inc, ok := entries[0]["inclusion"].(map[string]any)
		if ok {
			cp, _, _, err := log.ParseCheckpoint([]byte(inc["checkpoint"].(string)), defaultAuditOrigin, v)
			if err != nil {
				t.Fatalf("audit checkpoint: %v", err)
			}
			leaf, _ := hex.DecodeString(entries[0]["leaf_hash"].(string))
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(entries[0]["index"].(float64)), cp.Size, leaf,
				unhex(t, inc["hashes"].([]any)), cp.Hash); err != nil {
				t.Fatalf("audit inclusion proof: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("audit entry never integrated")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A flood of 10,000 requests without credentials.
	start := time.Now()
	for i := 0; i < 10000; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.url+"/v1/instances/"+uid, nil)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	windows := int(time.Since(start)/(100*time.Millisecond)) + 3
	var counted float64
	added := 0 // entries for unauthenticated requests (the auditor's own polling is audited too)
	deadline = time.Now().Add(3 * time.Second)
	for counted < 10000 && time.Now().Before(deadline) {
		counted, added = 0, 0
		for _, e := range auditEntries(t, srv, "limit=10000", 1) {
			if e["action"] == "unauthenticated" {
				counted += e["count"].(float64)
				added++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if counted != 10000 || added > windows+5 {
		t.Fatalf("10,000 unauthenticated requests: counted %v in %d new entries (bound %d)", counted, added, windows+5)
	}
	// Paging by index: the second page starts where the first ended.
	all := auditEntries(t, srv, "limit=10000", 1)
	if len(all) > 2 {
		first := auditEntries(t, srv, "limit=2", 2)
		next := auditEntries(t, srv, fmt.Sprintf("limit=1&from=%v", first[1]["index"].(float64)+1), 1)
		if next[0]["index"] != all[2]["index"] {
			t.Fatalf("from=%v: entry %v, want %v", first[1]["index"].(float64)+1, next[0]["index"], all[2]["index"])
		}
	}
	assertProblem(t, srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/audit?from=first", "", nil), http.StatusBadRequest, "invalid-request")
}

// No token and no patient name ever reaches the logs.
func TestLogsHoldNoSecretsOrPatientData(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--log-level", "debug")
	for name := range ingestible {
		r := srv.ingest(fixture(t, name))
		if r.status == http.StatusCreated {
			srv.do(http.MethodGet, "/v1/instances/"+r.json(t)["sop_instance_uid"].(string), "", nil)
		}
	}
	srv.as(anonymous).do(http.MethodGet, "/v1/instances/1.2.3", "", nil)
	req, _ := http.NewRequest(http.MethodGet, srv.url+"/v1/instances/1.2.3", nil)
	req.Header.Set("Authorization", "Bearer dst_0123456789abcdef_"+strings.Repeat("B", 43))
	http.DefaultClient.Do(req)
	srv.stop()
	logs := srv.logs.String()
	secrets := []string{"dst_0123456789abcdef_"}
	for _, tok := range srv.tokens {
		secrets = append(secrets, tok, tok[len(tok)-43:])
	}
	for _, name := range ingestible {
		if name != "" && name != "^^^^" {
			secrets = append(secrets, name)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %q", s)
		}
	}
	if !strings.Contains(logs, "instance attested") {
		t.Fatal("no logs captured")
	}
}

// Hardening: per-identity rate limits, security headers, /metrics by
// address only, the client address through trusted proxies only.
func TestHardening(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--rate-limit", "1", "--rate-burst", "2",
		"--metrics-allow", "10.9.9.9", "--trusted-proxies", "127.0.0.1/32")
	statuses := []int{}
	for range 4 {
		r := srv.as(auth.RoleViewer).do(http.MethodGet, "/v1/verify?sha256="+strings.Repeat("1", 64), "", nil)
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if !slices.Equal(statuses[:2], []int{200, 200}) || statuses[3] != http.StatusTooManyRequests {
		t.Fatalf("rate limit 1/s, burst 2: %v", statuses)
	}
	// Another identity has its own bucket.
	if r := srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/verify?sha256="+strings.Repeat("1", 64), "", nil); r.status != 200 {
		t.Fatalf("another identity was throttled: %d", r.status)
	}
	h := srv.as(anonymous).do(http.MethodGet, "/healthz", "", nil).header
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	assertProblem(t, srv.as(anonymous).do(http.MethodGet, "/metrics", "", nil), http.StatusForbidden, "forbidden")
	// Through the trusted proxy (127.0.0.1) the forwarded client is believed.
	req, _ := http.NewRequest(http.MethodGet, srv.url+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics from an allowed address behind the trusted proxy: %d", resp.StatusCode)
	}
}

// The first start writes an admin token to a 0600 file and logs only its
// path; events queued at shutdown are flushed into the audit log.
func TestFirstAdminTokenAndShutdownFlush(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--checkpoint-interval", "20ms")
	path := filepath.Join(dataDir, "admin.token")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v", err, info)
	}
	raw, _ := os.ReadFile(path)
	admin := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(admin, "dst_") || strings.Contains(srv.logs.String(), admin) || !strings.Contains(srv.logs.String(), path) {
		t.Fatal("the admin token must be in its file and only its path in the logs")
	}
	// The admin may read keys but never images.
	srv.tokens[auth.RoleAdmin] = admin
	assertProblem(t, srv.as(auth.RoleAdmin).do(http.MethodGet, "/v1/instances/1.2.3", "", nil), http.StatusForbidden, "forbidden")

	// Requests just before shutdown are audited all the same.
	for i := 0; i < 50; i++ {
		srv.do(http.MethodGet, "/v1/verify?sha256="+strings.Repeat("2", 64), "", nil)
	}
	srv.stop()
	again := startServer(t, dataDir, "--checkpoint-interval", "20ms")
	n := 0
	for _, e := range auditEntries(t, again, "limit=10000", 1) {
		if e["action"] == "verify.digest" {
			n++
		}
	}
	if n != 50 {
		t.Fatalf("%d of 50 requests made before shutdown are in the audit log", n)
	}
}

// Request size limits are per identity: a token's own --max-body lowers
// the server's for that token alone, and can never raise it.
func TestPerTokenBodyLimit(t *testing.T) { testPerTokenBodyLimit(t) }

func TestPerTokenBodyLimitOnPostgres(t *testing.T) {
	db := pgtest.NewEmpty(t)
	migrateCLI(t, db)
	testPerTokenBodyLimit(t, "--database-url", db.Service)
}

func testPerTokenBodyLimit(t *testing.T, storeArgs ...string) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, append([]string{"--max-body", "64KiB"}, storeArgs...)...)
	create := func(name, limit string) string {
		t.Helper()
		args := append([]string{"tokens", "create", "--data-dir", dataDir, "--role", "ingest", "--name", name, "--max-body", limit}, storeArgs...)
		code, out := runCLI(args...)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if code != 0 {
			t.Fatalf("tokens create --max-body %s: exit %d\n%s", limit, code, out)
		}
		return lines[len(lines)-1]
	}
	small := create("small-pusher", "2KiB")
	large := create("greedy-pusher", "1GiB")
	post := func(token string, n int, chunked bool) response {
		t.Helper()
		var body io.Reader = bytes.NewReader(bytes.Repeat([]byte{0}, n))
		if chunked { // no Content-Length: only the reading can stop it
			body = io.MultiReader(body)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/instances", body)
		req.Header.Set("Content-Type", "application/dicom")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: answer}
	}
	tests := []struct {
		name    string
		token   string
		size    int
		chunked bool
		status  int
		says    string
	}{
		{"the token's own limit applies to it", small, 4 << 10, false, 413, "limit of 2048 bytes (token small-pusher's --max-body)"},
		{"also to a body of unknown length", small, 4 << 10, true, 413, "limit of 2048 bytes (token small-pusher's --max-body)"},
		{"within the token's limit the body is read", small, 1 << 10, false, 400, ""},
		{"another ingest token keeps the server's limit", srv.tokens[auth.RoleIngest], 4 << 10, true, 400, ""},
		{"a token cannot raise the server's limit", large, 65<<10 + 1, false, 413, "limit of 65536 bytes (the server's --max-body)"},
		{"nor for a body of unknown length", large, 65<<10 + 1, true, 413, "limit of 65536 bytes (the server's --max-body)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.token, tt.size, tt.chunked)
			if tt.status == 413 {
				assertProblem(t, r, 413, "body-too-large")
			} else if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if !strings.Contains(string(r.body), tt.says) {
				t.Fatalf("problem %s does not say %q", r.body, tt.says)
			}
		})
	}
	if code, out := runCLI(append([]string{"tokens", "list", "--data-dir", dataDir}, storeArgs...)...); code != 0 || !strings.Contains(out, "2KiB") || !strings.Contains(out, "server's") {
		t.Fatalf("tokens list does not show the limits: exit %d\n%s", code, out)
	}
}
