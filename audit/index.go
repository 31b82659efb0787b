package audit

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/subject"
)

// The audit log's index: each entry's time, actor, object and action, in a
// table of the audit log's own schema (events), written in the append's
// transaction, so that queries by actor, object or time read an index.

// Tx is the index's storage, in the same transaction as the log's.
type Tx interface {
	ledger.Tx
	PutAuditEvent(ctx context.Context, idx uint64, timeMs int64, actor, object, action string) error
	// AuditEventIndexes are the indexes, from index from on and in order,
	// of the events of actor and object ("": any) timed within [sinceMs,
	// untilMs], at most limit.
	AuditEventIndexes(ctx context.Context, actor, object string, sinceMs, untilMs int64, from uint64, limit int) ([]uint64, error)
	// ScanAuditEvents calls fn for the index rows with from <= idx < to, in order.
	ScanAuditEvents(ctx context.Context, from, to uint64, fn func(idx uint64, timeMs int64, actor, object, action string) error) error
}

// CheckIndex holds the index of events to the entries, a page at a time
// (ledger.AuditOptions.Index): each entry has its one row, with its time
// (to the millisecond), actor, object and action; a row missing, edited or
// extra would hide or invent what queries by object and time find.
func CheckIndex(ctx context.Context, ltx ledger.Tx) ([]ledger.Finding, error) {
	tx, err := txOf(ltx)
	if err != nil {
		return nil, err
	}
	next, err := tx.NextIndex(ctx)
	if err != nil {
		return nil, err
	}
	type row struct {
		ms                    int64
		actor, object, action string
	}
	var found []ledger.Finding
	const page = 10000
	for from := uint64(0); from < next && len(found) < 100; from += page {
		to := min(from+page, next)
		rows := make(map[uint64]row, page)
		err := tx.ScanAuditEvents(ctx, from, to, func(idx uint64, ms int64, actor, object, action string) error {
			rows[idx] = row{ms, actor, object, action}
			return nil
		})
		if err != nil {
			return nil, err
		}
		err = tx.ScanEntries(ctx, from, to, func(e ledger.Entry) error {
			r, ok := rows[e.Index]
			delete(rows, e.Index)
			ev, err := Decode(e)
			switch {
			case err != nil:
				return nil // the entry's own finding is the audit's
			case !ok:
				found = append(found, ledger.Finding{Index: e.Index, What: "the audit index has no row for this entry"})
			case r.actor != IndexKey(asRecorded(ev.Actor)) || r.object != IndexKey(asRecorded(ev.Object)) ||
				r.action != IndexKey(asRecorded(ev.Action)) || r.ms < ev.Time.UnixMilli()-1 || r.ms > ev.Time.UnixMilli()+1:
				found = append(found, ledger.Finding{Index: e.Index, What: "the audit index row differs from the entry"})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for idx := range rows {
			found = append(found, ledger.Finding{Index: idx, What: "the audit index has a row for no entry"})
		}
	}
	return found, nil
}

func txOf(tx ledger.Tx) (Tx, error) {
	at, ok := tx.(Tx)
	if !ok {
		return nil, fmt.Errorf("audit: the ledger backend (%T) keeps no audit index", tx)
	}
	return at, nil
}

// maxIndexKey bounds an index key: an object is whatever a request named
// (a URL parameter), and PostgreSQL refuses index rows of kilobytes.
const maxIndexKey = 256

// IndexKey is s as the index keeps it and queries look it up: valid UTF-8
// without NUL (PostgreSQL's text takes neither), at most maxIndexKey
// bytes. The event itself, in the entry, keeps the value whole; queries
// filter on that.
func IndexKey(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= maxIndexKey {
		return s
	}
	cut := maxIndexKey
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Index is the audit log's ledger.Indexer: every record is appended, and
// its event's index row written after it.
type Index struct{}

// Decide implements ledger.Indexer.
func (Index) Decide(ctx context.Context, ltx ledger.Tx, batch []*ledger.Pending, add func(*ledger.Pending) ledger.Entry) (func() error, error) {
	tx, err := txOf(ltx)
	if err != nil {
		return nil, err
	}
	type row struct {
		idx uint64
		ev  Event
	}
	rows := make([]row, 0, len(batch))
	for _, p := range batch {
		ev, ok := p.Record.Meta.(Event)
		if p.Record.Kind != KindAudit || !ok {
			p.Err = fmt.Errorf("audit: not an audit record (kind %q)", p.Record.Kind)
			continue
		}
		if ev.Study != "" {
			p.Record.Chains = []ledger.SubjectKey{subject.Study(ev.Study)}
		}
		rows = append(rows, row{add(p).Index, ev})
	}
	return func() error {
		for _, r := range rows {
			if err := tx.PutAuditEvent(ctx, r.idx, r.ev.Time.UnixMilli(), IndexKey(asRecorded(r.ev.Actor)), IndexKey(asRecorded(r.ev.Object)),
				IndexKey(asRecorded(r.ev.Action))); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
