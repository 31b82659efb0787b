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
	q, args := auditEventQuery(actor, object, sinceMs, untilMs, from, limit)
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return nil, err
		}
		out = append(out, uint64(idx))
	}
	return out, rows.Err()
}

// auditEventQuery builds the index query.
func auditEventQuery(actor, object string, sinceMs, untilMs int64, from uint64, limit int) (string, []any) {
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
	q += ` ORDER BY idx LIMIT ?`
	return q, append(args, limit)
}

// ScanAuditEvents calls fn for the index rows with from <= idx < to, in order.
func (t *Tx) ScanAuditEvents(ctx context.Context, from, to uint64, fn func(idx uint64, timeMs int64, actor, object, action string) error) error {
	rows, err := t.tx.QueryContext(ctx, `SELECT idx, time_ms, actor, object, action FROM events WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(from), int64(to))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var idx, ms int64
		var actor, object, action string
		if err := rows.Scan(&idx, &ms, &actor, &object, &action); err != nil {
			return err
		}
		if err := fn(uint64(idx), ms, actor, object, action); err != nil {
			return err
		}
	}
	return rows.Err()
}
