package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
)

// TestEntryFormatsAreDocumented holds docs/entries.md and the code to one
// list: every kind and body version each log reads, no more, no less.
func TestEntryFormatsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "entries.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]ledger.Formats{"custody": {}, "audit": {}}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		logName, kind := strings.TrimSpace(cells[1]), ledger.Kind(strings.TrimSpace(cells[2]))
		formats, ok := documented[logName]
		if !ok {
			continue
		}
		for _, v := range strings.Split(cells[3], ",") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("docs/entries.md: %s %s: version %q", logName, kind, v)
			}
			formats[kind] = append(formats[kind], n)
		}
	}
	for name, code := range map[string]ledger.Formats{"custody": attest.EntryFormats, "audit": audit.EntryFormats} {
		docd := documented[name]
		for _, k := range slices.Sorted(maps.Keys(code)) {
			if !slices.Equal(docd[k], code[k]) {
				t.Errorf("%s log, kind %s: the code reads versions %v, docs/entries.md documents %v", name, k, code[k], docd[k])
			}
		}
		for k := range docd {
			if _, ok := code[k]; !ok {
				t.Errorf("%s log: docs/entries.md documents kind %s, which the code does not read", name, k)
			}
		}
	}
}
