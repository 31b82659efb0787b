package attest

import (
	"errors"
	"fmt"
	"syscall"
)

// Code classifies an error for callers; the HTTP layer maps each code to
// one status.
type Code string

// Error codes.
const (
	EInvalid     Code = "invalid"     // the request or its DICOM content is unacceptable
	ETooLarge    Code = "too-large"   // the body exceeds the configured limit
	ENotFound    Code = "not-found"   // no attestation for that instance or digest
	EConflict    Code = "conflict"    // different bytes under an attested SOP Instance UID
	EIntegrity   Code = "integrity"   // stored bytes or records fail verification
	EUnavailable Code = "unavailable" // the ledger or object store cannot be reached
	ENoSpace     Code = "no-space"    // the data directory is (nearly) full: nothing was recorded
	ETimeout     Code = "timeout"     // the client sent its request body too slowly
	EInternal    Code = "internal"    // a bug
)

// Error is the domain's error: a code, a stable problem slug (the last
// segment of the problem type URI), a message safe to show the client,
// and optional structured details.
type Error struct {
	Code    Code
	Problem string
	Message string
	Details map[string]any
	Err     error // the cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Problem, e.Message, e.Err)
	}
	return e.Problem + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(code Code, problem, format string, args ...any) *Error {
	return &Error{Code: code, Problem: problem, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EInternal when it is not an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Problem slugs: stable, part of the API contract (see openapi.yaml).
const (
	ProblemInvalidDICOM     = "invalid-dicom"
	ProblemInvalidRequest   = "invalid-request"
	ProblemBodyTooLarge     = "body-too-large"
	ProblemNotFound         = "not-found"
	ProblemInstanceConflict = "instance-conflict"
	// ProblemIdentityChangeRefused: ingest of bytes that change an attested
	// instance's patient or study identity (only a correction may).
	ProblemIdentityChangeRefused = "identity-change-refused"
	// ProblemIdentityCorrectionRefused: a correction that is not one (other
	// attributes or pixels changed, or previous values that do not match).
	ProblemIdentityCorrectionRefused = "identity-correction-refused"
	// ProblemUnverifiableReencoding: same UID, a pixel encoding dicomseal cannot compare.
	ProblemUnverifiableReencoding = "unverifiable-reencoding"
	ProblemIntegrity              = "integrity-violation"
	ProblemStorageUnavailable     = "storage-unavailable"
	ProblemLedgerUnavailable      = "ledger-unavailable"
	ProblemInsufficientStorage    = "insufficient-storage"
	ProblemBodyTimeout            = "request-body-timeout"
	// ProblemKeyUnavailable: an attestation is signed by a key the server
	// was not configured with.
	ProblemKeyUnavailable = "attestation-key-unavailable"
	// ProblemEntryFormatUnknown: a genuine log entry of a kind or body
	// version this release does not read (a newer writer): upgrade.
	ProblemEntryFormatUnknown = "entry-format-unknown"
	ProblemInternal           = "internal-error"
)

func unavailable(problem string, err error) *Error {
	what := "the object store"
	if problem == ProblemLedgerUnavailable {
		what = "the ledger"
	}
	return &Error{Code: EUnavailable, Problem: problem, Message: what + " is unavailable; retry later", Err: err}
}

// ErrKeyUnavailable: an entry is signed by an attestation key this server
// does not hold.
var ErrKeyUnavailable = errors.New("attestation key not configured")

// storageError is the error of a failed store or spool operation: a full
// disk is told apart from an unreachable store, because retrying elsewhere
// or freeing space is what helps.
func storageError(err error) *Error {
	if errors.Is(err, syscall.ENOSPC) {
		return noSpace(err)
	}
	return unavailable(ProblemStorageUnavailable, err)
}

func noSpace(err error) *Error {
	return &Error{Code: ENoSpace, Problem: ProblemInsufficientStorage,
		Message: "the service's storage is full; nothing was recorded, retry later", Err: err}
}

// bodyError is the error of reading (and spooling) a request body: the
// API's own errors (too large, too slow) pass through; a full spool is
// ENoSpace; anything else is an unreadable body.
func bodyError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, syscall.ENOSPC) {
		return noSpace(err)
	}
	return &Error{Code: EInvalid, Problem: ProblemInvalidRequest, Message: "could not read the request body", Err: err}
}

func internal(err error) *Error {
	return &Error{Code: EInternal, Problem: ProblemInternal, Message: "internal error", Err: err}
}
