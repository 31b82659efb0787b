// Package store names what every object store backend shares: the
// content-addressed key layout, the errors callers branch on and the
// per-call deadline (Timeout). Backends live in store/fs and store/s3.
package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
)

var (
	// ErrNotFound: no object under that digest.
	ErrNotFound = errors.New("object not found")
	// ErrDigestMismatch: the bytes handed to Put do not hash to the key.
	ErrDigestMismatch = errors.New("object bytes do not match their digest")
	// ErrInvalidKey: the digest is not 64 lower-case hex characters.
	ErrInvalidKey = errors.New("invalid object digest")
)

// Digested is a body that knows the SHA-256 of everything it has still to
// yield, computed as its bytes were received (a spool's reader): a store
// takes that digest instead of hashing the bytes a second time. ok is
// false when the digest does not cover what is left to read.
type Digested interface {
	WholeSHA256() (sum [32]byte, ok bool)
}

// KnownDigest reports whether r vouches for being sha256Hex's bytes.
func KnownDigest(r io.Reader, sha256Hex string) bool {
	d, ok := r.(Digested)
	if !ok {
		return false
	}
	sum, ok := d.WholeSHA256()
	return ok && hex.EncodeToString(sum[:]) == sha256Hex
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Key returns the content address of a SHA-256 digest (lower-case hex):
// "sha256/ab/cd/abcd…", fanned out so no directory or prefix grows huge.
func Key(sha256Hex string) (string, error) {
	if !hexDigest.MatchString(sha256Hex) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, sha256Hex)
	}
	return "sha256/" + sha256Hex[0:2] + "/" + sha256Hex[2:4] + "/" + sha256Hex, nil
}
