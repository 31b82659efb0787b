package api

import (
	"io"
	"log/slog"
	"net/http"
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
