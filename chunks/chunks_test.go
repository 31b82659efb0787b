package chunks_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/dicomseal/dicomseal/chunks"
)

func object(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLeavesAndRoot pins the hashing to RFC 6962: leaves are SHA-256 of
// 0x00 ‖ chunk, interior nodes of 0x01 ‖ left ‖ right, the tree split at
// the largest power of two below its size.
func TestLeavesAndRoot(t *testing.T) {
	const size = 1000
	data := object(3*size - 17)
	h := chunks.NewHasher(size)
	for p := data; len(p) > 0; {
		n := min(len(p), 333)
		h.Write(p[:n])
		p = p[n:]
	}
	leaves := h.Leaves()
	if len(leaves) != 3 || int64(len(leaves)) != chunks.Count(int64(len(data)), size) {
		t.Fatalf("%d leaves, want 3", len(leaves))
	}
	for i, c := range [][]byte{data[:size], data[size : 2*size], data[2*size:]} {
		want := sha256.Sum256(append([]byte{0}, c...))
		if leaves[i] != want || chunks.Leaf(c) != want {
			t.Fatalf("leaf %d is not SHA-256(0x00 ‖ chunk)", i)
		}
	}
	node := func(l, r [32]byte) [32]byte { return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...)) }
	if got, want := chunks.Root(leaves), node(node(leaves[0], leaves[1]), leaves[2]); got != want {
		t.Fatalf("root %x, want %x", got, want)
	}
	if got := chunks.Root(leaves[:1]); got != leaves[0] {
		t.Fatal("a one-chunk tree's root is not its leaf")
	}
	empty := chunks.NewHasher(size).Leaves()
	if len(empty) != 1 || empty[0] != [32]byte(rfc6962.DefaultHasher.HashLeaf(nil)) {
		t.Fatal("an empty object does not have the one leaf of no bytes")
	}
}

func TestTreeCheck(t *testing.T) {
	data := object(2500)
	h := chunks.NewHasher(1000)
	h.Write(data)
	leaves := h.Leaves()
	tree := chunks.NewTree(1000, int64(len(data)), leaves)
	if err := tree.Check(int64(len(data)), leaves); err != nil {
		t.Fatal(err)
	}
	other := append([][32]byte{}, leaves...)
	other[1][0] ^= 1
	for name, err := range map[string]error{
		"a changed leaf":    tree.Check(int64(len(data)), other),
		"a dropped leaf":    tree.Check(int64(len(data)), leaves[:2]),
		"another size":      tree.Check(int64(len(data))+1000, leaves),
		"a zero chunk size": chunks.Tree{Count: 3, Root: tree.Root}.Check(int64(len(data)), leaves),
	} {
		if !errors.Is(err, chunks.ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
	}
	got, err := chunks.Decode(chunks.Encode(leaves))
	if err != nil || len(got) != 3 || got[2] != leaves[2] {
		t.Fatalf("Decode(Encode) = %v, %v", got, err)
	}
	if _, err := chunks.Decode("AAAA"); !errors.Is(err, chunks.ErrMismatch) {
		t.Fatalf("a truncated list decoded: %v", err)
	}
}

// TestCopy streams an object chunk by chunk: whole when intact; cut
// before the first byte of a failing chunk (here in the middle of the
// object), never after it; short and long objects refused.
func TestCopy(t *testing.T) {
	const size = 4096
	data := object(5*size + 100)
	h := chunks.NewHasher(size)
	h.Write(data)
	leaves := h.Leaves()
	var out bytes.Buffer
	if n, err := chunks.Copy(&out, bytes.NewReader(data), int64(len(data)), size, leaves); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("intact: %d bytes, %v", n, err)
	}
	altered := bytes.Clone(data)
	altered[2*size+size/2] ^= 0x40
	cases := []struct {
		name      string
		stored    []byte
		chunk     int64
		delivered int
		// A short read is not a mismatch by itself: a dropped connection
		// reads the same; the caller reads the copy again to tell.
		mismatch bool
	}{
		{"a flipped bit mid-object", altered, 2, 2 * size, true},
		{"truncated", data[:3*size+1], 3, 3 * size, false},
		{"one byte longer, found with the last chunk", append(bytes.Clone(data), 0), 5, 5 * size, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out.Reset()
			n, err := chunks.Copy(&out, bytes.NewReader(c.stored), int64(len(data)), size, leaves)
			var ce *chunks.ChunkError
			if !errors.As(err, &ce) || errors.Is(err, chunks.ErrMismatch) != c.mismatch || ce.Chunk != c.chunk {
				t.Fatalf("err = %v, want a failure at chunk %d (a mismatch: %v)", err, c.chunk, c.mismatch)
			}
			if n != int64(c.delivered) || !bytes.Equal(out.Bytes(), data[:c.delivered]) {
				t.Fatalf("delivered %d bytes, want exactly the %d verified ones", out.Len(), c.delivered)
			}
		})
	}
	// The production chunk size takes its buffer from the pool.
	big := object(chunks.Size + 10)
	bh := chunks.NewHasher(chunks.Size)
	bh.Write(big)
	out.Reset()
	if _, err := chunks.Copy(&out, bytes.NewReader(big), int64(len(big)), chunks.Size, bh.Leaves()); err != nil || !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("pooled buffer: %v", err)
	}
}
