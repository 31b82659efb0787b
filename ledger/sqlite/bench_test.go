package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"

	"github.com/dicomseal/dicomseal/ledger/ledgertest"
)

// go test ./ledger/sqlite -run '^$' -bench . -benchtime 20000x

func BenchmarkAppend64Writers(b *testing.B) { ledgertest.BenchAppend(b, harness, 64) }

func BenchmarkAppend1Writer(b *testing.B) { ledgertest.BenchAppend(b, harness, 1) }

// benchDir holds the 1M-entry ledger for the whole process; TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func BenchmarkInclusionProof1M(b *testing.B) {
	ledgertest.BenchInclusionProof(b, func() (ledger.Backend, error) {
		dir, err := os.MkdirTemp("", "dicomseal-bench-")
		if err != nil {
			return nil, err
		}
		benchDir = dir
		return sqlite.Open(context.Background(), filepath.Join(dir, "ledger.db"))
	}, 1_000_000)
}

func BenchmarkCheckpointLatency(b *testing.B) {
	ledgertest.BenchCheckpointLatency(b, harness, 64, 500*time.Millisecond)
}

// go test ./ledger/sqlite -run '^$' -bench SubjectProof
func BenchmarkSubjectProof10000(b *testing.B) { ledgertest.BenchSubjectProof(b, harness, 10000) }

func BenchmarkAppend64WritersChained(b *testing.B) { ledgertest.BenchAppendChained(b, harness, 64) }

func BenchmarkCheckpointLatencyChained(b *testing.B) {
	ledgertest.BenchCheckpointLatencyChained(b, harness, 64, 500*time.Millisecond)
}

// go test ./ledger/sqlite -run '^$' -bench MapUpdate -benchtime 20x
func BenchmarkMapUpdate10000(b *testing.B)  { ledgertest.BenchMapUpdate(b, harness, 10_000) }
func BenchmarkMapUpdate100000(b *testing.B) { ledgertest.BenchMapUpdate(b, harness, 100_000) }
