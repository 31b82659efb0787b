package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// BadParameterError: a proof was asked for sizes or indexes the tree does
// not have (the HTTP layer answers 400).
type BadParameterError struct{ Msg string }

func (e *BadParameterError) Error() string { return "ledger: " + e.Msg }

func badParam(format string, args ...any) error {
	return &BadParameterError{Msg: fmt.Sprintf(format, args...)}
}

// integratedSize is the tree size proofs can be served for: the latest
// checkpoint's.
func integratedSize(ctx context.Context, tx Tx) (uint64, error) {
	cp, err := tx.LatestCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return cp.Size, err
}

// InclusionProof returns the RFC 9162 inclusion proof of leaf index in the
// tree of the given size (0 means the latest checkpoint's size), and that size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) (hashes [][]byte, treeSize uint64, err error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	err = l.read(ctx, func(tx Tx) error {
		latest, err := integratedSize(ctx, tx)
		if err != nil {
			return err
		}
		if size == 0 {
			size = latest
		}
		switch {
		case size > latest:
			return badParam("tree size %d is larger than the integrated tree (%d)", size, latest)
		case index >= size:
			return badParam("index %d is not in a tree of size %d", index, size)
		}
		nodes, err := proof.Inclusion(index, size)
		if err != nil {
			return badParam("%v", err)
		}
		hashes, err = fetchProof(ctx, tx, nodes)
		treeSize = size
		return err
	})
	return hashes, treeSize, err
}

// ConsistencyProof returns the RFC 9162 consistency proof from tree size
// from to tree size to (0 means the latest checkpoint's size), and that size.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) (hashes [][]byte, toSize uint64, err error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	err = l.read(ctx, func(tx Tx) error {
		latest, err := integratedSize(ctx, tx)
		if err != nil {
			return err
		}
		if to == 0 {
			to = latest
		}
		switch {
		case to > latest:
			return badParam("tree size %d is larger than the integrated tree (%d)", to, latest)
		case from > to:
			return badParam("from (%d) is larger than to (%d)", from, to)
		}
		nodes, err := proof.Consistency(from, to)
		if err != nil {
			return badParam("%v", err)
		}
		hashes, err = fetchProof(ctx, tx, nodes)
		toSize = to
		return err
	})
	return hashes, toSize, err
}

// fetchProof reads a proof's nodes in one query and folds the ephemeral
// node, if any: O(log n) stored hashes, never a rescan of the log.
func fetchProof(ctx context.Context, tx Tx, nodes proof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := tx.Nodes(ctx, nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("proof nodes: %w", err)
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// ProveIncluded checks that leaf is the leaf at index idx of the tree the
// latest signed checkpoint commits to: the checkpoint's signature, then the
// inclusion proof against its root. ErrNotFound when idx is not yet
// integrated.
func (l *Log) ProveIncluded(ctx context.Context, idx uint64, leaf [32]byte) error {
	cp, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	if idx >= cp.Size {
		return fmt.Errorf("%w: entry %d is not integrated yet (checkpoint size %d)", ErrNotFound, idx, cp.Size)
	}
	parsed, _, _, err := log.ParseCheckpoint(cp.Note, l.origin, l.verify)
	if err != nil {
		return fmt.Errorf("latest checkpoint: %w", err)
	}
	hashes, _, err := l.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		return err
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, idx, parsed.Size, leaf[:], hashes, parsed.Hash)
}
