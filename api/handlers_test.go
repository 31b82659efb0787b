package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
	"github.com/dicomseal/dicomseal/mock"
	"github.com/dicomseal/dicomseal/problem"
)

// fakeServer is the real router, guard and audit trail over a fake domain
// service, with a token for each role.
func fakeServer(t *testing.T, svc *mock.Service) (http.Handler, map[auth.Role]string) {
	h, secrets, _ := fakeServerWithTrail(t, svc)
	return h, secrets
}

func fakeServerWithTrail(t *testing.T, svc *mock.Service) (http.Handler, map[auth.Role]string, *Server) {
	t.Helper()
	ctx := context.Background()
	tokens, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	a := audit.New(sqlitetest.Log(t, filepath.Join(t.TempDir(), "audit.db"), nil), nil)
	t.Cleanup(a.Close)
	secrets := map[auth.Role]string{}
	for _, role := range auth.Roles {
		secret, tok, err := auth.NewToken("t-"+string(role), role, "test", time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := tokens.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		secrets[role] = secret
	}
	s := New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Tokens, s.Audit = tokens, a
	return s.Handler(), secrets, s
}

// A token change is recorded before it is made: when the audit log cannot
// take the record, nothing changes and the admin is told so.
func TestTokenChangesWaitForTheirRecord(t *testing.T) {
	h, tokens, s := fakeServerWithTrail(t, &mock.Service{})
	s.Audit.(*audit.Log).Close() // the audit log is gone
	req := httptest.NewRequest(http.MethodPost, "/v1/tokens", strings.NewReader(`{"role":"viewer","name":"ward-9"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleAdmin])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), problem.AuditUnavailable) {
		t.Fatalf("create without an audit log: %d %s", rec.Code, rec.Body)
	}
	list, err := s.Tokens.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range list {
		if tok.Name == "ward-9" {
			t.Fatal("the token was created without its audit record")
		}
	}
	req = httptest.NewRequest(http.MethodDelete, "/v1/tokens/t-viewer", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleAdmin])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("revoke without an audit log: %d %s", rec.Code, rec.Body)
	}
	if _, err := auth.Authenticate(context.Background(), s.Tokens, tokens[auth.RoleViewer], time.Now()); err != nil {
		t.Fatalf("the token was revoked without its audit record: %v", err)
	}
}

// What the domain answers becomes the table's problem, whatever code its
// maker set, with the headers its code calls for; nothing else leaks.
func TestDomainErrorsBecomeTheirProblems(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		slug       string
		retryAfter bool
	}{
		{"never attested", attest.Errorf(attest.ENotFound, attest.ProblemNotFound, "no attestation"), 404, problem.NotFound, false},
		{"altered in the store", &attest.Error{Code: attest.EIntegrity, Problem: attest.ProblemIntegrity, Message: "altered",
			Details: map[string]any{"reason": "altered"}}, 502, problem.Integrity, false},
		{"a key the server lacks", attest.Errorf(attest.EUnavailable, attest.ProblemKeyUnavailable, "configure it"), 503, problem.KeyUnavailable, true},
		{"an entry of a newer release", attest.Errorf(attest.EUnavailable, attest.ProblemEntryFormatUnknown, "upgrade"), 503, problem.EntryFormatUnknown, true},
		{"a full disk", attest.Errorf(attest.ENoSpace, attest.ProblemInsufficientStorage, "full"), 507, problem.InsufficientStorage, true},
		{"a code at odds with its slug", attest.Errorf(attest.EInvalid, attest.ProblemStorageUnavailable, "store down"), 503, problem.StorageUnavailable, true},
		{"not an *attest.Error", errors.New("a bug: secret=hunter2"), 500, problem.Internal, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, tokens := fakeServer(t, &mock.Service{
				RetrieveFn: func(context.Context, string, *uint64) (*attest.Retrieved, error) { return nil, tc.err },
			})
			req := httptest.NewRequest(http.MethodGet, "/v1/instances/1.2.3", nil)
			req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleViewer])
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var p map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			ty, _ := problem.Lookup(tc.slug)
			if rec.Code != tc.status || p["type"] != ty.URI() || p["title"] != ty.Title || p["status"] != float64(tc.status) ||
				rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %v, want %d %s %q", rec.Code, p, tc.status, tc.slug, ty.Title)
			}
			if got := rec.Header().Get("Retry-After") != ""; got != tc.retryAfter {
				t.Fatalf("Retry-After present: %v, want %v", got, tc.retryAfter)
			}
			if strings.Contains(rec.Body.String(), "hunter2") {
				t.Fatal("the cause of an internal error reached the client")
			}
		})
	}
}

// Each role reaches exactly its handlers: the fake records what was called.
func TestHandlersReachTheServiceOnlyForTheirRoles(t *testing.T) {
	var calls []string
	svc := &mock.Service{
		VerifyDigestFn: func(_ context.Context, sha string) (*attest.Verification, error) {
			calls = append(calls, "verify "+sha)
			return &attest.Verification{Status: attest.StatusUnknown, SHA256: sha, Detail: "fake"}, nil
		},
		LogEntryFn: func(_ context.Context, idx uint64) (*attest.LogEntry, error) {
			calls = append(calls, fmt.Sprintf("entry %d", idx))
			return &attest.LogEntry{Index: idx}, nil
		},
	}
	h, tokens := fakeServer(t, svc)
	sha := strings.Repeat("a", 64)
	for _, tc := range []struct {
		role   auth.Role
		path   string
		status int
	}{
		{auth.RoleViewer, "/v1/verify?sha256=" + sha, 200},
		{auth.RoleAuditor, "/v1/verify?sha256=" + sha, 200},
		{auth.RoleIngest, "/v1/verify?sha256=" + sha, 403},
		{auth.RoleReconciler, "/v1/verify?sha256=" + sha, 403},
		{auth.RoleAuditor, "/v1/log/entries/7", 200},
		{auth.RoleViewer, "/v1/log/entries/7", 403},
		{auth.RoleAdmin, "/v1/log/entries/7", 403},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tokens[tc.role])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.role, tc.path, rec.Code, tc.status)
		}
	}
	if want := "verify " + sha + ",verify " + sha + ",entry 7"; strings.Join(calls, ",") != want {
		t.Fatalf("service calls %v, want %s", calls, want)
	}
}

// A verdict names its attestation; the whole attestation (kilobytes of
// envelope and entry) comes only when asked for.
func TestVerifyAnswersBriefly(t *testing.T) {
	att := &attest.Attestation{SOPInstanceUID: "1.2.3", StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.4",
		LedgerIndex: 41, EntryHash: strings.Repeat("e", 64), KeyID: "k", Entry: strings.Repeat("A", 8000)}
	svc := &mock.Service{VerifyDigestFn: func(_ context.Context, sha string) (*attest.Verification, error) {
		return &attest.Verification{Status: attest.StatusVerified, SHA256: sha, SOPInstanceUID: "1.2.3", Attestation: att}, nil
	}}
	h, tokens := fakeServer(t, svc)
	get := func(query string) map[string]any {
		req := httptest.NewRequest(http.MethodGet, "/v1/verify?sha256="+strings.Repeat("a", 64)+query, nil)
		req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleViewer])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return v
	}
	brief := get("")
	named, _ := brief["attested"].(map[string]any)
	if brief["attestation"] != nil || named["ledger_index"] != 41.0 || named["entry_hash"] != att.EntryHash || named["study_instance_uid"] != "1.2" {
		t.Fatalf("brief answer: %v", brief)
	}
	if full := get("&include=attestation"); full["attestation"] == nil || full["attested"] != nil {
		t.Fatalf("full answer: %v", full)
	}
}
