// Package spool buffers a stream of unknown size so that it can be read
// again: in memory up to a bound, then in a private temporary file. It
// exists so that ingest and retrieval can hash and check bytes completely
// before deciding what to do with them, without holding large objects in
// memory. A Spool never leaves a file behind once closed.
package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/dicomseal/dicomseal/chunks"
)

// Spool is a write-once, read-many buffer. Write to it, then read it
// through Reader or ReadAt; Close removes any temporary file.
type Spool struct {
	dir      string
	memLimit int64

	mu     sync.RWMutex // readers against Close
	mem    []byte       // from the pool while in memory
	file   *os.File
	size   int64
	hash   hash.Hash
	chunks *chunks.Hasher
}

// Options say how to spool.
type Options struct {
	Dir    string // where a spool that overflows goes
	Memory int64  // bytes kept in memory at most
	// SizeHint, when known (a Content-Length), sizes the memory once:
	// no growing, copying and clearing as bytes arrive.
	SizeHint int64
	// ChunkSize, when not 0, also computes the leaf hashes of the bytes'
	// chunks of that size (see package chunks), in the same pass.
	ChunkSize int64
}

// New returns a spool that keeps up to memLimit bytes in memory and
// overflows into a 0600 temporary file created in dir.
func New(dir string, memLimit int64) *Spool {
	return NewWith(Options{Dir: dir, Memory: memLimit})
}

// NewWith returns a spool configured by o.
func NewWith(o Options) *Spool {
	s := &Spool{dir: o.Dir, memLimit: o.Memory, hash: sha256.New()}
	if o.ChunkSize > 0 {
		s.chunks = chunks.NewHasher(o.ChunkSize)
	}
	if o.SizeHint > 0 && o.SizeHint <= o.Memory {
		s.mem = getBuffer(int(o.SizeHint))
	}
	return s
}

// Fill copies r into a new spool and returns it; on error nothing is left behind.
func Fill(dir string, memLimit int64, r io.Reader) (*Spool, error) {
	return FillWith(Options{Dir: dir, Memory: memLimit}, r)
}

// FillWith is Fill configured by o.
func FillWith(o Options, r io.Reader) (*Spool, error) {
	s := NewWith(o)
	if _, err := io.Copy(s, r); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ReadFrom fills the spool from r, reading straight into its memory while
// the bytes fit (io.Copy would go through a buffer of its own).
func (s *Spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for s.file == nil && int64(len(s.mem)) < s.memLimit {
		if len(s.mem) == cap(s.mem) {
			// Full, maybe exactly as the size hint said: look for one more
			// byte before doubling the memory for it.
			var probe [512]byte
			n, err := io.ReadAtLeast(r, probe[:], 1)
			if n > 0 {
				if _, werr := s.Write(probe[:n]); werr != nil {
					return total, werr
				}
				total += int64(n)
			}
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		free := s.mem[len(s.mem):cap(s.mem)]
		free = free[:min(int64(len(free)), s.memLimit-int64(len(s.mem)))]
		n, err := r.Read(free)
		s.took(free[:n])
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	n, err := io.Copy(writeOnly{s}, r)
	return total + n, err
}

// writeOnly hides ReadFrom from io.Copy.
type writeOnly struct{ io.Writer }

// took accounts for n bytes read straight into the memory's free space.
func (s *Spool) took(p []byte) {
	s.mem = s.mem[:len(s.mem)+len(p)]
	s.digest(p)
}

func (s *Spool) digest(p []byte) {
	s.hash.Write(p)
	if s.chunks != nil {
		s.chunks.Write(p)
	}
	s.size += int64(len(p))
}

// grow doubles the memory (within memLimit), from the pool. The memory
// outgrown is left to the collector, not pooled: a spool growing through
// every size on its way to a file would otherwise leave one buffer of each
// size in the pool (tens of MiB resident for nothing).
func (s *Spool) grow() {
	next := getBuffer(int(min(max(2*int64(cap(s.mem)), minBuffer), s.memLimit)))
	s.mem = append(next, s.mem...)
}

// Write appends p, hashing it on the way.
func (s *Spool) Write(p []byte) (int, error) {
	if s.file == nil && s.size+int64(len(p)) > s.memLimit {
		if err := s.overflow(); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.digest(p[:n])
		return n, err
	}
	for int64(cap(s.mem)-len(s.mem)) < int64(len(p)) {
		s.grow()
	}
	s.mem = append(s.mem, p...)
	s.digest(p)
	return len(p), nil
}

func (s *Spool) overflow() error {
	// os.CreateTemp creates the file with mode 0600.
	f, err := os.CreateTemp(s.dir, "spool-*")
	if err != nil {
		return fmt.Errorf("spool: create temp file: %w", err)
	}
	if _, err := f.Write(s.mem); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool: write temp file: %w", err)
	}
	s.mem = nil // outgrown too (see grow)
	s.file = f
	return nil
}

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

// SHA256 is the digest of everything written so far.
func (s *Spool) SHA256() [32]byte {
	var d [32]byte
	s.hash.Sum(d[:0])
	return d
}

// SHA256Hex is SHA256 as lower-case hex.
func (s *Spool) SHA256Hex() string {
	d := s.SHA256()
	return hex.EncodeToString(d[:])
}

// ChunkLeaves are the leaf hashes of the spooled bytes' chunks (nil unless
// Options.ChunkSize was set); call it once everything is written.
func (s *Spool) ChunkLeaves() [][32]byte {
	if s.chunks == nil {
		return nil
	}
	return s.chunks.Leaves()
}

// InMemory reports whether the spool never overflowed to disk.
func (s *Spool) InMemory() bool { return s.file == nil }

// ReadAt reads from the spooled bytes. It may race with Close (an HTTP
// client can still read a request body after its call returned): the lock
// makes Close wait for a read in progress, and a read after it sees no
// bytes, never memory the pool has handed to another request.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.file != nil {
		return s.file.ReadAt(p, off)
	}
	b := s.mem
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Reader returns a fresh reader over all spooled bytes; readers are
// independent of each other.
func (s *Spool) Reader() *Reader {
	return &Reader{SectionReader: io.NewSectionReader(s, 0, s.size), s: s}
}

// Reader reads a spool's bytes, and knows their digest.
type Reader struct {
	*io.SectionReader
	s *Spool
}

// WholeSHA256 is the SHA-256 of everything the reader has still to yield,
// known without a pass over the bytes: computed as they were spooled. ok
// is false once the reader has moved, when the digest covers other bytes.
func (r *Reader) WholeSHA256() (sum [32]byte, ok bool) {
	if pos, _ := r.Seek(0, io.SeekCurrent); pos != 0 {
		return sum, false
	}
	return r.s.SHA256(), true
}

// Close releases the memory and removes the temporary file, if any. The
// spool reads as empty afterwards.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	putBuffer(s.mem)
	s.mem = nil
	s.size = 0
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	s.file = nil
	return errors.Join(err, os.Remove(name))
}
