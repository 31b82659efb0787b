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
	"github.com/dicomseal/dicomseal/store"
)

// Stream opens an instance for verified streaming. Its attestation is
// checked end to end and, for an attestation with a chunk tree (v3), the
// entry's chunk leaves against the attested root, before it returns; the
// bytes are then checked chunk by chunk as WriteTo sends them, each chunk
// before any byte of it is written. A chunk that fails ends WriteTo with
// EIntegrity, the failure recorded after the whole stored copy was read
// again. The first byte waits for one chunk, never for the whole object,
// and nothing is spooled.
//
// An attestation made before chunk trees is verified whole first (as
// Retrieve does) and then sent.
//
// Errors are Retrieve's.
func (s *Service) Stream(ctx context.Context, sopInstanceUID string, revision *uint64) (*Retrieved, error) {
	var att *Attestation
	var err error
	if revision != nil {
		att, err = s.revisionAttestation(ctx, sopInstanceUID, *revision)
	} else {
		att, err = s.verifiedAttestation(ctx, sopInstanceUID)
	}
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
	rc, err := s.store.Get(ctx, entry.FileSHA256)
	if errors.Is(err, store.ErrNotFound) {
		s.checkSeries(att)
		return nil, s.integrityFailure(ctx, entry, ReasonMissing, "", err)
	}
	if err != nil {
		return nil, storageError(err)
	}
	r := &Retrieved{Attestation: att, limits: s.Limits, stream: rc, leaves: leaves, svc: s, ctx: ctx, size: att.Size}
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
	defer r.stream.Close()
	n, err := chunks.Copy(w, r.stream, r.size, r.Attestation.chunks.ChunkSize, r.leaves)
	var ce *chunks.ChunkError
	if !errors.As(err, &ce) {
		return n, err // nil, or the client went away: the object is not in question
	}
	return n, r.svc.chunkFailed(r.ctx, r.Attestation, ce)
}

// chunkFailed answers a chunk that failed while streaming: the whole
// stored copy is read again, so that the failure recorded says what the
// store holds (missing, altered, unreadable), as a whole-object check
// would have.
func (s *Service) chunkFailed(ctx context.Context, att *Attestation, ce *chunks.ChunkError) error {
	entry := ledger.Entry{Index: att.LedgerIndex, Subject: att.SOPInstanceUID, FileSHA256: att.Digests[DigestFile]}
	s.checkSeries(att)
	ctx = detached(ctx) // the client may be gone; the failure must be recorded
	outcome, observed, _, _, err := s.readBack(ctx, entry.FileSHA256, att.Size, nil)
	switch {
	case err != nil:
		return s.integrityFailure(ctx, entry, ReasonUnreadable, "", errors.Join(ce, err))
	case outcome == fixity.OK:
		// Whole and intact now: what failed was the read, not the copy.
		return s.integrityFailure(ctx, entry, ReasonUnreadable, "", ce)
	}
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
