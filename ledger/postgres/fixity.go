package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/fixity"
)

// The scrubber's lease and progress (fixity.Store): correctable tables
// beside the log, written outside its transactions.

var _ fixity.Store = (*DB)(nil)

// AcquireLease implements fixity.Store: one statement, so that two
// replicas cannot both win.
func (d *DB) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	tag, err := d.pool.Exec(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < $4`,
		name, holder, now.Add(ttl).UTC(), now.UTC())
	if err != nil {
		return false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease implements fixity.Store.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := d.pool.Exec(ctx, `UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3`,
		time.Unix(0, 0).UTC(), name, holder); err != nil {
		return fmt.Errorf("postgres: release lease %s: %w", name, err)
	}
	return nil
}

// Progress implements fixity.Store.
func (d *DB) Progress(ctx context.Context, name string) (fixity.Progress, error) {
	var p fixity.Progress
	var state string
	err := d.pool.QueryRow(ctx, `SELECT state FROM scrub_progress WHERE name = $1`, name).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("postgres: scrub progress %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(state), &p); err != nil {
		return p, fmt.Errorf("postgres: scrub progress %s: %w", name, err)
	}
	return p, nil
}

// SaveProgress implements fixity.Store.
func (d *DB) SaveProgress(ctx context.Context, name, holder string, now time.Time, p fixity.Progress) error {
	state, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// One statement, so that the lease check and the write are atomic.
	tag, err := d.pool.Exec(ctx, `INSERT INTO scrub_progress (name, state)
		SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM leases WHERE name = $1 AND holder = $3 AND expires_at > $4)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = now()`, name, string(state), holder, now)
	if err != nil {
		return fmt.Errorf("postgres: save scrub progress %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w (%s, by %s)", fixity.ErrLeaseLost, name, holder)
	}
	return nil
}
