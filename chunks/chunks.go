// Package chunks is how an object is verified while it streams: its bytes
// cut into fixed-size chunks (the last may be shorter), each chunk an RFC
// 6962 leaf (SHA-256 of 0x00 ‖ chunk), all under one Merkle tree hashed as
// the transparency log's. An attestation commits to the tree's root; the
// list of leaf hashes travels beside it and is checked against that root
// before the first byte is sent; then each chunk is checked against its
// leaf before any byte of it is written.
package chunks

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Size is the chunk size new attestations use: a viewer's first byte
// waits for one chunk, never for the whole object.
const Size = 1 << 20

// ErrMismatch: a chunk, or the list of leaves, does not match what the
// attestation commits to.
var ErrMismatch = errors.New("chunk digest mismatch")

// Count is the number of chunks of an object of size bytes (at least one,
// so that even an empty object has a leaf to check).
func Count(size, chunkSize int64) int64 {
	if size <= 0 {
		return 1
	}
	return (size + chunkSize - 1) / chunkSize
}

// Hasher computes the leaf hashes of what is written to it, in any
// write sizes.
type Hasher struct {
	size   int64
	h      hash.Hash
	in     int64 // bytes of the current chunk written so far
	leaves [][32]byte
}

// NewHasher returns a Hasher for chunks of size bytes.
func NewHasher(size int64) *Hasher {
	c := &Hasher{size: size, h: sha256.New()}
	c.h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	return c
}

// Write never fails.
func (c *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), c.size-c.in)
		c.h.Write(p[:k])
		c.in += k
		p = p[k:]
		if c.in == c.size {
			c.close()
		}
	}
	return n, nil
}

func (c *Hasher) close() {
	var d [32]byte
	c.h.Sum(d[:0])
	c.leaves = append(c.leaves, d)
	c.h.Reset()
	c.h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	c.in = 0
}

// Leaves returns the leaf hashes of everything written, the last partial
// chunk included; call it once, after the last Write.
func (c *Hasher) Leaves() [][32]byte {
	if c.in > 0 || len(c.leaves) == 0 {
		c.close()
	}
	return c.leaves
}

// Leaf is the leaf hash of one whole chunk.
func Leaf(chunk []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	h.Write(chunk)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Root is the RFC 6962 Merkle tree hash over the leaves, in order.
func Root(leaves [][32]byte) [32]byte {
	f := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := f.NewEmptyRange(0)
	for i := range leaves {
		// Append fails only on a malformed range, which this one cannot be.
		_ = r.Append(leaves[i][:], nil)
	}
	root, err := r.GetRootHash(nil)
	var d [32]byte
	if err != nil || len(leaves) == 0 {
		copy(d[:], rfc6962.DefaultHasher.EmptyRoot())
		return d
	}
	copy(d[:], root)
	return d
}

// Tree is what an attestation commits to: the chunk size, how many
// chunks, and the root over their leaves.
type Tree struct {
	ChunkSize int64  `json:"chunk_size"`
	Count     int64  `json:"count"`
	Root      string `json:"root"` // lower-case hex
}

// NewTree describes the leaves of an object of size bytes.
func NewTree(chunkSize, size int64, leaves [][32]byte) Tree {
	r := Root(leaves)
	return Tree{ChunkSize: chunkSize, Count: Count(size, chunkSize), Root: fmt.Sprintf("%x", r[:])}
}

// Check verifies that leaves are the tree's, for an object of size bytes:
// their number, and their root.
func (t Tree) Check(size int64, leaves [][32]byte) error {
	if t.ChunkSize <= 0 || t.Count != Count(size, t.ChunkSize) {
		return fmt.Errorf("%w: %d chunks of %d bytes cannot hold %d bytes", ErrMismatch, t.Count, t.ChunkSize, size)
	}
	if int64(len(leaves)) != t.Count {
		return fmt.Errorf("%w: %d leaves for %d chunks", ErrMismatch, len(leaves), t.Count)
	}
	r := Root(leaves)
	if fmt.Sprintf("%x", r[:]) != t.Root {
		return fmt.Errorf("%w: the leaves' root %x is not the attested %s", ErrMismatch, r[:], t.Root)
	}
	return nil
}

// Encode is the leaves as they are stored: their concatenation, base64.
func Encode(leaves [][32]byte) string {
	b := make([]byte, 0, 32*len(leaves))
	for i := range leaves {
		b = append(b, leaves[i][:]...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Decode reverses Encode.
func Decode(s string) ([][32]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%32 != 0 {
		return nil, fmt.Errorf("%w: the stored leaves are not a list of SHA-256 digests", ErrMismatch)
	}
	leaves := make([][32]byte, len(b)/32)
	for i := range leaves {
		copy(leaves[i][:], b[32*i:])
	}
	return leaves, nil
}
