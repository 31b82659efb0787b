package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/dicomseal/dicomseal/store"
	"github.com/dicomseal/dicomseal/store/fs"
	"github.com/dicomseal/dicomseal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Instance {
		root := t.TempDir()
		s, err := fs.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		// A same-size rewrite in place, as a bit flip on disk leaves it.
		corrupt := func(t *testing.T, sha256Hex string, data []byte) {
			key, err := store.Key(sha256Hex)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(key)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return storetest.Instance{Store: s, Corrupt: corrupt}
	})
}

func TestLayoutAndModes(t *testing.T) {
	root := t.TempDir()
	s, err := fs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("content-addressed")
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "sha256", key[:2], key[2:4], key)
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object not at %s: %v", p, err)
	}
	info, _ := os.Stat(p)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("object mode %v, want 0600", info.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".put-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}
