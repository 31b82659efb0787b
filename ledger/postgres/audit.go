package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
	var out []uint64
	err := each(ctx, t, scanIndex, func(idx uint64) error { out = append(out, idx); return nil },
		q+fmt.Sprintf(` ORDER BY idx LIMIT $%d`, len(args)), args...)
	return out, err
}

func scanIndex(row pgx.Row) (uint64, error) {
	var idx int64
	err := row.Scan(&idx)
	return uint64(idx), err
}

type auditRow struct {
	idx, ms               int64
	actor, object, action string
}

func scanAuditRow(row pgx.Row) (auditRow, error) {
	var r auditRow
	err := row.Scan(&r.idx, &r.ms, &r.actor, &r.object, &r.action)
	return r, err
}

// ScanAuditEvents calls fn for the index rows with from <= idx < to, in order.
func (t *Tx) ScanAuditEvents(ctx context.Context, from, to uint64, fn func(idx uint64, timeMs int64, actor, object, action string) error) error {
	return each(ctx, t, scanAuditRow, func(r auditRow) error { return fn(uint64(r.idx), r.ms, r.actor, r.object, r.action) },
		`SELECT idx, time_ms, actor, object, action FROM events WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(from), int64(to))
}
