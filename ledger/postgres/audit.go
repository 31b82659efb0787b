package postgres

import (
	"context"
	"fmt"
)

// The audit log's index (table events, schema dicomseal_audit only):
// written in the same transaction as the entries it indexes, read by audit
// queries.

// PutAuditEvent queues the index row of one audit entry.
func (t *Tx) PutAuditEvent(ctx context.Context, idx uint64, timeMs int64, actor, object, action string) error {
	t.queue(`INSERT INTO events (idx, time_ms, actor, object, action) VALUES ($1, $2, $3, $4, $5)`,
		int64(idx), timeMs, actor, object, action)
	return nil
}

// AuditEventIndexes are the indexes, from index from on and in order, of
// the events of actor and object ("": any) timed within [sinceMs,
// untilMs], at most limit: read from the index, never by a scan of the log.
func (t *Tx) AuditEventIndexes(ctx context.Context, actor, object string, sinceMs, untilMs int64, from uint64, limit int) ([]uint64, error) {
	args := []any{sinceMs, untilMs, int64(from)}
	q := `SELECT idx FROM events WHERE time_ms >= $1 AND time_ms <= $2 AND idx >= $3`
	if actor != "" {
		args = append(args, actor)
		q += fmt.Sprintf(` AND actor = $%d`, len(args))
	}
	if object != "" {
		args = append(args, object)
		q += fmt.Sprintf(` AND object = $%d`, len(args))
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY idx LIMIT $%d`, len(args))
	rows, err := t.query(ctx, q, args...)
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

// ScanAuditEvents calls fn for the index rows with from <= idx < to, in order.
func (t *Tx) ScanAuditEvents(ctx context.Context, from, to uint64, fn func(idx uint64, timeMs int64, actor, object, action string) error) error {
	rows, err := t.query(ctx, `SELECT idx, time_ms, actor, object, action FROM events WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(from), int64(to))
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
