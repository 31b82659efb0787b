package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/postgres"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
)

// DICOMSEAL_TEST_DATABASE_URL=… go test ./ledger/postgres -run '^$' -bench . -benchtime 50000x

func BenchmarkAppend64Writers(b *testing.B) { ledgertest.BenchAppend(b, harness, 64) }

func BenchmarkAppend1Writer(b *testing.B) { ledgertest.BenchAppend(b, harness, 1) }

func BenchmarkCheckpointLatency(b *testing.B) {
	ledgertest.BenchCheckpointLatency(b, harness, 64, 500*time.Millisecond)
}

func BenchmarkInclusionProof1M(b *testing.B) {
	ledgertest.BenchInclusionProof(b, func() (ledger.Backend, error) {
		return postgres.Open(context.Background(), pgtest.NewLasting(b).Service)
	}, 1_000_000)
}

// DICOMSEAL_TEST_DATABASE_URL=... go test ./ledger/postgres -run '^$' -bench SubjectProof
func BenchmarkSubjectProof10000(b *testing.B) { ledgertest.BenchSubjectProof(b, harness, 10000) }

func BenchmarkAppend64WritersChained(b *testing.B) { ledgertest.BenchAppendChained(b, harness, 64) }

func BenchmarkCheckpointLatencyChained(b *testing.B) {
	ledgertest.BenchCheckpointLatencyChained(b, harness, 64, 500*time.Millisecond)
}

func BenchmarkMapUpdate10000(b *testing.B)  { ledgertest.BenchMapUpdate(b, harness, 10_000) }
func BenchmarkMapUpdate100000(b *testing.B) { ledgertest.BenchMapUpdate(b, harness, 100_000) }
