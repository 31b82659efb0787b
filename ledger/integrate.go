package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// HaltError reports why integration stopped short: a batch whose signature
// or entries do not verify. Nothing at or after Index is integrated until
// it is resolved: it is evidence of tampering, not a fault to retry.
type HaltError struct {
	Index  uint64
	Reason string
}

func (e *HaltError) Error() string {
	return fmt.Sprintf("ledger: integration halted at index %d: %s", e.Index, e.Reason)
}

// Integrate extends the tree with every committed batch whose signature
// and entries verify, and publishes a checkpoint for the new size. It
// reports whether a new checkpoint was published. Everything happens in one
// write transaction that reads the latest checkpoint inside it, so several
// processes integrating the same log never fork it; a new checkpoint is
// only ever built on the stored tree after that tree reproduced the previous
// checkpoint's root.
func (l *Log) Integrate(ctx context.Context) (cp Checkpoint, published bool, err error) {
	// No per-call Timeout: a backlog (after a halt is repaired, or a long
	// --checkpoint-interval) may take longer to fold in, and this runs in
	// the background, cancelled by Close, never on a request's path.
	var halt *HaltError
	err = l.backend.Write(ctx, func(tx Tx) error {
		prev, err := tx.LatestCheckpoint(ctx)
		fresh := errors.Is(err, ErrNotFound)
		if err != nil && !fresh {
			return err
		}
		rng, err := l.storedRange(ctx, tx, prev)
		if err != nil {
			return err
		}
		var nodes []Node
		visit := func(id compact.NodeID, hash []byte) { nodes = append(nodes, Node{ID: id, Hash: bytes.Clone(hash)}) }
		// Collect the batches first: a backend may not run a query while
		// another's rows are open on the same transaction.
		var batches []Batch
		if err := tx.ScanBatches(ctx, prev.Size, func(b Batch) error {
			batches = append(batches, b)
			return nil
		}); err != nil {
			return err
		}
		next := prev.Size
		var m *mapUpdate
		var fold func(Entry) error
		if l.SubjectMap {
			total := prev.Size
			for _, b := range batches {
				total += uint64(len(b.Leaves))
			}
			m = newMapUpdate(tx, total)
			fold = func(e Entry) error { return m.add(ctx, e) }
		}
		for _, b := range batches {
			var err error
			if halt, err = l.checkBatch(ctx, tx, b, next, fold); err != nil {
				return err
			}
			if halt != nil {
				break
			}
			for _, leaf := range b.Leaves {
				if err := rng.Append(leaf[:], visit); err != nil {
					return err
				}
			}
			next += uint64(len(b.Leaves))
		}
		// A new log publishes its empty tree (size 0), so that it has a
		// signed checkpoint to follow from the start.
		if next == prev.Size && !fresh {
			cp = prev
			return nil
		}
		if m != nil && next > prev.Size {
			if halt != nil {
				// The map entry must be the checkpoint's last and there are
				// entries after the halt: nothing is published until the
				// halt is resolved.
				cp = prev
				return nil
			}
			e, err := l.appendMap(ctx, tx, m, next)
			if err != nil {
				return err
			}
			if err := rng.Append(e.LeafHash[:], visit); err != nil {
				return err
			}
			next++
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		if next == 0 {
			root = rfc6962.DefaultHasher.EmptyRoot()
		}
		if cp, err = l.signCheckpoint(next, root, prev.Note); err != nil {
			return err
		}
		if err := tx.PutNodes(ctx, nodes); err != nil {
			return err
		}
		published = true
		return tx.InsertCheckpoint(ctx, cp)
	})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("%w: integrate: %v", ErrUnavailable, err)
	}
	if halt != nil {
		return cp, published, halt
	}
	return cp, published, nil
}

// checkBatch verifies a batch before it is integrated: it must start at
// next, carry a valid signature, and its entries must hash to its leaves.
// each, if set, is given every entry of a batch that verifies.
func (l *Log) checkBatch(ctx context.Context, tx Tx, b Batch, next uint64, each func(Entry) error) (*HaltError, error) {
	if b.First != next {
		return &HaltError{Index: next, Reason: fmt.Sprintf("the next signed batch starts at %d", b.First)}, nil
	}
	if !l.verifyBatch(b) {
		return &HaltError{Index: b.First, Reason: "batch signature does not verify"}, nil
	}
	var halt *HaltError
	i := 0
	var checked []Entry
	err := tx.ScanEntries(ctx, b.First, b.First+uint64(len(b.Leaves)), func(e Entry) error {
		if e.Index != b.First+uint64(i) || LeafHash(e.Body) != b.Leaves[i] || e.LeafHash != b.Leaves[i] {
			halt = &HaltError{Index: b.First + uint64(i), Reason: "entry does not match its signed batch"}
			return errStop
		}
		if each != nil {
			checked = append(checked, e)
		}
		i++
		return nil
	})
	switch {
	case halt != nil:
		return halt, nil
	case err != nil:
		return nil, err
	case i != len(b.Leaves):
		return &HaltError{Index: b.First + uint64(i), Reason: "entry of a signed batch is missing"}, nil
	}
	// After the scan: a backend may not query while its rows are open.
	for _, e := range checked {
		if err := each(e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// appendMap commits the map of the entries below idx as the entry at idx,
// in a signed batch of its own.
func (l *Log) appendMap(ctx context.Context, tx Tx, m *mapUpdate, idx uint64) (Entry, error) {
	root, err := m.commit(ctx)
	if err != nil {
		return Entry{}, err
	}
	body := mapBody(idx, root)
	e := Entry{Index: idx, Kind: KindSubjectMap, Subject: string(KindSubjectMap), Body: body, LeafHash: LeafHash(body)}
	if err := tx.AppendEntries(ctx, []Entry{e}); err != nil {
		return Entry{}, err
	}
	b := Batch{First: idx, Leaves: [][32]byte{e.LeafHash}}
	if b.Signature, err = l.key.Sign(batchMessage(l.origin, b.First, b.Leaves)); err != nil {
		return Entry{}, fmt.Errorf("sign batch: %w", err)
	}
	return e, tx.InsertBatch(ctx, b)
}

var errStop = errors.New("stop")

// storedRange rebuilds the compact range of the tree at the previous
// checkpoint from stored nodes, and checks it against that checkpoint.
func (l *Log) storedRange(ctx context.Context, tx Tx, prev Checkpoint) (*compact.Range, error) {
	if prev.Size == 0 {
		return rangeFactory.NewEmptyRange(0), nil
	}
	ids := compact.RangeNodes(0, prev.Size, nil)
	hashes, err := tx.Nodes(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("tree nodes at size %d: %w", prev.Size, err)
	}
	rng, err := rangeFactory.NewRange(0, prev.Size, hashes)
	if err != nil {
		return nil, err
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, prev.Root) {
		return nil, fmt.Errorf("stored tree nodes do not reproduce the root of checkpoint %d", prev.Size)
	}
	return rng, nil
}

// signCheckpoint signs with the log key, and also with the Handover key
// while the previous checkpoint (if any) is not the log key's.
func (l *Log) signCheckpoint(size uint64, root, prev []byte) (Checkpoint, error) {
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	signers := []note.Signer{l.key}
	if l.Handover != nil && prev != nil {
		if _, err := note.Open(prev, note.VerifierList(l.verify)); err != nil {
			signers = append(signers, l.Handover)
		}
	}
	signed, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Size: size, Root: root, Note: signed, CreatedAt: l.Now().UTC()}, nil
}

// RunIntegrator integrates every interval until ctx ends. A halt (evidence
// of tampering) is logged as an error on every attempt, not retried away.
func (l *Log) RunIntegrator(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cp, published, err := l.Integrate(ctx)
		var halt *HaltError
		switch {
		case errors.As(err, &halt):
			logger.ErrorContext(ctx, "log integration halted: possible tampering", "origin", l.origin, "index", halt.Index, "reason", halt.Reason)
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "log integration failed", "origin", l.origin, "err", err)
		case published:
			logger.DebugContext(ctx, "checkpoint published", "origin", l.origin, "size", cp.Size)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
