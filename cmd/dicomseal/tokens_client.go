package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dicomseal/dicomseal/api"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/problem"
)

// tokensClient is `dicomseal tokens --server URL`: the server, which holds
// the log key, changes the tokens and writes their audit records; the
// command needs an admin token and nothing else.
type tokensClient struct {
	server string
	token  string
	http   *http.Client
}

// newTokensClient reads the admin token from tokenFile, else from
// DICOMSEAL_TOKEN.
func newTokensClient(server, tokenFile string) (*tokensClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server must be an http:// or https:// URL, got %q", server)
	}
	token := os.Getenv("DICOMSEAL_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, fmt.Errorf("an admin token is needed: --token-file FILE or DICOMSEAL_TOKEN")
	}
	return &tokensClient{server: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends one request and decodes a 2xx answer into out (if not nil); an
// error answer comes back as a *problem.Response.
func (c *tokensClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return problem.Decode(resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *tokensClient) create(ctx context.Context, role auth.Role, name string, expires time.Duration, maxBody int64) (api.CreatedToken, error) {
	req := api.TokenRequest{Role: string(role), Name: name, MaxBody: maxBody}
	if expires > 0 {
		req.Expires = expires.String()
	}
	var out api.CreatedToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

func (c *tokensClient) list(ctx context.Context) ([]auth.Token, error) {
	var out struct {
		Tokens []api.TokenInfo `json:"tokens"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out); err != nil {
		return nil, err
	}
	tokens := make([]auth.Token, len(out.Tokens))
	for i, t := range out.Tokens {
		tokens[i] = auth.Token{Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
			ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, MaxBody: t.MaxBody}
	}
	return tokens, nil
}

func (c *tokensClient) revoke(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil)
}
