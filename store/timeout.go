package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrTimeout: the store made no progress for the configured deadline.
var ErrTimeout = errors.New("object store timed out")

// Backend is the object store a Timeout wraps.
type Backend interface {
	Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error)
	Ping(ctx context.Context) error
}

// Timeout bounds every call on a store, so that one that hangs (a frozen
// server, a dead network path) fails the request instead of holding it:
// Ping by D, and Put and Get by D without progress — a large object may
// take longer than D to move, a stalled one may not.
type Timeout struct {
	Backend
	D time.Duration
}

// watch returns a context that ends once kick has not been called for d.
func watch(ctx context.Context, d time.Duration) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(fmt.Errorf("%w: no progress for %s", ErrTimeout, d)) })
	return ctx, func() { t.Reset(d) }, func() { t.Stop(); cancel(nil) }
}

// cause names the timeout when it is what ended the call.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); err != nil && errors.Is(c, ErrTimeout) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

func (t Timeout) Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	ctx, kick, stop := watch(ctx, t.D)
	defer stop()
	err := t.Backend.Put(ctx, sha256Hex, &kickReader{r: r, kick: kick}, size)
	return cause(ctx, err)
}

func (t Timeout) Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error) {
	ctx, kick, stop := watch(ctx, t.D)
	rc, err := t.Backend.Get(ctx, sha256Hex)
	if err != nil {
		stop()
		return nil, cause(ctx, err)
	}
	return &kickReadCloser{kickReader: kickReader{r: rc, kick: kick, ctx: ctx}, c: rc, stop: stop}, nil
}

func (t Timeout) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, t.D, fmt.Errorf("%w: no answer within %s", ErrTimeout, t.D))
	defer cancel()
	return cause(ctx, t.Backend.Ping(ctx))
}

// List passes through to a backend that can list its objects.
func (t Timeout) List(ctx context.Context, fn func(sha256Hex string, size int64) error) error {
	l, ok := t.Backend.(interface {
		List(context.Context, func(string, int64) error) error
	})
	if !ok {
		return errors.New("object store cannot list its objects")
	}
	return l.List(ctx, fn)
}

type kickReader struct {
	r    io.Reader
	kick func()
	ctx  context.Context // set for reads after the call returned
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.kick()
	}
	if err != nil && err != io.EOF && k.ctx != nil {
		err = cause(k.ctx, err)
	}
	return n, err
}

type kickReadCloser struct {
	kickReader
	c    io.Closer
	stop func()
}

func (k *kickReadCloser) Close() error {
	k.stop()
	return k.c.Close()
}
