package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/problem"
)

// Catalog is the search index as ingest keeps it: an ordinary,
// correctable table beside the log (names and IDs are patient data, never
// logged), which the DICOMweb search reads. A new version's row is written
// in its append's transaction (custody.Record.Catalog); Catalog takes the
// rows of repeated ingests. A row of an older version never replaces a
// newer one's.
type Catalog interface {
	PutEntry(ctx context.Context, e catalog.Entry) error
	// Entries lists a study's instances (of one series, unless series is
	// ""): what a study transfer sends and a series check re-reads.
	Entries(ctx context.Context, study, series string) ([]catalog.Entry, error)
}

// catalogRow is a file's catalog row, for an append to write in its own
// transaction (custody.Record.Catalog): nil without a catalog, or for an
// instance DICOMweb cannot name (no study or series).
func (s *Service) catalogRow(ctx context.Context, uid, sha string, r io.ReaderAt, size int64) (*catalog.Entry, error) {
	if s.Catalog == nil {
		return nil, nil
	}
	e, err := CatalogEntry(s.Limits, r, size)
	if errors.Is(err, dicomfile.ErrLimitExceeded) {
		// Values the walk took, but too many to model: refused as a file
		// past a limit is, before anything is stored or logged.
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidDICOM, Message: err.Error(), Err: err}
	}
	if errors.Is(err, catalog.ErrNotIndexable) {
		// Attested all the same; DICOMweb has no URL to find it under.
		s.log.WarnContext(ctx, "instance not indexed for DICOMweb", "sop_instance_uid", uid, "reason", err.Error())
		return nil, nil
	}
	if err != nil {
		// The bytes were analysed and are about to be attested: a bug.
		return nil, internal(fmt.Errorf("catalog entry of %s: %w", uid, err))
	}
	e.FileSHA256, e.IndexedAt = sha, s.Now().UTC()
	return &e, nil
}

// index records in the catalog an instance whose bytes were attested
// before (a repeated ingest: no append, so no row rides along with one).
// It runs on every repeat, so that a retry heals a row lost or never
// written; until it succeeds the ingest is not answered 2xx.
func (s *Service) index(ctx context.Context, att *Attestation, r io.ReaderAt, size int64) error {
	if s.Catalog == nil {
		return nil
	}
	// Bytes of an earlier version re-stored: the row is the latest
	// version's, whose bytes are not these (a missing row waits for
	// `index rebuild`, rather than showing an old study or name).
	latest, err := s.ledger.InstanceBySOP(ctx, att.SOPInstanceUID)
	if err != nil {
		return unavailable(ProblemLedgerUnavailable, err)
	}
	if latest.Index != att.LedgerIndex {
		return nil
	}
	e, err := s.catalogRow(ctx, att.SOPInstanceUID, att.Digests[DigestFile], r, size)
	if e == nil || err != nil {
		return err
	}
	e.LedgerIndex = att.LedgerIndex
	if err := s.Catalog.PutEntry(ctx, *e); err != nil {
		return &Error{Code: EUnavailable, Problem: problem.IndexUnavailable,
			Message: "the instance is attested but the search index cannot record it now; retry the request", Err: err}
	}
	return nil
}

// A catalog row keeps at most maxCatalogAttributes of DICOM JSON.
const maxCatalogAttributes = 256 << 10

// CatalogEntry is the catalog's row of a file: its top-level attributes
// without bulk data, and the keys searches match. (Its ledger index and
// digest are the caller's to set.)
func CatalogEntry(l dicomfile.Limits, r io.ReaderAt, size int64) (catalog.Entry, error) {
	ds, err := l.Metadata(r, size, dicomfile.JSONOptions{})
	if err != nil {
		return catalog.Entry{}, err
	}
	attrs, err := json.Marshal(ds)
	if err != nil {
		return catalog.Entry{}, err
	}
	if len(attrs) > maxCatalogAttributes {
		// The row is read back by every includefield=all search: long
		// values (a report's text, a private blob) stay in the file, the
		// longest first, until the row fits.
		type sized struct {
			tag  string
			size int
		}
		var all []sized
		for k, a := range ds {
			b, _ := json.Marshal(a)
			all = append(all, sized{k, len(b)})
		}
		slices.SortFunc(all, func(a, b sized) int { return b.size - a.size })
		slim, total := maps.Clone(ds), len(attrs)
		for _, a := range all {
			if total <= maxCatalogAttributes {
				break
			}
			delete(slim, a.tag)
			total -= a.size
		}
		if attrs, err = json.Marshal(slim); err != nil {
			return catalog.Entry{}, err
		}
	}
	// The keys are read from the data set at hand, not decoded back from
	// the JSON just written.
	return catalog.NewEntry(attrs, func(tag uint32) string { return firstValue(ds[fmt.Sprintf("%08X", tag)]) })
}

// firstValue is an attribute's first value as text, as catalog.NewEntry
// takes it.
func firstValue(a *dicomfile.Attribute) string {
	if a == nil || len(a.Value) == 0 {
		return ""
	}
	switch v := a.Value[0].(type) {
	case string:
		return v
	case dicomfile.PersonName:
		return v.Alphabetic
	case *dicomfile.PersonName:
		return v.Alphabetic
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}
