package ledger

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Subject chains. A writer names, on a record, the subjects it is about
// (Record.Chains: a study, a patient, as keys it derives; the log knows
// nothing of what a key names). At sequencing time the log links the
// entry into each subject's chain: it appends to the body, as its last
// member, "chain": for each subject, the entry's sequence number among
// that subject's entries and the previous one's index and leaf hash. A
// chain shows that nothing is missing between two of its entries; the
// subject map (submap.go), committed with every checkpoint, shows that
// nothing came after its head.

// SubjectKey names a chained subject: 32 bytes, derived by the writer.
type SubjectKey [32]byte

// Hash is a 32-byte hash written as lower-case hex in JSON.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText writes h as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("a hash is 64 hex digits, not %d", len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

func (k SubjectKey) String() string { return Hash(k).String() }

// MarshalText writes k as hex.
func (k SubjectKey) MarshalText() ([]byte, error) { return Hash(k).MarshalText() }

// UnmarshalText reads 64 hex digits.
func (k *SubjectKey) UnmarshalText(b []byte) error { return (*Hash)(k).UnmarshalText(b) }

// Link is an entry's place in one subject's chain, as its body records
// it: the first entry of a subject has Seq 1 and no previous entry.
type Link struct {
	Subject      SubjectKey `json:"subject"`
	Seq          uint64     `json:"seq"`
	PrevIndex    *uint64    `json:"prev_index,omitempty"`
	PrevLeafHash *Hash      `json:"prev_leaf_hash,omitempty"`
}

// SubjectLink is a link as the log's storage indexes it: the entry that
// holds it and that entry's leaf hash. It is derived from the bodies and
// proves nothing by itself; the bodies and the map do.
type SubjectLink struct {
	Subject  SubjectKey
	Seq      uint64
	Index    uint64
	LeafHash [32]byte
}

// next is the link that follows l (the zero SubjectLink: none yet) for
// the same subject.
func (l SubjectLink) next(key SubjectKey) Link {
	if l.Seq == 0 {
		return Link{Subject: key, Seq: 1}
	}
	idx, leaf := l.Index, Hash(l.LeafHash)
	return Link{Subject: key, Seq: l.Seq + 1, PrevIndex: &idx, PrevLeafHash: &leaf}
}

// ChainsOf reads the chain member of an entry body (nil when it has none).
// The log writes it last (withChain): in a valid body ending in a chain
// of the form withChain writes, that member is read without decoding the
// rest, which a proof of thousands of entries would otherwise spend most
// of its time on. (Ending the body, after `,"chain":`, a complete array
// is a member of the outermost object; the form holds no "chain" key, so
// the last such key is that member, as encoding/json reads it too.)
func ChainsOf(body []byte) ([]Link, error) {
	const member = `,"chain":`
	if i := bytes.LastIndex(body, []byte(member+"[")); i > 0 && bytes.HasSuffix(body, []byte("]}")) && json.Valid(body) {
		if links, ok := scanChain(body[i+len(member) : len(body)-1]); ok {
			return links, nil
		}
	}
	var b struct {
		Chain []Link `json:"chain"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	return b.Chain, nil
}

// hasChainMember reports whether body has a top-level chain member as
// encoding/json, and so ChainsOf, reads one (in any case, escaped or
// not). Only the log writes that member: one in a writer's body would be
// read as links the log never made. A chain nested deeper (a
// destination's reply quoted in a transfer) is the writer's own data.
func hasChainMember(body []byte) bool {
	var b struct {
		Chain json.RawMessage `json:"chain"`
	}
	return json.Unmarshal(body, &b) == nil && b.Chain != nil
}

// withChain appends the chain member to a body: a JSON object written
// without trailing space, as every writer's encoding/json writes it.
func withChain(body []byte, links []Link) ([]byte, error) {
	if len(links) == 0 {
		return body, nil
	}
	// Submit refused a body with a chain member of its own.
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, fmt.Errorf("ledger: a chained body must be a JSON object")
	}
	chain, err := json.Marshal(links)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+len(chain)+10)
	out = append(out, body[:len(body)-1]...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"chain":`...)
	out = append(out, chain...)
	return append(out, '}'), nil
}

// chain links a batch's new entries into their subjects' chains, in
// index order: it reads each subject's head once, rewrites the bodies
// (and so the leaf hashes) of chained entries, and returns the links to
// store. chains[i] are the subjects entries[i] named.
func chain(ctx context.Context, tx Tx, entries []Entry, chains [][]SubjectKey) ([]SubjectLink, error) {
	var keys []SubjectKey
	seen := map[SubjectKey]bool{}
	for _, ks := range chains {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	heads, err := tx.SubjectHeads(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("subject heads: %w", err)
	}
	var out []SubjectLink
	for i := range entries {
		if len(chains[i]) == 0 {
			continue
		}
		e := &entries[i]
		links := make([]Link, 0, len(chains[i]))
		done := map[SubjectKey]bool{}
		for _, k := range chains[i] {
			if done[k] {
				continue
			}
			done[k] = true
			links = append(links, heads[k].next(k))
		}
		if e.Body, err = withChain(e.Body, links); err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.Index, err)
		}
		e.LeafHash = LeafHash(e.Body)
		for _, l := range links {
			h := SubjectLink{Subject: l.Subject, Seq: l.Seq, Index: e.Index, LeafHash: e.LeafHash}
			heads[l.Subject] = h
			out = append(out, h)
		}
	}
	return out, nil
}
