package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	base := func(ms ...Match) Query { return Query{Limit: DefaultLimit, Matches: ms} }
	with := func(q Query, f func(*Query)) Query { f(&q); return q }
	for _, c := range []struct {
		level Level
		query string
		want  Query
	}{
		{StudyLevel, "", base()},
		{StudyLevel, "PatientName=Doe%5EJohn", base(Match{Key: PatientName, Pattern: "Doe^John"})},
		{StudyLevel, "00100010=Doe*", base(Match{Key: PatientName, Pattern: "Doe*"})},
		{StudyLevel, "patientname=Doe", base(Match{Key: PatientName, Pattern: "Doe"})},
		{StudyLevel, "PatientName=", base()}, // universal
		{StudyLevel, "PatientID=50%25_off", base(Match{Key: PatientID, Pattern: "50%_off"})},
		{StudyLevel, `AccessionNumber=A%5CB`, base(Match{Key: AccessionNumber, Pattern: `A\B`})}, // a string keeps its backslash
		{StudyLevel, "StudyDate=20240105", base(Match{Key: StudyDate, From: "20240105", To: "20240105"})},
		{StudyLevel, "StudyDate=20240101-20241231", base(Match{Key: StudyDate, From: "20240101", To: "20241231"})},
		{StudyLevel, "StudyDate=20240101-", base(Match{Key: StudyDate, From: "20240101"})},
		{StudyLevel, "StudyDate=-20241231", base(Match{Key: StudyDate, To: "20241231"})},
		{StudyLevel, "StudyTime=0930-10", base(Match{Key: StudyTime, From: "0930", To: "10"})},
		{StudyLevel, "StudyTime=101500.123", base(Match{Key: StudyTime, From: "101500.123", To: "101500.123"})},
		{StudyLevel, "StudyInstanceUID=1.2%5C1.3&StudyInstanceUID=1.4&StudyInstanceUID=1.2",
			base(Match{Key: StudyInstanceUID, Values: []string{"1.2", "1.3", "1.4"}})},
		{StudyLevel, "ModalitiesInStudy=CT%5CMR", base(Match{Key: ModalitiesInStudy, Values: []string{"CT", "MR"}})},
		{StudyLevel, "ModalitiesInStudy=C*", base(Match{Key: ModalitiesInStudy, Pattern: "C*"})},
		{SeriesLevel, "Modality=SR&PatientID=P1", base(Match{Key: PatientID, Pattern: "P1"}, Match{Key: Modality, Values: []string{"SR"}})},
		{SeriesLevel, "SeriesNumber=3", base(Match{Key: SeriesNumber, Values: []string{"3"}})},
		{InstanceLevel, "SOPClassUID=1.2.840.10008.5.1.4.1.1.2&InstanceNumber=-1",
			base(Match{Key: SOPClassUID, Values: []string{"1.2.840.10008.5.1.4.1.1.2"}}, Match{Key: InstanceNumber, Values: []string{"-1"}})},
		{StudyLevel, "limit=5&offset=10&fuzzymatching=true", with(base(), func(q *Query) { q.Limit, q.Offset, q.Fuzzy = 5, 10, true })},
		{StudyLevel, "limit=100000", with(base(), func(q *Query) { q.Limit = MaxLimit })},
		{StudyLevel, "limit=&offset=", base()},
		{StudyLevel, "fuzzymatching=false", base()},
		{StudyLevel, "includefield=00081030,PatientAge&includefield=00100010&includefield=StudyDescription",
			with(base(), func(q *Query) { q.Include = []uint32{0x00081030, 0x00100010, 0x00101010} })},
		{StudyLevel, "includefield=all", with(base(), func(q *Query) { q.IncludeAll = true })},
		{StudyLevel, "includefield=", base()},
	} {
		t.Run(c.query, func(t *testing.T) {
			v, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(c.level, v)
			if err != nil {
				t.Fatal(err)
			}
			c.want.Level = c.level
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseQueryRefuses(t *testing.T) {
	for _, c := range []struct {
		level Level
		query string
		param string
		say   string // in the message
	}{
		{StudyLevel, "Foo=1", "Foo", "not a matching key; the matching keys supported are PatientName, PatientID"},
		{StudyLevel, "00080090=X", "00080090", "not a matching key"},
		{StudyLevel, "Modality=CT", "Modality", "not a matching key of a study search; the matching keys supported are PatientName"},
		{SeriesLevel, "ModalitiesInStudy=CT", "ModalitiesInStudy", "not a matching key of a series search"},
		{SeriesLevel, "SOPInstanceUID=1.2", "SOPInstanceUID", "series search"},
		{StudyLevel, "PatientName=a&00100010=b", "PatientName", "given twice"},
		{StudyLevel, "PatientID=a&PatientID=b", "PatientID", "more than once"},
		{StudyLevel, "StudyInstanceUID=1.2.*", "StudyInstanceUID", "takes no wildcards"},
		{StudyLevel, "StudyInstanceUID=1.2.abc", "StudyInstanceUID", "is not a UID"},
		{StudyLevel, "StudyInstanceUID=" + strings.Repeat("1", 65), "StudyInstanceUID", "is not a UID"},
		{StudyLevel, "StudyDate=2024*", "StudyDate", "wildcards"},
		{StudyLevel, "StudyDate=2024-01-05", "StudyDate", "is not a date YYYYMMDD"},
		{StudyLevel, "StudyDate=20240230", "StudyDate", "malformed"},
		{StudyLevel, "StudyDate=20240105-20230105", "StudyDate", "ends before it starts"},
		{StudyLevel, "StudyDate=-", "StudyDate", "needs a bound"},
		{StudyLevel, "StudyDate=20240101&StudyDate=20240102", "StudyDate", "more than once"},
		{StudyLevel, "StudyTime=2500", "StudyTime", "is not a time"},
		{StudyLevel, "StudyTime=1100-10", "StudyTime", "ends before it starts"},
		{SeriesLevel, "SeriesNumber=x", "SeriesNumber", "not an integer"},
		{SeriesLevel, "SeriesNumber=1*", "SeriesNumber", "no wildcards"},
		{SeriesLevel, "Modality=C*%5CMR", "Modality", "not one of a list"},
		{StudyLevel, "limit=0", "limit", "at least 1"},
		{StudyLevel, "limit=ten", "limit", "not an integer"},
		{StudyLevel, "limit=1&limit=2", "limit", "more than once"},
		{StudyLevel, "offset=-1", "offset", "at least 0"},
		{StudyLevel, "fuzzymatching=yes", "fuzzymatching", "neither true nor false"},
		{StudyLevel, "includefield=NoSuchKeyword", "includefield", "neither a DICOM keyword"},
		{StudyLevel, "includefield=0010001", "includefield", "neither a DICOM keyword"},
	} {
		t.Run(c.query, func(t *testing.T) {
			v, _ := url.ParseQuery(c.query)
			_, err := ParseQuery(c.level, v)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v, want a *QueryError", err)
			}
			if qe.Param != c.param || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("error %q (param %q), want param %q and %q", err, qe.Param, c.param, c.say)
			}
		})
	}
}

func TestKeysApply(t *testing.T) {
	for _, c := range []struct {
		level Level
		want  string
	}{
		{StudyLevel, "PatientName PatientID AccessionNumber StudyDate StudyTime StudyDescription ModalitiesInStudy StudyInstanceUID"},
		{SeriesLevel, "PatientName PatientID AccessionNumber StudyDate StudyTime StudyDescription StudyInstanceUID Modality SeriesInstanceUID SeriesNumber"},
		{InstanceLevel, "PatientName PatientID AccessionNumber StudyDate StudyTime StudyDescription StudyInstanceUID Modality SeriesInstanceUID SeriesNumber SOPInstanceUID SOPClassUID InstanceNumber"},
	} {
		if got := strings.Join(keywords(c.level), " "); got != c.want {
			t.Errorf("%s keys: %s\nwant %s", c.level, got, c.want)
		}
	}
}

// The audit trail keeps what was searched for, never a patient's name or
// ID, however the key is spelled.
func TestQueryAuditRedactsPatientKeys(t *testing.T) {
	for _, raw := range []string{
		"PatientName=Doe%5EJohn&00100020=MRN-1&limit=10&StudyDate=20240101-&ModalitiesInStudy=CT%5CMR",
		"patientname=Doe%5EJohn&00100020=MRN-1&limit=10&studydate=20240101-&modalitiesinstudy=CT%5CMR",
		"PATIENTNAME=Doe%5EJohn&patientid=MRN-1&limit=10&StudyDate=20240101-&ModalitiesInStudy=CT%5CMR",
	} {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuery(StudyLevel, v)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		got := q.Audit()
		want := `ModalitiesInStudy=CT\MR&PatientID=(redacted)&PatientName=(redacted)&StudyDate=20240101-&limit=10&offset=0`
		if got != want {
			t.Errorf("%s:\n audit %s\n want  %s", raw, got, want)
		}
	}
}

func TestLongUIDListsAreRefused(t *testing.T) {
	var b strings.Builder
	for i := range MaxListValues + 1 {
		fmt.Fprintf(&b, `1.2.%d\`, i)
	}
	if _, err := ParseQuery(StudyLevel, url.Values{"StudyInstanceUID": {b.String()}}); err == nil {
		t.Fatal("a list of more than MaxListValues UIDs was accepted")
	}
}

// A Modality search for something that is not a code is run (it matches
// nothing) but never kept in clear: it could be a name typed in the wrong box.
func TestQueryAuditRedactsWhatIsNotACode(t *testing.T) {
	for raw, want := range map[string]string{
		"Modality=Doe%5EJohn": "Modality=(redacted)",
		"Modality=CT%5Cdoe":   "Modality=(redacted)",
		"Modality=C*":         "Modality=C*",
		"Modality=Doe*":       "Modality=(redacted)",
		"Modality=MR":         "Modality=MR",
	} {
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(SeriesLevel, v)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := q.Audit(); !strings.HasPrefix(got, want+"&") {
			t.Errorf("%s: audit %s, want %s…", raw, got, want)
		}
	}
	if _, err := ParseQuery(StudyLevel, url.Values{"PatientName": {"M\xfcller"}}); err == nil {
		t.Error("a value that is not UTF-8 was accepted")
	}
}
