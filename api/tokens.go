package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/problem"
)

// Token administration: an admin creates, lists and revokes tokens over
// the API, so that the server — which holds the log key — writes the
// audit record of every change, and no command needs the keys at hand.

// maxTokenRequest bounds a token request's body: a few short fields.
const maxTokenRequest = 4 << 10

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Role string `json:"role"`
	Name string `json:"name"`
	// Expires is a lifetime ("720h"); empty: no expiry.
	Expires string `json:"expires,omitempty"`
	// MaxBody lowers the server's request size limit for this token; 0: none.
	MaxBody int64 `json:"max_body,omitempty"`
}

// CreatedToken is the answer to POST /v1/tokens: the secret, shown once.
type CreatedToken struct {
	Name      string     `json:"name"`
	Role      auth.Role  `json:"role"`
	Token     string     `json:"token"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// TokenInfo is a token as GET /v1/tokens lists it: never its secret.
type TokenInfo struct {
	Name      string     `json:"name"`
	Role      auth.Role  `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	MaxBody   int64      `json:"max_body,omitempty"`
}

func invalidToken(format string, args ...any) error {
	return attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest, format, args...)
}

func auditUnavailable(err error) error {
	return &attest.Error{Code: attest.EUnavailable, Problem: problem.AuditUnavailable,
		Message: "the audit record of this change cannot be written; nothing was changed, retry later", Err: err}
}

func tokenStoreError(err error) error {
	return &attest.Error{Code: attest.EUnavailable, Problem: problem.CredentialsUnavailable,
		Message: "the token store is unavailable; retry later", Err: err}
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.writeError(w, r, &attest.Error{Code: problem.EUnsupported, Problem: problem.UnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))})
		return
	}
	var req TokenRequest
	dec := json.NewDecoder(io.LimitReader(s.pace(w, r.Body), maxTokenRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, r, invalidToken("the body must be a JSON object with role, name and optionally expires and max_body: %v", err))
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		s.writeError(w, r, invalidToken("%v", err))
		return
	}
	var ttl time.Duration
	if req.Expires != "" {
		if ttl, err = time.ParseDuration(req.Expires); err != nil || ttl <= 0 {
			s.writeError(w, r, invalidToken("expires must be a positive duration such as 720h, got %q", req.Expires))
			return
		}
	}
	if req.MaxBody < 0 {
		s.writeError(w, r, invalidToken("max_body must not be negative"))
		return
	}
	id, _ := auth.FromContext(r.Context())
	secret, t, err := auth.NewToken(req.Name, role, id.Name, time.Now(), ttl)
	if err != nil {
		s.writeError(w, r, invalidToken("%v", err))
		return
	}
	t.MaxBody = req.MaxBody
	object := t.Name + " (" + string(role) + ")"
	if t.MaxBody > 0 {
		object += fmt.Sprintf(", max body %d", t.MaxBody)
	}
	noteObject(r, object)
	if err := recordIntent(r, object); err != nil {
		s.writeError(w, r, auditUnavailable(err))
		return
	}
	if err := s.Tokens.CreateToken(r.Context(), t); errors.Is(err, auth.ErrNameTaken) {
		s.writeError(w, r, attest.Errorf(attest.EConflict, problem.TokenNameTaken, "an active token is already named %q: revoke it first", t.Name))
		return
	} else if err != nil {
		s.writeError(w, r, tokenStoreError(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store") // the secret is shown once
	writeJSON(w, http.StatusCreated, CreatedToken{Name: t.Name, Role: role, Token: secret, ExpiresAt: t.ExpiresAt})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.Tokens.ListTokens(r.Context())
	if err != nil {
		s.writeError(w, r, tokenStoreError(err))
		return
	}
	out := make([]TokenInfo, len(tokens))
	for i, t := range tokens {
		out[i] = TokenInfo{Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
			ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, MaxBody: t.MaxBody}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	noteObject(r, name)
	if err := recordIntent(r, name); err != nil {
		s.writeError(w, r, auditUnavailable(err))
		return
	}
	switch err := s.Tokens.RevokeToken(r.Context(), name, time.Now()); {
	case errors.Is(err, auth.ErrNotFound):
		s.writeError(w, r, attest.Errorf(attest.ENotFound, problem.TokenNotFound, "no active token is named %q", name))
	case err != nil:
		s.writeError(w, r, tokenStoreError(err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
