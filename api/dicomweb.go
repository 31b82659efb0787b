package api

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5"
)

// DICOMweb (PS3.18) under /dicomweb: STOW-RS stores through the same
// ingest as POST /v1/instances, WADO-RS hands out only verified bytes, and
// QIDO-RS searches the catalog, an ordinary table beside the log. Answers
// are DICOM JSON or multipart/related as PS3.18 requires; request-level
// errors stay problem+json.

// DefaultMaxParts is --max-parts' default: the most parts one STOW-RS
// request may carry.
const DefaultMaxParts = 10_000

// Catalog is the search index as DICOMweb reads it (catalog.Store's read
// side). The index says where to look; what is sent is verified against
// the log, never taken from it.
type Catalog interface {
	Entries(ctx context.Context, study, series string) ([]catalog.Entry, error)
	SearchStudies(ctx context.Context, q catalog.Query) ([]catalog.Study, error)
	SearchSeries(ctx context.Context, q catalog.Query) ([]catalog.Series, error)
	SearchInstances(ctx context.Context, q catalog.Query) ([]catalog.Entry, error)
}

// dicomwebBase is the absolute base of the DICOMweb URLs in an answer
// (RetrieveURL, BulkDataURI): as the client reached this server, through
// a --trusted-proxies proxy that terminated TLS too (X-Forwarded-Proto:
// a viewer on https refuses http URLs as mixed content).
func (s *Server) dicomwebBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// The proxy nearest to us wrote the last value.
	protos := strings.Split(strings.Join(r.Header.Values("X-Forwarded-Proto"), ","), ",")
	if p := strings.ToLower(strings.TrimSpace(protos[len(protos)-1])); (p == "https" || p == "http") && s.viaTrustedProxy(r) {
		scheme = p
	}
	return scheme + "://" + r.Host + "/dicomweb"
}

// uidParams reads the UIDs of a DICOMweb path; a malformed one is a 400
// rather than a search for something that cannot exist.
func uidParams(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		v := chi.URLParam(r, n)
		if !dicomfile.LooksLikeUID(v) {
			return nil, attest.Errorf(attest.EInvalid, attest.ProblemInvalidRequest,
				"%s %q is not a UID: digits and dots, at most 64 characters", n, v)
		}
		out[i] = v
	}
	return out, nil
}

func (s *Server) catalogError(err error) error {
	return &attest.Error{Code: attest.EUnavailable, Problem: problem.IndexUnavailable,
		Message: "the search index is unavailable; retry later", Err: err}
}

// parseMediaType is mime.ParseMediaType, lenient where DICOMweb clients
// are not strict: `type=application/dicom` unquoted (a '/' is not allowed
// in an unquoted value, but senders and viewers write it so).
func parseMediaType(v string) (string, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return mt, params, nil
	}
	head, rest, _ := strings.Cut(v, ";")
	mt = strings.ToLower(strings.TrimSpace(head))
	if !strings.Contains(mt, "/") {
		return "", nil, err
	}
	params = map[string]string{}
	for _, p := range strings.Split(rest, ";") {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			if strings.TrimSpace(p) == "" {
				continue
			}
			return "", nil, err
		}
		params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return mt, params, nil
}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ    string
	params map[string]string
}

// acceptList parses an Accept header into its media ranges, those with
// q=0 left out. Commas inside quoted parameters do not split.
func acceptList(h string) []mediaRange {
	var out []mediaRange
	var cur strings.Builder
	quoted := false
	flush := func() {
		v := strings.TrimSpace(cur.String())
		cur.Reset()
		if v == "" {
			return
		}
		t, p, err := parseMediaType(v)
		if err != nil {
			// A range we cannot read accepts nothing (rather than failing
			// the request: the others may do).
			return
		}
		if q, ok := p["q"]; ok && strings.Trim(q, "0.") == "" {
			return
		}
		out = append(out, mediaRange{typ: t, params: p})
	}
	for _, c := range h {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			flush()
			continue
		}
		cur.WriteRune(c)
	}
	flush()
	return out
}

// acceptable tells whether an Accept header takes parts of media type
// part (application/dicom, application/octet-stream) in the transfer
// syntax stored: dicomseal hands out the attested bytes only, so a
// transfer syntax asked for by name must be the stored one ("*", or none,
// takes it as it is). An absent header accepts anything.
func acceptable(header, part string, stored ...string) bool {
	if strings.TrimSpace(header) == "" {
		return true
	}
	for _, m := range acceptList(header) {
		switch {
		case m.typ == "*/*", m.typ == "multipart/*":
		case m.typ == "multipart/related":
			if t := m.params["type"]; t != "" && t != part {
				continue
			}
		case m.typ == part:
		default:
			continue
		}
		if ts := m.params["transfer-syntax"]; ts == "" || ts == "*" || allEqual(stored, ts) {
			return true
		}
	}
	return false
}

func allEqual(vals []string, v string) bool {
	for _, x := range vals {
		if x != v {
			return false
		}
	}
	return true
}

// acceptsJSON tells whether an Accept header takes DICOM JSON.
func acceptsJSON(header string) bool {
	if strings.TrimSpace(header) == "" {
		return true
	}
	for _, m := range acceptList(header) {
		switch m.typ {
		case "*/*", "application/*", "application/dicom+json", "application/json":
			return true
		}
	}
	return false
}

func notAcceptable(format string, args ...any) error {
	return &attest.Error{Code: problem.ENotAcceptable, Problem: problem.NotAcceptable, Message: fmt.Sprintf(format, args...)}
}

// writeDICOMJSON answers a DICOM JSON document.
func writeDICOMJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/dicom+json")
	w.Header().Set("Cache-Control", "private, no-store")
	writeDeadline(w, 0)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Attributes of DICOM JSON answers built here (PS3.18 F.2).
type jsonAttr struct {
	VR    string `json:"vr"`
	Value []any  `json:"Value,omitempty"`
}

func uiAttr(v string) jsonAttr { return jsonAttr{VR: "UI", Value: []any{v}} }
func urAttr(v string) jsonAttr { return jsonAttr{VR: "UR", Value: []any{v}} }
