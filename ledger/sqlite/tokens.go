package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/dicomseal/dicomseal/auth"
)

// The token table lives in the same database, so that every process on it
// sees a revocation at once.

var _ auth.Store = (*DB)(nil)

func fmtTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime reads an optional time; an unreadable one reads as the
// distant past, so that a damaged revoked_at or expires_at fails closed.
func parseTime(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		t = time.Unix(0, 0)
	}
	return &t
}

// isUnique tells a unique-constraint violation by its extended result code.
func isUnique(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// CreateToken stores a new token; auth.ErrNameTaken if an active token has its name.
func (d *DB) CreateToken(ctx context.Context, t auth.Token) error {
	_, err := d.write.ExecContext(ctx,
		`INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, expires_at, max_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, string(t.Role), t.SecretHash, t.CreatedAt.UTC().Format(time.RFC3339Nano), t.CreatedBy, fmtTime(t.ExpiresAt), maxBody(t.MaxBody))
	if isUnique(err) {
		return fmt.Errorf("%w: %s", auth.ErrNameTaken, t.Name)
	}
	return err
}

const tokenColumns = `id, name, role, secret_hash, created_at, created_by, expires_at, revoked_at, max_body`

func scanToken(sc interface{ Scan(...any) error }) (auth.Token, error) {
	var t auth.Token
	var role, created string
	var expires, revoked sql.NullString
	var limit sql.NullInt64
	err := sc.Scan(&t.ID, &t.Name, &role, &t.SecretHash, &created, &t.CreatedBy, &expires, &revoked, &limit)
	if errors.Is(err, sql.ErrNoRows) {
		return t, auth.ErrNotFound
	}
	t.Role = auth.Role(role)
	t.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	t.ExpiresAt, t.RevokedAt = parseTime(expires), parseTime(revoked)
	t.MaxBody = limit.Int64
	return t, err
}

// maxBody stores "no limit of its own" as NULL.
func maxBody(n int64) any {
	if n <= 0 {
		return nil
	}
	return n
}

// TokenByID reads a token (revoked ones too: the caller refuses them).
func (d *DB) TokenByID(ctx context.Context, id string) (auth.Token, error) {
	q := `SELECT ` + tokenColumns + ` FROM tokens WHERE id = ?`
	if st := d.readStmts.get(ctx, q); st != nil {
		return scanToken(st.QueryRowContext(ctx, id))
	}
	return scanToken(d.read.QueryRowContext(ctx, q, id))
}

// ListTokens lists every token, newest first.
func (d *DB) ListTokens(ctx context.Context) ([]auth.Token, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC`)
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
	res, err := d.write.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`,
		at.UTC().Format(time.RFC3339Nano), name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no active token named %s", auth.ErrNotFound, name)
	}
	return nil
}
