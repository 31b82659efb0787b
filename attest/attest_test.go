package attest_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/signer"
	"github.com/dicomseal/dicomseal/store/fs"
)

type fixtureService struct {
	svc      *attest.Service
	ledgerDB string
	attestor *signer.Attestor
	log      *custody.Log
	objects  attest.ObjectStore
}

// newService wires the service to the real embedded backends.
func newService(t testing.TB) fixtureService {
	t.Helper()
	return newServiceIn(t, t.TempDir())
}

// newServiceIn is newService over dir.
func newServiceIn(t testing.TB, dir string) fixtureService {
	t.Helper()
	return newServiceWith(t, dir, nil)
}

// newServiceWith is newService over dir, its filesystem store seen
// through wrap (when not nil).
func newServiceWith(t testing.TB, dir string, wrap func(attest.ObjectStore) attest.ObjectStore) fixtureService {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(dir, "ledger.db")
	l, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := fs.Open(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := signer.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	ls, lv := ledgertest.LogKey(t)
	var objects attest.ObjectStore = s
	if wrap != nil {
		objects = wrap(s)
	}
	clog := custody.New(ledger.New(l, ledgertest.Origin, ls, lv))
	svc := attest.NewService(clog, objects, a, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.SpoolDir = dir
	return fixtureService{svc: svc, ledgerDB: path, attestor: a, log: clog, objects: objects}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "dicom", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIngestSignsACheckableStatement(t *testing.T) {
	f := newService(t)
	data := fixture(t, "pydicom-CT_small.dcm")
	res, err := f.svc.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil || !res.Created {
		t.Fatalf("Ingest: %+v, %v", res, err)
	}
	payload, err := f.attestor.Open(res.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	p := st.Predicate
	if p.SOPInstanceUID != "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322" || p.Modality != "CT" ||
		p.Size != int64(len(data)) || p.KeyID != f.attestor.KeyID() || st.Subject[0].Name != p.SOPInstanceUID {
		t.Fatalf("predicate %+v", p)
	}
	for _, k := range []string{"PatientName", "PatientID", "Rows", "PixelSpacing", "SOPInstanceUID"} {
		if len(p.Attributes[k]) != 64 {
			t.Errorf("no salted digest for %s: %v", k, p.Attributes)
		}
	}
	for _, k := range []string{"pixel", "metadata", "identity"} {
		if len(p.Digests[k]) != 64 {
			t.Errorf("no %s digest: %v", k, p.Digests)
		}
	}
	if p.PixelEncoding != "native" || len(p.Frames) != 1 {
		t.Errorf("pixel encoding %q, %d frames", p.PixelEncoding, len(p.Frames))
	}
	if bytes.Contains(payload, []byte("CompressedSamples")) || bytes.Contains(payload, []byte("1CT1")) {
		t.Fatalf("patient identity must appear only as salted digests: %s", payload)
	}
	if _, err := attest.VerifyOffline(f.attestor.Verifier, res.Envelope, bytes.NewReader(data)); err != nil {
		t.Fatalf("VerifyOffline: %v", err)
	}
	data[200] ^= 1
	if _, err := attest.VerifyOffline(f.attestor.Verifier, res.Envelope, bytes.NewReader(data)); !errors.Is(err, attest.ErrFileMismatch) {
		t.Fatalf("VerifyOffline of other bytes: %v, want ErrFileMismatch", err)
	}
}

func TestParseStatementRejects(t *testing.T) {
	good := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"1.2","digest":{"sha256":"aa"}}],` +
		`"predicateType":"https://dicomseal.dev/attestation/dicom-instance/v1","predicate":{"digests":{"file":"aa"}}}`
	if _, err := attest.ParseStatement([]byte(good)); err != nil {
		t.Fatalf("good statement: %v", err)
	}
	for name, doc := range map[string]string{
		"not JSON":          `{`,
		"other statement":   strings.Replace(good, "Statement/v1", "Statement/v0.1", 1),
		"other predicate":   strings.Replace(good, "dicom-instance/v1", "other/v1", 1),
		"two subjects":      strings.Replace(good, `"subject":[`, `"subject":[{"name":"x","digest":{"sha256":"bb"}},`, 1),
		"digests disagree":  strings.Replace(good, `"file":"aa"`, `"file":"bb"`, 1),
		"no subject digest": strings.Replace(good, `"digest":{"sha256":"aa"}`, `"digest":{}`, 1),
	} {
		if _, err := attest.ParseStatement([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Someone with write access to the database swaps the envelope of an entry
// for one signed by another key: the service refuses the record.
func TestForgedEntryIsAnIntegrityFailure(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	data := fixture(t, "pydicom-MR_small.dcm")
	res, err := f.svc.Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// Read once, so that the entry is remembered as verified: the
	// forged row below must miss that cache and fail in full.
	if got, err := f.svc.Retrieve(ctx, res.SOPInstanceUID, nil); err != nil {
		t.Fatal(err)
	} else {
		got.Close()
	}
	forger, _ := signer.NewEphemeral()
	payload, _ := base64.StdEncoding.DecodeString(res.Envelope.Payload)
	forged, _ := forger.Sign(ctx, payload)

	db, err := sql.Open("sqlite", "file:"+f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body []byte
	db.QueryRow(`SELECT body FROM entries WHERE idx = 0`).Scan(&body)
	newBody := bytes.Replace(body, []byte(res.Envelope.Signatures[0].Sig), []byte(forged.Signatures[0].Sig), 1)
	if _, err := db.Exec(`DROP TRIGGER entries_no_update`); err != nil {
		t.Fatal(err)
	}
	// Recompute the leaf hash too, so that only the signature can tell.
	leaf := ledger.LeafHash(newBody)
	if _, err := db.Exec(`UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = 0`, newBody, leaf[:]); err != nil {
		t.Fatal(err)
	}

	_, err = f.svc.Retrieve(ctx, res.SOPInstanceUID, nil)
	var e *attest.Error
	if !errors.As(err, &e) || e.Code != attest.EIntegrity || e.Details["reason"] != attest.ReasonAttestationInvalid {
		t.Fatalf("Retrieve of a forged entry: %v", err)
	}
	// The same bytes cannot be re-ingested over a broken record either.
	if _, err := f.svc.Ingest(ctx, bytes.NewReader(data)); attest.ErrorCode(err) != attest.EIntegrity {
		t.Fatalf("re-ingest over a forged entry: %v", err)
	}
}
