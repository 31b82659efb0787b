// Package destination sends verified instances out of dicomseal: to a
// DICOMweb server with STOW-RS (PS3.18 10.5), or into a directory. Each
// send answers with the destination's own word on the instance, which
// the transfer entry records; failures are told apart as a refusal (the
// destination answered no) or unreachability (nothing is known to have
// arrived), so that neither is ever recorded as a delivery.
package destination

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
)

var (
	// ErrRefused: the destination answered, and did not take the instance.
	ErrRefused = errors.New("the destination refused the instance")
	// ErrUnreachable: no answer, a timeout or a server error (5xx).
	ErrUnreachable = errors.New("the destination is unreachable")
)

// Instance names what is sent.
type Instance struct {
	SOPInstanceUID, SOPClassUID, StudyInstanceUID, SeriesInstanceUID string
	SHA256                                                           string
}

// Ack is a destination's answer about one instance.
type Ack struct {
	// Status is the HTTP status (0 for a directory).
	Status int
	// Item is the destination's record of the instance: the STOW-RS
	// response's ReferencedSOPSequence (or FailedSOPSequence) item in
	// DICOM JSON, or a directory's {"path", "sha256"} read back.
	Item json.RawMessage
	// Reason says, for a failure, what the destination answered.
	Reason string
}

// Error is a failed send with what the destination answered, if anything.
type Error struct {
	Err error // ErrRefused or ErrUnreachable
	Ack Ack
}

func (e *Error) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Ack.Reason) }
func (e *Error) Unwrap() error { return e.Err }

// name is what a destination may be called: it appears in URLs' bodies,
// flags and log entries.
var name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName tells whether s is usable as a destination name.
func ValidName(s string) bool { return name.MatchString(s) }

// Parse reads NAME=VALUE.
func Parse(s string) (name, value string, err error) {
	n, v, ok := strings.Cut(s, "=")
	if !ok || !ValidName(n) || v == "" {
		return "", "", fmt.Errorf("want NAME=VALUE with NAME of letters, digits, '.', '_' or '-', got %q", s)
	}
	return n, v, nil
}

// Describe is where the URL points, without credentials.
func Describe(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// authorization reads a token file into an Authorization header value.
func authorization(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("destination credentials: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("destination credentials in %s: want one line", path)
	}
	if strings.HasPrefix(tok, "Basic ") || strings.HasPrefix(tok, "Bearer ") {
		return tok, nil
	}
	return "Bearer " + tok, nil
}
