// Package ledger is dicomseal's verifiable log, knowing nothing of what
// its entries say: appends by group commit, each batch signed with the log
// key, integrated into an RFC 6962 Merkle tree whose checkpoints are C2SP
// signed notes; inclusion and consistency proofs; a whole-log audit; body
// format checks (Formats). An Indexer (package custody) decides a batch's
// records in the append's transaction and keeps its own index beside the
// log. Backends (ledger/sqlite, ledger/postgres) store entries, batches,
// tree nodes and checkpoints; they never rewrite or delete one.
package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Kind names what an entry records. The log stores it beside the body
// and checks it against the body's header (Formats); what kinds there are
// is its writers' business (package custody, package audit).
type Kind string

var (
	// ErrNotFound: no entry matches.
	ErrNotFound = errors.New("ledger: not found")
	// ErrUnavailable: the database cannot be reached or refused the write.
	ErrUnavailable = errors.New("ledger: unavailable")
)

// Record is an entry to append.
type Record struct {
	Kind Kind
	// Subject is what the entry is about (an instance's SOP Instance UID;
	// an audit event's actor): the log indexes entries by it.
	Subject string
	// FileSHA256 is the digest of the bytes the entry is about, if any: the
	// log indexes entries by it too ("" for none).
	FileSHA256 string
	// Body is the canonical entry: the bytes the leaf hash covers.
	Body []byte
	// Meta is what the log's Indexer needs to decide the record; the log
	// never stores it.
	Meta any
	// Chains are the subjects the entry is linked under (chain.go): set
	// by the writer or by the Indexer before it adds the record.
	Chains []SubjectKey
}

// Entry is a record as the log holds it.
type Entry struct {
	Index      uint64
	Kind       Kind
	Subject    string
	FileSHA256 string
	Body       []byte
	LeafHash   [32]byte
}

// LeafHashHex is the leaf hash in lower-case hex.
func (e Entry) LeafHashHex() string { return hex.EncodeToString(e.LeafHash[:]) }

// LeafHash is the RFC 6962 leaf hash of canonical entry bytes:
// SHA-256(0x00 ‖ body).
func LeafHash(body []byte) [32]byte {
	var h [sha256.Size]byte
	copy(h[:], rfc6962.DefaultHasher.HashLeaf(body))
	return h
}
