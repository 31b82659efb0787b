package audit

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dicomseal/dicomseal/ledger"
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
