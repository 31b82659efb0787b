package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dicomseal/dicomseal/fixity"
)

// The scrubber's lease and progress (fixity.Store): correctable tables
// beside the log, written outside its transactions.

var _ fixity.Store = (*DB)(nil)

// AcquireLease implements fixity.Store: one statement, so that two
// processes on the same file cannot both win.
func (d *DB) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := d.write.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < ?`,
		name, holder, stamp(now.Add(ttl)), stamp(now))
	if err != nil {
		return false, fmt.Errorf("sqlite: lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseLease implements fixity.Store.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := d.write.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?`,
		stamp(time.Unix(0, 0)), name, holder)
	if err != nil {
		return fmt.Errorf("sqlite: release lease %s: %w", name, err)
	}
	return nil
}

// Progress implements fixity.Store.
func (d *DB) Progress(ctx context.Context, name string) (fixity.Progress, error) {
	var p fixity.Progress
	var state string
	err := d.read.QueryRowContext(ctx, `SELECT state FROM scrub_progress WHERE name = ?`, name).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("sqlite: scrub progress %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(state), &p); err != nil {
		return p, fmt.Errorf("sqlite: scrub progress %s: %w", name, err)
	}
	return p, nil
}

// SaveProgress implements fixity.Store.
func (d *DB) SaveProgress(ctx context.Context, name, holder string, now time.Time, p fixity.Progress) error {
	state, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// One statement: the lease check and the write cannot be split by
	// another process taking the lease in between.
	res, err := d.write.ExecContext(ctx, `INSERT INTO scrub_progress (name, state, updated_at)
		SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM leases WHERE name = ? AND holder = ? AND expires_at > ?)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		name, string(state), stamp(now), name, holder, stamp(now))
	if err != nil {
		return fmt.Errorf("sqlite: save scrub progress %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: save scrub progress %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w (%s, by %s)", fixity.ErrLeaseLost, name, holder)
	}
	return nil
}

// stamp is a time as the lease table compares it: fixed-width UTC text,
// so that text order is time order.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }
