package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrTimeout: the store made no progress for the configured deadline.
var ErrTimeout = errors.New("object store timed out")

// Backend is the object store a Timeout wraps.
type Backend interface {
	Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	// Replace is Put without the skip of an object already present: the
	// repair of a copy altered behind the store's back.
	Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error
	Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error)
	Ping(ctx context.Context) error
}

// Timeout bounds every call on a store, so that one that hangs (a frozen
// server, a dead network path, a hung NFS mount) fails the request instead
// of holding it: Ping by D, and Put, Replace and Get by D without progress
// — a large object may take longer than D to move, a stalled one may not.
// A backend that ignores its context (the filesystem store, in a blocked
// system call) is left to finish in the background; its caller is answered
// at the deadline all the same. D <= 0 disables the bound.
type Timeout struct {
	Backend
	D time.Duration
}

// watch returns a context that ends once kick has not been called for d.
// pause stops the countdown until the next kick.
func watch(ctx context.Context, d time.Duration) (ctx2 context.Context, kick, pause, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(fmt.Errorf("%w: no progress for %s", ErrTimeout, d)) })
	return ctx, func() { t.Reset(d) }, func() { t.Stop() }, func() { t.Stop(); cancel(nil) }
}

// cause names the timeout when it is what ended the call.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); err != nil && errors.Is(c, ErrTimeout) && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// race runs call and returns its result, or the context's cause once ctx
// ends first.
func race[T any](ctx context.Context, call func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, cause(ctx, r.err)
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

func (t Timeout) Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	return t.send(ctx, r, func(ctx context.Context, body io.Reader) error {
		return t.Backend.Put(ctx, sha256Hex, body, size)
	})
}

func (t Timeout) Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	return t.send(ctx, r, func(ctx context.Context, body io.Reader) error {
		return t.Backend.Replace(ctx, sha256Hex, body, size)
	})
}

// send runs an upload of r, by put, under the watchdog: reading the body
// is its progress.
func (t Timeout) send(ctx context.Context, r io.Reader, put func(context.Context, io.Reader) error) error {
	if t.D <= 0 {
		return put(ctx, r)
	}
	ctx, kick, _, stop := watch(ctx, t.D)
	defer stop()
	body, detach := progress(r, kick)
	_, err := race(ctx, func() (struct{}, error) {
		return struct{}{}, put(ctx, body)
	})
	// Whatever the backend still does in the background (an HTTP client
	// may read a body after it returned), it no longer reads the caller's
	// bytes, which are released once the call returns.
	detach()
	return err
}

func (t Timeout) Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error) {
	if t.D <= 0 {
		return t.Backend.Get(ctx, sha256Hex)
	}
	ctx, kick, pause, stop := watch(ctx, t.D)
	rc, err := race(ctx, func() (io.ReadCloser, error) { return t.Backend.Get(ctx, sha256Hex) })
	if err != nil {
		stop()
		return nil, err
	}
	pause()
	// Between reads the caller may be busy elsewhere (a chunk being sent
	// to a slow client, other instances of a study ahead of this one):
	// only a read that hangs is the store's fault, so the watchdog runs
	// only while one is in progress.
	return &kickReadCloser{ctx: ctx, r: rc, kick: kick, stop: stop, pause: pause}, nil
}

func (t Timeout) Ping(ctx context.Context) error {
	if t.D <= 0 {
		return t.Backend.Ping(ctx)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, t.D, fmt.Errorf("%w: no answer within %s", ErrTimeout, t.D))
	defer cancel()
	_, err := race(ctx, func() (struct{}, error) { return struct{}{}, t.Backend.Ping(ctx) })
	return err
}

// HoldsObjects passes through to a backend that can tell whether its tree
// of objects is there at all (the filesystem store); others answer nil.
func (t Timeout) HoldsObjects(ctx context.Context) error {
	h, ok := t.Backend.(interface{ HoldsObjects(context.Context) error })
	if !ok {
		return nil
	}
	return h.HoldsObjects(ctx)
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

// progress wraps a body so that reading it kicks the watchdog; detach
// makes every later read fail without touching r. A body that can seek
// stays seekable: S3 clients retry a PUT only when they can rewind.
func progress(r io.Reader, kick func()) (io.Reader, func()) {
	k := &kickReader{r: r, kick: kick}
	detach := func() {
		k.mu.Lock()
		k.detached = true
		k.mu.Unlock()
	}
	if rs, ok := r.(interface {
		io.ReadSeeker
		io.ReaderAt
	}); ok {
		return &kickReadSeeker{kickReader: k, rs: rs}, detach
	}
	return k, detach
}

var errDetached = errors.New("object store call already ended")

type kickReader struct {
	r        io.Reader
	kick     func()
	mu       sync.Mutex
	detached bool
}

func (k *kickReader) Read(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.detached {
		return 0, errDetached
	}
	n, err := k.r.Read(p)
	if n > 0 {
		k.kick()
	}
	return n, err
}

// WholeSHA256 passes on what the body knows of its digest (see Digested).
func (k *kickReader) WholeSHA256() ([32]byte, bool) {
	if d, ok := k.r.(Digested); ok {
		return d.WholeSHA256()
	}
	return [32]byte{}, false
}

type kickReadSeeker struct {
	*kickReader
	rs interface {
		io.ReadSeeker
		io.ReaderAt
	}
}

func (k *kickReadSeeker) Seek(off int64, whence int) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.detached {
		return 0, errDetached
	}
	return k.rs.Seek(off, whence)
}

func (k *kickReadSeeker) ReadAt(p []byte, off int64) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.detached {
		return 0, errDetached
	}
	n, err := k.rs.ReadAt(p, off)
	if n > 0 {
		k.kick()
	}
	return n, err
}

// kickReadCloser is a Get's stream: every read that moves kicks the
// watchdog; a read that fails because it fired says so.
type kickReadCloser struct {
	ctx   context.Context
	r     io.ReadCloser
	kick  func()
	stop  func()
	pause func()
}

func (k *kickReadCloser) Read(p []byte) (int, error) {
	k.kick()
	n, err := k.r.Read(p)
	k.pause()
	if err != nil && err != io.EOF {
		err = cause(k.ctx, err)
	}
	return n, err
}

func (k *kickReadCloser) Close() error {
	k.stop()
	return k.r.Close()
}
