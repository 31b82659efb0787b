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
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dicomseal/dicomseal/store"
)

// Store is the behaviour under test.
type Store interface {
	Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error)
	Ping(ctx context.Context) error
	List(ctx context.Context, fn func(sha256Hex string, size int64) error) error
}

// Instance is one empty store under test.
type Instance struct {
	Store
	// Corrupt overwrites the object stored under sha256Hex with data
	// directly in the storage, past every check of the store's own: what a
	// failing disk or an operator's mistake does behind the service's back.
	Corrupt func(t *testing.T, sha256Hex string, data []byte)
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

func put(t *testing.T, s Store, data []byte) string {
	t.Helper()
	if err := s.Put(context.Background(), digest(data), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return digest(data)
}

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) Instance) {
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
	t.Run("list for reconciliation", func(t *testing.T) {
		s := newStore(t)
		want := map[string]int64{}
		for i := 0; i < 5; i++ {
			data := bytes.Repeat([]byte{byte(i)}, 100+i)
			want[digest(data)] = int64(len(data))
			if err := s.Put(ctx, digest(data), bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]int64{}
		if err := s.List(ctx, func(sha string, size int64) error { got[sha] = size; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d objects, want %d", len(got), len(want))
		}
		for sha, size := range want {
			if got[sha] != size {
				t.Fatalf("%s listed with size %d, want %d", sha, got[sha], size)
			}
		}
	})
	t.Run("replace stores an absent object", func(t *testing.T) {
		s := newStore(t)
		data := []byte("a copy lost from the store")
		if err := s.Replace(ctx, digest(data), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, digest(data)); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %q", got)
		}
	})
	t.Run("replace repairs a same-size corruption that put leaves", func(t *testing.T) {
		s := newStore(t)
		if s.Corrupt == nil {
			t.Fatal("the backend gives the suite no Corrupt hook")
		}
		data := bytes.Repeat([]byte("stored, then altered behind our back "), 100)
		key := put(t, s, data)
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0x01
		s.Corrupt(t, key, bad)
		if got := get(t, s, key); !bytes.Equal(got, bad) {
			t.Fatal("Corrupt did not alter the stored object")
		}
		// Put trusts a present object of the right size: that is why
		// repair needs Replace.
		if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, key); !bytes.Equal(got, bad) {
			t.Fatal("Put rewrote a present object of the right size; Replace is no longer the only repair")
		}
		if err := s.Replace(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, key); !bytes.Equal(got, data) {
			t.Fatal("after Replace, Get still returns the corrupted bytes")
		}
	})
	t.Run("replace refuses bytes that do not match the key", func(t *testing.T) {
		s := newStore(t)
		data := []byte("the real bytes")
		key := put(t, s, data)
		other := []byte("other bytes!!!")
		err := s.Replace(ctx, key, bytes.NewReader(other), int64(len(other)))
		if !errors.Is(err, store.ErrDigestMismatch) {
			t.Fatalf("Replace error = %v, want store.ErrDigestMismatch", err)
		}
		if got := get(t, s, key); !bytes.Equal(got, data) {
			t.Fatalf("a refused Replace left %q, want the previous object", got)
		}
	})
	t.Run("replace from a short stream keeps the object", func(t *testing.T) {
		data := bytes.Repeat([]byte("the whole object "), 1000)
		for name, r := range map[string]io.Reader{
			"short":  bytes.NewReader(data[:len(data)-1]),
			"failed": io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(errors.New("spool lost"))),
		} {
			t.Run(name, func(t *testing.T) {
				s := newStore(t)
				key := put(t, s, data)
				if err := s.Replace(ctx, key, r, int64(len(data))); err == nil {
					t.Fatal("Replace accepted fewer bytes than its size")
				}
				if got := get(t, s, key); !bytes.Equal(got, data) {
					t.Fatalf("a failed Replace left %d bytes, want the previous %d", len(got), len(data))
				}
			})
		}
	})
	t.Run("large object in bounded memory", func(t *testing.T) {
		const size = 256 << 20
		s := newStore(t)
		sum := sha256.New()
		io.Copy(sum, newPattern(size))
		key := hex.EncodeToString(sum.Sum(nil))

		peak := watchHeap(t)
		if err := s.Put(ctx, key, newPattern(size), size); err != nil {
			t.Fatal(err)
		}
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		check := sha256.New()
		n, err := io.Copy(check, rc)
		rc.Close()
		if err != nil || n != size || hex.EncodeToString(check.Sum(nil)) != key {
			t.Fatalf("read back %d bytes (err %v), digest match %v", n, err, hex.EncodeToString(check.Sum(nil)) == key)
		}
		if grew := peak(); grew > 64<<20 {
			t.Fatalf("heap grew by %d MiB moving a %d MiB object: something buffers it whole", grew>>20, size>>20)
		}
	})
}

// newPattern returns size deterministic, incompressible-looking bytes,
// generated as they are read.
func newPattern(size int64) io.Reader {
	return io.LimitReader(&pattern{}, size)
}

type pattern struct {
	n     uint64
	block [32]byte
	off   int
}

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		if p.off == 0 {
			p.block = sha256.Sum256(append(p.block[:], byte(p.n), byte(p.n>>8), byte(p.n>>16), byte(p.n>>24)))
			p.n++
		}
		b[i] = p.block[p.off]
		p.off = (p.off + 1) % len(p.block)
	}
	return len(b), nil
}

// watchHeap samples the live heap until the returned function is called,
// which reports the largest growth over the starting point.
func watchHeap(t *testing.T) func() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
					peak.Store(m.HeapAlloc - base)
				}
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}
