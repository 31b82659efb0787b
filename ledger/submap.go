package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

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
// reads see the newest stored node at or below it (and are kept: within
// one update a node changes only through Store), writes stay in memory
// until flush stores them at that version.
type mapStore struct {
	tx      Tx
	version uint64
	changed map[prefix.Label]*prefix.Node
	loaded  map[prefix.Label]*prefix.Node
}

func (s *mapStore) Load(ctx context.Context, label prefix.Label) (*prefix.Node, error) {
	if n := s.cached(label); n != nil {
		return n, nil
	}
	if label == prefix.EmptyNodeLabel {
		return emptyNode, nil
	}
	if err := s.fetch(ctx, []prefix.Label{label}); err != nil {
		return nil, err
	}
	if n, ok := s.loaded[label]; ok {
		return n, nil
	}
	if label == prefix.RootLabel {
		return emptyRoot, nil
	}
	return nil, prefix.ErrNodeNotFound // compared with ==, never wrapped
}

// fetch reads labels into loaded, in one call to the backend.
func (s *mapStore) fetch(ctx context.Context, labels []prefix.Label) error {
	enc := make([][]byte, len(labels))
	for i, l := range labels {
		enc[i] = encodeLabel(l)
	}
	slices.SortFunc(enc, bytes.Compare) // the index in order: pages read once
	rows, err := s.tx.MapNodes(ctx, enc, s.version)
	if err != nil {
		return err
	}
	if s.loaded == nil {
		s.loaded = map[prefix.Label]*prefix.Node{}
	}
	for _, row := range rows {
		n := &prefix.Node{Hash: row.Hash}
		if n.Label, err = decodeLabel(row.Label); err != nil {
			return err
		}
		if !n.Label.IsLeaf() {
			if n.Left, err = decodeLabel(row.Left); err != nil {
				return err
			}
			if n.Right, err = decodeLabel(row.Right); err != nil {
				return err
			}
		}
		s.loaded[n.Label] = n
	}
	return nil
}

// prefetch loads, a tree level per backend call, the nodes that inserting
// keys will read (each path from the root and its siblings), which the
// tree would otherwise load one query at a time: some thirty per key.
func (s *mapStore) prefetch(ctx context.Context, keys []SubjectKey) error {
	type walk struct {
		target prefix.Label
		node   *prefix.Node
	}
	root, err := s.Load(ctx, prefix.RootLabel)
	if err != nil {
		return err
	}
	walks := make([]walk, 0, len(keys))
	for _, k := range keys {
		t, err := prefix.NewLabel(256, k[:])
		if err != nil {
			return err
		}
		walks = append(walks, walk{t, root})
	}
	for len(walks) > 0 {
		var need []prefix.Label
		seen := map[prefix.Label]bool{}
		next := walks[:0]
		for _, w := range walks {
			n := w.node
			if n.Label == w.target || n.Label.IsLeaf() || n.Label == prefix.EmptyNodeLabel || !w.target.HasPrefix(n.Label) {
				continue // the path ends here
			}
			for _, c := range []prefix.Label{n.Left, n.Right} {
				if s.cached(c) == nil && !seen[c] && c != prefix.EmptyNodeLabel {
					seen[c] = true
					need = append(need, c)
				}
			}
			next = append(next, w)
		}
		if len(need) > 0 {
			if err := s.fetch(ctx, need); err != nil {
				return err
			}
		}
		walks = next
		for i := range walks {
			n := walks[i].node
			c := n.Left
			if walks[i].target.SideOf(n.Label) == prefix.Right {
				c = n.Right
			}
			if walks[i].node = s.cached(c); walks[i].node == nil {
				walks[i].node = emptyNode // absent or empty: the walk stops
			}
		}
	}
	return nil
}

// cached is the node of label this update already holds, or nil.
func (s *mapStore) cached(label prefix.Label) *prefix.Node {
	if n, ok := s.changed[label]; ok {
		return n
	}
	return s.loaded[label]
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
	// In the primary key's order: each index page is written once.
	slices.SortFunc(rows, func(a, b MapNode) int { return bytes.Compare(a.Label, b.Label) })
	return s.tx.PutMapNodes(ctx, s.version, rows)
}

// mapUpdate folds integrated entries into the map, to be committed by
// the map entry at index version. Heads are gathered and inserted a
// group at a time, after one prefetch of their paths; the tree does not
// depend on the order of insertion, and a subject's later head replaces
// its earlier one.
type mapUpdate struct {
	store   *mapStore
	tree    *prefix.Tree
	pending map[SubjectKey]Head
}

// mapGroup bounds the heads inserted after one prefetch, and so the
// nodes read ahead for them (about thirty per head). The changed nodes
// are held until the update commits: a few per head of the whole
// integration.
const mapGroup = 1024

func newMapUpdate(tx Tx, version uint64) *mapUpdate {
	s := &mapStore{tx: tx, version: version, changed: map[prefix.Label]*prefix.Node{}}
	return &mapUpdate{store: s, tree: prefix.NewTree(mapHash, s), pending: map[SubjectKey]Head{}}
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
		m.pending[l.Subject] = Head{Index: e.Index, LeafHash: e.LeafHash, Count: l.Seq}
	}
	if len(m.pending) >= mapGroup {
		return m.insert(ctx)
	}
	return nil
}

// insert puts the pending heads into the tree.
func (m *mapUpdate) insert(ctx context.Context) error {
	keys := slices.SortedFunc(maps.Keys(m.pending), func(a, b SubjectKey) int { return bytes.Compare(a[:], b[:]) })
	if err := m.store.prefetch(ctx, keys); err != nil {
		return fmt.Errorf("subject map: %w", err)
	}
	for _, k := range keys {
		if err := m.tree.Insert(ctx, k, m.pending[k].value()); err != nil {
			return fmt.Errorf("subject map: %w", err)
		}
	}
	clear(m.pending)
	m.store.loaded = nil // read again for the next group, a bounded set
	return nil
}

// commit stores the changed nodes and returns the map's root.
func (m *mapUpdate) commit(ctx context.Context) ([32]byte, error) {
	if err := m.insert(ctx); err != nil {
		return [32]byte{}, err
	}
	root, err := m.tree.RootHash(ctx)
	if err != nil {
		return root, err
	}
	return root, m.store.flush(ctx)
}
