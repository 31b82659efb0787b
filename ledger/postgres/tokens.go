package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dicomseal/dicomseal/auth"
)

// The token table lives in the ledger's database, so that every replica
// sees a revocation at once.

var _ auth.Store = (*DB)(nil)

// CreateToken stores a new token; auth.ErrNameTaken if an active token has its name.
func (d *DB) CreateToken(ctx context.Context, t auth.Token) error {
	_, err := d.pool.Exec(ctx,
		`INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, expires_at, max_body) VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8::bigint, 0))`,
		t.ID, t.Name, string(t.Role), t.SecretHash, t.CreatedAt.UTC(), t.CreatedBy, t.ExpiresAt, t.MaxBody)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", auth.ErrNameTaken, t.Name)
	}
	return err
}

const tokenColumns = `id, name, role, secret_hash, created_at, created_by, expires_at, revoked_at, COALESCE(max_body, 0)`

func scanToken(row pgx.Row) (auth.Token, error) {
	var t auth.Token
	var role string
	err := row.Scan(&t.ID, &t.Name, &role, &t.SecretHash, &t.CreatedAt, &t.CreatedBy, &t.ExpiresAt, &t.RevokedAt, &t.MaxBody)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, auth.ErrNotFound
	}
	t.Role = auth.Role(role)
	return t, err
}

// TokenByID reads a token (revoked ones too: the caller refuses them).
func (d *DB) TokenByID(ctx context.Context, id string) (auth.Token, error) {
	return scanToken(d.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
}

// ListTokens lists every token, newest first.
func (d *DB) ListTokens(ctx context.Context) ([]auth.Token, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auth.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the active token named name.
func (d *DB) RevokeToken(ctx context.Context, name string, at time.Time) error {
	tag, err := d.pool.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL`, at.UTC(), name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: no active token named %s", auth.ErrNotFound, name)
	}
	return nil
}
