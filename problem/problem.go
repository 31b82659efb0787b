// Package problem is dicomseal's one table of problem types (RFC 9457):
// for each stable slug, the error code callers branch on, the HTTP status
// it is answered with and its title. The server writes every problem
// response from it; the project's Go clients (the witness, the CLI) read
// problem responses back through it. openapi.yaml lists every slug, and a
// test holds the two together.
package problem

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Base prefixes every problem type: a problem's type is Base followed by
// its slug.
const Base = "https://dicomseal.dev/problems/"

// Code classifies an error for callers; each code is answered with one
// HTTP status.
type Code string

// Error codes.
const (
	EInvalid         Code = "invalid"         // the request or its DICOM content is unacceptable
	ETooLarge        Code = "too-large"       // the body exceeds the configured limit
	EUnsupported     Code = "unsupported"     // a content type the route does not take
	ENotFound        Code = "not-found"       // no such thing (attestation, entry, route)
	EMethod          Code = "method"          // a method the route does not allow
	EConflict        Code = "conflict"        // different bytes under an attested SOP Instance UID
	EIntegrity       Code = "integrity"       // stored bytes or records fail verification
	EUnavailable     Code = "unavailable"     // a dependency cannot be reached, or is not ready
	ENoSpace         Code = "no-space"        // the data directory is (nearly) full: nothing was recorded
	ETimeout         Code = "timeout"         // the client sent its request body too slowly
	EUnauthenticated Code = "unauthenticated" // no valid credentials
	EForbidden       Code = "forbidden"       // valid credentials, not allowed
	ERateLimited     Code = "rate-limited"    // too many requests
	EInternal        Code = "internal"        // a bug
	ENotAcceptable   Code = "not-acceptable"  // no representation the client accepts (DICOMweb Accept)
	EBadGateway      Code = "bad-gateway"     // a peer dicomseal sent to answered with a refusal
)

// statusOf is the one status of each code.
var statusOf = map[Code]int{
	EInvalid:         http.StatusBadRequest,
	ETooLarge:        http.StatusRequestEntityTooLarge,
	EUnsupported:     http.StatusUnsupportedMediaType,
	ENotFound:        http.StatusNotFound,
	EMethod:          http.StatusMethodNotAllowed,
	EConflict:        http.StatusConflict,
	EIntegrity:       http.StatusBadGateway, // the storage handed back bytes that fail verification
	EUnavailable:     http.StatusServiceUnavailable,
	ENoSpace:         http.StatusInsufficientStorage,
	ETimeout:         http.StatusRequestTimeout,
	EUnauthenticated: http.StatusUnauthorized,
	EForbidden:       http.StatusForbidden,
	ERateLimited:     http.StatusTooManyRequests,
	EInternal:        http.StatusInternalServerError,
	ENotAcceptable:   http.StatusNotAcceptable,
	EBadGateway:      http.StatusBadGateway,
}

// Slugs, stable: part of the API contract.
const (
	InvalidDICOM              = "invalid-dicom"
	InvalidRequest            = "invalid-request"
	UnsupportedMediaType      = "unsupported-media-type"
	BodyTooLarge              = "body-too-large"
	BodyTimeout               = "request-body-timeout"
	NotFound                  = "not-found"
	RouteNotFound             = "route-not-found"
	MethodNotAllowed          = "method-not-allowed"
	InstanceConflict          = "instance-conflict"
	IdentityChangeRefused     = "identity-change-refused"
	IdentityCorrectionRefused = "identity-correction-refused"
	UnverifiableReencoding    = "unverifiable-reencoding"
	Integrity                 = "integrity-violation"
	StorageUnavailable        = "storage-unavailable"
	LedgerUnavailable         = "ledger-unavailable"
	InsufficientStorage       = "insufficient-storage"
	KeyUnavailable            = "attestation-key-unavailable"
	EntryFormatUnknown        = "entry-format-unknown"
	NoCheckpoint              = "no-checkpoint"
	NoSubjectMap              = "no-subject-map"
	UnknownPatient            = "unknown-patient"
	BadProof                  = "invalid-proof-request"
	AuditUnavailable          = "audit-unavailable"
	AuditTampered             = "audit-log-tampered"
	AuditNotConfigured        = "audit-log-not-configured"
	Unauthenticated           = "unauthenticated"
	CredentialsUnavailable    = "credentials-unavailable"
	Forbidden                 = "forbidden"
	RateLimited               = "rate-limited"
	AuthRateLimited           = "authentication-rate-limited"
	TokenNameTaken            = "token-name-taken"
	TokenNotFound             = "token-not-found"
	NotReady                  = "not-ready"
	NoSyncReplica             = "sync-replica-missing"
	Internal                  = "internal-error"
	// DICOMweb (PS3.18) request-level problems; a STOW part refused is
	// answered in the Store Instances Response instead.
	InvalidMultipart = "invalid-multipart"
	TooManyParts     = "too-many-parts"
	InvalidQuery     = "invalid-query"
	NotAcceptable    = "not-acceptable"
	IndexUnavailable = "index-unavailable"
	// Transfers to other systems.
	UnknownDestination     = "unknown-destination"
	DestinationRefused     = "destination-refused"
	DestinationUnavailable = "destination-unavailable"
)

// Type is one problem type.
type Type struct {
	Slug   string
	Code   Code
	Title  string
	Status int
}

// URI is the problem's type, Base + slug.
func (t Type) URI() string { return Base + t.Slug }

func entry(slug string, code Code, title string) Type {
	return Type{Slug: slug, Code: code, Title: title, Status: statusOf[code]}
}

// table is every problem dicomseal answers with.
var table = []Type{
	entry(InvalidDICOM, EInvalid, "Invalid DICOM"),
	entry(InvalidRequest, EInvalid, "Invalid request"),
	entry(BadProof, EInvalid, "Invalid proof request"),
	entry(UnsupportedMediaType, EUnsupported, "Unsupported media type"),
	entry(BodyTooLarge, ETooLarge, "Request body too large"),
	entry(BodyTimeout, ETimeout, "Request body too slow"),
	entry(NotFound, ENotFound, "Not attested"),
	entry(RouteNotFound, ENotFound, "No such route"),
	entry(NoCheckpoint, ENotFound, "No checkpoint yet"),
	entry(NoSubjectMap, ENotFound, "No subject map at this checkpoint"),
	entry(UnknownPatient, ENotFound, "Unknown patient"),
	entry(AuditNotConfigured, ENotFound, "No audit log configured"),
	entry(TokenNotFound, ENotFound, "No such token"),
	entry(MethodNotAllowed, EMethod, "Method not allowed"),
	entry(TokenNameTaken, EConflict, "Token name taken"),
	entry(InstanceConflict, EConflict, "Conflicting instance"),
	entry(IdentityChangeRefused, EConflict, "Identity change refused"),
	entry(IdentityCorrectionRefused, EConflict, "Identity correction refused"),
	entry(UnverifiableReencoding, EConflict, "Re-encoding cannot be verified"),
	entry(Integrity, EIntegrity, "Integrity violation"),
	entry(AuditTampered, EIntegrity, "Audit log fails verification"),
	entry(StorageUnavailable, EUnavailable, "Object store unavailable"),
	entry(LedgerUnavailable, EUnavailable, "Ledger unavailable"),
	entry(AuditUnavailable, EUnavailable, "Audit log unavailable"),
	entry(CredentialsUnavailable, EUnavailable, "Credentials cannot be checked"),
	entry(KeyUnavailable, EUnavailable, "Attestation key not configured"),
	entry(EntryFormatUnknown, EUnavailable, "Log entry of an unknown format"),
	entry(NotReady, EUnavailable, "Not ready"),
	entry(NoSyncReplica, EUnavailable, "No synchronous standby"),
	entry(InsufficientStorage, ENoSpace, "Insufficient storage"),
	entry(Unauthenticated, EUnauthenticated, "Authentication required"),
	entry(Forbidden, EForbidden, "Forbidden"),
	entry(RateLimited, ERateLimited, "Too many requests"),
	entry(AuthRateLimited, ERateLimited, "Too many failed authentications"),
	entry(Internal, EInternal, "Internal error"),
	entry(InvalidMultipart, EInvalid, "Malformed multipart request"),
	entry(InvalidQuery, EInvalid, "Invalid search"),
	entry(TooManyParts, ETooLarge, "Too many parts"),
	entry(NotAcceptable, ENotAcceptable, "Not acceptable"),
	entry(IndexUnavailable, EUnavailable, "Search index unavailable"),
	entry(UnknownDestination, EInvalid, "Unknown destination"),
	entry(DestinationRefused, EBadGateway, "Destination refused the transfer"),
	entry(DestinationUnavailable, EUnavailable, "Destination unavailable"),
}

var bySlug = func() map[string]Type {
	m := make(map[string]Type, len(table))
	for _, t := range table {
		if _, dup := m[t.Slug]; dup || t.Status == 0 || t.Title == "" {
			panic("problem: bad table entry " + t.Slug)
		}
		m[t.Slug] = t
	}
	return m
}()

// Lookup returns the type of slug.
func Lookup(slug string) (Type, bool) {
	t, ok := bySlug[slug]
	return t, ok
}

// Of returns the type of slug; a slug missing from the table (a bug) is
// answered as internal-error, never with an empty title.
func Of(slug string) Type {
	if t, ok := bySlug[slug]; ok {
		return t
	}
	return bySlug[Internal]
}

// All returns every type, by slug.
func All() []Type {
	out := slices.Clone(table)
	slices.SortFunc(out, func(a, b Type) int { return strings.Compare(a.Slug, b.Slug) })
	return out
}

// Response is a problem response as a client reads it: an error naming
// its type, with the code and title from the table.
type Response struct {
	Type
	Detail string
	// Fields are the response's extension members, as decoded JSON.
	Fields map[string]any
}

func (r *Response) Error() string {
	if r.Detail == "" {
		return fmt.Sprintf("%d %s (%s)", r.Status, r.Title, r.Slug)
	}
	return fmt.Sprintf("%d %s (%s): %s", r.Status, r.Title, r.Slug, r.Detail)
}

// Decode reads an error answer. A problem+json body of a type in the table
// becomes a *Response carrying its code; one of an unknown type keeps the
// answer's own slug, title and status with code EInternal; any other body
// becomes a *Response of the status alone, so a caller can always branch
// on Code.
func Decode(status int, contentType string, body []byte) *Response {
	r := &Response{Type: Type{Status: status, Code: EInternal, Title: http.StatusText(status)}}
	mt, _, _ := mime.ParseMediaType(contentType)
	var doc map[string]any
	if mt != "application/problem+json" || json.Unmarshal(body, &doc) != nil {
		r.Detail = strings.TrimSpace(string(body[:min(len(body), 200)]))
		return r
	}
	uri, _ := doc["type"].(string)
	r.Slug = strings.TrimPrefix(uri, Base)
	if t, ok := bySlug[r.Slug]; ok && strings.HasPrefix(uri, Base) {
		r.Type = t
	} else if title, _ := doc["title"].(string); title != "" {
		r.Title = title
	}
	r.Status = status
	r.Detail, _ = doc["detail"].(string)
	for _, k := range []string{"type", "title", "status", "detail"} {
		delete(doc, k)
	}
	r.Fields = doc
	return r
}
