package catalog

import (
	"encoding/json"
	"net/url"
	"strings"
)

// A result is a DICOM JSON object (PS3.18 F.2) as a map from tag to
// attribute: encoding/json writes a map's keys sorted, so the tags come in
// order. What it holds: the level's default attributes (PS3.18 Table
// 6.7.1-2, -2a, -2b) and those of the levels above it (a series found
// across studies needs its study's, PS3.18 10.6.3.3.1: a superset is
// always allowed), the query's matching keys, and the includefield tags —
// or every stored attribute with includefield=all — each as the
// representative stores it, left out where it has none; then what the
// catalog computes, which always wins: ModalitiesInStudy and the counts
// (IS), and RetrieveURL (UR).

// StudyJSON renders a study found by a search.
func StudyJSON(s Study, q Query, base string) map[string]json.RawMessage {
	r := s.Representative
	out := pick(r.Attributes, q, studyDefaults)
	out[tagKey(tagModalitiesInStudy)] = element("CS", s.Modalities)
	out[tagKey(tagNumberOfStudyRelatedSeries)] = count(s.Series)
	out[tagKey(tagNumberOfStudyRelatedInstances)] = count(s.Instances)
	out[tagKey(tagRetrieveURL)] = element("UR", []string{retrieveURL(base, r.StudyInstanceUID)})
	return out
}

// SeriesJSON renders a series found by a search.
func SeriesJSON(s Series, q Query, base string) map[string]json.RawMessage {
	r := s.Representative
	out := pick(r.Attributes, q, studyDefaults, seriesDefaults)
	out[tagKey(tagNumberOfSeriesRelatedInstances)] = count(s.Instances)
	out[tagKey(tagRetrieveURL)] = element("UR", []string{retrieveURL(base, r.StudyInstanceUID, r.SeriesInstanceUID)})
	return out
}

// InstanceJSON renders an instance found by a search.
func InstanceJSON(e Entry, q Query, base string) map[string]json.RawMessage {
	out := pick(e.Attributes, q, studyDefaults, seriesDefaults, instanceDefaults)
	out[tagKey(tagRetrieveURL)] = element("UR", []string{retrieveURL(base, e.StudyInstanceUID, e.SeriesInstanceUID, e.SOPInstanceUID)})
	return out
}

// pick copies the attributes a result shows from a stored DICOM JSON
// object. Stored keys are read in any case and written upper-case, as
// PS3.18 F.2.1.1 has them. Unreadable attributes read as none: the row is
// still found, with what the catalog knows of it.
func pick(attrs json.RawMessage, q Query, defaults ...[]uint32) map[string]json.RawMessage {
	var stored map[string]json.RawMessage
	json.Unmarshal(attrs, &stored)
	out := map[string]json.RawMessage{}
	if q.IncludeAll {
		for k, v := range stored {
			out[strings.ToUpper(k)] = v
		}
		return out
	}
	byKey := make(map[string]json.RawMessage, len(stored))
	for k, v := range stored {
		byKey[strings.ToUpper(k)] = v
	}
	want := func(tag uint32) {
		if v, ok := byKey[tagKey(tag)]; ok {
			out[tagKey(tag)] = v
		}
	}
	for _, tags := range defaults {
		for _, t := range tags {
			want(t)
		}
	}
	for _, m := range q.Matches {
		want(m.Key.Tag())
	}
	for _, t := range q.Include {
		want(t)
	}
	return out
}

// element is a DICOM JSON attribute of string values; none: no Value.
func element(vr string, values []string) json.RawMessage {
	a := struct {
		VR    string   `json:"vr"`
		Value []string `json:"Value,omitempty"`
	}{vr, values}
	b, _ := json.Marshal(a)
	return b
}

// count is an IS attribute: a number, as PS3.18 F.2.3 encodes IS.
func count(n int) json.RawMessage {
	b, _ := json.Marshal(struct {
		VR    string `json:"vr"`
		Value []int  `json:"Value"`
	}{"IS", []int{n}})
	return b
}

// retrieveURL is base/studies/{s}[/series/{se}[/instances/{i}]], each UID
// escaped as a path segment (a stored UID is not trusted to be digits).
func retrieveURL(base string, uids ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(base, "/"))
	for i, uid := range uids {
		b.WriteString([]string{"/studies/", "/series/", "/instances/"}[i])
		b.WriteString(url.PathEscape(uid))
	}
	return b.String()
}
