package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5"
)

// QIDO-RS searches the catalog. No match is 200 with an empty array (as
// Orthanc answers; PS3.18 also allows 204, which Orthanc's client reads as
// an error). The audit trail records what was searched for from the
// parsed query (catalog.Query.Audit: canonical keywords, patient keys'
// values redacted), never the raw query string: the audit log is
// immutable, names are patient data, and a key may be spelled in any case.
// A refused query is recorded by its size alone.

// qido answers a search at level; the URL's own UIDs (studies/{study}/
// series) constrain it as matching keys would.
func (s *Server) qido(level catalog.Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		// Until the query (and the path's UIDs) are read, the route's
		// pattern stands for the path: a refused segment may be anything.
		noteObject(r, fmt.Sprintf("%s?(refused: %d parameters)", chi.RouteContext(r.Context()).RoutePattern(), len(v)))
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
		noteObject(r, r.URL.Path+"?"+q.Audit())
		if !acceptsJSON(r.Header.Get("Accept")) {
			s.writeError(w, r, notAcceptable("search results are answered as application/dicom+json"))
			return
		}
		if s.Catalog == nil {
			s.writeError(w, r, attest.Errorf(attest.ENotFound, problem.RouteNotFound, "this server keeps no DICOMweb index"))
			return
		}
		base := s.dicomwebBase(r)
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
