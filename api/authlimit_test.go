package api

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent failures from one source: exactly Limit of them are answered
// as plain failures, every later one is over the limit, and one locks out.
func TestFailLimiterCountsAtomically(t *testing.T) {
	l := &failLimiter{Limit: 20, Window: 10 * time.Second}
	now := time.Now()
	var plain, over, locks atomic.Int64
	var wg sync.WaitGroup
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			locked, o := l.fail("198.51.100.7", now)
			if locked {
				locks.Add(1)
			}
			if o {
				over.Add(1)
			} else {
				plain.Add(1)
			}
		}()
	}
	wg.Wait()
	if plain.Load() != 20 || over.Load() != 480 || locks.Load() != 1 {
		t.Fatalf("plain %d, over %d, lockouts %d; want 20, 480, 1", plain.Load(), over.Load(), locks.Load())
	}
	if wait, ok := l.blocked("198.51.100.7", now.Add(time.Second)); !ok || wait != 9*time.Second {
		t.Fatalf("blocked = %v, %v; want 9s, true", wait, ok)
	}
	if _, ok := l.blocked("198.51.100.8", now); ok {
		t.Fatal("another source is blocked")
	}
	if _, ok := l.blocked("198.51.100.7", now.Add(10*time.Second)); ok {
		t.Fatal("still blocked after the window")
	}
	if locked, o := l.fail("198.51.100.7", now.Add(10*time.Second)); locked || o {
		t.Fatal("a new window starts counting afresh")
	}
}

// The table of sources stays bounded under failures from everywhere, and
// sources it cannot hold share one window: the limit fails closed.
func TestFailLimiterIsBounded(t *testing.T) {
	l := &failLimiter{Limit: 5, Window: time.Minute}
	now := time.Now()
	for i := range maxTrackedSources {
		l.fail(fmt.Sprint("10.", i), now)
	}
	if n := len(l.sources); n != maxTrackedSources {
		t.Fatalf("%d sources tracked, want the table full at %d", n, maxTrackedSources)
	}
	for i := range 5 {
		l.fail(fmt.Sprint("192.0.2.", i), now)
	}
	if n := len(l.sources); n > maxTrackedSources+1 {
		t.Fatalf("%d sources tracked, bound %d", n, maxTrackedSources+1)
	}
	if _, ok := l.blocked("192.0.2.200", now); !ok {
		t.Fatal("an untracked source is not limited once untracked sources failed the limit")
	}
	// Half a window on, the oldest half of the table is pruned for newcomers.
	later := now.Add(31 * time.Second)
	l.fail("198.51.100.1", later)
	if _, ok := l.sources["198.51.100.1"]; !ok {
		t.Fatal("a new source was not tracked after pruning")
	}
}
