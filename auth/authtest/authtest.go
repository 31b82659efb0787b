// Package authtest is the conformance suite every auth.Store backend runs:
// the same cases on SQLite and PostgreSQL, so they cannot disagree on a
// contract the authentication of every request depends on.
package authtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
)

// Run runs the suite; newStore returns an empty store for each case.
func Run(t *testing.T, newStore func(t *testing.T) auth.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mint := func(t *testing.T, s auth.Store, name string, role auth.Role, ttl time.Duration) (string, auth.Token) {
		t.Helper()
		secret, tok, err := auth.NewToken(name, role, "test", now, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return secret, tok
	}

	t.Run("a token reads back as created, and authenticates", func(t *testing.T) {
		s := newStore(t)
		secret, tok := mint(t, s, "pacs-1", auth.RoleIngest, time.Hour)
		got, err := s.TokenByID(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != tok.Name || got.Role != tok.Role || string(got.SecretHash) != string(tok.SecretHash) ||
			!got.CreatedAt.Equal(tok.CreatedAt) || got.CreatedBy != "test" || got.ExpiresAt == nil ||
			!got.ExpiresAt.Equal(*tok.ExpiresAt) || got.RevokedAt != nil || got.MaxBody != 0 {
			t.Fatalf("read back %+v, created %+v", got, tok)
		}
		id, err := auth.Authenticate(ctx, s, secret, now)
		if err != nil || id.Name != "pacs-1" || id.Role != auth.RoleIngest {
			t.Fatalf("Authenticate: %+v %v", id, err)
		}
	})

	t.Run("unknown ids and names", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.TokenByID(ctx, "0123456789abcdef"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("TokenByID of nothing: %v", err)
		}
		if err := s.RevokeToken(ctx, "nobody", now); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("RevokeToken of nothing: %v", err)
		}
	})

	t.Run("an active name is taken; a revoked one is free again", func(t *testing.T) {
		s := newStore(t)
		_, first := mint(t, s, "viewer", auth.RoleViewer, 0)
		_, dup, _ := auth.NewToken("viewer", auth.RoleAuditor, "test", now, 0)
		if err := s.CreateToken(ctx, dup); !errors.Is(err, auth.ErrNameTaken) {
			t.Fatalf("a second active token named viewer: %v, want ErrNameTaken", err)
		}
		if err := s.RevokeToken(ctx, "viewer", now); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "viewer", now); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("revoking a revoked name again: %v, want ErrNotFound", err)
		}
		_, second := mint(t, s, "viewer", auth.RoleViewer, 0)
		old, err := s.TokenByID(ctx, first.ID)
		if err != nil || old.RevokedAt == nil || !old.RevokedAt.Equal(now) {
			t.Fatalf("the revoked token: %+v %v", old, err)
		}
		if got, _ := s.TokenByID(ctx, second.ID); got.RevokedAt != nil {
			t.Fatal("the new token reads as revoked")
		}
	})

	t.Run("revoked and expired tokens do not authenticate", func(t *testing.T) {
		s := newStore(t)
		revoked, _ := mint(t, s, "gone", auth.RoleIngest, 0)
		expired, _ := mint(t, s, "old", auth.RoleIngest, time.Minute)
		if err := s.RevokeToken(ctx, "gone", now); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Authenticate(ctx, s, revoked, now.Add(time.Second)); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("a revoked token: %v", err)
		}
		if _, err := auth.Authenticate(ctx, s, expired, now.Add(2*time.Minute)); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("an expired token: %v", err)
		}
	})

	t.Run("a per-token body limit is kept", func(t *testing.T) {
		s := newStore(t)
		_, tok, _ := auth.NewToken("small", auth.RoleViewer, "test", now, 0)
		tok.MaxBody = 4096
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TokenByID(ctx, tok.ID); err != nil || got.MaxBody != 4096 {
			t.Fatalf("max body %d, %v", got.MaxBody, err)
		}
	})

	t.Run("list holds every token, revoked ones too", func(t *testing.T) {
		s := newStore(t)
		mint(t, s, "a", auth.RoleIngest, 0)
		mint(t, s, "b", auth.RoleAdmin, 0)
		if err := s.RevokeToken(ctx, "a", now); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListTokens(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListTokens: %d tokens, %v", len(list), err)
		}
		seen := map[string]bool{}
		for _, tok := range list {
			seen[tok.Name] = tok.RevokedAt != nil
		}
		if !seen["a"] || seen["b"] {
			t.Fatalf("list: %v (name: revoked)", seen)
		}
	})
}
