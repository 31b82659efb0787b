package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// Found is one audit entry with its proof of inclusion.
type Found struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"`
	Event
	// Inclusion proves the entry is in the audit log's latest checkpoint;
	// absent until the entry is integrated (within a second).
	Inclusion *Inclusion `json:"inclusion,omitempty"`
}

// Inclusion is an RFC 9162 inclusion proof against a signed checkpoint.
type Inclusion struct {
	Checkpoint string   `json:"checkpoint"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     []string `json:"hashes"`
}

// Filter selects audit entries; zero fields match everything.
type Filter struct {
	Actor        string
	Since, Until time.Time
	Limit        int
}

// Query returns the matching entries, oldest first, each with its
// inclusion proof once integrated.
func (a *Log) Query(ctx context.Context, f Filter) ([]Found, error) {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	var out []Found
	errFull := errors.New("full")
	scan := func(fn func(ledger.Entry) error) error { return a.ledger.Scan(ctx, 0, fn) }
	if f.Actor != "" {
		// The actor is the entries' indexed subject: no full scan.
		scan = func(fn func(ledger.Entry) error) error { return a.ledger.ScanSubject(ctx, f.Actor, fn) }
	}
	err := scan(func(e ledger.Entry) error {
		if e.Kind != ledger.KindAudit || (f.Actor != "" && e.SOPInstanceUID != f.Actor) {
			return nil
		}
		ev, err := Decode(e)
		if err != nil {
			return nil
		}
		if (!f.Since.IsZero() && ev.Time.Before(f.Since)) || (!f.Until.IsZero() && ev.Time.After(f.Until)) {
			return nil
		}
		out = append(out, Found{Index: e.Index, LeafHash: hex.EncodeToString(e.LeafHash[:]), Event: ev})
		if len(out) >= f.Limit {
			return errFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, err
	}
	cp, err := a.ledger.LatestCheckpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Index >= cp.Size {
			continue
		}
		hashes, _, err := a.ledger.InclusionProof(ctx, out[i].Index, cp.Size)
		if err != nil {
			return nil, err
		}
		inc := &Inclusion{Checkpoint: string(cp.Note), TreeSize: cp.Size, Hashes: []string{}}
		for _, h := range hashes {
			inc.Hashes = append(inc.Hashes, hex.EncodeToString(h))
		}
		out[i].Inclusion = inc
	}
	return out, nil
}
