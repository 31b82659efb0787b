// Package storetest is the conformance suite every object store backend
// must pass: the same tests run against the filesystem store and S3.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/dicomseal/dicomseal/store"
)

// Store is the behaviour under test.
type Store interface {
	Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error)
	Ping(ctx context.Context) error
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func get(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("put then get", func(t *testing.T) {
		s := newStore(t)
		data := []byte("a DICOM object, more or less")
		if err := s.Put(ctx, digest(data), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, digest(data)); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %q", got)
		}
	})
	t.Run("put is idempotent", func(t *testing.T) {
		s := newStore(t)
		data := []byte("same bytes twice")
		for i := 0; i < 2; i++ {
			if err := s.Put(ctx, digest(data), bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
		}
		if got := get(t, s, digest(data)); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %q", got)
		}
	})
	t.Run("missing object", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Get(ctx, digest([]byte("never stored")))
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get error = %v, want store.ErrNotFound", err)
		}
	})
	t.Run("bytes that do not match the key are refused", func(t *testing.T) {
		s := newStore(t)
		data, other := []byte("the real bytes"), []byte("other bytes!!!")
		if err := s.Put(ctx, digest(data), bytes.NewReader(other), int64(len(other))); err == nil {
			t.Fatal("Put accepted bytes that do not hash to the key")
		}
		if _, err := s.Get(ctx, digest(data)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after a refused Put, Get error = %v, want store.ErrNotFound", err)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "../../etc/passwd"); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Get error = %v, want store.ErrInvalidKey", err)
		}
	})
	t.Run("concurrent puts of one key", func(t *testing.T) {
		s := newStore(t)
		data := bytes.Repeat([]byte("concurrent "), 10000)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(ctx, digest(data), bytes.NewReader(data), int64(len(data)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, s, digest(data)); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes, want %d", len(got), len(data))
		}
	})
	t.Run("ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
