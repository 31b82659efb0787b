package api

import (
	"sync"
	"time"
)

// maxTrackedSources bounds the failure table: past it, the oldest windows
// are forgotten first (they are the ones about to expire anyway).
const maxTrackedSources = 100_000

// untracked is the shared key of the sources a full table cannot hold.
const untracked = "untracked sources"

// failLimiter counts failed authentications per source over fixed windows:
// a source that fails Limit times within one Window is refused until the
// window ends, so tokens cannot be guessed at line rate.
type failLimiter struct {
	Limit  int
	Window time.Duration

	mu      sync.Mutex
	sources map[string]*failWindow
}

type failWindow struct {
	start time.Time
	fails int
}

// retryAfter is how long source stays locked out at now.
func (l *failLimiter) retryAfter(source string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.sources[source]; ok {
		return max(w.start.Add(l.Window).Sub(now), 0)
	}
	return 0
}

// blocked tells whether source is locked out at now, and for how long.
func (l *failLimiter) blocked(source string, now time.Time) (time.Duration, bool) {
	if l == nil || l.Limit <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.sources[source]
	if !ok && len(l.sources) >= maxTrackedSources {
		w, ok = l.sources[untracked]
	}
	if !ok || now.Sub(w.start) >= l.Window || w.fails < l.Limit {
		return 0, false
	}
	return w.start.Add(l.Window).Sub(now), true
}

// fail counts one failure of source: locked reports that this failure
// locks the source out, over that the source had already failed Limit times
// (requests that passed blocked concurrently), so it too gets 429.
func (l *failLimiter) fail(source string, now time.Time) (locked, over bool) {
	if l == nil || l.Limit <= 0 {
		return false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sources == nil {
		l.sources = map[string]*failWindow{}
	}
	w, ok := l.sources[source]
	if !ok || now.Sub(w.start) >= l.Window {
		if !ok && len(l.sources) >= maxTrackedSources {
			if l.prune(now); len(l.sources) >= maxTrackedSources {
				// A flood from everywhere: the sources not tracked share one
				// window, so the limit fails closed rather than open.
				source = untracked
				if w, ok = l.sources[source]; ok && now.Sub(w.start) < l.Window {
					w.fails++
					return w.fails == l.Limit, w.fails > l.Limit
				}
			}
		}
		w = &failWindow{start: now}
		l.sources[source] = w
	}
	w.fails++
	return w.fails == l.Limit, w.fails > l.Limit
}

// prune drops expired windows, and if none had expired, the oldest half.
func (l *failLimiter) prune(now time.Time) {
	for k, w := range l.sources {
		if now.Sub(w.start) >= l.Window {
			delete(l.sources, k)
		}
	}
	if len(l.sources) < maxTrackedSources {
		return
	}
	cut := now.Add(-l.Window / 2)
	for k, w := range l.sources {
		if w.start.Before(cut) {
			delete(l.sources, k)
		}
	}
}
