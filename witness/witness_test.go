package witness_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/witness"
)

const origin = "dicomseal.test/witness"

func keys(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v
}

func tree(prefix string, n int) *testonly.Tree {
	tr := testonly.New(rfc6962.DefaultHasher)
	for i := 0; i < n; i++ {
		tr.AppendData([]byte(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return tr
}

func checkpoint(t *testing.T, s note.Signer, size uint64, root []byte) []byte {
	t.Helper()
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
	n, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fakeLog is a log server that may lie: it serves whatever checkpoint and
// proofs the test gives it.
type fakeLog struct {
	checkpoint  []byte
	consistency func(from, to uint64) ([][]byte, error)
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/log/checkpoint":
		w.Write(f.checkpoint)
	case "/v1/log/proof/consistency":
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		p, err := f.consistency(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hs := make([]string, len(p))
		for i := range p {
			hs[i] = hex.EncodeToString(p[i])
		}
		json.NewEncoder(w).Encode(map[string]any{"tree_size": to, "hashes": hs})
	default:
		http.NotFound(w, r)
	}
}

func TestCheck(t *testing.T) {
	s, v := keys(t)
	other, _ := keys(t)
	honest := tree("a", 10)
	forked := tree("a", 5) // same first 5 entries, then other history
	for i := 0; i < 6; i++ {
		forked.AppendData([]byte(fmt.Sprintf("b-%d", i)))
	}
	prev := checkpoint(t, s, 7, honest.HashAt(7))

	tests := []struct {
		name string
		log  *fakeLog
		want error
	}{
		{"honest growth", &fakeLog{checkpoint(t, s, 10, honest.Hash()), honest.ConsistencyProof}, nil},
		{"no change", &fakeLog{prev, honest.ConsistencyProof}, nil},
		{"fork with a proof from the forked tree", &fakeLog{checkpoint(t, s, 11, forked.Hash()), forked.ConsistencyProof}, witness.ErrFork},
		{"fork with an honest-looking proof", &fakeLog{checkpoint(t, s, 11, forked.Hash()), func(a, _ uint64) ([][]byte, error) {
			return honest.ConsistencyProof(a, honest.Size())
		}}, witness.ErrFork},
		{"honest checkpoint, garbage proof", &fakeLog{checkpoint(t, s, 10, honest.Hash()), func(a, b uint64) ([][]byte, error) {
			p, err := honest.ConsistencyProof(a, b)
			p[0] = make([]byte, 32)
			return p, err
		}}, witness.ErrFork},
		{"same size, other root", &fakeLog{checkpoint(t, s, 7, forked.HashAt(7)), honest.ConsistencyProof}, witness.ErrFork},
		{"shrunk", &fakeLog{checkpoint(t, s, 6, honest.HashAt(6)), honest.ConsistencyProof}, witness.ErrShrunk},
		{"signed by another key", &fakeLog{checkpoint(t, other, 10, honest.Hash()), honest.ConsistencyProof}, witness.ErrBadCheckpoint},
		{"not a checkpoint", &fakeLog{[]byte("hello\n"), honest.ConsistencyProof}, witness.ErrBadCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.log)
			defer srv.Close()
			res, err := witness.Check(context.Background(), &witness.Client{BaseURL: srv.URL}, v, origin, prev)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if res.Previous != 7 {
					t.Fatalf("Previous = %d", res.Previous)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStateIsReplacedWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if b, err := witness.LoadState(path); err != nil || b != nil {
		t.Fatalf("missing state: %q %v", b, err)
	}
	for _, v := range []string{"first\n", "second, longer\n", "3\n"} {
		if err := witness.SaveState(path, []byte(v)); err != nil {
			t.Fatal(err)
		}
		if b, _ := witness.LoadState(path); string(b) != v {
			t.Fatalf("state %q, want %q", b, v)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".witness-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	os.Remove(path)
}
