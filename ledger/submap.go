package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"filippo.io/torchwood/prefix"
)

// The subject map: from each chained subject's key to its head (the
// index, leaf hash and sequence number of its latest entry), as a prefix
// tree (filippo.io/torchwood/prefix, compatible with akd's whatsapp_v1
// configuration) over SHA-256. A log with SubjectMap set commits the
// map's root at every checkpoint as its last entry (kind subject-map):
// a checkpoint of size N ends with the map of entries 0 to N-2, so a
// subject's head, proven against it, shows that the subject had no entry
// after it in that checkpoint.
//
// Nodes are stored versioned (the index of the map entry that committed
// them) and never rewritten, so the map at any checkpoint stays provable;
// an update costs O(log n) nodes per chained entry, never a rebuild.

// KindSubjectMap is the kind of the entries that commit the subject map.
const KindSubjectMap Kind = "subject-map"

// SubjectMapFormats are the versions of subject-map bodies this release
// reads, for the Formats of a log with a subject map.
var SubjectMapFormats = []int{1}

// MapBody is a subject-map entry: the root of the map of every entry
// below Size, its own index.
type MapBody struct {
	V    int    `json:"v"`
	Kind Kind   `json:"kind"`
	Size uint64 `json:"size"`
	Root Hash   `json:"root"`
}

// ParseMapBody reads a subject-map entry.
func ParseMapBody(body []byte) (MapBody, error) {
	var m MapBody
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("subject map entry: %w", err)
	}
	if m.Kind != KindSubjectMap || m.V != 1 {
		return m, fmt.Errorf("not a subject-map entry of version 1 (kind %q, version %d)", m.Kind, m.V)
	}
	return m, nil
}

func mapBody(size uint64, root [32]byte) []byte {
	b, _ := json.Marshal(MapBody{V: 1, Kind: KindSubjectMap, Size: size, Root: root})
	return b
}

// Head is a subject's latest entry as the map holds it.
type Head struct {
	Index    uint64 `json:"index"`
	LeafHash Hash   `json:"leaf_hash"`
	Count    uint64 `json:"count"`
}

// value is what the map's leaf for a subject commits to.
func (h Head) value() [32]byte {
	b := make([]byte, 0, 64)
	b = append(b, "dicomseal-subject-head/v1\n"...)
	b = binary.BigEndian.AppendUint64(b, h.Index)
	b = append(b, h.LeafHash[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Count)
	return sha256.Sum256(b)
}

func mapHash(b []byte) [32]byte { return sha256.Sum256(b) }

// emptyRoot and emptyNode are the nodes of a map with no subject.
var emptyRoot, emptyNode = func() (*prefix.Node, *prefix.Node) {
	s := prefix.NewMemoryStorage()
	ctx := context.Background()
	if err := prefix.InitStorage(ctx, mapHash, s); err != nil {
		panic(err)
	}
	r, _ := s.Load(ctx, prefix.RootLabel)
	e, _ := s.Load(ctx, prefix.EmptyNodeLabel)
	return r, e
}()

// EmptyMapRoot is the root of the map with no subject.
func EmptyMapRoot() [32]byte { return emptyRoot.Hash }

// encodeLabel is a label as stored: its bit length (2 bytes) and bytes.
func encodeLabel(l prefix.Label) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 34), uint16(l.BitLen()))
	return append(b, l.Bytes()...)
}

func decodeLabel(b []byte) (prefix.Label, error) {
	if len(b) != 34 {
		return prefix.Label{}, fmt.Errorf("a stored label is 34 bytes, not %d", len(b))
	}
	return prefix.NewLabel(uint32(binary.BigEndian.Uint16(b)), b[2:])
}

// mapStore is prefix.Storage over a transaction, as of one version:
// reads see the newest stored node at or below it, writes stay in memory
// until flush stores them at that version.
type mapStore struct {
	tx      Tx
	version uint64
	changed map[prefix.Label]*prefix.Node
}

func (s *mapStore) Load(ctx context.Context, label prefix.Label) (*prefix.Node, error) {
	if n, ok := s.changed[label]; ok {
		return n, nil
	}
	if label == prefix.EmptyNodeLabel {
		return emptyNode, nil
	}
	row, err := s.tx.MapNode(ctx, encodeLabel(label), s.version)
	switch {
	case errors.Is(err, ErrNotFound) && label == prefix.RootLabel:
		return emptyRoot, nil
	case errors.Is(err, ErrNotFound):
		return nil, prefix.ErrNodeNotFound // compared with ==, never wrapped
	case err != nil:
		return nil, err
	}
	n := &prefix.Node{Hash: row.Hash}
	if n.Label, err = decodeLabel(row.Label); err != nil {
		return nil, err
	}
	if !n.Label.IsLeaf() {
		if n.Left, err = decodeLabel(row.Left); err != nil {
			return nil, err
		}
		if n.Right, err = decodeLabel(row.Right); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (s *mapStore) Store(ctx context.Context, nodes ...*prefix.Node) error {
	if s.changed == nil {
		return errors.New("ledger: the subject map is read-only here")
	}
	for _, n := range nodes {
		s.changed[n.Label] = n
	}
	return nil
}

func (s *mapStore) flush(ctx context.Context) error {
	rows := make([]MapNode, 0, len(s.changed))
	for _, n := range s.changed {
		r := MapNode{Label: encodeLabel(n.Label), Hash: n.Hash}
		if !n.Label.IsLeaf() {
			r.Left, r.Right = encodeLabel(n.Left), encodeLabel(n.Right)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	return s.tx.PutMapNodes(ctx, s.version, rows)
}

// mapUpdate folds integrated entries into the map, to be committed by
// the map entry at index version.
type mapUpdate struct {
	store *mapStore
	tree  *prefix.Tree
}

func newMapUpdate(tx Tx, version uint64) *mapUpdate {
	s := &mapStore{tx: tx, version: version, changed: map[prefix.Label]*prefix.Node{}}
	return &mapUpdate{store: s, tree: prefix.NewTree(mapHash, s)}
}

// add sets the heads of the subjects e is chained under.
func (m *mapUpdate) add(ctx context.Context, e Entry) error {
	if e.Kind == KindSubjectMap {
		return nil
	}
	links, err := ChainsOf(e.Body)
	if err != nil {
		return nil // not JSON: no chain (log verify reports the format)
	}
	for _, l := range links {
		h := Head{Index: e.Index, LeafHash: e.LeafHash, Count: l.Seq}
		if err := m.tree.Insert(ctx, l.Subject, h.value()); err != nil {
			return fmt.Errorf("subject map: %w", err)
		}
	}
	return nil
}

// commit stores the changed nodes and returns the map's root.
func (m *mapUpdate) commit(ctx context.Context) ([32]byte, error) {
	root, err := m.tree.RootHash(ctx)
	if err != nil {
		return root, err
	}
	return root, m.store.flush(ctx)
}
