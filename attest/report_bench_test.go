package attest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/report"
	"github.com/dicomseal/dicomseal/subject"
)

// reportBenchInstances is the size of the study the report benchmark
// reports on.
const reportBenchInstances = 10_000

// ctSOP and ctStudy are pydicom's CT_small's SOP and Study Instance UIDs.
const ctSOP, ctStudy = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"

// BenchmarkCustodyReport10000 is the chain-of-custody report of one study
// of 10,000 real attested instances (copies of CT_small under their own
// SOP Instance UIDs, ingested through the service into the embedded
// backends) whose audit trail holds an ingest and a retrieval of each
// (20,000 access records): generated as GET /v1/custody answers it (both
// proofs, the signed envelope, its JSON) and verified as verify-report
// does (JSON, envelope, every proof, every row), beside baselines in the
// same run — the two subject proofs verified alone, and SHA-256 of the
// bundle's bytes — and the CSV, HTML and PDF renderings.
func BenchmarkCustodyReport10000(b *testing.B) {
	f, auditLog, auditV := reportBenchFixture(b)
	ctx := context.Background()
	q := report.Query{Study: ctStudy}
	first, _, err := f.svc.CustodyReport(ctx, q, auditLog)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := first.MarshalJSON()
	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			doc, _, err := f.svc.CustodyReport(ctx, q, auditLog)
			if err != nil {
				b.Fatal(err)
			}
			if raw, err = doc.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(raw))/(1<<20), "MiB")
	})
	keys := report.Keys{Attestation: f.attestor.Verifier, LogOrigin: ledgertest.Origin, Log: f.log.Verifier(),
		AuditOrigin: "bench/audit", Audit: auditV}
	var doc report.Document
	json.Unmarshal(raw, &doc)
	v, err := report.Verify(&doc, keys)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			doc, err := report.ParseDocument(raw)
			if err != nil {
				b.Fatal(err)
			}
			if v, err = report.Verify(doc, keys); err != nil {
				b.Fatal(err)
			}
		}
		if len(v.Instances) != reportBenchInstances || len(v.Events) != 3*reportBenchInstances {
			b.Fatalf("%d instances, %d events", len(v.Instances), len(v.Events))
		}
	})
	b.Run("baseline-subject-proofs-only", func(b *testing.B) {
		key := subject.Study(ctStudy)
		cp, err := f.log.SubjectProof(ctx, key, 0)
		if err != nil {
			b.Fatal(err)
		}
		ap, err := auditLog.SubjectProof(ctx, key, 0)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := ledger.VerifySubjectProof(ledgertest.Origin, f.log.Verifier(), key, 0, cp); err != nil {
				b.Fatal(err)
			}
			if _, err := ledger.VerifySubjectProof("bench/audit", auditV, key, 0, ap); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-sha256-of-bundle", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			sha256.Sum256(raw)
		}
	})
	for name, write := range map[string]func(io.Writer) error{"render-csv": v.WriteCSV, "render-html": v.WriteHTML, "render-pdf": v.WritePDF} {
		b.Run(name, func(b *testing.B) {
			var n countingWriter
			for b.Loop() {
				n = 0
				if err := write(&n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/(1<<20), "MiB")
		})
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// reportBenchFixture ingests the study and fills its audit trail (not timed).
func reportBenchFixture(b *testing.B) (fixtureService, *ledger.Log, note.Verifier) {
	ctx := context.Background()
	dir := b.TempDir()
	f := newServiceIn(b, dir)
	// The search index names each instance's study: its entries are
	// chained under it, as serve's are.
	idx, err := sqlite.Open(ctx, f.ledgerDB)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { idx.Close() })
	f.svc.Catalog = idx
	data := fixture(b, "pydicom-CT_small.dcm")
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				// Same length, so every element length stays right.
				sop := fmt.Sprintf("1.3.6.1.4.1.5962.1.1.1.1.1.1%013d.12322", i)
				if _, err := f.svc.Ingest(ctx, bytes.NewReader(bytes.ReplaceAll(data, []byte(ctSOP), []byte(sop)))); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range reportBenchInstances {
		work <- i
	}
	close(work)
	wg.Wait()
	if _, _, err := f.log.Integrate(ctx); err != nil {
		b.Fatal(err)
	}
	ab, err := sqlite.OpenAudit(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ab.Close() })
	skey, vkey, _ := note.GenerateKey(rand.Reader, "bench/audit")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l := ledger.New(ab, "bench/audit", s, v)
	trail := audit.New(l, nil)
	start := time.Now().UTC()
	for i := range reportBenchInstances {
		sop := fmt.Sprintf("1.3.6.1.4.1.5962.1.1.1.1.1.1%013d.12322", i)
		for j, action := range []string{"instance.ingest", "instance.retrieve"} {
			trail.Record(audit.Event{Time: start.Add(time.Duration(2*i+j) * time.Millisecond), Actor: "bench", Action: action,
				Object: sop, Study: ctStudy, Outcome: "allowed", Status: 200, Source: "127.0.0.1", RequestID: fmt.Sprint(i, j)})
		}
	}
	trail.Close()
	if _, _, err := l.Integrate(ctx); err != nil {
		b.Fatal(err)
	}
	return f, l, v
}
