package catalog

import (
	"context"
	"time"
)

// Timeout bounds each call of a Store by D (0: no bound), as --db-timeout
// bounds the other database calls: a hung database answers 503, it does
// not hold a request.
type Timeout struct {
	Store
	D time.Duration
}

func (t Timeout) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if t.D <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t.D)
}

func (t Timeout) PutEntry(ctx context.Context, e Entry) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.PutEntry(ctx, e)
}

func (t Timeout) Entry(ctx context.Context, uid string) (Entry, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.Entry(ctx, uid)
}

func (t Timeout) Entries(ctx context.Context, study, series string) ([]Entry, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.Entries(ctx, study, series)
}

func (t Timeout) SearchStudies(ctx context.Context, q Query) ([]Study, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.SearchStudies(ctx, q)
}

func (t Timeout) SearchSeries(ctx context.Context, q Query) ([]Series, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.SearchSeries(ctx, q)
}

func (t Timeout) SearchInstances(ctx context.Context, q Query) ([]Entry, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.SearchInstances(ctx, q)
}
