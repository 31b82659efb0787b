package sqlite

import (
	"context"
)

// The audit log's index (table events, audit.db only): written in the same
// transaction as the entries it indexes, read by audit queries.

// PutAuditEvent writes the index row of one audit entry.
func (t *Tx) PutAuditEvent(ctx context.Context, idx uint64, timeMs int64, actor, object, action string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO events (idx, time_ms, actor, object, action) VALUES (?, ?, ?, ?, ?)`,
		int64(idx), timeMs, actor, object, action)
	return err
}

// AuditEventIndexes are the indexes, from index from on and in order, of
// the events of actor and object ("": any) timed within [sinceMs,
// untilMs], at most limit: read from the index, never by a scan of the log.
func (t *Tx) AuditEventIndexes(ctx context.Context, actor, object string, sinceMs, untilMs int64, from uint64, limit int) ([]uint64, error) {
	q := `SELECT idx FROM events WHERE time_ms >= ? AND time_ms <= ? AND idx >= ?`
	args := []any{sinceMs, untilMs, int64(from)}
	if actor != "" {
		q += ` AND actor = ?`
		args = append(args, actor)
	}
	if object != "" {
		q += ` AND object = ?`
		args = append(args, object)
	}
	var out []uint64
	err := each(ctx, t.tx, scanIndex, func(idx uint64) error { out = append(out, idx); return nil },
		q+` ORDER BY idx LIMIT ?`, append(args, limit)...)
	return out, err
}

func scanIndex(sc interface{ Scan(...any) error }) (uint64, error) {
	var idx int64
	err := sc.Scan(&idx)
	return uint64(idx), err
}

type auditRow struct {
	idx                   int64
	ms                    int64
	actor, object, action string
}

func scanAuditRow(sc interface{ Scan(...any) error }) (auditRow, error) {
	var r auditRow
	err := sc.Scan(&r.idx, &r.ms, &r.actor, &r.object, &r.action)
	return r, err
}

// ScanAuditEvents calls fn for the index rows with from <= idx < to, in order.
func (t *Tx) ScanAuditEvents(ctx context.Context, from, to uint64, fn func(idx uint64, timeMs int64, actor, object, action string) error) error {
	return each(ctx, t.tx, scanAuditRow, func(r auditRow) error { return fn(uint64(r.idx), r.ms, r.actor, r.object, r.action) },
		`SELECT idx, time_ms, actor, object, action FROM events WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(from), int64(to))
}
