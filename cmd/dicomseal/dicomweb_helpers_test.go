package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// studyFiles rewrites real fixtures, with dcmtk, into the instances of
// one study: uid, with series uid.1 (the first half) and uid.2, and SOP
// Instance UIDs uid.<series>.<n>. The files keep everything else.
func studyFiles(t *testing.T, tools *dcmtk, uid string, names ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for i, name := range names {
		series := 1 + i*2/len(names)
		out = append(out, tools.convert(fixture(t, name), "dcmodify", "-nb", "-gin",
			"-i", "(0020,000D)="+uid,
			"-i", fmt.Sprintf("(0020,000E)=%s.%d", uid, series),
			"-i", fmt.Sprintf("(0008,0018)=%s.%d.%d", uid, series, i+1),
			"-i", fmt.Sprintf("(0020,0013)=%d", i+1),
			"IN"))
	}
	return out
}

// stowFixtures are real files of different kinds: native CT and MR,
// big endian, JPEG 2000 (encapsulated), deflated.
var stowFixtures = []string{"pydicom-CT_small.dcm", "pydicom-MR_small.dcm", "pydicom-MR_small_bigendian.dcm",
	"pydicom-JPEG2000.dcm", "suyashkumar-3-mr.dcm"}

// multipartBody is a multipart/related body of parts, written by hand so
// that each variation a sender may make is ours to choose.
type multipartBody struct {
	boundary   string
	noLength   bool   // parts without Content-Length
	noFinalEOL bool   // the closing delimiter without its CRLF
	partType   string // "" → application/dicom
}

func (m multipartBody) build(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + m.boundary + "\r\n")
		pt := m.partType
		if pt == "" {
			pt = "application/dicom"
		}
		b.WriteString("Content-Type: " + pt + "\r\n")
		if !m.noLength {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(p))
		}
		b.WriteString("\r\n")
		b.Write(p)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + m.boundary + "--")
	if !m.noFinalEOL {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// stowItem is one item of a Store Instances Response sequence.
type stowItem struct {
	class, instance, url string
	reason               int
}

// stowAnswer reads a Store Instances Response.
func stowAnswer(t *testing.T, r response) (stored, failed []stowItem) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/dicom+json" {
		t.Fatalf("STOW answered %d %s: %s", r.status, ct, r.body)
	}
	doc := r.json(t)
	items := func(tag string) []stowItem {
		a, ok := doc[tag].(map[string]any)
		if !ok {
			return nil
		}
		if a["vr"] != "SQ" {
			t.Fatalf("%s has vr %v", tag, a["vr"])
		}
		var out []stowItem
		for _, v := range a["Value"].([]any) {
			it := v.(map[string]any)
			str := func(tag string) string {
				if x, ok := it[tag].(map[string]any); ok {
					if vals, ok := x["Value"].([]any); ok && len(vals) > 0 {
						return fmt.Sprint(vals[0])
					}
				}
				return ""
			}
			var reason int
			fmt.Sscan(str("00081197"), &reason)
			out = append(out, stowItem{class: str("00081150"), instance: str("00081155"), url: str("00081190"), reason: reason})
		}
		return out
	}
	return items("00081199"), items("00081198")
}

// part is one part of a multipart answer.
type part struct {
	contentType string
	body        []byte
}

// readMultipart reads a multipart/related answer whole; err is what
// reading it failed with (a cut stream).
func readMultipart(t *testing.T, contentType string, body io.Reader) ([]part, map[string]string, error) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/related" {
		t.Fatalf("Content-Type %q is not multipart/related", contentType)
	}
	b := params["boundary"]
	if b == "" || strings.Trim(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
		t.Fatalf("boundary %q is not of [A-Za-z0-9-]", b)
	}
	mr := multipart.NewReader(body, b)
	var out []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, params, nil
		}
		if err != nil {
			return out, params, err
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return out, params, err
		}
		out = append(out, part{p.Header.Get("Content-Type"), data})
	}
}

// get sends a GET as role with an Accept header and returns the raw
// answer, unvalidated (multipart bodies are read by the caller).
func (s *testServer) getRaw(path, accept string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[roleFor(http.MethodGet, path)])
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}
