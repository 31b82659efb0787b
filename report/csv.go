package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CSVHeader is the CSV format's first row.
var CSVHeader = []string{"time_utc", "instance", "event", "actor", "source", "destination", "purpose", "digest", "verdict", "log", "index"}

// WriteCSV writes one row per event, for spreadsheets (RFC 4180). Free
// text (an actor's or a destination's name, a purpose) that a spreadsheet
// would run as a formula is prefixed with an apostrophe (OWASP's advice
// against CSV injection); the JSON bundle holds the values as logged.
func (v *Verified) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, e := range v.Events {
		cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), cell(e.Instance), cell(e.Event), cell(e.Actor), cell(e.Source),
			cell(e.Destination), cell(e.Purpose), cell(e.Digest), cell(e.Verdict), e.Log, strconv.FormatUint(e.Index, 10)})
	}
	cw.Flush()
	return cw.Error()
}

// cell neutralizes a value a spreadsheet would take for a formula: one
// whose first character, after any spaces, starts one (fullwidth forms
// included, which some spreadsheets fold).
func cell(s string) string {
	t := strings.TrimLeft(s, " ")
	if r, _ := utf8.DecodeRuneInString(t); t != "" && strings.ContainsRune("=+-@\t\r\n＝＋－＠", r) {
		return "'" + s
	}
	return s
}
