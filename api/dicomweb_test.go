package api

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// What viewers and PACS send as Accept, and what dicomseal, which sends
// the stored bytes only, must say to it.
func TestAcceptable(t *testing.T) {
	const stored = "1.2.840.10008.1.2.4.90"
	cases := []struct {
		accept, part string
		want         bool
	}{
		{"", "application/dicom", true},
		{"*/*", "application/dicom", true},
		{`multipart/related; type="application/dicom"`, "application/dicom", true},
		{`multipart/related; type=application/dicom`, "application/dicom", true}, // unquoted '/', as clients send it
		{`multipart/related; type="application/dicom"; transfer-syntax=*`, "application/dicom", true},
		{`multipart/related; type="application/dicom"; transfer-syntax=` + stored, "application/dicom", true},
		{`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`, "application/dicom", false},
		{`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1, multipart/related; type="application/dicom"; transfer-syntax=*`, "application/dicom", true},
		{`multipart/related; type="application/dicom"; transfer-syntax=*; q=0`, "application/dicom", false},
		{`multipart/related; type="application/octet-stream"; transfer-syntax=*`, "application/dicom", false},
		{`multipart/related; type="application/octet-stream"; transfer-syntax=*`, "application/octet-stream", true},
		{`multipart/related; type=application/octet-stream; transfer-syntax=*`, "application/octet-stream", true},
		{"application/dicom+json", "application/dicom", false},
		{"image/jpeg", "application/octet-stream", false},
	}
	for _, c := range cases {
		if got := acceptable(c.accept, c.part, stored); got != c.want {
			t.Errorf("acceptable(%q, %s) = %v, want %v", c.accept, c.part, got, c.want)
		}
	}
	for h, want := range map[string]bool{"": true, "application/dicom+json": true, "application/json": true, "*/*": true,
		"multipart/related; type=application/dicom": false, "text/html": false} {
		if got := acceptsJSON(h); got != want {
			t.Errorf("acceptsJSON(%q) = %v", h, got)
		}
	}
}

func TestFrameList(t *testing.T) {
	if got, err := frameList("1,3, 2"); err != nil || len(got) != 3 || got[2] != 2 {
		t.Fatalf("frameList: %v %v", got, err)
	}
	for _, bad := range []string{"", "0", "-1", "1,,2", "x", "1.5"} {
		if _, err := frameList(bad); err == nil {
			t.Errorf("frameList(%q) accepted", bad)
		}
	}
}

// Behind a TLS-terminating proxy the URLs in answers are https, and only
// a trusted proxy is believed.
func TestDICOMwebBaseBehindAProxy(t *testing.T) {
	s := &Server{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}}
	r := httptest.NewRequest("GET", "/dicomweb/studies", nil)
	r.Host = "pacs.example.org"
	r.Header.Set("X-Forwarded-Proto", "https")
	r.RemoteAddr = "10.0.0.1:4000"
	if got := s.dicomwebBase(r); got != "https://pacs.example.org/dicomweb" {
		t.Fatalf("through the trusted proxy: %s", got)
	}
	r.RemoteAddr = "10.9.9.9:4000"
	if got := s.dicomwebBase(r); got != "http://pacs.example.org/dicomweb" {
		t.Fatalf("from anyone else: %s", got)
	}
}

// The closing delimiter is found however the reads split it, and only at
// the start of a line.
func TestSawClosing(t *testing.T) {
	body := "--b\r\nContent-Type: application/dicom\r\n\r\nx--b--y\r\n--b--\r\n"
	for split := 1; split < len(body); split++ {
		c := newSawClosing(&chunked{data: []byte(body), size: split}, "b")
		io.ReadAll(c)
		if !c.seen {
			t.Fatalf("reads of %d bytes: the closing delimiter was missed", split)
		}
	}
	for split := 1; split < 12; split++ {
		c := newSawClosing(&chunked{data: []byte("--b\r\n\r\nx--b--y\r\n--b\r\n"), size: split}, "b")
		io.ReadAll(c)
		if c.seen {
			t.Fatalf("reads of %d bytes: --b-- inside a part taken for the closing delimiter", split)
		}
	}
	c := newSawClosing(strings.NewReader("--b--\r\n"), "b")
	if io.ReadAll(c); !c.seen {
		t.Fatal("a body that is only the closing delimiter")
	}
}

// chunked reads data size bytes at a time.
type chunked struct {
	data []byte
	size int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}
