package ledger

import (
	"bytes"
	"strconv"
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

// VerifyBatch checks a batch's signature.
func (l *Log) verifyBatch(b Batch) bool {
	return l.verify.Verify(batchMessage(l.origin, b.First, b.Leaves), b.Signature)
}
