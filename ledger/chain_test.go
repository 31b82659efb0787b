package ledger

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// ChainsOf reads what encoding/json reads, on the fast path and off it.
func TestChainsOfAgreesWithTheDecoder(t *testing.T) {
	idx, leaf := uint64(4), Hash{7}
	links := []Link{{Subject: SubjectKey{1}, Seq: 1}, {Subject: SubjectKey{2}, Seq: 5, PrevIndex: &idx, PrevLeafHash: &leaf}}
	chained, err := withChain([]byte(`{"v":2,"kind":"ingest","subject":"1.2"}`), links)
	if err != nil {
		t.Fatal(err)
	}
	chainJSON, _ := json.Marshal(links)
	for name, body := range map[string]string{
		"written by the log":         string(chained),
		"no chain":                   `{"v":1,"kind":"ingest"}`,
		"a chain in a nested object": `{"v":2,"x":{"a":1,"chain":` + string(chainJSON) + `},"b":[2]}`,
		"a chain in a string":        `{"v":2,"x":",\"chain\":[]","y":[1]}`,
		"a chain not last":           `{"v":2,"chain":` + string(chainJSON) + `,"z":[1]}`,
		"two chains":                 `{"v":2,"chain":[],"chain":` + string(chainJSON) + `}`,
		"an empty chain":             `{"v":2,"chain":[]}`,
		"spaces":                     `{"v":2,"chain":[ {"subject":"` + Hash{1}.String() + `", "seq":1}]}`,
		"fields reordered":           `{"v":2,"chain":[{"seq":1,"subject":"` + Hash{1}.String() + `"}]}`,
		"upper-case hex":             `{"v":2,"chain":[{"subject":"` + strings.ToUpper(Hash{0xab}.String()) + `","seq":1}]}`,
		"an unknown field":           `{"v":2,"chain":[{"subject":"` + Hash{1}.String() + `","seq":1,"x":2}]}`,
		"a chain in an array":        `{"v":2,"x":[{"a":1,"chain":[{"subject":"` + Hash{1}.String() + `","seq":1}]}]}`,
	} {
		var want struct{ Chain []Link }
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := ChainsOf([]byte(body))
		if err != nil || !reflect.DeepEqual(got, want.Chain) {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, want.Chain)
		}
	}
	if got, _ := ChainsOf(chained); len(got) != 2 || got[1].Seq != 5 || *got[1].PrevIndex != 4 {
		t.Fatalf("the log's chain read back: %+v", got)
	}
}

// Whatever the body, ChainsOf reads the chain encoding/json reads, or
// fails where it fails.
func FuzzChainsOf(f *testing.F) {
	idx, leaf := uint64(4), Hash{7}
	chained, _ := withChain([]byte(`{"v":2}`), []Link{{Subject: SubjectKey{1}, Seq: 1}, {Subject: SubjectKey{2}, Seq: 5, PrevIndex: &idx, PrevLeafHash: &leaf}})
	f.Add(chained)
	f.Add([]byte(`{"v":2,"chain":[{"subject":"` + Hash{1}.String() + `","seq":01}]}`))
	f.Add([]byte(`{"v":2,"chain":[{"subject":"` + Hash{1}.String() + `","seq":18446744073709551616}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var want struct{ Chain []Link }
		wantErr := json.Unmarshal(body, &want)
		got, err := ChainsOf(body)
		if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(got, want.Chain) {
			t.Fatalf("%q: %+v, %v; encoding/json: %+v, %v", body, got, err, want.Chain, wantErr)
		}
	})
}

// Only a top-level chain member is the log's: a writer's body may quote
// one deeper (a destination's reply), never hold one of its own.
func TestChainMemberOnlyAtTheTop(t *testing.T) {
	for body, want := range map[string]bool{
		`{"v":2,"chain":[]}`:                       true,
		`{"v":2,"Chain":[]}`:                       true, // encoding/json matches any case
		`{"v":2,"\u0063hain":[]}`:                  true,
		`{"v":2,"ack":{"chain":[{"seq":1}]}}`:      false,
		`{"v":2,"ack":"\"chain\":[]"}`:             false,
		`not json`:                                 false,
		`{"v":2,"acknowledgement":{"chain":null}}`: false,
	} {
		if got := hasChainMember([]byte(body)); got != want {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
	nested := []byte(`{"v":2,"kind":"transfer","acknowledgement":{"chain":[1]}}`)
	out, err := withChain(nested, []Link{{Subject: SubjectKey{1}, Seq: 1}})
	if err != nil {
		t.Fatalf("a body quoting a chain deeper: %v", err)
	}
	if links, err := ChainsOf(out); err != nil || len(links) != 1 || links[0].Seq != 1 {
		t.Fatalf("its chain read back: %+v, %v", links, err)
	}
}
