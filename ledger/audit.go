package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Finding is one disagreement found by an audit, at the first log index it
// concerns (for a checkpoint, the last index that checkpoint covers).
type Finding struct {
	Index uint64
	What  string
}

func (f Finding) String() string { return fmt.Sprintf("index %d: %s", f.Index, f.What) }

// AuditReport is the outcome of a full audit.
type AuditReport struct {
	Entries     uint64
	Batches     int
	Checkpoints int
	// TreeSize is the size of the latest checkpoint whose signature verified.
	TreeSize uint64
	// SubjectMaps is how many subject-map entries were rebuilt and
	// compared, Subjects how many subjects they map.
	SubjectMaps, Subjects int
	// Findings, ordered by index; empty when the ledger is sound.
	Findings []Finding
}

// OK reports whether the audit found nothing.
func (r *AuditReport) OK() bool { return len(r.Findings) == 0 }

// Audit checks a whole ledger without trusting it: every checkpoint's
// signature (with verifier, which must come from the auditor, never from
// the database), every batch's signature, every entry against its stored
// leaf hash and its signed batch, the tree recomputed from the entries
// against every checkpoint's root, and the stored tree nodes proofs are
// served from, every entry's body format (see AuditOptions), and the
// subject chains and maps rebuilt from the entries (auditmap.go).
//
// It catches edits made behind the service's back by anyone without the
// log key. A holder of the log key can rewrite entries, batches and
// checkpoints consistently; only a party holding an older checkpoint
// (`log watch`, a witness) can catch that.
func Audit(ctx context.Context, b Backend, origin string, verifier note.Verifier, opts AuditOptions) (*AuditReport, error) {
	rep := &AuditReport{}
	err := b.Read(ctx, func(tx Tx) error {
		a := &auditor{origin: origin, verifier: verifier, formats: opts.Formats, previous: opts.Previous, rep: rep}
		progress := opts.Progress
		if err := a.checkpoints(ctx, tx); err != nil {
			return err
		}
		if err := a.batches(ctx, tx); err != nil {
			return err
		}
		a.legacyCheckpoints()
		if a.previous != nil && a.handover == nil && len(a.legacy) > 0 {
			// The handover is published with the own key's creation: a log
			// that has the key and no checkpoint of it was rewritten by a
			// holder of the previous key alone.
			a.find(a.legacy[len(a.legacy)-1]-min(a.legacy[len(a.legacy)-1], 1), "no checkpoint is signed by the log's own key: the previous key alone signed what is here")
		}
		if err := a.entries(ctx, tx, progress); err != nil {
			return err
		}
		if opts.Index != nil {
			found, err := opts.Index(ctx, tx)
			if err != nil {
				return err
			}
			rep.Findings = append(rep.Findings, found...)
		}
		return a.nodes(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger audit: %w", err)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Index < rep.Findings[j].Index })
	return rep, nil
}

// AuditOptions are what an audit checks beyond signatures and the tree.
type AuditOptions struct {
	// Formats are the kinds and versions the auditor reads (nil: bodies
	// are not checked).
	Formats Formats
	// Previous is the log's previous key, from before its own (the audit
	// log's, once signed with the custody key): batches and checkpoints it
	// signed are accepted up to the first checkpoint the log's own key
	// signed, and never after.
	Previous note.Verifier
	// Progress, if not nil, is called as entries are checked.
	Progress func(done, total uint64)
	// Index, if not nil, checks an index kept beside the log (the audit
	// log's events) against the entries, in the audit's snapshot: a row
	// deleted or edited behind the log's back would hide what it indexes.
	Index func(ctx context.Context, tx Tx) ([]Finding, error)
}

type signedCheckpoint struct {
	size uint64
	root []byte
}

type auditor struct {
	origin   string
	verifier note.Verifier
	formats  Formats
	previous note.Verifier
	// handover is the size of the first checkpoint the log's own key
	// signed, ownFrom the first index of the first batch it signed (each
	// set once seen): the previous key's authority ends at the earlier.
	handover, ownFrom *uint64
	// legacy are the sizes of the checkpoints the previous key alone signed.
	legacy []uint64
	rep    *AuditReport

	verified []signedCheckpoint // signature verified, ascending
	signed   [][32]byte         // leaf hashes from verified batches, by index
	leaves   [][32]byte         // leaf hashes recomputed from entries, by index
	haveLeaf []bool             // false where an entry is missing
}

func (a *auditor) find(idx uint64, format string, args ...any) {
	a.rep.Findings = append(a.rep.Findings, Finding{Index: idx, What: fmt.Sprintf(format, args...)})
}

func (a *auditor) checkpoints(ctx context.Context, tx Tx) error {
	return tx.ScanCheckpoints(ctx, func(c Checkpoint) error {
		a.rep.Checkpoints++
		last := c.Size - 1
		if c.Size == 0 {
			last = 0
		}
		cp, _, _, err := log.ParseCheckpoint(c.Note, a.origin, a.verifier)
		switch {
		case err == nil && a.handover == nil:
			size := c.Size
			a.handover = &size
		case err != nil && a.previous != nil && a.handover == nil:
			// Before the log had its own key, the previous one signed it.
			if cp, _, _, err = log.ParseCheckpoint(c.Note, a.origin, a.previous); err == nil {
				a.legacy = append(a.legacy, c.Size)
			}
		}
		switch {
		case err != nil:
			a.find(last, "checkpoint at tree size %d: %v", c.Size, err)
			return nil
		case cp.Size != c.Size || !bytes.Equal(cp.Hash, c.Root):
			a.find(last, "checkpoint at tree size %d: stored size or root disagree with its signed note (size %d)", c.Size, cp.Size)
		}
		if n := len(a.verified); n > 0 && cp.Size <= a.verified[n-1].size {
			a.find(last, "checkpoint at tree size %d does not extend the previous one (%d)", cp.Size, a.verified[n-1].size)
			return nil
		}
		a.verified = append(a.verified, signedCheckpoint{size: cp.Size, root: cp.Hash})
		a.rep.TreeSize = cp.Size
		return nil
	})
}

func (a *auditor) batches(ctx context.Context, tx Tx) error {
	return tx.ScanBatches(ctx, 0, func(b Batch) error {
		a.rep.Batches++
		if b.First != uint64(len(a.signed)) {
			a.find(min(b.First, uint64(len(a.signed))), "signed batches are not contiguous: one starts at %d, expected %d", b.First, len(a.signed))
			if b.First < uint64(len(a.signed)) {
				return nil
			}
		}
		if !a.batchSigned(b) {
			a.find(b.First, "batch of %d entries: signature does not verify with the log key", len(b.Leaves))
			return nil
		}
		for uint64(len(a.signed)) < b.First {
			a.signed = append(a.signed, [32]byte{})
		}
		a.signed = append(a.signed, b.Leaves...)
		return nil
	})
}

// batchSigned tells whether the log's key signed b, or the previous key
// did while it still signed the log: before the first checkpoint and the
// first batch the log's own key signed.
func (a *auditor) batchSigned(b Batch) bool {
	msg := batchMessage(a.origin, b.First, b.Leaves)
	if a.verifier.Verify(msg, b.Signature) {
		if a.ownFrom == nil {
			first := b.First
			a.ownFrom = &first
		}
		return true
	}
	return a.previous != nil && a.ownFrom == nil && (a.handover == nil || b.First+uint64(len(b.Leaves)) <= *a.handover) &&
		a.previous.Verify(msg, b.Signature)
}

// legacyCheckpoints reports a checkpoint the previous key alone signed
// that covers entries the log's own key had begun to sign.
func (a *auditor) legacyCheckpoints() {
	for _, size := range a.legacy {
		if a.ownFrom != nil && size > *a.ownFrom {
			a.find(size-1, "checkpoint at tree size %d is signed by the previous log key alone, past index %d from which the log's own key signs",
				size, *a.ownFrom)
		}
	}
}

func (a *auditor) entries(ctx context.Context, tx Tx, progress func(done, total uint64)) error {
	total, err := tx.NextIndex(ctx)
	if err != nil {
		return err
	}
	if s := a.rep.TreeSize; s > total {
		total = s
	}
	next := uint64(0)
	rng := rangeFactory.NewEmptyRange(0)
	cpi := 0
	treeBroken := false
	maps := newMapAuditor(a.find)
	addLeaf := func(leaf [32]byte, ok bool) {
		a.leaves = append(a.leaves, leaf)
		a.haveLeaf = append(a.haveLeaf, ok)
		if treeBroken {
			return
		}
		if err := rng.Append(leaf[:], nil); err != nil {
			treeBroken = true
			return
		}
		for cpi < len(a.verified) && a.verified[cpi].size == rng.End() {
			root, _ := rng.GetRootHash(nil)
			if !bytes.Equal(root, a.verified[cpi].root) {
				a.find(rng.End()-1, "checkpoint at tree size %d: its root does not match the tree of the entries", rng.End())
			}
			cpi++
		}
	}
	// The empty tree's checkpoint, published when the log was created.
	for cpi < len(a.verified) && a.verified[cpi].size == 0 {
		if !bytes.Equal(a.verified[cpi].root, rfc6962.DefaultHasher.EmptyRoot()) {
			a.find(0, "checkpoint at tree size 0: its root is not the empty tree's")
		}
		cpi++
	}
	// missing fills a gap with the signed leaf where there is one, so the
	// rest of the log can still be checked against its checkpoints.
	missing := func(idx uint64) {
		if idx < uint64(len(a.signed)) {
			addLeaf(a.signed[idx], false)
		} else {
			addLeaf([32]byte{}, false)
			treeBroken = true
		}
	}
	err = tx.ScanEntries(ctx, 0, ^uint64(0), func(e Entry) error {
		if e.Index < next {
			a.find(e.Index, "entry %d appears twice", e.Index)
			return nil
		}
		if e.Index > next {
			a.find(next, "entries %d to %d are missing", next, e.Index-1)
			for ; next < e.Index; next++ {
				missing(next)
			}
		}
		leaf := LeafHash(e.Body)
		switch {
		case leaf != e.LeafHash:
			a.find(e.Index, "entry body does not match its stored leaf hash")
		case e.Index >= uint64(len(a.signed)):
			a.find(e.Index, "entry is not covered by any signed batch (appended behind the service's back?)")
		case leaf != a.signed[e.Index]:
			a.find(e.Index, "entry differs from the leaf hash its signed batch recorded")
		}
		if a.formats != nil {
			var fe *FormatError
			if _, err := a.formats.Check(e); errors.As(err, &fe) {
				a.find(e.Index, "%s", fe.Reason)
			}
		}
		addLeaf(leaf, true)
		if err := maps.entry(ctx, e); err != nil {
			return err
		}
		next++
		if progress != nil && next%10000 == 0 {
			progress(next, total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if end := max(a.rep.TreeSize, uint64(len(a.signed))); next < end {
		a.find(next, "the log ends at %d entries but its checkpoints and batches cover %d (truncated)", next, end)
	}
	maps.checkpoints(a.verified)
	a.rep.SubjectMaps, a.rep.Subjects = len(maps.maps), len(maps.heads)
	a.rep.Entries = next
	if progress != nil {
		progress(next, total)
	}
	return nil
}

// nodes recomputes the tree up to the latest verified checkpoint and
// compares every stored node, a chunk at a time.
func (a *auditor) nodes(ctx context.Context, tx Tx) error {
	size := min(a.rep.TreeSize, uint64(len(a.leaves)))
	rng := rangeFactory.NewEmptyRange(0)
	var ids []compact.NodeID
	var want [][]byte
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		got, err := tx.Nodes(ctx, ids)
		if err != nil {
			// Find which are missing one by one only on this slow path.
			for i, id := range ids {
				if _, err := tx.Nodes(ctx, ids[i:i+1]); err != nil {
					begin, _ := id.Coverage()
					a.find(begin, "tree node (level %d, index %d) is missing", id.Level, id.Index)
					break
				}
			}
		} else {
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					begin, _ := ids[i].Coverage()
					a.find(begin, "stored tree node (level %d, index %d) differs from the entries: proofs served from it would be wrong", ids[i].Level, ids[i].Index)
					break
				}
			}
		}
		ids, want = ids[:0], want[:0]
		return nil
	}
	for i := uint64(0); i < size; i++ {
		leaf := a.leaves[i]
		if !a.haveLeaf[i] {
			return nil // already reported; the tree cannot be recomputed past a hole
		}
		if err := rng.Append(leaf[:], func(id compact.NodeID, h []byte) {
			ids = append(ids, id)
			want = append(want, bytes.Clone(h))
		}); err != nil {
			return err
		}
		if len(ids) >= 1024 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
