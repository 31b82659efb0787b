package attest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/problem"
)

// Problem slugs of the log endpoints.
const (
	ProblemNoCheckpoint = problem.NoCheckpoint
	ProblemBadProof     = problem.BadProof
)

// LogEntry is an entry as the log serves it: the canonical bytes its leaf
// hash covers, so anyone can recompute the hash.
type LogEntry struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"`
	Entry    string `json:"entry"` // base64 of the canonical entry bytes
}

// Proof is an RFC 9162 inclusion or consistency proof.
type Proof struct {
	// Inclusion: LeafIndex and TreeSize. Consistency: From and TreeSize.
	LeafIndex *uint64  `json:"leaf_index,omitempty"`
	LeafHash  string   `json:"leaf_hash,omitempty"`
	From      *uint64  `json:"from,omitempty"`
	TreeSize  uint64   `json:"tree_size"`
	Hashes    []string `json:"hashes"`
}

// Inclusion binds an attestation to a checkpoint: the signed note and the
// proof that the entry is in the tree it commits to.
type Inclusion struct {
	Checkpoint string   `json:"checkpoint"`
	TreeSize   uint64   `json:"tree_size"`
	LeafIndex  uint64   `json:"leaf_index"`
	Hashes     []string `json:"hashes"`
}

func (s *Service) logError(err error) error {
	var bad *ledger.BadParameterError
	switch {
	case errors.As(err, &bad):
		return &Error{Code: EInvalid, Problem: ProblemBadProof, Message: bad.Msg, Err: err}
	case errors.Is(err, ledger.ErrNotFound):
		return &Error{Code: ENotFound, Problem: ProblemNotFound, Message: "no such log entry", Err: err}
	}
	return unavailable(ProblemLedgerUnavailable, err)
}

// Checkpoint returns the latest signed checkpoint (a C2SP signed note).
// Errors: ENotFound before the first checkpoint, EUnavailable.
func (s *Service) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := s.ledger.LatestCheckpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, Errorf(ENotFound, ProblemNoCheckpoint, "no checkpoint has been published yet")
	}
	if err != nil {
		return nil, s.logError(err)
	}
	return cp.Note, nil
}

// LogEntry returns the entry at index.
func (s *Service) LogEntry(ctx context.Context, index uint64) (*LogEntry, error) {
	e, err := s.ledger.Entry(ctx, index)
	if err != nil {
		return nil, s.logError(err)
	}
	return &LogEntry{Index: e.Index, LeafHash: e.LeafHashHex(), Entry: base64.StdEncoding.EncodeToString(e.Body)}, nil
}

// InclusionProof proves leaf index in the tree of size (0: latest checkpoint).
func (s *Service) InclusionProof(ctx context.Context, index, size uint64) (*Proof, error) {
	hashes, treeSize, err := s.ledger.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, s.logError(err)
	}
	return &Proof{LeafIndex: &index, TreeSize: treeSize, Hashes: hexAll(hashes)}, nil
}

// InclusionProofByLeaf proves the entry with that leaf hash (hex).
func (s *Service) InclusionProofByLeaf(ctx context.Context, leafHex string, size uint64) (*Proof, error) {
	var leaf [32]byte
	if b, err := hex.DecodeString(leafHex); err != nil || len(b) != 32 {
		return nil, Errorf(EInvalid, ProblemBadProof, "leaf_hash must be 64 hex characters, got %q", leafHex)
	} else {
		copy(leaf[:], b)
	}
	e, err := s.ledger.EntryByLeafHash(ctx, leaf)
	if err != nil {
		return nil, s.logError(err)
	}
	p, err := s.InclusionProof(ctx, e.Index, size)
	if err != nil {
		return nil, err
	}
	p.LeafHash = e.LeafHashHex()
	return p, nil
}

// ConsistencyProof proves that the tree of size to extends the tree of size from.
func (s *Service) ConsistencyProof(ctx context.Context, from, to uint64) (*Proof, error) {
	hashes, treeSize, err := s.ledger.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, s.logError(err)
	}
	return &Proof{From: &from, TreeSize: treeSize, Hashes: hexAll(hashes)}, nil
}

// inclusion returns the proof of entry idx against the latest checkpoint,
// or nil while the entry is not yet integrated.
func (s *Service) inclusion(ctx context.Context, idx uint64) (*Inclusion, error) {
	cp, err := s.ledger.LatestCheckpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && idx >= cp.Size) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	hashes, _, err := s.ledger.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return &Inclusion{Checkpoint: string(cp.Note), TreeSize: cp.Size, LeafIndex: idx, Hashes: hexAll(hashes)}, nil
}

func hexAll(hashes [][]byte) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = hex.EncodeToString(h)
	}
	return out
}
