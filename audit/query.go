package audit

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/ledger"
)

// Found is one audit entry with its proof of inclusion.
type Found struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"`
	Event
	// Inclusion proves the entry is in the audit log's latest checkpoint;
	// absent until the entry is integrated (within a second).
	Inclusion *Inclusion `json:"inclusion,omitempty"`
}

// Inclusion is an RFC 9162 inclusion proof against a signed checkpoint.
type Inclusion struct {
	Checkpoint string   `json:"checkpoint"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     []string `json:"hashes"`
}

// TamperedError: the audit log fails verification at Index; a query that
// meets it serves nothing.
type TamperedError struct {
	Index  uint64
	Reason string
}

func (e *TamperedError) Error() string {
	return fmt.Sprintf("audit log fails verification at index %d: %s", e.Index, e.Reason)
}

// checkpointRoot reads a checkpoint note's root hash (its third line).
func checkpointRoot(msg []byte) ([]byte, error) {
	lines := strings.SplitN(string(msg), "\n", 4)
	if len(lines) < 4 {
		return nil, errors.New("its latest checkpoint is malformed")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, errors.New("its latest checkpoint's root is malformed")
	}
	return root, nil
}

// Filter selects audit entries; zero fields match everything.
type Filter struct {
	Actor string
	// Object is what the request named (a SOP Instance UID, a token's
	// name), read through the index of objects.
	Object       string
	Since, Until time.Time
	// From is the first log index considered: a cursor (the last index
	// served, plus one). Times order requests by when they began, the log
	// by when they were recorded, so only the index pages without gaps.
	From  uint64
	Limit int
}

// Query returns the matching entries, oldest first, each with its
// inclusion proof once integrated.
func (a *Log) Query(ctx context.Context, f Filter) ([]Found, error) {
	switch {
	case f.Limit <= 0:
		f.Limit = 1000
	case f.Limit > 10000:
		f.Limit = 10000
	}
	// The checkpoint first: entries appended after it are simply not yet
	// proven; read after the scan, a newer checkpoint would make a sound
	// log look truncated.
	cp, err := a.ledger.LatestCheckpoint(ctx)
	haveCP := err == nil
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	var root []byte
	if haveCP {
		if _, err := note.Open(cp.Note, note.VerifierList(a.ledger.Verifier())); err != nil {
			return nil, &TamperedError{Index: cp.Size, Reason: "its latest checkpoint does not verify with the log key"}
		}
		if root, err = checkpointRoot(cp.Note); err != nil {
			return nil, &TamperedError{Index: cp.Size, Reason: err.Error()}
		}
	}
	var out []Found
	errFull := errors.New("full")
	scan := func(fn func(ledger.Entry) error) error { return a.ledger.Scan(ctx, f.From, fn) }
	indexed := f.Object != "" || !f.Since.IsZero() || !f.Until.IsZero()
	switch {
	case indexed:
		// Objects and times are in the audit log's index of events.
		scan = func(fn func(ledger.Entry) error) error { return a.scanIndexed(ctx, f, fn) }
	case f.Actor != "":
		// The actor is the entries' indexed subject: no full scan.
		scan = func(fn func(ledger.Entry) error) error { return a.ledger.ScanSubject(ctx, f.Actor, fn) }
	}
	full := f.Actor == "" && !indexed // a full scan sees every index in turn
	next := f.From
	err = scan(func(e ledger.Entry) error {
		if e.Index < f.From {
			return nil
		}
		if ledger.LeafHash(e.Body) != e.LeafHash {
			// An entry edited behind the log's back: serve nothing.
			return &TamperedError{Index: e.Index, Reason: "its body does not hash to its leaf hash"}
		}
		if full {
			if e.Index != next {
				return &TamperedError{Index: next, Reason: "the entry is missing"}
			}
			next++
		}
		if e.Kind == ledger.KindSubjectMap {
			return nil // a checkpoint's subject map: no event
		}
		if e.Kind != KindAudit {
			// The audit log holds audit entries and subject maps only:
			// another kind is an edit.
			return &TamperedError{Index: e.Index, Reason: fmt.Sprintf("an entry of kind %q in the audit log", e.Kind)}
		}
		if f.Actor != "" && e.Subject != f.Actor {
			return nil
		}
		ev, err := Decode(e)
		if err != nil {
			// Never a silent gap in the trail: an entry this release
			// cannot read stops the answer, by name.
			return err
		}
		if (f.Object != "" && ev.Object != asRecorded(f.Object)) || (f.Actor != "" && ev.Actor != f.Actor) {
			return nil
		}
		if (!f.Since.IsZero() && ev.Time.Before(f.Since)) || (!f.Until.IsZero() && ev.Time.After(f.Until)) {
			return nil
		}
		out = append(out, Found{Index: e.Index, LeafHash: hex.EncodeToString(e.LeafHash[:]), Event: ev})
		if len(out) >= f.Limit {
			return errFull
		}
		return nil
	})
	var tampered *TamperedError
	if errors.As(err, &tampered) {
		return nil, err
	}
	if err != nil && !errors.Is(err, errFull) {
		return nil, err
	}
	if !haveCP {
		return out, nil
	}
	if full && len(out) < f.Limit && next < cp.Size {
		// The scan ended before the signed size: the tail is gone.
		return nil, &TamperedError{Index: next, Reason: fmt.Sprintf("the log ends before its checkpoint's size %d", cp.Size)}
	}
	if cp.Size > 0 && f.From >= cp.Size {
		// A client tailing the log asks from past the checkpoint: the
		// scan saw nothing signed, so look for the signed tail itself.
		if _, err := a.ledger.Entry(ctx, cp.Size-1); errors.Is(err, ledger.ErrNotFound) {
			return nil, &TamperedError{Index: cp.Size - 1, Reason: fmt.Sprintf("the log ends before its checkpoint's size %d", cp.Size)}
		} else if err != nil {
			return nil, err
		}
	}
	for i := range out {
		if out[i].Index >= cp.Size {
			continue
		}
		hashes, _, err := a.ledger.InclusionProof(ctx, out[i].Index, cp.Size)
		if err != nil {
			return nil, err
		}
		leaf, _ := hex.DecodeString(out[i].LeafHash)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, out[i].Index, cp.Size, leaf, hashes, root); err != nil {
			// What would be served does not prove against the signed tree.
			return nil, &TamperedError{Index: out[i].Index, Reason: "it is not in the tree its checkpoint signs: " + err.Error()}
		}
		inc := &Inclusion{Checkpoint: string(cp.Note), TreeSize: cp.Size, Hashes: []string{}}
		for _, h := range hashes {
			inc.Hashes = append(inc.Hashes, hex.EncodeToString(h))
		}
		out[i].Inclusion = inc
	}
	return out, nil
}

// asRecorded is s as an event records it: encoding/json replaces bytes
// that are not UTF-8.
func asRecorded(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

// scanIndexed calls fn, in index order, for the entries the index of
// events names for f's actor, object and times (at millisecond precision:
// the events themselves are then filtered exactly), a page at a time.
func (a *Log) scanIndexed(ctx context.Context, f Filter, fn func(ledger.Entry) error) error {
	sinceMs, untilMs := int64(math.MinInt64), int64(math.MaxInt64)
	if !f.Since.IsZero() {
		sinceMs = f.Since.UnixMilli()
	}
	if !f.Until.IsZero() {
		untilMs = f.Until.UnixMilli() + 1
	}
	const page = 1000
	from := f.From
	for {
		var idxs []uint64
		err := a.ledger.View(ctx, func(ltx ledger.Tx) error {
			tx, err := txOf(ltx)
			if err != nil {
				return err
			}
			idxs, err = tx.AuditEventIndexes(ctx, IndexKey(f.Actor), IndexKey(asRecorded(f.Object)), sinceMs, untilMs, from, page)
			return err
		})
		if err != nil {
			return err
		}
		for _, idx := range idxs {
			e, err := a.ledger.Entry(ctx, idx)
			if errors.Is(err, ledger.ErrNotFound) {
				return &TamperedError{Index: idx, Reason: "the entry its index names is missing"}
			}
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(idxs) < page {
			return nil
		}
		from = idxs[len(idxs)-1] + 1
	}
}

// Checkpoint is the audit log's latest signed checkpoint (a C2SP signed
// note, signed by the audit log's own key): what a witness follows.
func (a *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := a.ledger.LatestCheckpoint(ctx)
	return cp.Note, err
}

// ConsistencyProof proves that the audit log's tree of size to (0: the
// latest checkpoint's) extends the one of size from, and returns to.
func (a *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, uint64, error) {
	return a.ledger.ConsistencyProof(ctx, from, to)
}

// SubjectProof proves every audit entry about a subject (a study) in the
// audit log's tree of the given size (0: the latest checkpoint's).
func (a *Log) SubjectProof(ctx context.Context, key ledger.SubjectKey, size uint64) (*ledger.SubjectProof, error) {
	return a.ledger.SubjectProof(ctx, key, size)
}
