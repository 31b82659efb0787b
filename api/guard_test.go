package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
)

// guardedServer is a Server with real tokens and a real audit trail (both
// SQLite), and a viewer's token.
func guardedServer(t *testing.T) (*Server, *ledger.Log, string) {
	t.Helper()
	ctx := context.Background()
	tokens, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	trail := sqlitetest.Log(t, filepath.Join(t.TempDir(), "audit.db"), nil)
	a := audit.New(trail, nil)
	t.Cleanup(a.Close)
	secret, tok, err := auth.NewToken("viewer-1", auth.RoleViewer, "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	s := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Tokens, s.Audit = tokens, a
	return s, trail, secret
}

// A handler that panics is answered 500 through the guard's writer, so
// the answer has its audit event, durably on the routes that must.
func TestPanicIsAudited(t *testing.T) {
	for _, action := range []string{"instance.retrieve", "log.entry"} {
		t.Run(action, func(t *testing.T) {
			s, trail, secret := guardedServer(t)
			h := s.guard(route{action: action, roles: []auth.Role{auth.RoleViewer}},
				http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("a bug") }))
			req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("X-Request-Id", "panic-1")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", rec.Code)
			}
			s.Audit.(*audit.Log).Close() // flushes what was queued
			var got []audit.Event
			trail.Scan(context.Background(), 0, func(e ledger.Entry) error {
				if ev, err := audit.Decode(e); err == nil && ev.RequestID == "panic-1" {
					got = append(got, ev)
				}
				return nil
			})
			if len(got) != 1 || got[0].Status != http.StatusInternalServerError || got[0].Action != action {
				t.Fatalf("audit events of the panicking request: %+v, want one 500 of %s", got, action)
			}
		})
	}
}

// An answer the handler never wrote (net/http would send 200 past the
// guard's writer) waits for its durable record like any other.
func TestUnwrittenAnswerIsAudited(t *testing.T) {
	s, trail, secret := guardedServer(t)
	h := s.guard(route{action: "verify.digest", roles: []auth.Role{auth.RoleViewer}},
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("X-Request-Id", "silent-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Durable: in the log before ServeHTTP returned, nothing flushed.
	var found bool
	trail.Scan(context.Background(), 0, func(e ledger.Entry) error {
		if ev, err := audit.Decode(e); err == nil && ev.RequestID == "silent-1" && ev.Status == http.StatusOK {
			found = true
		}
		return nil
	})
	if !found {
		t.Fatal("the unwritten 200 has no durable audit event")
	}
}

// A panic after part of the answer is out aborts the connection: a
// problem appended to an image would pass for the end of its bytes.
func TestPanicMidAnswerAborts(t *testing.T) {
	s, _, secret := guardedServer(t)
	h := s.guard(route{action: "instance.retrieve", roles: []auth.Role{auth.RoleViewer}},
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("DICM"))
			panic("a bug mid-stream")
		}))
	req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Fatalf("panic %v, want http.ErrAbortHandler", p)
		}
		if strings.Contains(rec.Body.String(), "internal-error") {
			t.Fatalf("a problem was appended to the answer: %q", rec.Body.String())
		}
	}()
	h.ServeHTTP(rec, req)
}
