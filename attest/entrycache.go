package attest

import (
	"encoding/base64"
	"sync"

	"github.com/dicomseal/dicomseal/ledger"
)

// entryCacheSize is how many verified attesting entries are remembered:
// about 15 KB each (the statement's per-attribute digests dominate), so
// the default holds a busy reading room's working set in ~30 MB.
const entryCacheSize = 2048

// entryCache remembers attesting entries whose envelope signature and
// statement verified, keyed by leaf hash: an instance read again (a viewer
// opening a series twice, a PACS checking before display) is not verified
// again. It is consulted only after the row's body hashed to its leaf
// hash, and a hit must also agree on index, kind, subject and digest; a
// row changed in any way therefore misses, and is verified in full.
type entryCache struct {
	mu   sync.Mutex
	m    map[[32]byte]*cachedEntry
	ring [][32]byte // insertion order; the oldest is evicted first
	next int
}

type cachedEntry struct {
	index     uint64
	kind      ledger.Kind
	subject   string
	fileSHA   string
	predicate Predicate
	att       Attestation // without Entry, which the row gives back
}

func newEntryCache(n int) *entryCache {
	if n <= 0 {
		return nil
	}
	return &entryCache{m: make(map[[32]byte]*cachedEntry, n), ring: make([][32]byte, n)}
}

// get returns e's verified predicate and attestation when e was verified
// before; the attestation is the caller's own copy.
func (c *entryCache) get(e ledger.Entry) (Predicate, *Attestation, bool) {
	if c == nil {
		return Predicate{}, nil, false
	}
	c.mu.Lock()
	ce, ok := c.m[e.LeafHash]
	c.mu.Unlock()
	if !ok || ce.index != e.Index || ce.kind != e.Kind || ce.subject != e.Subject || ce.fileSHA != e.FileSHA256 {
		return Predicate{}, nil, false
	}
	att := ce.att
	att.Entry = base64.StdEncoding.EncodeToString(e.Body)
	return ce.predicate, &att, true
}

// put remembers an entry that verified.
func (c *entryCache) put(e ledger.Entry, p Predicate, att *Attestation) {
	if c == nil {
		return
	}
	ce := &cachedEntry{index: e.Index, kind: e.Kind, subject: e.Subject, fileSHA: e.FileSHA256, predicate: p, att: *att}
	ce.att.Entry, ce.att.Inclusion = "", nil
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[e.LeafHash]; ok {
		return
	}
	delete(c.m, c.ring[c.next])
	c.ring[c.next] = e.LeafHash
	c.m[e.LeafHash] = ce
	c.next = (c.next + 1) % len(c.ring)
}
