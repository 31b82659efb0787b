package ledger

import (
	"context"
	"fmt"

	"filippo.io/torchwood/prefix"
)

// mapAuditor rebuilds the subject map from the entries, as log verify
// audits a log: every chain link against the subject's previous entry in
// the log, every subject-map entry against the map of the entries before
// it, and every checkpoint after the first map against the rule that it
// ends with one. It is what a subject proof assumes someone does.
type mapAuditor struct {
	tree  *prefix.Tree
	heads map[SubjectKey]SubjectLink
	// maps are the indexes of subject-map entries; first is the first.
	maps  map[uint64]bool
	first *uint64
	find  func(idx uint64, format string, args ...any)
}

func newMapAuditor(find func(uint64, string, ...any)) *mapAuditor {
	s := prefix.NewMemoryStorage()
	if err := prefix.InitStorage(context.Background(), mapHash, s); err != nil {
		panic(err) // memory storage does not fail
	}
	return &mapAuditor{tree: prefix.NewTree(mapHash, s), heads: map[SubjectKey]SubjectLink{}, maps: map[uint64]bool{}, find: find}
}

func (m *mapAuditor) entry(ctx context.Context, e Entry) error {
	leaf := LeafHash(e.Body)
	if e.Kind == KindSubjectMap {
		if m.first == nil {
			idx := e.Index
			m.first = &idx
		}
		m.maps[e.Index] = true
		mb, err := ParseMapBody(e.Body)
		switch {
		case err != nil:
			m.find(e.Index, "subject map: %v", err)
		case mb.Size != e.Index:
			m.find(e.Index, "subject map: it says it covers %d entries, but it is entry %d", mb.Size, e.Index)
		default:
			root, err := m.tree.RootHash(ctx)
			if err != nil {
				return err
			}
			if root != mb.Root {
				m.find(e.Index, "checkpoint at tree size %d: its subject map (root %s) is not the map rebuilt from the entries before it (root %s)",
					e.Index+1, mb.Root, Hash(root))
			}
		}
		return nil
	}
	links, err := ChainsOf(e.Body)
	if err != nil {
		return nil // not JSON: the entry's format finding says so
	}
	done := map[SubjectKey]bool{}
	for _, l := range links {
		if done[l.Subject] {
			m.find(e.Index, "chained twice under subject %s", l.Subject)
			continue
		}
		done[l.Subject] = true
		h := m.heads[l.Subject]
		want := h.next(l.Subject)
		if l.Seq != want.Seq || !samePrev(l, want) {
			m.find(e.Index, "its chain for subject %s (entry %d of it) does not follow the subject's previous entry in the log (%d entries before it, the last at index %d)",
				l.Subject, l.Seq, h.Seq, h.Index)
		}
		nh := SubjectLink{Subject: l.Subject, Seq: h.Seq + 1, Index: e.Index, LeafHash: leaf}
		m.heads[l.Subject] = nh
		if err := m.tree.Insert(ctx, l.Subject, Head{Index: e.Index, LeafHash: leaf, Count: nh.Seq}.value()); err != nil {
			return fmt.Errorf("subject map: %w", err)
		}
	}
	return nil
}

func samePrev(a, b Link) bool {
	if (a.PrevIndex == nil) != (b.PrevIndex == nil) || (a.PrevLeafHash == nil) != (b.PrevLeafHash == nil) {
		return false
	}
	return a.PrevIndex == nil || *a.PrevIndex == *b.PrevIndex && *a.PrevLeafHash == *b.PrevLeafHash
}

// checkpoints checks that every verified checkpoint past the first subject
// map ends with one.
func (m *mapAuditor) checkpoints(verified []signedCheckpoint) {
	if m.first == nil {
		return
	}
	for _, c := range verified {
		if c.size > *m.first+1 && !m.maps[c.size-1] {
			m.find(c.size-1, "checkpoint at tree size %d does not end with a subject map", c.size)
		}
	}
}
