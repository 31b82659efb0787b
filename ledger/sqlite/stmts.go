package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds the cache: bulk statements whose text varies
// with a batch's size are prepared once each and not kept past it.
const maxCachedStatements = 256

// stmts caches prepared statements by their SQL text. SQLite would
// otherwise parse every statement anew: a fifth of a verification's CPU.
// database/sql prepares a cached statement once per connection.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmts(db *sql.DB) *stmts { return &stmts{db: db, m: map[string]*sql.Stmt{}} }

// get returns the prepared statement for q, or nil when it is not cached
// (the cache is full, or preparing failed: the caller runs q directly and
// sees the error there).
func (c *stmts) get(ctx context.Context, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st
	}
	if len(c.m) >= maxCachedStatements {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.m[q] = st
	return st
}

func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = map[string]*sql.Stmt{}
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmts.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}
