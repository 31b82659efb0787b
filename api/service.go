package api

import (
	"context"
	"io"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/report"
)

// The domain service as the HTTP edge uses it, in three small parts:
// *attest.Service implements them all, and handlers are tested against
// the fakes of package mock.

// Custody is what happens to instances: attest, correct, retrieve, verify.
type Custody interface {
	Ingest(ctx context.Context, body io.Reader) (*attest.IngestResult, error)
	// IngestToStudy is Ingest of a file that must belong to study.
	IngestToStudy(ctx context.Context, body io.Reader, study string) (*attest.IngestResult, error)
	CorrectIdentity(ctx context.Context, uid string, body io.Reader, reason, actor string) (*attest.IngestResult, error)
	Retrieve(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error)
	// Stream is Retrieve verified chunk by chunk as it is sent (WriteTo).
	Stream(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error)
	Attestation(ctx context.Context, uid string, revision *uint64) (*attest.Attestation, error)
	VerifyFile(ctx context.Context, body io.Reader) (*attest.Verification, error)
	VerifyDigest(ctx context.Context, sha string) (*attest.Verification, error)
	// TransferInstance and TransferStudy verify and record (or send) a
	// move of attested bytes to another system.
	TransferInstance(ctx context.Context, uid string, req attest.TransferRequest, actor string) (*attest.Transfer, error)
	TransferStudy(ctx context.Context, study string, req attest.TransferRequest, actor string) ([]attest.Transfer, error)
}

// LogReader is the custody log as its public endpoints serve it.
type LogReader interface {
	Keys() []attest.Key
	Checkpoint(ctx context.Context) ([]byte, error)
	LogEntry(ctx context.Context, index uint64) (*attest.LogEntry, error)
	InclusionProof(ctx context.Context, index, size uint64) (*attest.Proof, error)
	InclusionProofByLeaf(ctx context.Context, leafHex string, size uint64) (*attest.Proof, error)
	ConsistencyProof(ctx context.Context, from, to uint64) (*attest.Proof, error)
	// SubjectKey names a study or patient; SubjectProof proves all its
	// custody entries at a checkpoint.
	SubjectKey(ctx context.Context, q attest.SubjectQuery) (ledger.SubjectKey, error)
	SubjectProof(ctx context.Context, q attest.SubjectQuery, size uint64) (*ledger.SubjectProof, error)
	// CustodyReport signs the chain-of-custody report of q, proving the
	// audit log's part with audit; the query it answers names the study
	// of an instance asked for by sop.
	CustodyReport(ctx context.Context, q report.Query, audit report.Prover) (*report.Document, report.Query, error)
}

// Health is what readiness and metrics ask of the service.
type Health interface {
	PingLedger(ctx context.Context) error
	PingStore(ctx context.Context) error
	CheckSpace() error
	AppendQueue() int
}

// Service is all three.
type Service interface {
	Custody
	LogReader
	Health
}

var _ Service = (*attest.Service)(nil)
