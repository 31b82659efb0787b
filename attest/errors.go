package attest

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/dicomseal/dicomseal/problem"
)

// Code classifies an error for callers (package problem holds the one
// table of codes, statuses and titles).
type Code = problem.Code

// Error codes.
const (
	EInvalid     = problem.EInvalid
	ETooLarge    = problem.ETooLarge
	ENotFound    = problem.ENotFound
	EConflict    = problem.EConflict
	EIntegrity   = problem.EIntegrity
	EUnavailable = problem.EUnavailable
	ENoSpace     = problem.ENoSpace
	ETimeout     = problem.ETimeout
	EInternal    = problem.EInternal
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

// Problem slugs of the domain (see package problem).
const (
	ProblemInvalidDICOM              = problem.InvalidDICOM
	ProblemInvalidRequest            = problem.InvalidRequest
	ProblemBodyTooLarge              = problem.BodyTooLarge
	ProblemNotFound                  = problem.NotFound
	ProblemInstanceConflict          = problem.InstanceConflict
	ProblemIdentityChangeRefused     = problem.IdentityChangeRefused
	ProblemIdentityCorrectionRefused = problem.IdentityCorrectionRefused
	ProblemUnverifiableReencoding    = problem.UnverifiableReencoding
	ProblemIntegrity                 = problem.Integrity
	ProblemStorageUnavailable        = problem.StorageUnavailable
	ProblemLedgerUnavailable         = problem.LedgerUnavailable
	ProblemInsufficientStorage       = problem.InsufficientStorage
	ProblemBodyTimeout               = problem.BodyTimeout
	ProblemKeyUnavailable            = problem.KeyUnavailable
	ProblemEntryFormatUnknown        = problem.EntryFormatUnknown
	ProblemInternal                  = problem.Internal
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
