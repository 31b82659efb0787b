package spool

import (
	"math/bits"
	"sync"
)

// Memory of spools that stayed in memory is pooled by size class (powers
// of two): under load every request would otherwise allocate, clear and
// grow its own megabytes, and the collector would chase them.
const (
	minBuffer  = 64 << 10
	maxPooled  = 16 << 20
	minClass   = 16 // log2(minBuffer)
	numClasses = 25 - minClass
)

var pools [numClasses]sync.Pool

// class is the size class holding n bytes, or -1 when none pools it.
func class(n int) int {
	if n > maxPooled {
		return -1
	}
	c := bits.Len(uint(max(n, minBuffer)-1)) - minClass
	return c
}

// getBuffer returns an empty slice with room for at least n bytes.
func getBuffer(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	if p, ok := pools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<(c+minClass))
}

// putBuffer returns b's memory to its class; b must not be used after.
func putBuffer(b []byte) {
	if cap(b) < minBuffer {
		return
	}
	c := class(cap(b))
	if c < 0 || cap(b) != 1<<(c+minClass) {
		return // not one of ours
	}
	b = b[:0]
	pools[c].Put(&b)
}
