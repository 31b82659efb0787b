package chunks

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ChunkError names the chunk that failed its leaf; nothing of it was
// handed out.
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

// Verifier reads an object chunk by chunk, each read whole and checked
// against its leaf before it is handed out. The leaves must already be
// checked against the attested Tree.
type Verifier struct {
	r               io.Reader
	size, chunkSize int64
	leaves          [][32]byte
	buf             *[]byte
	next            int   // the chunk Next reads
	off             int64 // where it starts
	pooled          bool
	err             error // the failure that stopped it; every later Next returns it
}

// NewVerifier reads the size bytes of r in chunks of chunkSize.
func NewVerifier(r io.Reader, size, chunkSize int64, leaves [][32]byte) (*Verifier, error) {
	if int64(len(leaves)) != Count(size, chunkSize) {
		return nil, &ChunkError{Err: fmt.Errorf("%w: %d leaves for %d bytes", ErrMismatch, len(leaves), size)}
	}
	v := &Verifier{r: r, size: size, chunkSize: chunkSize, leaves: leaves}
	if chunkSize == Size {
		v.buf, v.pooled = buffers.Get().(*[]byte), true
	} else {
		b := make([]byte, chunkSize)
		v.buf = &b
	}
	return v, nil
}

// Next returns the next verified chunk, valid until the next call, or
// io.EOF after the last. A chunk that fails its leaf, a short object, or
// one longer than its size (found with the last chunk, before it is
// handed out) is a *ChunkError.
func (v *Verifier) Next() ([]byte, error) {
	i := v.next
	if v.err != nil {
		return nil, v.err
	}
	if v.buf == nil {
		return nil, errors.New("chunks: Next after Close")
	}
	if i >= len(v.leaves) {
		return nil, io.EOF
	}
	chunk := (*v.buf)[:min(v.chunkSize, v.size-v.off)]
	if _, err := io.ReadFull(v.r, chunk); err != nil {
		// Not a mismatch by itself: a connection that drops mid-body reads
		// as a short object too. The caller reads the copy again to tell.
		return nil, v.stop(i, fmt.Errorf("the chunk could not be read whole: %w", err))
	}
	if Leaf(chunk) != v.leaves[i] {
		return nil, v.stop(i, ErrMismatch)
	}
	if i == len(v.leaves)-1 {
		var one [1]byte
		if k, _ := io.ReadFull(v.r, one[:]); k > 0 {
			return nil, v.stop(i, fmt.Errorf("%w: the object is longer than its attested %d bytes", ErrMismatch, v.size))
		}
	}
	v.next++
	v.off += int64(len(chunk))
	return chunk, nil
}

// stop ends the verifier at chunk i with err, which every later Next
// returns again.
func (v *Verifier) stop(i int, err error) error {
	v.err = &ChunkError{Chunk: int64(i), Offset: v.off, Err: err}
	return v.err
}

// Close releases the verifier's buffer; chunks it returned are invalid.
func (v *Verifier) Close() {
	if v.pooled && v.buf != nil {
		buffers.Put(v.buf)
	}
	v.buf = nil
}

// Copy writes the size bytes of r to w chunk by chunk through a Verifier:
// nothing of a chunk that fails is written. A failed write is ErrWrite. It
// returns the bytes written.
func Copy(w io.Writer, r io.Reader, size, chunkSize int64, leaves [][32]byte) (int64, error) {
	v, err := NewVerifier(r, size, chunkSize, leaves)
	if err != nil {
		return 0, err
	}
	defer v.Close()
	return v.WriteTo(w, nil)
}

// WriteTo writes first (a chunk Next returned, or nil) and then every
// chunk left, each once it verified.
func (v *Verifier) WriteTo(w io.Writer, first []byte) (int64, error) {
	var written int64
	chunk := first
	for {
		if chunk != nil {
			if _, err := w.Write(chunk); err != nil {
				return written, fmt.Errorf("%w: %w", ErrWrite, err)
			}
			written += int64(len(chunk))
		}
		var err error
		chunk, err = v.Next()
		if errors.Is(err, io.EOF) {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}
