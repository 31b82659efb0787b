package report_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/report"
)

// Free text in a report comes from whoever named a token, a destination
// or a purpose: the CSV never hands a spreadsheet a formula and the HTML
// never hands a browser markup.
func TestRenderingsNeutralizeFreeText(t *testing.T) {
	hostile := []string{"=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", " =1", "＝1", "\t=1"}
	v := &report.Verified{Query: report.Query{Study: "1.2.3"}, Generated: time.Now(), Instances: []string{"1.2.3.4"}}
	for _, s := range hostile {
		v.Events = append(v.Events, report.Event{Time: time.Now(), Log: report.LogAudit, Instance: "1.2.3.4", Event: "instance.retrieve",
			Actor: s, Purpose: "<script>alert(1)</script>", Verdict: "allowed 200"})
	}
	var buf bytes.Buffer
	if err := v.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != len(hostile)+1 {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	for i, s := range hostile {
		if got := rows[i+1][3]; got != "'"+s {
			t.Errorf("actor %q written %q", s, got)
		}
	}
	buf.Reset()
	if err := v.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") || !strings.Contains(buf.String(), "&lt;script&gt;") {
		t.Error("the HTML does not escape free text")
	}
}

// A document re-encoded (indented, members reordered) is read by the slow
// path and then fails on the bundle's bytes, which the signature names
// exactly; a document without a bundle or an envelope is not a report.
func TestParseDocument(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":          `{}`,
		"no envelope":    `{"bundle":{"v":1}}`,
		"not json":       `{"bundle":`,
		"a bare array":   `[]`,
		"an empty input": ``,
	} {
		if _, err := report.ParseDocument([]byte(raw)); err == nil {
			t.Errorf("%s: parses", name)
		}
	}
	doc := `{"bundle":{"v":1,"x":",\"envelope\":"},"envelope":{"payloadType":"t","payload":"cA==","signatures":[]}}`
	d, err := report.ParseDocument([]byte(doc))
	if err != nil || string(d.Bundle) != `{"v":1,"x":",\"envelope\":"}` {
		t.Fatalf("fast path: %q, %v", d.Bundle, err)
	}
	var v any
	json.Unmarshal([]byte(doc), &v)
	indented, _ := json.MarshalIndent(v, "", "  ")
	d, err = report.ParseDocument(indented)
	if err != nil || d.Envelope.Payload != "cA==" || !strings.Contains(string(d.Bundle), "\n") {
		t.Fatalf("slow path: %q, %v", d.Bundle, err)
	}
}
