package ledger

import (
	"bytes"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/note"
)

// batchMessage is what a batch signature covers: a fixed prefix (so it can
// never be read as a checkpoint, whose first line is the origin and whose
// text is valid UTF-8 without binary), the origin, the first index, and the
// leaf hashes in order.
func batchMessage(origin string, first uint64, leaves [][32]byte) []byte {
	var b bytes.Buffer
	b.Grow(64 + len(origin) + 32*len(leaves))
	b.WriteString("dicomseal-batch/v1\n")
	b.WriteString(origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(first, 10))
	b.WriteByte('\n')
	for _, l := range leaves {
		b.Write(l[:])
	}
	return b.Bytes()
}

// verifyBatch checks a batch's signature.
func (l *Log) verifyBatch(b Batch) bool { return VerifyBatch(l.origin, l.verify, b) }

// VerifyBatch checks a batch's signature by the log key v under origin:
// whether a key and an origin are the ones a log was written with, even
// before its first checkpoint.
func VerifyBatch(origin string, v note.Verifier, b Batch) bool {
	return v.Verify(batchMessage(origin, b.First, b.Leaves), b.Signature)
}

// PackedLeaves is the batch's leaf hashes concatenated, as backends store them.
func (b Batch) PackedLeaves() []byte {
	out := make([]byte, 0, 32*len(b.Leaves))
	for _, l := range b.Leaves {
		out = append(out, l[:]...)
	}
	return out
}

// UnpackLeaves reads leaf hashes stored by PackedLeaves.
func UnpackLeaves(packed []byte) ([][32]byte, error) {
	if len(packed)%32 != 0 {
		return nil, fmt.Errorf("%d bytes of leaf hashes, not a multiple of 32", len(packed))
	}
	leaves := make([][32]byte, len(packed)/32)
	for i := range leaves {
		copy(leaves[i][:], packed[32*i:])
	}
	return leaves, nil
}
