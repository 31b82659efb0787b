package attest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
)

// Stream opens an instance for verified streaming. Its attestation is
// checked end to end and, for an attestation with a chunk tree (v3), the
// entry's chunk leaves against the attested root; then the first chunk is
// read and verified, all before it returns: an object of one chunk (most
// instances) is verified whole before anything is answered. The other
// chunks are checked as WriteTo sends them, each before any byte of it is
// written. A chunk that fails is EIntegrity (from Stream, or ending
// WriteTo), recorded after the whole stored copy was read again. The first
// byte waits for one chunk, never for the whole object, and nothing is
// spooled.
//
// An attestation made before chunk trees is verified whole first (as
// Retrieve does) and then sent.
//
// Errors are Retrieve's.
func (s *Service) Stream(ctx context.Context, sopInstanceUID string, revision *uint64) (*Retrieved, error) {
	att, err := s.versionAttestation(ctx, sopInstanceUID, revision)
	if err != nil {
		return nil, err
	}
	if att.chunks == nil {
		return s.retrieveWhole(ctx, att)
	}
	entry := ledger.Entry{Index: att.LedgerIndex, Subject: att.SOPInstanceUID, FileSHA256: att.Digests[DigestFile]}
	leaves, err := att.leaves()
	if err == nil {
		err = att.chunks.Check(att.Size, leaves)
	}
	if err != nil {
		return nil, s.integrityFailure(ctx, entry, ReasonAttestationInvalid, "", err)
	}
	rc, err := s.openStored(ctx, att, entry)
	if err != nil {
		return nil, err
	}
	v, err := chunks.NewVerifier(rc, att.Size, att.chunks.ChunkSize, leaves)
	if err != nil {
		rc.Close()
		return nil, s.integrityFailure(ctx, entry, ReasonAttestationInvalid, "", err)
	}
	first, err := v.Next()
	if err != nil {
		v.Close()
		rc.Close()
		return nil, s.streamFailed(ctx, att, err)
	}
	r := &Retrieved{Attestation: att, limits: s.Limits, stream: rc, verifier: v, first: first, svc: s, ctx: ctx, size: att.Size}
	copy(r.SHA256[:], hexBytes(entry.FileSHA256))
	return r, nil
}

// leaves are the attested chunk tree's leaves: the entry's list, or for
// an object of one chunk the root itself.
func (a *Attestation) leaves() ([][32]byte, error) {
	if a.chunkList == "" {
		var root [32]byte
		b := hexBytes(a.chunks.Root)
		if len(b) != 32 || a.chunks.Count != 1 {
			return nil, fmt.Errorf("%w: the entry lists no leaves for %d chunks", chunks.ErrMismatch, a.chunks.Count)
		}
		copy(root[:], b)
		return [][32]byte{root}, nil
	}
	return chunks.Decode(a.chunkList)
}

// streamTo sends a streaming Retrieved's bytes, verified chunk by chunk.
func (r *Retrieved) streamTo(w io.Writer) (int64, error) {
	if r.verifier == nil {
		return 0, errors.New("attest: a streaming Retrieved is written once")
	}
	first := r.first
	r.first = nil
	n, err := r.verifier.WriteTo(w, first)
	r.release()
	return n, r.svc.streamFailed(r.ctx, r.Attestation, err)
}

// release gives back the stream and the chunk buffer.
func (r *Retrieved) release() error {
	if r.verifier == nil {
		return nil
	}
	r.verifier.Close()
	r.verifier, r.first = nil, nil
	return r.stream.Close()
}

// streamFailed answers an error while streaming: a chunk that failed is
// an integrity failure, recorded after the whole stored copy was read
// again, so that it says what the store holds (missing, altered,
// unreadable) as a whole-object check would have. Other errors (the
// client went away) pass through: the object is not in question.
func (s *Service) streamFailed(ctx context.Context, att *Attestation, err error) error {
	var ce *chunks.ChunkError
	if !errors.As(err, &ce) {
		return err
	}
	if ctx.Err() != nil && !errors.Is(ce, chunks.ErrMismatch) {
		// The request ended (the client went away) and the read with it:
		// nothing says anything about the copy.
		return storageError(ce)
	}
	entry := ledger.Entry{Index: att.LedgerIndex, Subject: att.SOPInstanceUID, FileSHA256: att.Digests[DigestFile]}
	ctx = detached(ctx) // the client may be gone; a failure must be recorded
	outcome, observed, _, _, rerr := s.readBack(ctx, entry.FileSHA256, att.Size, nil)
	switch {
	case rerr != nil:
		// The store cannot be read at all now: an outage, not evidence.
		return storageError(errors.Join(ce, rerr))
	case outcome == fixity.OK && !errors.Is(ce, chunks.ErrMismatch):
		// A read broke off, and the copy is whole: the store faltered.
		return storageError(ce)
	case outcome == fixity.OK:
		// The store served bytes that failed, and now serves the attested
		// ones: what it hands out cannot be trusted, which is recorded.
		s.checkSeries(att)
		return s.integrityFailure(ctx, entry, ReasonUnreadable, "", ce)
	}
	s.checkSeries(att)
	return s.integrityFailure(ctx, entry, outcomeReason[outcome], observed, ce)
}

// hexBytes decodes the hex of a verified statement; nil when it is not hex.
func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}
