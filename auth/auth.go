// Package auth owns who may call dicomseal: API tokens (only a hash of
// each secret is stored, compared in constant time), the roles, and the
// identity a request carries. It never logs a token.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Role is what an identity may do. Roles are disjoint on purpose
// (separation of duties): no role both writes images and reads them.
type Role string

// Roles.
const (
	RoleIngest  Role = "ingest"  // store instances, nothing else
	RoleViewer  Role = "viewer"  // retrieve and verify
	RoleAuditor Role = "auditor" // log, proofs, audit trail; no pixel data
	RoleAdmin   Role = "admin"   // tokens and keys; no images, no ledger writes of its own
	// RoleReconciler corrects patient and study identity, nothing else: the
	// one account a PACS's reconciliation (MPI merge, "Unknown" trauma
	// registrations) uses, apart from ingest, so that no ingest token can
	// move an image to another patient.
	RoleReconciler Role = "reconciler"
)

// Roles lists every role.
var Roles = []Role{RoleIngest, RoleViewer, RoleAuditor, RoleAdmin, RoleReconciler}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown role %q (one of %s)", s, strings.Join(names, ", "))
}

// Identity is who made a request.
type Identity struct {
	Name    string // the token's name, e.g. orthanc-1
	Role    Role
	TokenID string
	// MaxBody is the largest request body this identity may send, in
	// bytes; 0 leaves the server's limit.
	MaxBody int64
}

type ctxKey struct{}

// WithIdentity stores id in ctx.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request's identity, if authenticated.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Token is a stored token: never its secret.
type Token struct {
	ID         string
	Name       string
	Role       Role
	SecretHash []byte
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	// MaxBody lowers the server's request size limit for this token
	// (e.g. a viewer that only ever sends small verify requests); 0: none.
	MaxBody int64
}

// Store keeps tokens; ErrNotFound when there is no such token.
type Store interface {
	CreateToken(ctx context.Context, t Token) error
	TokenByID(ctx context.Context, id string) (Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes the active token named name; ErrNotFound if none.
	RevokeToken(ctx context.Context, name string, at time.Time) error
}

var (
	// ErrNotFound: no such token.
	ErrNotFound = errors.New("auth: no such token")
	// ErrUnauthenticated: missing, malformed, unknown, revoked or expired credentials.
	ErrUnauthenticated = errors.New("auth: not authenticated")
	// ErrNameTaken: an active token already has that name.
	ErrNameTaken = errors.New("auth: an active token already has that name")
)

const tokenPrefix = "dst_"

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tokenRE = regexp.MustCompile(`^dst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)
)

// NewToken makes a token for name and role: it returns the secret token
// string (to show once) and what to store.
func NewToken(name string, role Role, createdBy string, now time.Time, ttl time.Duration) (string, Token, error) {
	if !nameRE.MatchString(name) {
		return "", Token{}, fmt.Errorf("token name %q: letters, digits, '.', '_' and '-', up to 64", name)
	}
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Token{}, err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(sec))
	t := Token{ID: hex.EncodeToString(id), Name: name, Role: role, SecretHash: sum[:], CreatedAt: now.UTC(), CreatedBy: createdBy}
	if ttl > 0 {
		exp := now.Add(ttl).UTC()
		t.ExpiresAt = &exp
	}
	return tokenPrefix + t.ID + "_" + sec, t, nil
}

// Authenticate checks a bearer token string against the store: its secret
// is compared with the stored hash in constant time; a revoked or expired
// token is refused. It returns the identity.
func Authenticate(ctx context.Context, s Store, token string, now time.Time) (Identity, error) {
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(token))
	if m == nil {
		return Identity{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	t, err := s.TokenByID(ctx, m[1])
	if errors.Is(err, ErrNotFound) {
		return Identity{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if err != nil {
		return Identity{}, err
	}
	sum := sha256.Sum256([]byte(m[2]))
	if subtle.ConstantTimeCompare(sum[:], t.SecretHash) != 1 {
		return Identity{}, fmt.Errorf("%w: wrong secret", ErrUnauthenticated)
	}
	if t.RevokedAt != nil {
		return Identity{}, fmt.Errorf("%w: token %s was revoked", ErrUnauthenticated, t.Name)
	}
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return Identity{}, fmt.Errorf("%w: token %s expired", ErrUnauthenticated, t.Name)
	}
	return Identity{Name: t.Name, Role: t.Role, TokenID: t.ID, MaxBody: t.MaxBody}, nil
}
