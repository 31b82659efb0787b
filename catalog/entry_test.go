package catalog

import (
	"reflect"
	"strings"
	"testing"
)

func TestFromJSON(t *testing.T) {
	attrs := `{
		"0020000D": {"vr": "UI", "Value": ["1.2.3"]},
		"0020000e": {"vr": "UI", "Value": ["1.2.3.4 "]},
		"00080018": {"vr": "UI", "Value": ["1.2.3.4.5\u0000"]},
		"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
		"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John", "Ideographic": "山田^太郎"}]},
		"00100020": {"vr": "LO", "Value": ["P-1"]},
		"00080050": {"vr": "SH"},
		"00080020": {"vr": "DA", "Value": ["2024.01.05"]},
		"00080030": {"vr": "TM", "Value": ["10:15:00"]},
		"00081030": {"vr": "LO", "Value": ["CT Chest", "second value"]},
		"00080060": {"vr": "CS", "Value": ["CT"]},
		"00200011": {"vr": "IS", "Value": [3]},
		"00200013": {"vr": "IS", "Value": ["12"]},
		"00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]},
		"7FE00010": {"vr": "OW", "BulkDataURI": "http://x/bulk"}
	}`
	e, err := FromJSON([]byte(attrs))
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5",
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", PatientName: "Doe^John", PatientID: "P-1", StudyDate: "20240105",
		StudyTime: "101500", StudyDescription: "CT Chest", Modality: "CT", TransferSyntaxUID: "1.2.840.10008.1.2.1"}
	if e.SeriesNumber == nil || *e.SeriesNumber != 3 || e.InstanceNumber == nil || *e.InstanceNumber != 12 {
		t.Fatalf("numbers %v %v", e.SeriesNumber, e.InstanceNumber)
	}
	if string(e.Attributes) != attrs {
		t.Fatal("Attributes is not the object given")
	}
	e.SeriesNumber, e.InstanceNumber, e.Attributes = nil, nil, nil
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got  %+v\nwant %+v", e, want)
	}
}

func TestFromJSONValues(t *testing.T) {
	uids := `"0020000D": {"vr": "UI", "Value": ["1"]}, "0020000E": {"vr": "UI", "Value": ["2"]}, "00080018": {"vr": "UI", "Value": ["3"]}`
	for _, c := range []struct {
		name, attr string
		check      func(Entry) bool
	}{
		{"a date that is not DA", `"00080020": {"vr": "DA", "Value": ["Jan 5"]}`, func(e Entry) bool { return e.StudyDate == "" }},
		{"a date with dashes", `"00080020": {"vr": "DA", "Value": ["2024-01-05"]}`, func(e Entry) bool { return e.StudyDate == "20240105" }},
		{"a number that is not an integer", `"00200011": {"vr": "IS", "Value": ["3.5"]}`, func(e Entry) bool { return e.SeriesNumber == nil }},
		{"a number too large for IS", `"00200013": {"vr": "IS", "Value": [4294967296]}`, func(e Entry) bool { return e.InstanceNumber == nil }},
		{"a null value", `"00100010": {"vr": "PN", "Value": [null]}`, func(e Entry) bool { return e.PatientName == "" }},
		{"a PN without alphabetic form", `"00100010": {"vr": "PN", "Value": [{"Ideographic": "山田"}]}`, func(e Entry) bool { return e.PatientName == "" }},
		{"padding", `"00100020": {"vr": "LO", "Value": [" P-1 "]}`, func(e Entry) bool { return e.PatientID == "P-1" }},
		{"a sequence", `"00081030": {"vr": "SQ", "Value": [{"00100010": {"vr": "PN"}}]}`, func(e Entry) bool { return e.StudyDescription == "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := FromJSON([]byte("{" + uids + "," + c.attr + "}"))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(e) {
				t.Fatalf("%+v", e)
			}
		})
	}
}

func TestFromJSONRefuses(t *testing.T) {
	for _, c := range []struct {
		name, attrs, say string
	}{
		{"not JSON", `{`, "not a DICOM JSON object"},
		{"an array", `[]`, "not a DICOM JSON object"},
		{"null", `null`, "null"},
		{"not UTF-8", "{\"00100010\": {\"vr\": \"PN\", \"Value\": [{\"Alphabetic\": \"M\xfcller\"}]}}", "UTF-8"},
		{"no study", `{"0020000E": {"vr": "UI", "Value": ["2"]}, "00080018": {"vr": "UI", "Value": ["3"]}}`, "Study Instance UID (0020000D)"},
		{"no series", `{"0020000D": {"vr": "UI", "Value": ["1"]}, "00080018": {"vr": "UI", "Value": ["3"]}}`, "Series Instance UID"},
		{"an empty SOP Instance UID", `{"0020000D": {"vr": "UI", "Value": ["1"]}, "0020000E": {"vr": "UI", "Value": ["2"]}, "00080018": {"vr": "UI"}}`, "SOP Instance UID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromJSON([]byte(c.attrs))
			if err == nil || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("error %v, want %q", err, c.say)
			}
		})
	}
}
