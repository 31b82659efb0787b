// Package catalogtest is the conformance suite every catalog.Store backend
// runs: the same cases on SQLite and PostgreSQL, so that a DICOMweb search
// finds the same instances, counted and ordered alike, whichever database
// holds the index.
package catalogtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/catalog"
)

// Classes of the fixture's instances.
const (
	ctImage = "1.2.840.10008.5.1.4.1.1.2"
	mrImage = "1.2.840.10008.5.1.4.1.1.4"
	srBasic = "1.2.840.10008.5.1.4.1.1.88.11"
)

func num(n int) *int { return &n }

// Run runs the suite; newStore returns an empty store for each case.
func Run(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)

	t.Run("an entry reads back as put", func(t *testing.T) {
		s := newStore(t)
		e := withAttributes(catalog.Entry{
			StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5", SOPClassUID: ctImage,
			PatientName: "Müller^Hans", PatientID: "P-1", AccessionNumber: "ACC-1", StudyDate: "20240105", StudyTime: "101500.25",
			StudyDescription: "CT Thorax", Modality: "CT", SeriesNumber: num(2), InstanceNumber: num(-1),
			TransferSyntaxUID: "1.2.840.10008.1.2.1", LedgerIndex: 42, FileSHA256: strings.Repeat("ab", 32), IndexedAt: now,
		})
		// An escaped NUL is JSON text like any other (PostgreSQL's JSONB
		// would refuse it): the attributes come back byte for byte.
		e.Attributes = append(e.Attributes[:len(e.Attributes)-1], []byte(`,"00180015":{"vr":"CS","Value":["a\u0000b"]}}`)...)
		if err := s.PutEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
		got, err := s.Entry(ctx, e.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		sameEntry(t, got, e)
		bare := catalog.Entry{StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.6", Attributes: json.RawMessage(`{}`)}
		if err := s.PutEntry(ctx, bare); err != nil {
			t.Fatal(err)
		}
		got, err = s.Entry(ctx, bare.SOPInstanceUID)
		if err != nil || got.SeriesNumber != nil || got.InstanceNumber != nil || got.StudyDate != "" {
			t.Fatalf("an entry without numbers or date: %+v %v", got, err)
		}
		if got.IndexedAt.IsZero() || time.Since(got.IndexedAt) > time.Hour || time.Until(got.IndexedAt) > time.Hour {
			t.Fatalf("an entry put without IndexedAt reads back indexed at %v, want about now", got.IndexedAt)
		}
		if _, err := s.Entry(ctx, "9.9.9"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Entry of nothing: %v, want ErrNotFound", err)
		}
	})

	t.Run("an older version never replaces a newer one; a newer one does", func(t *testing.T) {
		s := newStore(t)
		v := func(index uint64, name string) catalog.Entry {
			return withAttributes(catalog.Entry{StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.1", SOPInstanceUID: "1.2.1.1",
				PatientName: name, PatientID: "P", Modality: "CT", LedgerIndex: index, IndexedAt: now})
		}
		put(t, s, v(5, "Unknown^Trauma"))
		put(t, s, v(3, "Stale^Name")) // an older version, re-stored late
		if got, _ := s.Entry(ctx, "1.2.1.1"); got.LedgerIndex != 5 || got.PatientName != "Unknown^Trauma" {
			t.Fatalf("after an older version: %+v", got)
		}
		put(t, s, v(7, "Doe^John")) // the identity correction
		if got, _ := s.Entry(ctx, "1.2.1.1"); got.LedgerIndex != 7 || got.PatientName != "Doe^John" {
			t.Fatalf("after the correction: %+v", got)
		}
		put(t, s, v(7, "Doe^John")) // the same version again heals the row, changes nothing
		for _, c := range []struct {
			name string
			want []string
		}{{"Unknown^Trauma", nil}, {"Stale^Name", nil}, {"Doe^John", []string{"1.2.1.1"}}} {
			if got := instanceUIDs(t, s, "PatientName="+url.QueryEscape(c.name)); !slices.Equal(got, c.want) {
				t.Errorf("PatientName=%s finds %v, want %v", c.name, got, c.want)
			}
		}
		if n, err := s.Count(ctx); err != nil || n != 1 {
			t.Fatalf("Count %d %v, want 1", n, err)
		}
	})

	t.Run("every key, its wildcards and its ranges", func(t *testing.T) {
		s := newStore(t)
		put(t, s, fixture(now)...)
		a := []string{"1.1.1.1", "1.1.1.2", "1.1.2.1"}
		for _, c := range []struct {
			query string
			want  []string // SOP Instance UIDs, in any order
		}{
			{"", all},
			{"PatientName=", all}, // an empty value matches everything
			{"PatientName=Doe%5EJohn", a},
			{"PatientName=Doe*", a}, // not doe^jane: case-sensitive
			{"PatientName=doe*", []string{"1.3.1.1"}},
			{"PatientName=Doe%5EJ%3Fhn", a},
			{"PatientName=*John*", append(slices.Clone(a), "1.4.1.1")},
			{"PatientName=doe%5Ejohn", nil},
			{"PatientName=M%C3%BCller%5EHans", []string{"1.2.1.1"}},
			{"PatientName=m%C3%BCller", nil},
			{"PatientName=M%3Fller%5EHans", []string{"1.2.1.1"}}, // '?' is one character, not one byte
			{"00100010=Doe%5EJohn", a},                           // by tag
			{"PatientID=P-1", a},
			{"PatientID=p-1", nil},
			{"PatientID=P-1&fuzzymatching=true", a},
			{"PatientID=p-1&fuzzymatching=true", nil}, // fuzzy is for names only
			// LIKE's and GLOB's metacharacters stand for themselves.
			{"PatientID=50%25_off", []string{"1.2.1.1"}},
			{"PatientID=50%25*", []string{"1.2.1.1", "1.4.1.1"}},
			{"PatientID=50%3F_off", []string{"1.2.1.1"}},
			{"PatientID=50__off", nil},
			{"PatientID=*_off", []string{"1.2.1.1", "1.3.1.1"}},
			{"PatientID=5_%25_off", nil},
			{"PatientID=50_*", nil},      // '_' is no LIKE wildcard
			{"PatientID=5%25*", nil},     // nor '%'
			{"PatientID=50%25%25*", nil}, // "50%%…" literally
			{"AccessionNumber=A%5CB", []string{"1.3.1.1"}},
			{"AccessionNumber=A%5C*", []string{"1.3.1.1"}},
			{"AccessionNumber=A%5C%5CB", nil},
			{"AccessionNumber=ACC%3F", []string{"1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1", "1.4.1.1"}},
			{"AccessionNumber=ACC", nil},
			{"StudyDescription=x%5B1%5D", []string{"1.3.1.1"}},
			{"StudyDescription=x%5B1%5D*", []string{"1.3.1.1"}},
			{"StudyDescription=*%5B1%5D", []string{"1.3.1.1"}},
			{"StudyDescription=x%5B1-2%5D", nil},
			{"StudyDescription=*Chest", append(slices.Clone(a), "1.4.1.1")},
			{"StudyDescription=chest", nil},
			{"StudyDescription=*", all},
			{"StudyDate=20240105", append(slices.Clone(a), "1.4.1.1")},
			{"StudyDate=20230101-20231231", []string{"1.2.1.1"}},
			{"StudyDate=20240101-", append(slices.Clone(a), "1.4.1.1")},
			{"StudyDate=-20231231", []string{"1.2.1.1"}}, // not the study without a date
			{"StudyDate=20230310-20240105", append(slices.Clone(a), "1.2.1.1", "1.4.1.1")},
			{"StudyDate=20240106-", nil},
			{"StudyTime=1000-1100", a},
			{"StudyTime=-09", []string{"1.2.1.1"}},
			{"StudyTime=1015", a},
			{"StudyTime=1016-", []string{"1.4.1.1"}},
			{"StudyInstanceUID=1.1%5C1.3", append(slices.Clone(a), "1.3.1.1")},
			{"StudyInstanceUID=1.1&StudyInstanceUID=1.2", append(slices.Clone(a), "1.2.1.1")},
			{"StudyInstanceUID=1", nil},
			{"0020000D=1.2", []string{"1.2.1.1"}},
			{"SeriesInstanceUID=1.1.2", []string{"1.1.2.1"}},
			{"SOPInstanceUID=1.1.1.2%5C1.4.1.1", []string{"1.1.1.2", "1.4.1.1"}},
			{"SOPClassUID=" + mrImage, []string{"1.2.1.1"}},
			{"Modality=CT", []string{"1.1.1.1", "1.1.1.2", "1.3.1.1"}},
			{"Modality=C%3F", []string{"1.1.1.1", "1.1.1.2", "1.3.1.1"}},
			{"Modality=ct", nil},
			{"Modality=CT%5CSR", []string{"1.1.1.1", "1.1.1.2", "1.1.2.1", "1.3.1.1"}},
			{"SeriesNumber=2", []string{"1.1.2.1"}},
			{"InstanceNumber=2", []string{"1.1.1.2"}},
			{"InstanceNumber=1%5C5", []string{"1.1.1.1", "1.1.2.1", "1.3.1.1", "1.4.1.1"}},
			{"PatientName=Doe%5EJohn&Modality=SR", []string{"1.1.2.1"}},
			{"PatientName=Doe*&StudyDate=-20231231", nil},
		} {
			t.Run(c.query, func(t *testing.T) {
				got := instanceUIDs(t, s, c.query)
				slices.Sort(got)
				want := slices.Clone(c.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("found %v, want %v", got, want)
				}
			})
		}
	})

	t.Run("fuzzy names fold case and match the start of any component", func(t *testing.T) {
		s := newStore(t)
		put(t, s, fixture(now)...)
		for _, c := range []struct {
			name string
			want []string
		}{
			{"doe^john", []string{"1.1"}},
			{"DOE", []string{"1.1", "1.3"}},
			{"john", []string{"1.1", "1.4"}}, // Doe^John, Roe^Richard^Johnny
			{"ohn", nil},
			{"doe^j", []string{"1.1", "1.3"}},
			{"müller", []string{"1.2"}},
			{"MÜLLER", []string{"1.2"}},
			{"hans", []string{"1.2"}},
			{"j*e", []string{"1.3"}},
			{"r?chard", []string{"1.4"}},
			{"50%", nil},
		} {
			if got := studyUIDs(t, s, "fuzzymatching=true&PatientName="+url.QueryEscape(c.name)); !slices.Equal(got, c.want) {
				t.Errorf("fuzzy %q finds %v, want %v", c.name, got, c.want)
			}
		}
	})

	t.Run("a study matches by any instance and counts all of them", func(t *testing.T) {
		s := newStore(t)
		put(t, s, fixture(now)...)
		studies := search(t, s.SearchStudies, catalog.StudyLevel, "ModalitiesInStudy=SR")
		if len(studies) != 1 {
			t.Fatalf("ModalitiesInStudy=SR: %d studies", len(studies))
		}
		st := studies[0]
		if st.Representative.StudyInstanceUID != "1.1" || st.Series != 2 || st.Instances != 3 ||
			!slices.Equal(st.Modalities, []string{"CT", "SR"}) || st.Representative.SOPInstanceUID != "1.1.2.1" {
			t.Fatalf("study 1.1: %d series, %d instances, modalities %v, representative %s", st.Series, st.Instances,
				st.Modalities, st.Representative.SOPInstanceUID)
		}
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"", []string{"1.1", "1.4", "1.2", "1.3"}}, // newest first, then by UID; no date last
			{"ModalitiesInStudy=CT", []string{"1.1", "1.3"}},
			{"ModalitiesInStudy=CT%5CMR", []string{"1.1", "1.2", "1.3"}},
			{"ModalitiesInStudy=M*", []string{"1.2"}},
			{"ModalitiesInStudy=XA", nil},
			{"PatientName=Doe%5EJohn", []string{"1.1"}},
			{"StudyDate=20240105", []string{"1.1", "1.4"}},
		} {
			if got := studyUIDs(t, s, c.query); !slices.Equal(got, c.want) {
				t.Errorf("%s finds %v, want %v", c.query, got, c.want)
			}
		}
		for _, st := range search(t, s.SearchStudies, catalog.StudyLevel, "ModalitiesInStudy=CT") {
			if st.Representative.StudyInstanceUID == "1.1" && (st.Instances != 3 || st.Series != 2 || len(st.Modalities) != 2) {
				t.Fatalf("study 1.1 found by CT counts only what matched: %+v", st)
			}
		}
		// A correction of one instance: the study is found by either name,
		// and shows the newest (its representative is the latest indexed).
		fixed := fixture(now)[0]
		fixed.PatientName, fixed.LedgerIndex = "Doe^Johnny", 100
		put(t, s, withAttributes(fixed))
		for _, name := range []string{"Doe^Johnny", "Doe^John"} {
			got := search(t, s.SearchStudies, catalog.StudyLevel, "PatientName="+url.QueryEscape(name))
			if len(got) != 1 || got[0].Representative.SOPInstanceUID != "1.1.1.1" || got[0].Representative.PatientName != "Doe^Johnny" {
				t.Fatalf("PatientName=%s after a correction: %+v", name, got)
			}
		}
		series := search(t, s.SearchSeries, catalog.SeriesLevel, "StudyInstanceUID=1.1&Modality=SR")
		if len(series) != 1 || series[0].Instances != 1 || series[0].Representative.SeriesInstanceUID != "1.1.2" {
			t.Fatalf("series of 1.1 with SR: %+v", series)
		}
		series = search(t, s.SearchSeries, catalog.SeriesLevel, "SeriesInstanceUID=1.1.1")
		if len(series) != 1 || series[0].Instances != 2 || series[0].Representative.SOPInstanceUID != "1.1.1.1" {
			t.Fatalf("series 1.1.1 counts all of its instances, shows the newest: %+v", series)
		}
	})

	t.Run("series and instances in order, paged", func(t *testing.T) {
		s := newStore(t)
		put(t, s, fixture(now)...)
		put(t, s, ordering(now)...)
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"", []string{"1.1.1", "5.10", "5.9", "1.1.2", "1.3.1", "1.4.1", "1.2.1", "5.1"}},
			{"StudyInstanceUID=5", []string{"5.10", "5.9", "5.1"}},
			{"Modality=CT", []string{"1.1.1", "1.3.1"}},
			{"StudyInstanceUID=5&limit=2", []string{"5.10", "5.9"}},
			{"StudyInstanceUID=5&limit=2&offset=2", []string{"5.1"}},
			{"StudyInstanceUID=5&offset=3", nil},
		} {
			var got []string
			for _, se := range search(t, s.SearchSeries, catalog.SeriesLevel, c.query) {
				got = append(got, se.Representative.SeriesInstanceUID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("series %q: %v, want %v", c.query, got, c.want)
			}
		}
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"StudyInstanceUID=5", []string{"5.1.1", "5.10.1", "5.9.2", "5.9.3", "5.9.1"}},
			{"StudyInstanceUID=5&limit=2&offset=1", []string{"5.10.1", "5.9.2"}},
			{"StudyInstanceUID=5&SeriesInstanceUID=5.9", []string{"5.9.2", "5.9.3", "5.9.1"}},
		} {
			if got := instanceUIDs(t, s, c.query); !slices.Equal(got, c.want) {
				t.Errorf("instances %q: %v, want %v", c.query, got, c.want)
			}
		}
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"limit=2", []string{"1.1", "1.4"}},
			{"limit=2&offset=1", []string{"1.4", "1.2"}},
			{"limit=2&offset=4", []string{"5"}},
			{"offset=5", nil},
			{"StudyInstanceUID=1.2%5C1.4", []string{"1.4", "1.2"}},
		} {
			if got := studyUIDs(t, s, c.query); !slices.Equal(got, c.want) {
				t.Errorf("studies %q: %v, want %v", c.query, got, c.want)
			}
		}
		var st []catalog.Study
		st = search(t, s.SearchStudies, catalog.StudyLevel, "StudyInstanceUID=5")
		if len(st) != 1 || st[0].Series != 3 || st[0].Instances != 5 || !slices.Equal(st[0].Modalities, []string{"MR"}) {
			t.Fatalf("study 5: %+v", st)
		}
		// Without a limit of its own (a query not from ParseQuery), all.
		got, err := s.SearchInstances(ctx, catalog.Query{Level: catalog.InstanceLevel})
		if err != nil || len(got) != len(all)+5 {
			t.Fatalf("an unlimited query: %d, %v", len(got), err)
		}
	})

	t.Run("a study's entries in order", func(t *testing.T) {
		s := newStore(t)
		put(t, s, fixture(now)...)
		put(t, s, ordering(now)...)
		for _, c := range []struct {
			study, series string
			want          []string
		}{
			{"5", "", []string{"5.10.1", "5.9.2", "5.9.3", "5.9.1", "5.1.1"}},
			{"5", "5.9", []string{"5.9.2", "5.9.3", "5.9.1"}},
			{"1.1", "", []string{"1.1.1.1", "1.1.1.2", "1.1.2.1"}},
			{"1.1", "5.9", nil},
			{"9.9", "", nil},
		} {
			es, err := s.Entries(ctx, c.study, c.series)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.SOPInstanceUID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Entries(%q, %q): %v, want %v", c.study, c.series, got, c.want)
			}
		}
		es, _ := s.Entries(ctx, "1.1", "1.1.2")
		if len(es) != 1 {
			t.Fatalf("Entries of one series: %d", len(es))
		}
		want := fixture(now)[2]
		if string(es[0].Attributes) != "{}" {
			t.Fatalf("Entries returned the attributes: %s", es[0].Attributes)
		}
		want.Attributes = es[0].Attributes
		sameEntry(t, es[0], want)
	})

	t.Run("reset empties, count counts", func(t *testing.T) {
		s := newStore(t)
		if n, err := s.Count(ctx); err != nil || n != 0 {
			t.Fatalf("a new store counts %d %v", n, err)
		}
		put(t, s, fixture(now)...)
		if n, err := s.Count(ctx); err != nil || n != int64(len(all)) {
			t.Fatalf("Count %d %v, want %d", n, err, len(all))
		}
		if err := s.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Count(ctx); err != nil || n != 0 {
			t.Fatalf("after Reset: Count %d %v", n, err)
		}
		if _, err := s.Entry(ctx, "1.1.1.1"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("after Reset: Entry %v", err)
		}
		if got := studyUIDs(t, s, ""); len(got) != 0 {
			t.Fatalf("after Reset: studies %v", got)
		}
		put(t, s, fixture(now)[0]) // a rebuild writes again
		if n, _ := s.Count(ctx); n != 1 {
			t.Fatalf("after a rebuild's first entry: Count %d", n)
		}
	})
}

// all is every instance of fixture.
var all = []string{"1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1", "1.3.1.1", "1.4.1.1"}

// fixture: four studies whose values exercise every key.
//
//	1.1  Doe^John            P-1       ACC1  20240105 101500  CT Chest   CT series 1 (2 instances), SR series 2
//	1.2  Müller^Hans         50%_off   ACC2  20230310 083000  MR Brain   MR series and instance without numbers
//	1.3  doe^jane            50ab_off  A\B   (none)   (none)  x[1]       CT series 3
//	1.4  Roe^Richard^Johnny  50%Xoff   ACC4  20240105 120000  Chest      OT series 4
func fixture(now time.Time) []catalog.Entry {
	type study struct {
		uid, name, pid, acc, date, time, desc string
	}
	a := study{"1.1", "Doe^John", "P-1", "ACC1", "20240105", "101500", "CT Chest"}
	b := study{"1.2", "Müller^Hans", "50%_off", "ACC2", "20230310", "083000", "MR Brain"}
	c := study{"1.3", "doe^jane", "50ab_off", `A\B`, "", "", "x[1]"}
	d := study{"1.4", "Roe^Richard^Johnny", "50%Xoff", "ACC4", "20240105", "120000", "Chest"}
	mk := func(st study, series, sop, class, modality string, seriesNo, instNo *int, index uint64) catalog.Entry {
		return withAttributes(catalog.Entry{
			StudyInstanceUID: st.uid, SeriesInstanceUID: series, SOPInstanceUID: sop, SOPClassUID: class,
			PatientName: st.name, PatientID: st.pid, AccessionNumber: st.acc, StudyDate: st.date, StudyTime: st.time,
			StudyDescription: st.desc, Modality: modality, SeriesNumber: seriesNo, InstanceNumber: instNo,
			TransferSyntaxUID: "1.2.840.10008.1.2.1", LedgerIndex: index, FileSHA256: fmt.Sprintf("%064d", index), IndexedAt: now,
		})
	}
	return []catalog.Entry{
		mk(a, "1.1.1", "1.1.1.1", ctImage, "CT", num(1), num(1), 1),
		mk(a, "1.1.1", "1.1.1.2", ctImage, "CT", num(1), num(2), 2),
		mk(a, "1.1.2", "1.1.2.1", srBasic, "SR", num(2), num(1), 3),
		mk(b, "1.2.1", "1.2.1.1", mrImage, "MR", nil, nil, 4),
		mk(c, "1.3.1", "1.3.1.1", ctImage, "CT", num(3), num(1), 5),
		mk(d, "1.4.1", "1.4.1.1", ctImage, "OT", num(4), num(5), 6),
	}
}

// ordering: one undated study whose series and instance numbers tie,
// repeat and are missing, and whose UIDs sort differently as numbers and
// as bytes ("5.10" < "5.9").
func ordering(now time.Time) []catalog.Entry {
	mk := func(series, sop string, seriesNo, instNo *int, index uint64) catalog.Entry {
		return withAttributes(catalog.Entry{StudyInstanceUID: "5", SeriesInstanceUID: series, SOPInstanceUID: sop,
			SOPClassUID: mrImage, PatientName: "Order^Test", Modality: "MR", SeriesNumber: seriesNo, InstanceNumber: instNo,
			LedgerIndex: index, IndexedAt: now})
	}
	return []catalog.Entry{
		mk("5.9", "5.9.3", num(1), num(2), 50),
		mk("5.9", "5.9.1", num(1), nil, 51),
		mk("5.9", "5.9.2", num(1), num(2), 52),
		mk("5.10", "5.10.1", num(1), num(1), 53),
		mk("5.1", "5.1.1", nil, num(1), 54),
	}
}

// withAttributes sets e's Attributes to a DICOM JSON object of its keys,
// as an indexer would store them.
func withAttributes(e catalog.Entry) catalog.Entry {
	obj := map[string]any{}
	str := func(tag, vr, v string) {
		if v != "" {
			obj[tag] = map[string]any{"vr": vr, "Value": []string{v}}
		}
	}
	str("0020000D", "UI", e.StudyInstanceUID)
	str("0020000E", "UI", e.SeriesInstanceUID)
	str("00080018", "UI", e.SOPInstanceUID)
	str("00080016", "UI", e.SOPClassUID)
	str("00100020", "LO", e.PatientID)
	str("00080050", "SH", e.AccessionNumber)
	str("00080020", "DA", e.StudyDate)
	str("00080030", "TM", e.StudyTime)
	str("00081030", "LO", e.StudyDescription)
	str("00080060", "CS", e.Modality)
	if e.PatientName != "" {
		obj["00100010"] = map[string]any{"vr": "PN", "Value": []any{map[string]string{"Alphabetic": e.PatientName}}}
	}
	for tag, n := range map[string]*int{"00200011": e.SeriesNumber, "00200013": e.InstanceNumber} {
		if n != nil {
			obj[tag] = map[string]any{"vr": "IS", "Value": []int{*n}}
		}
	}
	e.Attributes, _ = json.Marshal(obj)
	return e
}

func put(t *testing.T, s catalog.Store, es ...catalog.Entry) {
	t.Helper()
	for _, e := range es {
		if err := s.PutEntry(context.Background(), e); err != nil {
			t.Fatalf("PutEntry %s: %v", e.SOPInstanceUID, err)
		}
	}
}

// search parses query for level and runs it with fn.
func search[T any](t *testing.T, fn func(context.Context, catalog.Query) ([]T, error), level catalog.Level, query string) []T {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, err := catalog.ParseQuery(level, v)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	got, err := fn(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if got == nil {
		t.Fatalf("%s: a nil list, want an empty one", query)
	}
	return got
}

func instanceUIDs(t *testing.T, s catalog.Store, query string) []string {
	t.Helper()
	var out []string
	for _, e := range search(t, s.SearchInstances, catalog.InstanceLevel, query) {
		out = append(out, e.SOPInstanceUID)
	}
	return out
}

func studyUIDs(t *testing.T, s catalog.Store, query string) []string {
	t.Helper()
	var out []string
	for _, st := range search(t, s.SearchStudies, catalog.StudyLevel, query) {
		out = append(out, st.Representative.StudyInstanceUID)
	}
	return out
}

func sameEntry(t *testing.T, got, want catalog.Entry) {
	t.Helper()
	intEq := func(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	if !got.IndexedAt.Equal(want.IndexedAt) || string(got.Attributes) != string(want.Attributes) ||
		!intEq(got.SeriesNumber, want.SeriesNumber) || !intEq(got.InstanceNumber, want.InstanceNumber) {
		t.Fatalf("read back %+v\nput       %+v", got, want)
	}
	got.IndexedAt, got.Attributes, got.SeriesNumber, got.InstanceNumber = want.IndexedAt, want.Attributes, want.SeriesNumber, want.InstanceNumber
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read back %+v\nput       %+v", got, want)
	}
}
