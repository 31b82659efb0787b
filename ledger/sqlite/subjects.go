package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/dicomseal/dicomseal/ledger"
)

// Subject chains and the subject map (ledger/chain.go, ledger/submap.go):
// tables subject_links and subject_map_nodes, both append-only.

// EntriesAt reads the entries at idxs, a chunk of indexes per query.
func (t *Tx) EntriesAt(ctx context.Context, idxs []uint64, fn func(ledger.Entry) error) error {
	const chunk = 500
	for len(idxs) > 0 {
		c := idxs[:min(chunk, len(idxs))]
		idxs = idxs[len(c):]
		args := make([]any, len(c))
		for i, idx := range c {
			args[i] = int64(idx)
		}
		n := 0
		err := each(ctx, t.tx, scanEntry, func(e ledger.Entry) error {
			if e.Index != c[n] {
				return fmt.Errorf("%w: entry %d", ledger.ErrNotFound, c[n])
			}
			n++
			return fn(e)
		}, `SELECT `+entryColumns+` FROM entries WHERE idx IN (?`+strings.Repeat(",?", len(c)-1)+`) ORDER BY idx`, args...)
		if err != nil {
			return err
		}
		if n != len(c) {
			return fmt.Errorf("%w: entry %d", ledger.ErrNotFound, c[n])
		}
	}
	return nil
}

func scanLink(sc interface{ Scan(...any) error }) (ledger.SubjectLink, error) {
	var l ledger.SubjectLink
	var key, leaf []byte
	var seq, idx int64
	if err := sc.Scan(&key, &seq, &idx, &leaf); err != nil {
		return l, err
	}
	if len(key) != 32 || len(leaf) != 32 {
		return l, fmt.Errorf("subject link of entry %d: malformed key or leaf hash", idx)
	}
	copy(l.Subject[:], key)
	copy(l.LeafHash[:], leaf)
	l.Seq, l.Index = uint64(seq), uint64(idx)
	return l, nil
}

// SubjectHeads reads each key's link of the highest seq (SQLite takes the
// bare columns from the row MAX chose).
func (t *Tx) SubjectHeads(ctx context.Context, keys []ledger.SubjectKey) (map[ledger.SubjectKey]ledger.SubjectLink, error) {
	out := make(map[ledger.SubjectKey]ledger.SubjectLink, len(keys))
	const chunk = 500
	for len(keys) > 0 {
		c := keys[:min(chunk, len(keys))]
		keys = keys[len(c):]
		args := make([]any, len(c))
		for i, k := range c {
			args[i] = k[:]
		}
		err := each(ctx, t.tx, scanLink, func(l ledger.SubjectLink) error { out[l.Subject] = l; return nil },
			`SELECT subject, MAX(seq), idx, leaf_hash FROM subject_links WHERE subject IN (?`+strings.Repeat(",?", len(c)-1)+`) GROUP BY subject`, args...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Tx) PutSubjectLinks(ctx context.Context, links []ledger.SubjectLink) error {
	return execEach(ctx, t.tx, `INSERT INTO subject_links (subject, seq, idx, leaf_hash) VALUES (?, ?, ?, ?)`, len(links), func(i int) []any {
		l := links[i]
		return []any{l.Subject[:], int64(l.Seq), int64(l.Index), l.LeafHash[:]}
	})
}

func (t *Tx) SubjectLinks(ctx context.Context, key ledger.SubjectKey, before uint64, fn func(ledger.SubjectLink) error) error {
	return each(ctx, t.tx, scanLink, fn,
		`SELECT subject, seq, idx, leaf_hash FROM subject_links WHERE subject = ? AND idx < ? ORDER BY seq`, key[:], int64(before))
}

// MapNodes reads a chunk of labels per query: for each, the row of the
// highest version <= version, found by the primary key (label, version).
func (t *Tx) MapNodes(ctx context.Context, labels [][]byte, version uint64) ([]ledger.MapNode, error) {
	out := make([]ledger.MapNode, 0, len(labels))
	const chunk = 64
	for len(labels) > 0 {
		c := labels[:min(chunk, len(labels))]
		labels = labels[len(c):]
		args := make([]any, 0, len(c)+1)
		for _, l := range c {
			args = append(args, l)
		}
		args = append(args, int64(version))
		err := each(ctx, t.tx, scanMapNode, func(n ledger.MapNode) error { out = append(out, n); return nil },
			`WITH want(label) AS (VALUES (?)`+strings.Repeat(",(?)", len(c)-1)+`)
			SELECT n.label, n.left_label, n.right_label, n.hash FROM want JOIN subject_map_nodes n
			ON n.label = want.label AND n.version = (SELECT MAX(m.version) FROM subject_map_nodes m WHERE m.label = want.label AND m.version <= ?)`, args...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func scanMapNode(sc interface{ Scan(...any) error }) (ledger.MapNode, error) {
	var n ledger.MapNode
	var hash []byte
	if err := sc.Scan(&n.Label, &n.Left, &n.Right, &hash); err != nil {
		return n, err
	}
	if len(hash) != 32 {
		return n, fmt.Errorf("subject map node: a %d-byte hash", len(hash))
	}
	copy(n.Hash[:], hash)
	return n, nil
}

// PutMapNodes inserts a chunk of rows per statement: an update writes
// thousands, and one statement per row cost more than the update's reads.
func (t *Tx) PutMapNodes(ctx context.Context, version uint64, nodes []ledger.MapNode) error {
	const chunk = 100
	for len(nodes) > 0 {
		c := nodes[:min(chunk, len(nodes))]
		nodes = nodes[len(c):]
		args := make([]any, 0, 5*len(c))
		for _, n := range c {
			args = append(args, n.Label, int64(version), orEmpty(n.Left), orEmpty(n.Right), n.Hash[:])
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO subject_map_nodes (label, version, left_label, right_label, hash) VALUES (?, ?, ?, ?, ?)`+
			strings.Repeat(", (?, ?, ?, ?, ?)", len(c)-1), args...); err != nil {
			return err
		}
	}
	return nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
