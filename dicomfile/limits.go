package dicomfile

import (
	"fmt"
	"io"
	"math"
)

// Limits bound what reading one data set may cost (0: that limit is off), so that a small hostile
// upload cannot make the service inflate, walk or hold without end. Every
// refusal wraps ErrLimitExceeded and names the limit by its configuration
// name (max-inflated, max-inflate-ratio, max-elements).
type Limits struct {
	// MaxInflated is the most bytes a deflated data set may inflate to.
	MaxInflated int64
	// MaxInflateRatio is the most inflated bytes per compressed byte of a
	// deflated data set: a real one compresses a few times, a bomb a
	// thousand times.
	MaxInflateRatio int64
	// MaxElements is the most data elements and sequence items in one data
	// set, nested ones included.
	MaxElements int
}

// DefaultLimits are the limits Analyze and Parse apply; the server's
// --max-inflated, --max-inflate-ratio and --max-elements default to them.
var DefaultLimits = Limits{MaxInflated: 256 << 20, MaxInflateRatio: 100, MaxElements: 500_000}

// inflateBudget is how many bytes a deflated data set of compressed bytes
// may inflate to, and the name of the limit that binds.
// A limit of 0 is no limit.
func (l Limits) inflateBudget(compressed int64) (int64, string) {
	most := l.MaxInflated
	if most <= 0 {
		most = math.MaxInt64
	}
	if l.MaxInflateRatio > 0 && compressed < most/l.MaxInflateRatio {
		return compressed * l.MaxInflateRatio, "max-inflate-ratio"
	}
	return most, "max-inflated"
}

// budgetReader reads an inflating stream and fails with a limit error,
// rather than a clean end, once it yields more than budget bytes: a data
// set cut short by the limit must never read as a complete one.
type budgetReader struct {
	r      io.Reader
	left   int64
	budget int64
	limit  string
	ratio  int64
	packed int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the budget exactly: only a stream that ends here is whole.
		var one [1]byte
		if n, err := b.r.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, b.err()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *budgetReader) err() error {
	if b.limit == "max-inflate-ratio" {
		return fmt.Errorf("%w: the deflated data set inflates past %d bytes, more than %d times its %d compressed bytes (limit max-inflate-ratio)",
			ErrLimitExceeded, b.budget, b.ratio, b.packed)
	}
	return fmt.Errorf("%w: the deflated data set inflates past %d bytes (limit max-inflated)", ErrLimitExceeded, b.budget)
}
