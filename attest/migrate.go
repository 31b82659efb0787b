package attest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
	"github.com/dicomseal/dicomseal/store"
)

// Migration is one object's copy to another store.
type Migration struct {
	SOPInstanceUID string
	SHA256         string
	Size           int64
	// Copied is false when the destination already held the verified
	// bytes (a resumed migration whose entry was not yet written).
	Copied bool
	// Outcome is the source object's fixity outcome: anything but OK
	// means it was not copied (a failure is recorded as an integrity
	// failure; UNCHECKED, an attestation this server cannot check, is
	// not); "" for an entry without an object by design.
	Outcome string
	Entry   ledger.Entry
}

// MigrateObject copies the object of attesting entry e to the store to,
// checking it against the signed attestation on both sides: the source's
// bytes before the copy, the destination's read back after it. It records
// a storage-migration entry naming both stores (fromDesc, toDesc: never a
// credential). A damaged source is not copied: its outcome is recorded as
// an integrity failure, as a scrub would.
func (s *Service) MigrateObject(ctx context.Context, e ledger.Entry, to ObjectStore, fromDesc, toDesc, actor string) (*Migration, error) {
	// The source first, as a scrub checks it: a damaged object is
	// recorded and not copied.
	f, _, ok, err := s.CheckStored(ctx, e, nil)
	if err != nil {
		return nil, fmt.Errorf("the source store: %w", err)
	}
	m := &Migration{SOPInstanceUID: e.Subject, SHA256: f.ExpectedSHA256, Size: f.ExpectedSize, Outcome: f.Outcome}
	if !ok {
		m.Outcome = "" // no object by design: nothing to move
		return m, nil
	}
	if f.Outcome != fixity.OK {
		return m, nil // damaged (recorded), or UNCHECKED (not verifiable here): not copied
	}
	sha, size := f.ExpectedSHA256, f.ExpectedSize
	dst := &Service{store: to, log: s.log}
	// Already there and intact (a migration killed between the copy and
	// its entry): recorded without copying again.
	intact, err := dst.holdsIntact(ctx, sha, size)
	if err != nil {
		return nil, fmt.Errorf("the destination store: %w", err)
	}
	if !intact {
		rc, err := s.store.Get(ctx, sha)
		if err != nil {
			return nil, fmt.Errorf("read %s from the source store: %w", sha, err)
		}
		sp, err := spool.Fill(s.SpoolDir, s.SpoolMemory, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s from the source store: %w", sha, err)
		}
		defer sp.Close()
		if got := sp.SHA256Hex(); got != sha || sp.Size() != size {
			// Changed since it was checked a moment ago: not copied, and
			// recorded as a scrub would.
			m.Outcome = fixity.DigestMismatch
			if sp.Size() != size {
				m.Outcome = fixity.SizeMismatch
			}
			s.integrityFailure(ctx, ledger.Entry{Index: e.Index, Subject: e.Subject, FileSHA256: sha}, ReasonAltered, got, nil)
			s.securityAlert(ctx, fixity.Failure{SOPInstanceUID: e.Subject, IngestIndex: e.Index, Outcome: m.Outcome,
				ExpectedSHA256: sha, ObservedSHA256: got, ExpectedSize: size, ObservedSize: sp.Size()})
			return m, nil
		}
		if err := to.Replace(ctx, sha, sp.Reader(), size); err != nil {
			return nil, fmt.Errorf("write %s to the destination store: %w", sha, err)
		}
		m.Copied = true
		if outcome, observed, _, _, err := dst.readBack(ctx, sha, size, nil); err != nil || outcome != fixity.OK {
			return nil, fmt.Errorf("the copy of %s read back from the destination store: %s %s %v", sha, outcome, observed, err)
		}
	}
	es, err := s.ledger.AppendEvents(detached(ctx), []custody.Record{{
		Kind: custody.KindStorageMigration, Subject: e.Subject, FileSHA256: sha,
		Body: encodeBody(storageMigrationBody{entryHead: head(custody.KindStorageMigration, e.Subject),
			FileSHA256: sha, IngestIndex: e.Index, IngestEntryHash: e.LeafHashHex(), Size: size,
			FromStore: fromDesc, ToStore: toDesc, SourceSHA256: f.ObservedSHA256, DestinationSHA256: sha,
			Actor: actor, RecordedAt: s.Now().UTC()}),
	}})
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	m.Entry = es[0]
	return m, nil
}

// holdsIntact tells whether s's store holds the object sha, whole. Absent
// is the expected answer of a new store (not an outage, as for a scrub).
func (s *Service) holdsIntact(ctx context.Context, sha string, size int64) (bool, error) {
	h, n, err := s.readOnce(ctx, sha, size, nil)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n == size && hex.EncodeToString(h.Sum(nil)) == sha, nil
}

// MigratedTo reads a storage-migration entry: the object's digest and the
// store it went to (ok false for other kinds).
func MigratedTo(e ledger.Entry) (sha, toStore string, ok bool) {
	if e.Kind != custody.KindStorageMigration {
		return "", "", false
	}
	var b storageMigrationBody
	if json.Unmarshal(e.Body, &b) != nil {
		return "", "", false
	}
	return b.FileSHA256, b.ToStore, true
}
