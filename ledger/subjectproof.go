package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"filippo.io/torchwood/prefix"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoSubjectMap: the checkpoint asked for does not end with a subject
// map (it was published before the log had one).
var ErrNoSubjectMap = errors.New("ledger: the checkpoint commits no subject map")

// SubjectProof proves every entry of one subject in the tree of one
// checkpoint: the checkpoint, its last entry (the subject map), the map
// proof of the subject's head (or of its absence), and the subject's
// chain from its first entry to its head, each entry with its inclusion
// proof. VerifySubjectProof checks it with only the log's verifier key.
type SubjectProof struct {
	Subject    SubjectKey `json:"subject"`
	Checkpoint []byte     `json:"checkpoint"`
	Map        Proven     `json:"map"`
	// Head is the subject's latest entry in the map (nil: the subject has
	// no entry in this checkpoint); MapProof proves it, or its absence.
	Head     *Head      `json:"head"`
	MapProof []MapProof `json:"map_proof"`
	// Entries are the subject's entries, first to head.
	Entries []Proven `json:"entries"`
}

// Proven is an entry and its inclusion proof in the checkpoint's tree.
type Proven struct {
	Index     uint64   `json:"index"`
	Body      []byte   `json:"body"`
	Inclusion [][]byte `json:"inclusion"`
}

// MapProof is one sibling of a map proof: its label (bit length and 32
// bytes) and hash.
type MapProof struct {
	Bits  uint32 `json:"bits"`
	Label Hash   `json:"label"`
	Hash  Hash   `json:"hash"`
}

// SubjectProof proves the entries of subject key in the tree of the given
// size (0: the latest checkpoint). ErrNoSubjectMap when that checkpoint
// does not end with a subject map; a *BadParameterError for a size that
// has no checkpoint.
func (l *Log) SubjectProof(ctx context.Context, key SubjectKey, size uint64) (*SubjectProof, error) {
	// A proof of a long chain reads many rows: Timeout without a row, as a scan.
	p := &SubjectProof{Subject: key}
	err := l.read(ctx, func(tx Tx) error {
		cp, err := checkpointAt(ctx, tx, size)
		if err != nil {
			return err
		}
		if cp.Size == 0 {
			return fmt.Errorf("%w: the empty tree", ErrNoSubjectMap)
		}
		p.Checkpoint = cp.Note
		mapIdx := cp.Size - 1
		me, err := tx.Entry(ctx, mapIdx)
		if err != nil {
			return err
		}
		if me.Kind != KindSubjectMap {
			return fmt.Errorf("%w: tree size %d ends with a %s entry", ErrNoSubjectMap, cp.Size, me.Kind)
		}
		tree := prefix.NewTree(mapHash, &mapStore{tx: tx, version: mapIdx})
		found, siblings, err := tree.Lookup(ctx, key)
		if err != nil {
			return fmt.Errorf("subject map at %d: %w", mapIdx, err)
		}
		for _, s := range siblings {
			var lb Hash
			copy(lb[:], s.Label.Bytes())
			p.MapProof = append(p.MapProof, MapProof{Bits: s.Label.BitLen(), Label: lb, Hash: s.Hash})
		}
		var links []SubjectLink
		if found {
			if err := tx.SubjectLinks(ctx, key, mapIdx, func(sl SubjectLink) error {
				links = append(links, sl)
				return nil
			}); err != nil {
				return err
			}
			if len(links) == 0 {
				return fmt.Errorf("subject %s is in the map at %d but has no stored links", key, mapIdx)
			}
			last := links[len(links)-1]
			p.Head = &Head{Index: last.Index, LeafHash: last.LeafHash, Count: last.Seq}
		}
		idxs := []uint64{mapIdx}
		for _, sl := range links {
			idxs = append(idxs, sl.Index)
		}
		slices.Sort(idxs)
		proofs, err := inclusionProofs(ctx, tx, idxs, cp.Size)
		if err != nil {
			return err
		}
		bodies := make(map[uint64][]byte, len(idxs))
		if err := tx.EntriesAt(ctx, idxs, func(e Entry) error {
			bodies[e.Index] = e.Body
			return nil
		}); err != nil {
			return err
		}
		p.Map = Proven{Index: mapIdx, Body: me.Body, Inclusion: proofs[mapIdx]}
		for _, sl := range links {
			p.Entries = append(p.Entries, Proven{Index: sl.Index, Body: bodies[sl.Index], Inclusion: proofs[sl.Index]})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkpointAt is the stored checkpoint of that size (0: the latest).
func checkpointAt(ctx context.Context, tx Tx, size uint64) (Checkpoint, error) {
	if size == 0 {
		cp, err := tx.LatestCheckpoint(ctx)
		if errors.Is(err, ErrNotFound) {
			return cp, badParam("the log has no checkpoint yet")
		}
		return cp, err
	}
	var found *Checkpoint
	err := tx.ScanCheckpoints(ctx, func(c Checkpoint) error {
		if c.Size == size {
			found = &c
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Checkpoint{}, err
	}
	if found == nil {
		return Checkpoint{}, badParam("no checkpoint has tree size %d", size)
	}
	return *found, nil
}

// inclusionProofs reads the inclusion proofs of idxs (ascending) in the
// tree of size, fetching their nodes a chunk at a time: a chain of
// thousands of entries shares most of its proofs' nodes.
func inclusionProofs(ctx context.Context, tx Tx, idxs []uint64, size uint64) (map[uint64][][]byte, error) {
	plans := make(map[uint64]proof.Nodes, len(idxs))
	need := map[compact.NodeID][]byte{}
	var ids []compact.NodeID
	for _, i := range idxs {
		n, err := proof.Inclusion(i, size)
		if err != nil {
			return nil, badParam("%v", err)
		}
		plans[i] = n
		for _, id := range n.IDs {
			if _, ok := need[id]; !ok {
				need[id] = nil
				ids = append(ids, id)
			}
		}
	}
	const chunk = 500
	for len(ids) > 0 {
		c := ids[:min(chunk, len(ids))]
		ids = ids[len(c):]
		hashes, err := tx.Nodes(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("proof nodes: %w", err)
		}
		for i, id := range c {
			need[id] = hashes[i]
		}
	}
	out := make(map[uint64][][]byte, len(idxs))
	for i, n := range plans {
		hs := make([][]byte, len(n.IDs))
		for j, id := range n.IDs {
			hs[j] = need[id]
		}
		folded, err := n.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
		if err != nil {
			return nil, err
		}
		out[i] = folded
	}
	return out, nil
}

// SubjectEntries is what a verified subject proof establishes: in the
// tree of Size, the subject's entries are exactly Entries (index order).
type SubjectEntries struct {
	Size    uint64
	Entries []Entry
}

// VerifySubjectProof checks p offline, with only the log's origin and
// verifier key, and returns the subject's entries it proves complete: the
// checkpoint's signature; that its last entry is the subject map and is
// in its tree; the map proof of the head (or of the subject's absence)
// against that map's root; and the chain from the subject's first entry
// to its head, each entry in the tree, each linked to the one before by
// sequence number, index and leaf hash. It assumes the map is the map of
// the log, which whoever rebuilds it from the entries (log verify, a
// monitor) checks.
//
// size is the tree size the caller asked for: a server could otherwise
// answer with an older checkpoint, whose proof is sound and hides what
// came after it. With size 0 any checkpoint is accepted, and the caller
// must compare the returned Size with a checkpoint it trusts (the latest
// it witnessed).
func VerifySubjectProof(origin string, v note.Verifier, key SubjectKey, size uint64, p *SubjectProof) (*SubjectEntries, error) {
	if p.Subject != key {
		return nil, fmt.Errorf("the proof is for subject %s, not %s", p.Subject, key)
	}
	cp, _, _, err := log.ParseCheckpoint(p.Checkpoint, origin, v)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if size != 0 && cp.Size != size {
		return nil, fmt.Errorf("the proof is at tree size %d, not the %d asked for", cp.Size, size)
	}
	if cp.Size == 0 || p.Map.Index != cp.Size-1 {
		return nil, fmt.Errorf("the subject map is entry %d, not the last of the tree of size %d", p.Map.Index, cp.Size)
	}
	include := func(e Proven) ([32]byte, error) {
		leaf := LeafHash(e.Body)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp.Size, leaf[:], e.Inclusion, cp.Hash); err != nil {
			return leaf, fmt.Errorf("entry %d is not in the tree of size %d: %w", e.Index, cp.Size, err)
		}
		return leaf, nil
	}
	if _, err := include(p.Map); err != nil {
		return nil, err
	}
	mb, err := ParseMapBody(p.Map.Body)
	if err != nil {
		return nil, err
	}
	if mb.Size != p.Map.Index {
		return nil, fmt.Errorf("the subject map at %d says it covers %d entries", p.Map.Index, mb.Size)
	}
	siblings := make([]prefix.ProofNode, len(p.MapProof))
	for i, s := range p.MapProof {
		l, err := prefix.NewLabel(s.Bits, s.Label[:])
		if err != nil {
			return nil, fmt.Errorf("map proof node %d: %w", i, err)
		}
		siblings[i] = prefix.ProofNode{Label: l, Hash: s.Hash}
	}
	out := &SubjectEntries{Size: cp.Size}
	if p.Head == nil {
		if err := prefix.VerifyNonMembershipProof(mapHash, key, siblings, mb.Root); err != nil {
			return nil, fmt.Errorf("the map does not prove the subject absent: %w", err)
		}
		if len(p.Entries) != 0 {
			return nil, fmt.Errorf("the map proves the subject has no entry, yet the proof lists %d", len(p.Entries))
		}
		return out, nil
	}
	if err := prefix.VerifyMembershipProof(mapHash, key, p.Head.value(), siblings, mb.Root); err != nil {
		return nil, fmt.Errorf("the map does not hold this head: %w", err)
	}
	if p.Head.Count == 0 {
		return nil, fmt.Errorf("the map's head for the subject counts no entry")
	}
	if uint64(len(p.Entries)) != p.Head.Count {
		return nil, fmt.Errorf("the map counts %d entries of the subject, the proof lists %d", p.Head.Count, len(p.Entries))
	}
	// Each entry's inclusion and chain are read in parallel (a chain of
	// thousands is that many proofs and bodies); the links are then
	// followed in order.
	type read struct {
		leaf  [32]byte
		links []Link
		err   error
	}
	reads := make([]read, len(p.Entries))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), max(1, len(p.Entries)/256))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(p.Entries); i += workers {
				r := &reads[i]
				if r.leaf, r.err = include(p.Entries[i]); r.err == nil {
					if r.links, r.err = ChainsOf(p.Entries[i].Body); r.err != nil {
						r.err = fmt.Errorf("entry %d: %w", p.Entries[i].Index, r.err)
					}
				}
			}
		}()
	}
	wg.Wait()
	var prev *Entry
	for i, pe := range p.Entries {
		leaf, links, err := reads[i].leaf, reads[i].links, reads[i].err
		if err != nil {
			return nil, err
		}
		if pe.Index >= p.Map.Index || prev != nil && pe.Index <= prev.Index {
			return nil, fmt.Errorf("entry %d is out of order", pe.Index)
		}
		var link *Link
		for j := range links {
			if links[j].Subject == key {
				link = &links[j]
			}
		}
		switch {
		case link == nil:
			return nil, fmt.Errorf("entry %d is not chained under this subject", pe.Index)
		case link.Seq != uint64(i+1):
			return nil, fmt.Errorf("entry %d is the subject's entry %d, listed as %d", pe.Index, link.Seq, i+1)
		case prev == nil && (link.PrevIndex != nil || link.PrevLeafHash != nil):
			return nil, fmt.Errorf("entry %d, listed first, names a previous entry", pe.Index)
		case prev != nil && (link.PrevIndex == nil || link.PrevLeafHash == nil ||
			*link.PrevIndex != prev.Index || [32]byte(*link.PrevLeafHash) != prev.LeafHash):
			return nil, fmt.Errorf("entry %d does not follow entry %d in the subject's chain", pe.Index, prev.Index)
		}
		e := Entry{Index: pe.Index, Body: bytes.Clone(pe.Body), LeafHash: leaf}
		out.Entries = append(out.Entries, e)
		prev = &out.Entries[len(out.Entries)-1]
	}
	if prev.Index != p.Head.Index || prev.LeafHash != [32]byte(p.Head.LeafHash) {
		return nil, fmt.Errorf("the chain ends at entry %d, the map's head is entry %d", prev.Index, p.Head.Index)
	}
	return out, nil
}
