// Package witness checks a dicomseal log from the outside, trusting only
// its verifier key and the last checkpoint it has seen: every new checkpoint
// must be signed, must not shrink, and must be provably consistent with the
// previous one. It is what `dicomseal log watch` runs, typically on a
// machine the log's operators do not control.
package witness

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dicomseal/dicomseal/problem"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

var (
	// ErrBadCheckpoint: the checkpoint is not a valid note signed by the log key for the origin.
	ErrBadCheckpoint = errors.New("checkpoint does not verify")
	// ErrShrunk: the log is smaller than a checkpoint seen before.
	ErrShrunk = errors.New("log shrank")
	// ErrFork: the new checkpoint is not consistent with the one seen before.
	ErrFork = errors.New("log forked: the new checkpoint is not consistent with the previous one")
)

// Client reads a dicomseal server's log endpoints.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// Log is the path of the log's endpoints: "/v1/log" (the custody
	// log, the default) or "/v1/audit" (the audit log).
	Log string
}

func (c *Client) logPath() string {
	if c.Log == "" {
		return "/v1/log"
	}
	return c.Log
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := c.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %w", path, problem.Decode(resp.StatusCode, resp.Header.Get("Content-Type"), body))
	}
	return body, nil
}

// Checkpoint fetches the latest signed checkpoint.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, c.logPath()+"/checkpoint", nil)
}

// Consistency fetches the consistency proof between two tree sizes.
func (c *Client) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	body, err := c.get(ctx, c.logPath()+"/proof/consistency", url.Values{
		"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}})
	if err != nil {
		return nil, err
	}
	var p struct {
		TreeSize uint64   `json:"tree_size"`
		Hashes   []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	if p.TreeSize != to {
		return nil, fmt.Errorf("consistency proof is for size %d, asked %d", p.TreeSize, to)
	}
	out := make([][]byte, len(p.Hashes))
	for i, h := range p.Hashes {
		if out[i], err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("consistency proof hash %d: %w", i, err)
		}
	}
	return out, nil
}

// Result is one successful check.
type Result struct {
	Checkpoint *log.Checkpoint
	Note       []byte
	// Previous is the size last seen (0 the first time).
	Previous uint64
}

// Check fetches the server's checkpoint and verifies it against prevNote
// (the last checkpoint seen, nil the first time). It never trusts the
// server for anything but bytes to verify.
func Check(ctx context.Context, c *Client, v note.Verifier, origin string, prevNote []byte) (*Result, error) {
	var prev *log.Checkpoint
	if prevNote != nil {
		p, _, _, err := log.ParseCheckpoint(prevNote, origin, v)
		if err != nil {
			return nil, fmt.Errorf("the saved checkpoint does not verify (wrong key or origin?): %w", err)
		}
		prev = p
	}
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, _, _, err := log.ParseCheckpoint(raw, origin, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	res := &Result{Checkpoint: cp, Note: raw}
	if prev == nil {
		return res, nil
	}
	res.Previous = prev.Size
	switch {
	case cp.Size < prev.Size:
		return nil, fmt.Errorf("%w: now %d entries, %d seen before", ErrShrunk, cp.Size, prev.Size)
	case cp.Size == prev.Size:
		if !bytes.Equal(cp.Hash, prev.Hash) {
			return nil, fmt.Errorf("%w: two different roots for size %d", ErrFork, cp.Size)
		}
		return res, nil
	}
	hashes, err := c.Consistency(ctx, prev.Size, cp.Size)
	if err != nil {
		return nil, err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, hashes, prev.Hash, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w (size %d → %d): %v", ErrFork, prev.Size, cp.Size, err)
	}
	return res, nil
}

// LoadState reads the last checkpoint seen; nil when there is no state yet.
func LoadState(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// SaveState replaces the state file atomically: a crash leaves either the
// old checkpoint or the new one, never a torn file.
func SaveState(path string, checkpoint []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".witness-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(checkpoint); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
