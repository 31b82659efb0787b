package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5"
)

// QIDO-RS searches the catalog. No match is 200 with an empty array (as
// Orthanc answers; PS3.18 also allows 204, which some clients read as an
// error). The audit trail records the query string with the values of
// patient keys redacted: the audit log is immutable, and names are
// patient data.

// patientKeys are the matching keys whose values the audit trail does not
// keep, by keyword and by tag.
var patientKeys = map[string]bool{
	"PatientName": true, "00100010": true, "PatientID": true, "00100020": true,
	"PatientBirthDate": true, "00100030": true, "AccessionNumber": true, "00080050": true,
	"StudyDescription": true, "00081030": true, "ReferringPhysicianName": true, "00080090": true,
}

// auditQuery is the query string as the audit trail keeps it.
func auditQuery(path string, v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, val := range v[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			if patientKeys[k] && val != "" {
				val = "(redacted)"
			}
			b.WriteString(url.QueryEscape(val))
		}
	}
	if b.Len() == 0 {
		return path
	}
	return path + "?" + b.String()
}

// qido answers a search at level; the URL's own UIDs (studies/{study}/
// series) constrain it as matching keys would.
func (s *Server) qido(level catalog.Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		noteObject(r, auditQuery(r.URL.Path, v))
		if !acceptsJSON(r.Header.Get("Accept")) {
			s.writeError(w, r, notAcceptable("search results are answered as application/dicom+json"))
			return
		}
		for param, key := range map[string]string{"study": "StudyInstanceUID", "series": "SeriesInstanceUID"} {
			if chi.URLParam(r, param) == "" {
				continue
			}
			uids, err := uidParams(r, param)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			v.Set(key, uids[0])
		}
		q, err := catalog.ParseQuery(level, v)
		if err != nil {
			s.writeError(w, r, &attest.Error{Code: attest.EInvalid, Problem: problem.InvalidQuery, Message: err.Error(), Err: err})
			return
		}
		if s.Catalog == nil {
			s.writeError(w, r, attest.Errorf(attest.ENotFound, problem.RouteNotFound, "this server keeps no DICOMweb index"))
			return
		}
		base := dicomwebBase(r)
		out := []map[string]json.RawMessage{}
		switch level {
		case catalog.StudyLevel:
			found, err := s.Catalog.SearchStudies(r.Context(), q)
			if err != nil {
				s.writeError(w, r, s.catalogError(err))
				return
			}
			for _, f := range found {
				out = append(out, catalog.StudyJSON(f, q, base))
			}
		case catalog.SeriesLevel:
			found, err := s.Catalog.SearchSeries(r.Context(), q)
			if err != nil {
				s.writeError(w, r, s.catalogError(err))
				return
			}
			for _, f := range found {
				out = append(out, catalog.SeriesJSON(f, q, base))
			}
		default:
			found, err := s.Catalog.SearchInstances(r.Context(), q)
			if err != nil {
				s.writeError(w, r, s.catalogError(err))
				return
			}
			for _, f := range found {
				out = append(out, catalog.InstanceJSON(f, q, base))
			}
		}
		writeDICOMJSON(w, http.StatusOK, out)
	}
}
