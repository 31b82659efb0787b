package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

func TestTokensAdminAPI(t *testing.T) {
	srv := startServer(t, t.TempDir(), "--checkpoint-interval", "20ms")
	admin := srv.as(auth.RoleAdmin)
	created := admin.do(http.MethodPost, "/v1/tokens", "application/json",
		[]byte(`{"role":"viewer","name":"pacs-viewer","expires":"720h","max_body":65536}`))
	if created.status != http.StatusCreated || created.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	doc := created.json(t)
	secret, _ := doc["token"].(string)
	if doc["name"] != "pacs-viewer" || doc["role"] != "viewer" || !strings.HasPrefix(secret, "dst_") || doc["expires_at"] == nil {
		t.Fatalf("created: %v", doc)
	}
	viewer := srv.withToken(secret)
	if r := viewer.do(http.MethodGet, "/v1/instances/1.2.3", "", nil); r.status != http.StatusNotFound {
		t.Fatalf("the new token does not authenticate: %d", r.status)
	}

	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		slug                    string
	}{
		{"the name again", "application/json", `{"role":"ingest","name":"pacs-viewer"}`, 409, "token-name-taken"},
		{"an unknown role", "application/json", `{"role":"root","name":"x"}`, 400, "invalid-request"},
		{"a bad name", "application/json", `{"role":"viewer","name":"no spaces"}`, 400, "invalid-request"},
		{"a bad lifetime", "application/json", `{"role":"viewer","name":"x","expires":"-1h"}`, 400, "invalid-request"},
		{"an unknown field", "application/json", `{"role":"viewer","name":"x","secret":"mine"}`, 400, "invalid-request"},
		{"not JSON", "text/plain", `role=viewer`, 415, "unsupported-media-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblem(t, admin.do(http.MethodPost, "/v1/tokens", tc.contentType, []byte(tc.body)), tc.status, tc.slug)
		})
	}
	// Only an admin administers tokens.
	for _, role := range []auth.Role{auth.RoleIngest, auth.RoleViewer, auth.RoleAuditor, auth.RoleReconciler} {
		assertProblem(t, srv.as(role).do(http.MethodPost, "/v1/tokens", "application/json", []byte(`{"role":"admin","name":"me"}`)),
			http.StatusForbidden, "forbidden")
		assertProblem(t, srv.as(role).do(http.MethodGet, "/v1/tokens", "", nil), http.StatusForbidden, "forbidden")
	}

	list := admin.do(http.MethodGet, "/v1/tokens", "", nil)
	if list.status != http.StatusOK || !strings.Contains(string(list.body), `"pacs-viewer"`) ||
		strings.Contains(string(list.body), secret[len(secret)-20:]) || strings.Contains(string(list.body), "secret") {
		t.Fatalf("list: %d %s", list.status, list.body)
	}

	if r := admin.do(http.MethodDelete, "/v1/tokens/pacs-viewer", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	assertProblem(t, viewer.do(http.MethodGet, "/v1/instances/1.2.3", "", nil), http.StatusUnauthorized, "unauthenticated")
	assertProblem(t, admin.do(http.MethodDelete, "/v1/tokens/pacs-viewer", "", nil), http.StatusNotFound, "token-not-found")

	// The server audited both changes, naming the admin and the token,
	// never the secret.
	events := auditEntries(t, srv, "actor="+srv.tokenName(auth.RoleAdmin), 1)
	var actions []string
	for _, e := range events {
		object, _ := e["object"].(string)
		if strings.Contains(object, secret[4:]) {
			t.Fatal("an audit event holds the secret")
		}
		if e["outcome"] == "allowed" {
			actions = append(actions, e["action"].(string)+" "+object)
		}
	}
	joined := strings.Join(actions, "; ")
	if !strings.Contains(joined, "token.create pacs-viewer (viewer), max body 65536") || !strings.Contains(joined, "token.revoke pacs-viewer") {
		t.Fatalf("audited token changes: %s", joined)
	}
}

// The tokens command, given --server, needs an admin token and nothing
// else: no data directory, no key.
func TestTokensCommandThroughTheServer(t *testing.T) {
	srv := startServer(t, t.TempDir())
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(tokenFile, []byte(srv.tokens[auth.RoleAdmin]+"\n"), 0o600)
	remote := []string{"--server", srv.url, "--token-file", tokenFile, "--data-dir", filepath.Join(t.TempDir(), "nothing-here")}
	code, out := runCLI(append([]string{"tokens", "create", "--role", "ingest", "--name", "orthanc-1"}, remote...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.HasPrefix(lines[len(lines)-1], "dst_") {
		t.Fatalf("tokens create --server: exit %d\n%s", code, out)
	}
	if r := srv.withToken(lines[len(lines)-1]).ingest(fixture(t, "pydicom-CT_small.dcm")); r.status != http.StatusCreated {
		t.Fatalf("the created token: %d", r.status)
	}
	if code, out := runCLI(append([]string{"tokens", "list"}, remote...)...); code != 0 || !strings.Contains(out, "orthanc-1") {
		t.Fatalf("tokens list --server: exit %d\n%s", code, out)
	}
	if code, out := runCLI(append(append([]string{"tokens", "revoke"}, remote...), "orthanc-1")...); code != 0 {
		t.Fatalf("tokens revoke --server: exit %d\n%s", code, out)
	}
	code, out = runCLI(append(append([]string{"tokens", "revoke"}, remote...), "orthanc-1")...)
	if code != 1 || !strings.Contains(out, "token-not-found") {
		t.Fatalf("revoking twice: exit %d\n%s", code, out)
	}
	// A non-admin token is refused by the server, by name.
	os.WriteFile(tokenFile, []byte(srv.tokens[auth.RoleViewer]), 0o600)
	if code, out := runCLI(append([]string{"tokens", "list"}, remote...)...); code != 1 || !strings.Contains(out, "403 Forbidden (forbidden)") {
		t.Fatalf("tokens list as a viewer: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(remote[len(remote)-1])); !os.IsNotExist(err) {
		t.Fatalf("the command touched a data directory: %v", err)
	}
}

// A tokens command run beside a shared PostgreSQL, from a directory
// without the key files, fails and writes nothing: before, it made a
// fresh log key there and signed an audit event the audit log's
// integration could never verify, halting it for every replica.
func TestTokensCommandWithoutKeysWritesNothing(t *testing.T) {
	db := pgtest.New(t)
	srv := startServer(t, t.TempDir(), "--database-url", db.Service, "--checkpoint-interval", "20ms")
	elsewhere := t.TempDir()
	code, out := runCLI("tokens", "create", "--database-url", db.Service, "--data-dir", elsewhere, "--role", "viewer", "--name", "sneaky")
	if code != 2 || !strings.Contains(out, "log key") || !strings.Contains(out, "is missing") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("tokens create without keys: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("the command wrote into %s: %v", elsewhere, entries)
	}
	list := srv.as(auth.RoleAdmin).do(http.MethodGet, "/v1/tokens", "", nil)
	if strings.Contains(string(list.body), "sneaky") {
		t.Fatal("a token was created without its audit record")
	}
	// The audit log still integrates: a request is audited and checkpointed.
	srv.as(auth.RoleAuditor).do(http.MethodGet, "/v1/log/checkpoint", "", nil)
	auditEntries(t, srv, "actor="+srv.tokenName(auth.RoleAuditor), 1)
	srv.stop()
	if code, out := runCLI("log", "verify", "--database-url", db.Service, "--data-dir", srv.dataDir); code != 0 {
		t.Fatalf("log verify: exit %d\n%s", code, out)
	}
}
