// Package store names what every object store backend shares: the
// content-addressed key layout, the errors callers branch on and the
// per-call deadline (Timeout). Backends live in store/fs and store/s3.
package store

import (
	"errors"
	"fmt"
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

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Key returns the content address of a SHA-256 digest (lower-case hex):
// "sha256/ab/cd/abcd…", fanned out so no directory or prefix grows huge.
func Key(sha256Hex string) (string, error) {
	if !hexDigest.MatchString(sha256Hex) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, sha256Hex)
	}
	return "sha256/" + sha256Hex[0:2] + "/" + sha256Hex[2:4] + "/" + sha256Hex, nil
}
