package chunks

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ChunkError names the chunk that failed its leaf; nothing of it was
// written.
type ChunkError struct {
	Chunk  int64 // from 0
	Offset int64
	// Err is ErrMismatch, or the read that cut the chunk short.
	Err error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk %d (bytes from %d): %v", e.Chunk, e.Offset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// ErrWrite wraps a failure to write to the destination: the reader, not
// the object, went away.
var ErrWrite = errors.New("write failed")

var buffers = sync.Pool{New: func() any { b := make([]byte, Size); return &b }}

// Copy writes the size bytes of r to w chunk by chunk, each read whole and
// checked against its leaf before any byte of it is written. leaves must
// already be checked against the attested Tree. A chunk that fails, or an
// object shorter or longer than size, stops the copy with a *ChunkError; a
// failed write with ErrWrite. It returns the bytes written.
func Copy(w io.Writer, r io.Reader, size, chunkSize int64, leaves [][32]byte) (int64, error) {
	if int64(len(leaves)) != Count(size, chunkSize) {
		return 0, &ChunkError{Err: fmt.Errorf("%w: %d leaves for %d bytes", ErrMismatch, len(leaves), size)}
	}
	var buf []byte
	if chunkSize == Size {
		p := buffers.Get().(*[]byte)
		defer buffers.Put(p)
		buf = *p
	} else {
		buf = make([]byte, chunkSize)
	}
	var written int64
	for i := range leaves {
		n := min(chunkSize, size-written)
		chunk := buf[:n]
		if _, err := io.ReadFull(r, chunk); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: the object ends before its attested %d bytes", ErrMismatch, size)
			}
			return written, &ChunkError{Chunk: int64(i), Offset: written, Err: err}
		}
		if Leaf(chunk) != leaves[i] {
			return written, &ChunkError{Chunk: int64(i), Offset: written, Err: ErrMismatch}
		}
		if _, err := w.Write(chunk); err != nil {
			return written, fmt.Errorf("%w: %w", ErrWrite, err)
		}
		written += n
	}
	// A byte beyond the attested size is an altered object too.
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return written, &ChunkError{Chunk: int64(len(leaves)), Offset: written,
			Err: fmt.Errorf("%w: the object is longer than its attested %d bytes", ErrMismatch, size)}
	}
	return written, nil
}
