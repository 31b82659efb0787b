package report

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"

	"github.com/dicomseal/dicomseal/ledger"
)

// Prover proves every entry of a subject at a checkpoint (size 0: the
// latest): ledger.Log.SubjectProof.
type Prover interface {
	SubjectProof(ctx context.Context, key ledger.SubjectKey, size uint64) (*ledger.SubjectProof, error)
}

// Build assembles q's bundle: key's proof in the custody log at the
// checkpoint of custodySize (0: the latest; key is q's study's, or its
// patient's), and, at the audit log's latest checkpoint, the audit proof
// of every study the custody entries are chained under. Errors are the
// provers', wrapped with the log's name.
func Build(ctx context.Context, q Query, key ledger.SubjectKey, custodySize uint64, custodyLog, auditLog Prover, now time.Time) (*Bundle, error) {
	c, err := custodyLog.SubjectProof(ctx, key, custodySize)
	if err != nil {
		return nil, fmt.Errorf("custody log: %w", err)
	}
	bodies := make([][]byte, len(c.Entries))
	for i, e := range c.Entries {
		bodies[i] = e.Body
	}
	keys, err := auditSubjects(q, key, bodies)
	if err != nil {
		return nil, err
	}
	b := &Bundle{V: 1, Query: q, Generated: now.UTC(), Custody: c, Audit: make([]*ledger.SubjectProof, len(keys))}
	var size uint64 // the audit proofs share the first one's checkpoint
	for i, k := range keys {
		if b.Audit[i], err = auditLog.SubjectProof(ctx, k, size); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if i == 0 {
			if size, err = checkpointSize(b.Audit[0].Checkpoint); err != nil {
				return nil, fmt.Errorf("audit log: %w", err)
			}
		}
	}
	return b, nil
}

// checkpointSize reads the tree size of a checkpoint the log just gave
// (unverified: Verify checks it).
func checkpointSize(n []byte) (uint64, error) {
	// The note's text is its body up to the blank line, newline included.
	end := bytes.Index(n, []byte("\n\n"))
	if end < 0 {
		return 0, fmt.Errorf("checkpoint: not a signed note")
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal(n[:end+1]); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return c.Size, nil
}
