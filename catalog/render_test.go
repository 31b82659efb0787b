package catalog

import (
	"encoding/json"
	"strings"
	"testing"
)

// stored is a representative's attributes: study, series and instance
// attributes, one the defaults leave out (BodyPartExamined), and a key in
// lower case as a careless writer might store it.
const stored = `{
	"00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
	"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
	"00080018": {"vr": "UI", "Value": ["1.2.3.4.5"]},
	"00080020": {"vr": "DA", "Value": ["20240105"]},
	"00080060": {"vr": "CS", "Value": ["CT"]},
	"00080061": {"vr": "CS", "Value": ["stale"]},
	"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
	"00180015": {"vr": "CS", "Value": ["CHEST"]},
	"0020000d": {"vr": "UI", "Value": ["1.2.3"]},
	"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
	"00200011": {"vr": "IS", "Value": [2]},
	"00280010": {"vr": "US", "Value": [512]}
}`

var rep = Entry{StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5", Attributes: json.RawMessage(stored)}

func TestRender(t *testing.T) {
	const base = "https://pacs.example/dicomweb/"
	for _, c := range []struct {
		name string
		got  map[string]json.RawMessage
		want string // tags in order, "=" value for the computed ones
	}{
		{"a study: its defaults, computed counts and modalities (never the stored ones)",
			StudyJSON(Study{Representative: rep, Series: 2, Instances: 7, Modalities: []string{"CT", "SR"}}, Query{}, base),
			`00080005 00080020 00080061={"vr":"CS","Value":["CT","SR"]} 00081190={"vr":"UR","Value":["https://pacs.example/dicomweb/studies/1.2.3"]} ` +
				`00100010 0020000D 00201206={"vr":"IS","Value":[2]} 00201208={"vr":"IS","Value":[7]}`},
		{"a study with no modality",
			StudyJSON(Study{Representative: rep, Series: 1, Instances: 1}, Query{}, "/dicomweb"),
			`00080005 00080020 00080061={"vr":"CS"} 00081190={"vr":"UR","Value":["/dicomweb/studies/1.2.3"]} 00100010 0020000D 00201206 00201208`},
		{"includefield adds what is stored, and nothing that is not",
			StudyJSON(Study{Representative: rep}, Query{Include: []uint32{0x00180015, 0x00181000}}, ""),
			`00080005 00080020 00080061 00081190={"vr":"UR","Value":["/studies/1.2.3"]} 00100010 00180015 0020000D 00201206 00201208`},
		{"includefield=all shows every stored attribute",
			StudyJSON(Study{Representative: rep, Modalities: []string{"CT"}}, Query{IncludeAll: true}, ""),
			`00080005 00080016 00080018 00080020 00080060 00080061={"vr":"CS","Value":["CT"]} 00081190 00100010 00180015 0020000D 0020000E 00200011 00201206 00201208 00280010`},
		{"a series: its study's attributes and its own",
			SeriesJSON(Series{Representative: rep, Instances: 3}, Query{}, base),
			`00080005 00080020 00080060 00081190={"vr":"UR","Value":["https://pacs.example/dicomweb/studies/1.2.3/series/1.2.3.4"]} ` +
				`00100010 0020000D 0020000E 00200011 00201209={"vr":"IS","Value":[3]}`},
		{"an instance: its study's, its series' and its own",
			InstanceJSON(rep, Query{}, base),
			`00080005 00080016 00080018 00080020 00080060 00081190={"vr":"UR","Value":["https://pacs.example/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5"]} ` +
				`00100010 0020000D 0020000E 00200011 00280010`},
		{"UIDs are escaped in the URL",
			InstanceJSON(Entry{StudyInstanceUID: "1/2", SeriesInstanceUID: "3?4", SOPInstanceUID: "5 6", Attributes: json.RawMessage(`not json`)}, Query{}, "x"),
			`00081190={"vr":"UR","Value":["x/studies/1%2F2/series/3%3F4/instances/5%206"]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(c.got)
			if err != nil {
				t.Fatal(err)
			}
			var tags []string
			// Decoding into a map loses the order: read the keys as written.
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.Token()
			for dec.More() {
				k, _ := dec.Token()
				var v json.RawMessage
				dec.Decode(&v)
				tags = append(tags, k.(string))
				for _, w := range strings.Fields(c.want) {
					if tag, value, ok := strings.Cut(w, "="); ok && tag == k && string(v) != value {
						t.Errorf("%s = %s, want %s", tag, v, value)
					}
				}
			}
			var want []string
			for _, w := range strings.Fields(c.want) {
				tag, _, _ := strings.Cut(w, "=")
				want = append(want, tag)
			}
			if strings.Join(tags, " ") != strings.Join(want, " ") {
				t.Fatalf("tags %v\nwant %v", tags, want)
			}
		})
	}
	// What is copied is the stored attribute, as stored.
	got := InstanceJSON(rep, Query{}, "")
	if string(got["00100010"]) != `{"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}` {
		t.Fatalf("PatientName rendered as %s", got["00100010"])
	}
}
