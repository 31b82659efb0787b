package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/store"
)

// stalling is a store that moves bytes only as fast as it is told, and
// otherwise waits for its context: what a frozen server looks like.
type stalling struct{ perRead time.Duration }

func (s stalling) Put(ctx context.Context, _ string, r io.Reader, _ int64) error {
	buf := make([]byte, 1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.perRead):
		}
		if _, err := r.Read(buf); err == io.EOF {
			return nil
		}
	}
}

func (s stalling) Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	return s.Put(ctx, sha256Hex, r, size)
}

func (s stalling) Get(ctx context.Context, _ string) (io.ReadCloser, error) {
	return io.NopCloser(&slowReader{ctx: ctx, per: s.perRead, left: 8}), nil
}

func (s stalling) Ping(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

// deafStore blocks in every call whatever its context says, as a system
// call on a hung NFS mount does.
type deafStore struct{}

var forever = make(chan struct{})

func (deafStore) Put(context.Context, string, io.Reader, int64) error     { <-forever; return nil }
func (deafStore) Replace(context.Context, string, io.Reader, int64) error { <-forever; return nil }
func (deafStore) Get(context.Context, string) (io.ReadCloser, error)      { <-forever; return nil, nil }
func (deafStore) Ping(context.Context) error                              { <-forever; return nil }

type slowReader struct {
	ctx  context.Context
	per  time.Duration
	left int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	select {
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-time.After(r.per):
	}
	r.left--
	p[0] = 'x'
	return 1, nil
}

func TestTimeout(t *testing.T) {
	const d = 300 * time.Millisecond
	ctx := context.Background()
	// Progress every 60 ms for 8 bytes (480 ms in all, longer than d): the
	// deadline is per step, so a slow but moving transfer completes.
	moving := store.Timeout{Backend: stalling{perRead: 60 * time.Millisecond}, D: d}
	if err := moving.Put(ctx, "x", bytes.NewReader(make([]byte, 8)), 8); err != nil {
		t.Fatalf("moving Put: %v", err)
	}
	if err := moving.Replace(ctx, "x", bytes.NewReader(make([]byte, 8)), 8); err != nil {
		t.Fatalf("moving Replace: %v", err)
	}
	rc, err := moving.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); err != nil || len(b) != 8 {
		t.Fatalf("moving Get: %d bytes, %v", len(b), err)
	}
	rc.Close()
	// A stream its reader leaves idle for longer than d (a chunk going out
	// to a slow viewer) is not the store's fault: only a hanging read is.
	rc, err = moving.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	for i := range 3 {
		if _, err := rc.Read(one); err != nil {
			t.Fatalf("read %d after an idle pause: %v", i, err)
		}
		time.Sleep(2 * d)
	}
	rc.Close()

	stalled := store.Timeout{Backend: stalling{perRead: time.Hour}, D: d}
	deaf := store.Timeout{Backend: deafStore{}, D: d}
	for name, call := range map[string]func() error{
		"Put, ignoring its context":     func() error { return deaf.Put(ctx, "x", bytes.NewReader(make([]byte, 8)), 8) },
		"Replace, ignoring its context": func() error { return deaf.Replace(ctx, "x", bytes.NewReader(make([]byte, 8)), 8) },
		"Ping, ignoring its context":    func() error { return deaf.Ping(ctx) },
		"Put":                           func() error { return stalled.Put(ctx, "x", bytes.NewReader(make([]byte, 8)), 8) },
		"Replace":                       func() error { return stalled.Replace(ctx, "x", bytes.NewReader(make([]byte, 8)), 8) },
		"Ping":                          func() error { return stalled.Ping(ctx) },
		"Get": func() error {
			rc, err := stalled.Get(ctx, "x")
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			return err
		},
	} {
		start := time.Now()
		err := call()
		if !errors.Is(err, store.ErrTimeout) {
			t.Errorf("stalled %s: %v, want ErrTimeout", name, err)
		}
		if el := time.Since(start); el > 10*d {
			t.Errorf("stalled %s took %s", name, el)
		}
	}
}
