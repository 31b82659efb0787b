// Package mock holds fakes of the interfaces the HTTP edge consumes
// (api.Service), so that handlers are tested without a ledger, an object
// store or dcmtk, as WTF Dial's mock package does: each method calls its
// function field, and one left nil fails loudly.
package mock

import (
	"context"
	"fmt"
	"io"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/report"
)

// Service is a fake api.Service.
type Service struct {
	IngestFn          func(ctx context.Context, body io.Reader) (*attest.IngestResult, error)
	IngestToStudyFn   func(ctx context.Context, body io.Reader, study string) (*attest.IngestResult, error)
	CorrectIdentityFn func(ctx context.Context, uid string, body io.Reader, reason, actor string) (*attest.IngestResult, error)
	RetrieveFn        func(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error)
	// StreamFn, when nil, is RetrieveFn.
	StreamFn               func(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error)
	AttestationFn          func(ctx context.Context, uid string, revision *uint64) (*attest.Attestation, error)
	VerifyFileFn           func(ctx context.Context, body io.Reader) (*attest.Verification, error)
	VerifyDigestFn         func(ctx context.Context, sha string) (*attest.Verification, error)
	TransferInstanceFn     func(ctx context.Context, uid string, req attest.TransferRequest, actor string) (*attest.Transfer, error)
	TransferStudyFn        func(ctx context.Context, study string, req attest.TransferRequest, actor string) ([]attest.Transfer, error)
	KeysFn                 func() []attest.Key
	CheckpointFn           func(ctx context.Context) ([]byte, error)
	LogEntryFn             func(ctx context.Context, index uint64) (*attest.LogEntry, error)
	InclusionProofFn       func(ctx context.Context, index, size uint64) (*attest.Proof, error)
	InclusionProofByLeafFn func(ctx context.Context, leafHex string, size uint64) (*attest.Proof, error)
	ConsistencyProofFn     func(ctx context.Context, from, to uint64) (*attest.Proof, error)
	SubjectKeyFn           func(ctx context.Context, q attest.SubjectQuery) (ledger.SubjectKey, error)
	SubjectProofFn         func(ctx context.Context, q attest.SubjectQuery, size uint64) (*ledger.SubjectProof, error)
	CustodyReportFn        func(ctx context.Context, q report.Query, audit report.Prover) (*report.Document, report.Query, error)
	PingLedgerFn           func(ctx context.Context) error
	PingStoreFn            func(ctx context.Context) error
	CheckSpaceFn           func() error
	AppendQueueFn          func() int
}

func unset(name string) error { return fmt.Errorf("mock: %s called but not set", name) }

func (s *Service) Ingest(ctx context.Context, body io.Reader) (*attest.IngestResult, error) {
	if s.IngestFn == nil {
		return nil, unset("Ingest")
	}
	return s.IngestFn(ctx, body)
}

func (s *Service) IngestToStudy(ctx context.Context, body io.Reader, study string) (*attest.IngestResult, error) {
	if s.IngestToStudyFn == nil {
		return nil, unset("IngestToStudy")
	}
	return s.IngestToStudyFn(ctx, body, study)
}

func (s *Service) CorrectIdentity(ctx context.Context, uid string, body io.Reader, reason, actor string) (*attest.IngestResult, error) {
	if s.CorrectIdentityFn == nil {
		return nil, unset("CorrectIdentity")
	}
	return s.CorrectIdentityFn(ctx, uid, body, reason, actor)
}

func (s *Service) TransferInstance(ctx context.Context, uid string, req attest.TransferRequest, actor string) (*attest.Transfer, error) {
	if s.TransferInstanceFn == nil {
		return nil, unset("TransferInstance")
	}
	return s.TransferInstanceFn(ctx, uid, req, actor)
}

func (s *Service) TransferStudy(ctx context.Context, study string, req attest.TransferRequest, actor string) ([]attest.Transfer, error) {
	if s.TransferStudyFn == nil {
		return nil, unset("TransferStudy")
	}
	return s.TransferStudyFn(ctx, study, req, actor)
}

func (s *Service) Retrieve(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error) {
	if s.RetrieveFn == nil {
		return nil, unset("Retrieve")
	}
	return s.RetrieveFn(ctx, uid, revision)
}

func (s *Service) Stream(ctx context.Context, uid string, revision *uint64) (*attest.Retrieved, error) {
	if s.StreamFn == nil {
		return s.Retrieve(ctx, uid, revision)
	}
	return s.StreamFn(ctx, uid, revision)
}

func (s *Service) Attestation(ctx context.Context, uid string, revision *uint64) (*attest.Attestation, error) {
	if s.AttestationFn == nil {
		return nil, unset("Attestation")
	}
	return s.AttestationFn(ctx, uid, revision)
}

func (s *Service) VerifyFile(ctx context.Context, body io.Reader) (*attest.Verification, error) {
	if s.VerifyFileFn == nil {
		return nil, unset("VerifyFile")
	}
	return s.VerifyFileFn(ctx, body)
}

func (s *Service) VerifyDigest(ctx context.Context, sha string) (*attest.Verification, error) {
	if s.VerifyDigestFn == nil {
		return nil, unset("VerifyDigest")
	}
	return s.VerifyDigestFn(ctx, sha)
}

func (s *Service) Keys() []attest.Key {
	if s.KeysFn == nil {
		return nil
	}
	return s.KeysFn()
}

func (s *Service) Checkpoint(ctx context.Context) ([]byte, error) {
	if s.CheckpointFn == nil {
		return nil, unset("Checkpoint")
	}
	return s.CheckpointFn(ctx)
}

func (s *Service) LogEntry(ctx context.Context, index uint64) (*attest.LogEntry, error) {
	if s.LogEntryFn == nil {
		return nil, unset("LogEntry")
	}
	return s.LogEntryFn(ctx, index)
}

func (s *Service) InclusionProof(ctx context.Context, index, size uint64) (*attest.Proof, error) {
	if s.InclusionProofFn == nil {
		return nil, unset("InclusionProof")
	}
	return s.InclusionProofFn(ctx, index, size)
}

func (s *Service) InclusionProofByLeaf(ctx context.Context, leafHex string, size uint64) (*attest.Proof, error) {
	if s.InclusionProofByLeafFn == nil {
		return nil, unset("InclusionProofByLeaf")
	}
	return s.InclusionProofByLeafFn(ctx, leafHex, size)
}

func (s *Service) ConsistencyProof(ctx context.Context, from, to uint64) (*attest.Proof, error) {
	if s.ConsistencyProofFn == nil {
		return nil, unset("ConsistencyProof")
	}
	return s.ConsistencyProofFn(ctx, from, to)
}

func (s *Service) SubjectKey(ctx context.Context, q attest.SubjectQuery) (ledger.SubjectKey, error) {
	if s.SubjectKeyFn == nil {
		return ledger.SubjectKey{}, unset("SubjectKey")
	}
	return s.SubjectKeyFn(ctx, q)
}

func (s *Service) CustodyReport(ctx context.Context, q report.Query, audit report.Prover) (*report.Document, report.Query, error) {
	if s.CustodyReportFn == nil {
		return nil, q, unset("CustodyReport")
	}
	return s.CustodyReportFn(ctx, q, audit)
}

func (s *Service) SubjectProof(ctx context.Context, q attest.SubjectQuery, size uint64) (*ledger.SubjectProof, error) {
	if s.SubjectProofFn == nil {
		return nil, unset("SubjectProof")
	}
	return s.SubjectProofFn(ctx, q, size)
}

func (s *Service) PingLedger(ctx context.Context) error {
	if s.PingLedgerFn == nil {
		return nil
	}
	return s.PingLedgerFn(ctx)
}

func (s *Service) PingStore(ctx context.Context) error {
	if s.PingStoreFn == nil {
		return nil
	}
	return s.PingStoreFn(ctx)
}

func (s *Service) CheckSpace() error {
	if s.CheckSpaceFn == nil {
		return nil
	}
	return s.CheckSpaceFn()
}

func (s *Service) AppendQueue() int {
	if s.AppendQueueFn == nil {
		return 0
	}
	return s.AppendQueueFn()
}
