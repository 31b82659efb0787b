// Package fs is the filesystem object store: content-addressed files under
// one root directory, written so that a successful Put or Replace survives
// a crash (temp file, fsync, rename, fsync of the directory).
package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dicomseal/dicomseal/store"
)

// Store keeps objects under its root directory.
type Store struct {
	root string
}

// Open returns a store rooted at dir, creating it (0700) if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs store: create %s: %w", dir, err)
	}
	return &Store{root: dir}, nil
}

func (s *Store) path(sha256Hex string) (string, error) {
	key, err := store.Key(sha256Hex)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put stores the size bytes read from r under their SHA-256 digest. It is
// idempotent: an object already present is left as it is. Bytes that do
// not hash to sha256Hex are rejected with store.ErrDigestMismatch.
func (s *Store) Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	p, err := s.path(sha256Hex)
	if err != nil {
		return err
	}
	if info, err := os.Stat(p); err == nil && info.Size() == size {
		// Present. (A file of the wrong size was altered: rewrite it from
		// these bytes, which the hash check below vouches for.) Touched, so
		// that reconciliation counts it as freshly written: an orphan an
		// ingest is about to log again is not old enough to remove.
		now := time.Now()
		os.Chtimes(p, now, now)
		return nil
	}
	return write(p, sha256Hex, r, size, "put")
}

// Replace stores the size bytes read from r under their SHA-256 digest
// whether or not an object is already there, for repairing a copy that was
// altered behind the store's back: Put trusts a present file of the right
// size, so it cannot undo a same-size bit flip. Bytes that do not hash to
// sha256Hex, or fall short, are rejected and leave the present file as it
// is.
func (s *Store) Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	p, err := s.path(sha256Hex)
	if err != nil {
		return err
	}
	return write(p, sha256Hex, r, size, "replace")
}

// write puts the size bytes read from r at p once they hash to sha256Hex:
// into a temporary file beside it, synced, then renamed over p, so that p
// holds either its old content or all of the new, never part of it.
func write(p, sha256Hex string, r io.Reader, size int64, op string) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("fs store: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return fmt.Errorf("fs store: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	// A body that already knows its digest (a spool) is not hashed again.
	known := store.KnownDigest(r, sha256Hex)
	h := sha256.New()
	var dst io.Writer = io.MultiWriter(tmp, h)
	if known {
		dst = tmp
	}
	n, err := io.Copy(dst, io.LimitReader(r, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("fs store: got %d bytes, expected %d", n, size)
	}
	if err == nil && !known && hex.EncodeToString(h.Sum(nil)) != sha256Hex {
		err = fmt.Errorf("%w: %s", store.ErrDigestMismatch, sha256Hex)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fs store: %s %s: %w", op, sha256Hex, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("fs store: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fs store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fs store: sync %s: %w", dir, err)
	}
	return nil
}

// Get opens the object stored under sha256Hex; store.ErrNotFound when absent.
func (s *Store) Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error) {
	p, err := s.path(sha256Hex)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, sha256Hex)
	}
	if err != nil {
		return nil, fmt.Errorf("fs store: %w", err)
	}
	return f, nil
}

// HoldsObjects reports whether the store's tree of objects is there (its
// sha256/ directory, made by the first Put and never by Open): an empty
// root, such as the mountpoint of an unmounted volume, holds none, and
// its objects are not missing, they are out of reach.
func (s *Store) HoldsObjects(ctx context.Context) error {
	info, err := os.Stat(filepath.Join(s.root, "sha256"))
	if err != nil {
		return fmt.Errorf("fs store: no objects under %s (an unmounted volume?): %w", s.root, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("fs store: %s/sha256 is not a directory", s.root)
	}
	return nil
}

// Ping reports whether the store's root is usable.
func (s *Store) Ping(ctx context.Context) error {
	info, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("fs store: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("fs store: %s is not a directory", s.root)
	}
	return nil
}

// List calls fn for every stored object (its digest and size), for
// reconciliation against the ledger. Temporary files are skipped.
func (s *Store) List(ctx context.Context, fn func(sha256Hex string, size int64) error) error {
	root := filepath.Join(s.root, "sha256")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return ctx.Err()
		}
		want, kerr := s.path(d.Name())
		if kerr != nil || want != p {
			return nil // not ours (a temporary file, say)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(d.Name(), info.Size())
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing stored yet
	}
	return err
}

// Remove deletes the object stored under sha256Hex if it was last written
// before cutoff, and reports whether it did: reconciliation removes only
// objects old enough that no ingest can still be about to log them.
func (s *Store) Remove(ctx context.Context, sha256Hex string, cutoff time.Time) (bool, error) {
	p, err := s.path(sha256Hex)
	if err != nil {
		return false, err
	}
	info, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil || !info.ModTime().Before(cutoff) {
		return false, err
	}
	if err := os.Remove(p); err != nil {
		return false, fmt.Errorf("fs store: remove %s: %w", sha256Hex, err)
	}
	return true, nil
}
