package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/ledger"
)

func TestFormatsCheck(t *testing.T) {
	formats := ledger.Formats{"ingest": {0, 1}, "audit": {1}}
	cases := []struct {
		name, body string
		kind       ledger.Kind // the entry's indexed kind ("" to skip)
		version    int
		err        string // a fragment of the error; "" when the body is known
	}{
		{"version 0 (no v)", `{"kind":"ingest","sop_instance_uid":"1.2"}`, "ingest", 0, ""},
		{"version 1", `{"v":1,"kind":"ingest","subject":"1.2"}`, "ingest", 1, ""},
		{"a newer version, by name", `{"v":2,"kind":"ingest","subject":"1.2"}`, "ingest", 2, `kind "ingest" version 2 is unknown to this dicomseal`},
		{"a version this kind never had", `{"kind":"audit"}`, "audit", 0, `kind "audit" version 0 is unknown`},
		{"an unknown kind", `{"v":1,"kind":"scrub"}`, "scrub", 1, `kind "scrub" is unknown to this log`},
		{"v 0 written out", `{"v":0,"kind":"ingest"}`, "ingest", 0, "version 0 is never written"},
		{"a negative version", `{"v":-1,"kind":"ingest"}`, "ingest", -1, "never written"},
		{"a fractional version", `{"v":1.5,"kind":"ingest"}`, "ingest", 0, "not a JSON object with a kind"},
		{"no kind", `{"v":1,"subject":"1.2"}`, "ingest", 0, "not a JSON object with a kind"},
		{"not JSON", `ingest 1.2`, "ingest", 0, "not a JSON object"},
		{"an array", `[{"kind":"ingest"}]`, "ingest", 0, "not a JSON object"},
		{"kind other than indexed", `{"v":1,"kind":"ingest"}`, "audit", 1, `indexed as "audit"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := formats.Check(ledger.Entry{Index: 7, Kind: tc.kind, Body: []byte(tc.body)})
			if tc.err == "" {
				if err != nil || h.Version != tc.version || h.Kind != tc.kind {
					t.Fatalf("Check = %+v, %v; want version %d of %s", h, err, tc.version, tc.kind)
				}
				return
			}
			var fe *ledger.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ledger.ErrUnknownFormat) || !strings.Contains(err.Error(), tc.err) ||
				!strings.HasPrefix(err.Error(), "entry 7: ") {
				t.Fatalf("Check error %v, want a FormatError at entry 7 saying %q", err, tc.err)
			}
		})
	}
}
