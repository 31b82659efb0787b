package attest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// What DICOMweb reads of an instance — its metadata, frames and bulk data
// — is read from the verified bytes of a Retrieved, never from the index
// or the store directly: a viewer is shown nothing that failed.

// ErrOtherStudy: a file stored to a study (STOW-RS /studies/{study})
// belongs to another study.
var ErrOtherStudy = errors.New("the instance belongs to another study")

// IngestToStudy is Ingest for a file that must belong to study: another
// study's file is refused (ErrOtherStudy, EInvalid) before a byte is
// stored or logged.
func (s *Service) IngestToStudy(ctx context.Context, body io.Reader, study string) (*IngestResult, error) {
	a, sp, err := s.receive(body)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	if got := a.Instance.StudyInstanceUID; got != study {
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidRequest, Err: ErrOtherStudy,
			Message: fmt.Sprintf("the instance's Study Instance UID %s is not the study stored to (%s)", got, study)}
	}
	return s.indexed(ctx, sp)(s.ingest(ctx, a, sp, true))
}

// Metadata is the verified instance's DICOM JSON data set.
func (r *Retrieved) Metadata(opt dicomfile.JSONOptions) (dicomfile.Dataset, error) {
	ds, err := r.limits.Metadata(r.spool, r.spool.Size(), opt)
	if err != nil {
		return nil, internal(fmt.Errorf("metadata of verified %s: %w", r.Attestation.SOPInstanceUID, err))
	}
	return ds, nil
}

// Frames locates the verified instance's frames. Errors: ENotFound when it
// has no Pixel Data.
func (r *Retrieved) Frames() (*dicomfile.Frames, error) {
	f, err := r.limits.Frames(r.spool, r.spool.Size())
	switch {
	case errors.Is(err, dicomfile.ErrNoPixelData):
		return nil, &Error{Code: ENotFound, Problem: ProblemNotFound, Err: err,
			Message: fmt.Sprintf("instance %s has no Pixel Data", r.Attestation.SOPInstanceUID)}
	case err != nil:
		return nil, &Error{Code: EInvalid, Problem: ProblemInvalidRequest, Err: err,
			Message: fmt.Sprintf("the frames of instance %s cannot be served: %v", r.Attestation.SOPInstanceUID, err)}
	}
	return f, nil
}

// BulkData is the stored value of a top-level element of the verified
// instance. Errors: ENotFound when it has no such element.
func (r *Retrieved) BulkData(tag uint32) (io.Reader, int64, error) {
	rd, n, err := r.limits.BulkData(r.spool, r.spool.Size(), tag)
	switch {
	case errors.Is(err, dicomfile.ErrNoSuchElement):
		return nil, 0, &Error{Code: ENotFound, Problem: ProblemNotFound, Err: err,
			Message: fmt.Sprintf("instance %s has no element %08X", r.Attestation.SOPInstanceUID, tag)}
	case err != nil:
		return nil, 0, internal(fmt.Errorf("bulk data %08X of verified %s: %w", tag, r.Attestation.SOPInstanceUID, err))
	}
	return rd, n, nil
}
