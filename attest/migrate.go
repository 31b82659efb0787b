package attest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
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
	// means it was not copied (and an integrity failure was recorded).
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
	pred, _, err := s.openPredicate(e)
	if err != nil {
		return nil, s.integrityFailure(ctx, e, ReasonAttestationInvalid, "", err)
	}
	sha, size := pred.Digests[DigestFile], pred.Size
	m := &Migration{SOPInstanceUID: e.Subject, SHA256: sha, Size: size, Outcome: fixity.OK}
	dst := &Service{store: to, log: s.log}
	// Already there and intact (a migration killed between the copy and
	// its entry): record it without copying again.
	if outcome, _, _, _, err := dst.readBack(ctx, sha, size, nil); err != nil {
		return nil, fmt.Errorf("the destination store: %w", err)
	} else if outcome != fixity.OK {
		rc, err := s.store.Get(ctx, sha)
		if err != nil {
			// Missing, or unreadable: CheckStored tells which and records it.
			f, _, _, cerr := s.CheckStored(ctx, e, nil)
			if cerr != nil {
				return nil, cerr
			}
			m.Outcome = f.Outcome
			if m.Outcome == fixity.OK {
				return nil, fmt.Errorf("the source store: %w", err)
			}
			return m, nil
		}
		sp, err := spool.Fill(s.SpoolDir, s.SpoolMemory, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s from the source store: %w", sha, err)
		}
		defer sp.Close()
		if got := sp.SHA256Hex(); got != sha || sp.Size() != size {
			m.Outcome = fixity.DigestMismatch
			if sp.Size() != size {
				m.Outcome = fixity.SizeMismatch
			}
			entry := ledger.Entry{Index: e.Index, Subject: e.Subject, FileSHA256: sha}
			s.integrityFailure(ctx, entry, ReasonAltered, got, nil)
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
	es, err := s.ledger.AppendEvents(ctx, []custody.Record{{
		Kind: custody.KindStorageMigration, Subject: e.Subject, FileSHA256: sha,
		Body: encodeBody(storageMigrationBody{entryHead: head(custody.KindStorageMigration, e.Subject),
			FileSHA256: sha, IngestIndex: e.Index, IngestEntryHash: e.LeafHashHex(), Size: size,
			FromStore: fromDesc, ToStore: toDesc, SourceSHA256: sha, DestinationSHA256: sha,
			Actor: actor, RecordedAt: s.Now().UTC()}),
	}})
	if err != nil {
		return nil, unavailable(ProblemLedgerUnavailable, err)
	}
	m.Entry = es[0]
	return m, nil
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
