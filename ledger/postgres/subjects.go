package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/ledger"
)

// Subject chains and the subject map (ledger/chain.go, ledger/submap.go):
// tables subject_links and subject_map_nodes, both append-only.

// EntriesAt reads the entries at idxs in one query.
func (t *Tx) EntriesAt(ctx context.Context, idxs []uint64, fn func(ledger.Entry) error) error {
	keys := make([]int64, len(idxs))
	for i, idx := range idxs {
		keys[i] = int64(idx)
	}
	n := 0
	err := each(ctx, t, scanEntry, func(e ledger.Entry) error {
		if e.Index != idxs[n] {
			return fmt.Errorf("%w: entry %d", ledger.ErrNotFound, idxs[n])
		}
		n++
		return fn(e)
	}, `SELECT `+entryColumns+` FROM entries WHERE idx = ANY($1) ORDER BY idx`, keys)
	if err == nil && n != len(idxs) {
		err = fmt.Errorf("%w: entry %d", ledger.ErrNotFound, idxs[n])
	}
	return err
}

func scanLink(row pgx.Row) (ledger.SubjectLink, error) {
	var l ledger.SubjectLink
	var key, leaf []byte
	var seq, idx int64
	if err := row.Scan(&key, &seq, &idx, &leaf); err != nil {
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

// SubjectHeads reads each key's link of the highest seq, in one query: a
// backward step of the primary key per key (DISTINCT ON would read every
// link of a subject with thousands).
func (t *Tx) SubjectHeads(ctx context.Context, keys []ledger.SubjectKey) (map[ledger.SubjectKey]ledger.SubjectLink, error) {
	args := make([][]byte, len(keys))
	for i := range keys {
		args[i] = keys[i][:]
	}
	out := make(map[ledger.SubjectKey]ledger.SubjectLink, len(keys))
	err := each(ctx, t, scanLink, func(l ledger.SubjectLink) error { out[l.Subject] = l; return nil },
		`SELECT l.subject, l.seq, l.idx, l.leaf_hash FROM unnest($1::bytea[]) AS want(subject)
		CROSS JOIN LATERAL (SELECT subject, seq, idx, leaf_hash FROM subject_links
			WHERE subject = want.subject ORDER BY seq DESC LIMIT 1) l`, args)
	return out, err
}

// PutSubjectLinks queues the links with the batch's other writes.
func (t *Tx) PutSubjectLinks(ctx context.Context, links []ledger.SubjectLink) error {
	for _, l := range links {
		t.queue(`INSERT INTO subject_links (subject, seq, idx, leaf_hash) VALUES ($1, $2, $3, $4)`,
			l.Subject[:], int64(l.Seq), int64(l.Index), l.LeafHash[:])
	}
	return nil
}

func (t *Tx) SubjectLinks(ctx context.Context, key ledger.SubjectKey, before uint64, fn func(ledger.SubjectLink) error) error {
	return each(ctx, t, scanLink, fn,
		`SELECT subject, seq, idx, leaf_hash FROM subject_links WHERE subject = $1 AND idx < $2 ORDER BY seq`, key[:], int64(before))
}

// MapNodes reads every label in one query: for each, the row of the
// highest version <= version, one backward step of the primary key.
func (t *Tx) MapNodes(ctx context.Context, labels [][]byte, version uint64) ([]ledger.MapNode, error) {
	out := make([]ledger.MapNode, 0, len(labels))
	err := each(ctx, t, scanMapNode, func(n ledger.MapNode) error { out = append(out, n); return nil },
		`SELECT n.label, n.left_label, n.right_label, n.hash FROM unnest($1::bytea[]) AS want(label)
		CROSS JOIN LATERAL (SELECT label, left_label, right_label, hash FROM subject_map_nodes
			WHERE label = want.label AND version <= $2 ORDER BY version DESC LIMIT 1) n`, labels, int64(version))
	return out, err
}

func scanMapNode(row pgx.Row) (ledger.MapNode, error) {
	var n ledger.MapNode
	var hash []byte
	if err := row.Scan(&n.Label, &n.Left, &n.Right, &hash); err != nil {
		return n, err
	}
	if len(hash) != 32 {
		return n, fmt.Errorf("subject map node: a %d-byte hash", len(hash))
	}
	copy(n.Hash[:], hash)
	return n, nil
}

// PutMapNodes queues the nodes with the map entry's other writes.
func (t *Tx) PutMapNodes(ctx context.Context, version uint64, nodes []ledger.MapNode) error {
	for _, n := range nodes {
		t.queue(`INSERT INTO subject_map_nodes (label, version, left_label, right_label, hash) VALUES ($1, $2, $3, $4, $5)`,
			n.Label, int64(version), orEmpty(n.Left), orEmpty(n.Right), n.Hash[:])
	}
	return nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
