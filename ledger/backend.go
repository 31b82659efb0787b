package ledger

import (
	"context"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// Backend is a ledger's storage: thin, SQL only. Everything that decides
// what is appended, how the tree grows and what a proof is lives in this
// package above it, so that backends differ in SQL and nothing else.
type Backend interface {
	// Write runs fn in a write transaction that holds the backend's write
	// lock from its first statement (BEGIN IMMEDIATE in SQLite, a lock in
	// PostgreSQL) and commits durably when fn returns nil.
	Write(ctx context.Context, fn func(Tx) error) error
	// Read runs fn in a read-only transaction over a consistent snapshot.
	Read(ctx context.Context, fn func(Tx) error) error
	Ping(ctx context.Context) error
	Close() error
}

// Tx is one backend transaction: the log's storage contract (entries,
// batches, tree nodes, checkpoints, followers' cursors) and nothing else.
// A backend's Tx may also implement an index's contract (custody.Tx),
// written in the same transaction. Lookups return ErrNotFound when nothing
// matches. Write methods are only called inside Backend.Write.
type Tx interface {
	// NextIndex is the index the next entry gets: the log head, read
	// inside the transaction, never from a cache.
	NextIndex(ctx context.Context) (uint64, error)
	Entry(ctx context.Context, idx uint64) (Entry, error)
	EntryByLeafHash(ctx context.Context, leaf [32]byte) (Entry, error)
	// ScanEntries calls fn for entries with from <= index < to, in index order.
	ScanEntries(ctx context.Context, from, to uint64, fn func(Entry) error) error
	// ScanSubject calls fn, in index order, for the entries of one subject.
	ScanSubject(ctx context.Context, subject string, fn func(Entry) error) error
	// AppendEntries writes a batch's new entries.
	AppendEntries(ctx context.Context, entries []Entry) error

	InsertBatch(ctx context.Context, b Batch) error
	// ScanBatches calls fn for batches whose first index is >= from, in order.
	ScanBatches(ctx context.Context, from uint64, fn func(Batch) error) error

	// Nodes returns the stored hashes of the given tree nodes, in order;
	// ErrNotFound if any is missing.
	Nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
	PutNodes(ctx context.Context, nodes []Node) error

	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// InsertCheckpoint must fail unless c is larger than every stored checkpoint.
	InsertCheckpoint(ctx context.Context, c Checkpoint) error
	// ScanCheckpoints calls fn for every stored checkpoint, smallest first.
	ScanCheckpoints(ctx context.Context, fn func(Checkpoint) error) error

	// Cursor is the position a follower saved under name (see Follower):
	// the index of the next entry it will handle; ErrNotFound if never saved.
	Cursor(ctx context.Context, name string) (uint64, error)
	// SaveCursor inserts or updates the position saved under name (cursors
	// are the one part of the log's storage updated in place).
	SaveCursor(ctx context.Context, name string, position uint64) error

	// EntriesAt calls fn for the entries at idxs (ascending), in order;
	// ErrNotFound if one is missing.
	EntriesAt(ctx context.Context, idxs []uint64, fn func(Entry) error) error

	// SubjectHeads returns, for each key that has any, its stored link
	// of the highest sequence number (chain.go).
	SubjectHeads(ctx context.Context, keys []SubjectKey) (map[SubjectKey]SubjectLink, error)
	// PutSubjectLinks writes a batch's links, after its entries.
	PutSubjectLinks(ctx context.Context, links []SubjectLink) error
	// SubjectLinks calls fn, in sequence order, for the links of key held
	// by entries below index before.
	SubjectLinks(ctx context.Context, key SubjectKey, before uint64, fn func(SubjectLink) error) error
	// MapNodes returns the subject map's nodes of those labels as of
	// version (for each label, its stored row of the highest version <=
	// version), in any order; a label with no such row is left out. One
	// update reads thousands of nodes: a query per tree level, not per node.
	MapNodes(ctx context.Context, labels [][]byte, version uint64) ([]MapNode, error)
	// PutMapNodes writes the nodes one map update changed, at its version:
	// rows are never updated, so every committed map stays readable.
	PutMapNodes(ctx context.Context, version uint64, nodes []MapNode) error
}

// MapNode is a stored node of the subject map (submap.go): its label and
// its children's (encodeLabel), and its hash.
type MapNode struct {
	Label, Left, Right []byte
	Hash               [32]byte
}

// Batch is one group commit: the leaf hashes of the entries it appended
// (from index First on), signed together with the log key.
type Batch struct {
	First     uint64
	Leaves    [][32]byte
	Signature []byte
}

// Node is a stored hash of the Merkle tree: a perfect subtree root
// (level 0 is a leaf).
type Node struct {
	ID   compact.NodeID
	Hash []byte
}

// NodeKey packs a tree node's coordinates into the one integer every
// backend keys tree_nodes by: level << 48 | index (a level below 64, an
// index below 2^48: far beyond any log's size).
func NodeKey(id compact.NodeID) int64 { return int64(id.Level)<<48 | int64(id.Index) }

// Checkpoint is a signed statement of the tree: its size and root hash,
// and the signed note (C2SP tlog-checkpoint) that says so.
type Checkpoint struct {
	Size      uint64
	Root      []byte
	Note      []byte
	CreatedAt time.Time
}
