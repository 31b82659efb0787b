package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/problem"
)

// Catalog is the search index as ingest keeps it: an ordinary,
// correctable table beside the log (names and IDs are patient data, never
// logged), which the DICOMweb search reads. A row of an older version
// never replaces a newer one's.
type Catalog interface {
	PutEntry(ctx context.Context, e catalog.Entry) error
}

// index records an attested instance in the catalog. It runs on every
// successful ingest, a repeated one included, so that a retry after an
// index failure heals the row; until it succeeds the ingest is not
// answered 2xx (an instance the viewer cannot find is not done).
func (s *Service) index(ctx context.Context, att *Attestation, r io.ReaderAt, size int64) error {
	if s.Catalog == nil {
		return nil
	}
	e, err := CatalogEntry(s.Limits, r, size)
	if errors.Is(err, catalog.ErrNotIndexable) {
		// Attested all the same; DICOMweb has no URL to find it under.
		s.log.WarnContext(ctx, "instance not indexed for DICOMweb", "sop_instance_uid", att.SOPInstanceUID, "reason", err.Error())
		return nil
	}
	if err != nil {
		// The bytes were analysed and attested: failing here is a bug.
		return internal(fmt.Errorf("catalog entry of %s: %w", att.SOPInstanceUID, err))
	}
	e.LedgerIndex, e.FileSHA256, e.IndexedAt = att.LedgerIndex, att.Digests[DigestFile], s.Now().UTC()
	if err := s.Catalog.PutEntry(ctx, e); err != nil {
		return &Error{Code: EUnavailable, Problem: problem.IndexUnavailable,
			Message: "the instance is attested but the search index cannot record it now; retry the request", Err: err}
	}
	return nil
}

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
	return catalog.FromJSON(attrs)
}
