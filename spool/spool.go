// Package spool buffers a stream of unknown size so that it can be read
// again: in memory up to a bound, then in a private temporary file. It
// exists so that ingest and retrieval can hash and check bytes completely
// before deciding what to do with them, without holding large objects in
// memory. A Spool never leaves a file behind once closed.
package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// Spool is a write-once, read-many buffer. Write to it, then read it
// through Reader or ReadAt; Close removes any temporary file.
type Spool struct {
	dir      string
	memLimit int64

	mem  bytes.Buffer
	file *os.File
	size int64
	hash hash.Hash
}

// New returns a spool that keeps up to memLimit bytes in memory and
// overflows into a 0600 temporary file created in dir.
func New(dir string, memLimit int64) *Spool {
	return &Spool{dir: dir, memLimit: memLimit, hash: sha256.New()}
}

// Fill copies r into a new spool and returns it; on error nothing is left behind.
func Fill(dir string, memLimit int64, r io.Reader) (*Spool, error) {
	s := New(dir, memLimit)
	if _, err := io.Copy(s, r); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Write appends p, hashing it on the way.
func (s *Spool) Write(p []byte) (int, error) {
	if s.file == nil && s.size+int64(len(p)) > s.memLimit {
		if err := s.overflow(); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if s.file != nil {
		n, err = s.file.Write(p)
	} else {
		n, err = s.mem.Write(p)
	}
	s.hash.Write(p[:n])
	s.size += int64(n)
	return n, err
}

func (s *Spool) overflow() error {
	// os.CreateTemp creates the file with mode 0600.
	f, err := os.CreateTemp(s.dir, "spool-*")
	if err != nil {
		return fmt.Errorf("spool: create temp file: %w", err)
	}
	if _, err := f.Write(s.mem.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool: write temp file: %w", err)
	}
	s.mem = bytes.Buffer{}
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

// InMemory reports whether the spool never overflowed to disk.
func (s *Spool) InMemory() bool { return s.file == nil }

// ReadAt reads from the spooled bytes.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.file != nil {
		return s.file.ReadAt(p, off)
	}
	b := s.mem.Bytes()
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
func (s *Spool) Reader() *io.SectionReader {
	return io.NewSectionReader(s, 0, s.size)
}

// Close releases the memory and removes the temporary file, if any.
func (s *Spool) Close() error {
	s.mem = bytes.Buffer{}
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	s.file = nil
	return errors.Join(err, os.Remove(name))
}
