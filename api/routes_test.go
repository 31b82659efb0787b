package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/go-chi/chi/v5"
)

// Every route the router serves has exactly one entry in the route table,
// with an action and either roles or a public rule: a route added any
// other way fails here.
func TestRouterServesOnlyTheTable(t *testing.T) {
	s := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	served := map[string]bool{}
	err := chi.Walk(s.Handler().(chi.Routes), func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[method+" "+pattern] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for _, rt := range s.Routes() {
		key := rt.Method + " " + rt.Pattern
		if table[key] {
			t.Errorf("%s is in the table twice", key)
		}
		table[key] = true
		if rt.Action == "" || (len(rt.Roles) == 0 && !rt.Public) {
			t.Errorf("%s has no action or no one may call it", key)
		}
		if !served[key] {
			t.Errorf("%s is in the table but not served", key)
		}
	}
	for key := range served {
		if !table[key] {
			t.Errorf("%s is served without a route table entry", key)
		}
	}
}

// A client cannot pass itself off as another address by sending its own
// X-Forwarded-For line ahead of the one the trusted proxy appends.
func TestClientAddrIgnoresForgedForwardedFor(t *testing.T) {
	s := &Server{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Add("X-Forwarded-For", "127.0.0.1") // forged by the client
	r.Header.Add("X-Forwarded-For", "10.1.1.1")  // appended by the proxy
	if got := s.clientAddr(r); got != "10.1.1.1" {
		t.Fatalf("clientAddr = %s, want the address the proxy saw", got)
	}
	r.RemoteAddr = "10.2.2.2:5000" // not a trusted proxy: its header is ignored
	if got := s.clientAddr(r); got != "10.2.2.2" {
		t.Fatalf("clientAddr = %s, want the peer", got)
	}
}
