package attest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// largeInstance is a valid multi-frame instance of a little over n bytes.
func largeInstance(t *testing.T, uid string, frames int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if _, err := synth.Write(w, synth.Spec{SOPInstanceUID: uid, Rows: 512, Columns: 512, Frames: frames}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	// Pixel values other than zeros, so that chunks differ.
	out := b.Bytes()
	for i := len(out) - frames*512*512*2; i < len(out); i += 2 {
		out[i] = byte(i >> 9)
	}
	return out
}

// TestStreamVerifiesChunkByChunk ingests an 8 MiB instance with the
// production chunk size and streams it back: the attestation commits to
// the chunk tree (a v3 predicate, its leaves in the v3 entry body), an
// intact copy streams whole, and a copy altered in its middle stops
// before the first byte of the chunk that fails, with the failure
// recorded as the whole object is: altered, with what the store holds.
func TestStreamVerifiesChunkByChunk(t *testing.T) {
	dir := t.TempDir()
	f := newServiceIn(t, dir)
	ctx := context.Background()
	data := largeInstance(t, "1.2.826.0.1.3680043.10.88.9", 16)
	res, err := f.svc.Ingest(ctx, attest.Sized(bytes.NewReader(data), int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	count := chunks.Count(int64(len(data)), chunks.Size)
	if count < 8 {
		t.Fatalf("%d chunks: the test wants a large object", count)
	}
	st := statementOf(t, res.Attestation)
	if st.PredicateType != attest.PredicateType || st.Predicate.Chunks == nil || st.Predicate.Chunks.Count != count ||
		st.Predicate.Chunks.ChunkSize != chunks.Size {
		t.Fatalf("predicate %s, chunks %+v: want a v3 chunk tree of %d chunks", st.PredicateType, st.Predicate.Chunks, count)
	}
	var body struct {
		V      int    `json:"v"`
		Chunks string `json:"chunks"`
	}
	raw, _ := base64.StdEncoding.DecodeString(res.Entry)
	json.Unmarshal(raw, &body)
	leaves, err := chunks.Decode(body.Chunks)
	if body.V != 3 || err != nil || st.Predicate.Chunks.Check(int64(len(data)), leaves) != nil {
		t.Fatalf("entry version %d, leaves %d (%v): want version 3 listing the attested tree's leaves", body.V, len(leaves), err)
	}

	got, err := f.svc.Stream(ctx, res.SOPInstanceUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n, err := got.WriteTo(&out); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) || !got.Streaming() {
		t.Fatalf("intact: %d bytes, %v (streaming %v)", n, err, got.Streaming())
	}
	got.Close()

	path := objectPath(dir, res.Digests[attest.DigestFile])
	altered := bytes.Clone(data)
	const at = 5*chunks.Size + 12345
	altered[at] ^= 0x01
	if err := os.WriteFile(path, altered, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = f.svc.Stream(ctx, res.SOPInstanceUID, nil)
	if err != nil {
		t.Fatalf("opening an altered copy: %v (the failure is found while streaming)", err)
	}
	out.Reset()
	n, err := got.WriteTo(&out)
	got.Close()
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Code != attest.EIntegrity || ae.Details["reason"] != attest.ReasonAltered {
		t.Fatalf("altered: %v, want EIntegrity altered", err)
	}
	if n != 5*chunks.Size || !bytes.Equal(out.Bytes(), data[:5*chunks.Size]) {
		t.Fatalf("sent %d bytes, want exactly the 5 chunks before the altered one", out.Len())
	}
	observed := sha256.Sum256(altered)
	var recorded []map[string]any
	scanKind(t, f, custody.KindIntegrityFailure, func(b map[string]any) { recorded = append(recorded, b) })
	if len(recorded) != 1 || recorded[0]["reason"] != attest.ReasonAltered || recorded[0]["observed_sha256"] != hex.EncodeToString(observed[:]) {
		t.Fatalf("recorded %v, want one altered failure naming the stored copy's digest", recorded)
	}

	// Retrieve, which verifies whole, agrees; and a missing copy fails
	// before anything is sent.
	if _, err := f.svc.Retrieve(ctx, res.SOPInstanceUID, nil); !errors.As(err, &ae) || ae.Code != attest.EIntegrity {
		t.Fatalf("Retrieve of the altered copy: %v", err)
	}
	os.Remove(path)
	if _, err := f.svc.Stream(ctx, res.SOPInstanceUID, nil); !errors.As(err, &ae) || ae.Details["reason"] != attest.ReasonMissing {
		t.Fatalf("missing: %v, want EIntegrity missing", err)
	}
}

// TestStreamOneChunk: an object of one chunk lists no leaves (the root is
// its leaf), and streams; a truncated copy fails before anything is
// answered.
func TestStreamOneChunk(t *testing.T) {
	dir := t.TempDir()
	f := newServiceIn(t, dir)
	ctx := context.Background()
	data := fixture(t, "pydicom-CT_small.dcm")
	res, err := f.svc.Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(res.Entry)
	if bytes.Contains(raw, []byte(`"chunks":"`)) {
		t.Fatal("a one-chunk object's entry lists leaves")
	}
	got, err := f.svc.Stream(ctx, res.SOPInstanceUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := got.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("one chunk: %v", err)
	}
	got.Close()
	// One chunk is verified whole before Stream returns: nothing to send.
	os.WriteFile(objectPath(dir, res.Digests[attest.DigestFile]), data[:len(data)-1], 0o600)
	var ae *attest.Error
	if _, err := f.svc.Stream(ctx, res.SOPInstanceUID, nil); !errors.As(err, &ae) || ae.Code != attest.EIntegrity || ae.Details["reason"] != attest.ReasonAltered {
		t.Fatalf("truncated: %v, want EIntegrity altered from Stream itself", err)
	}
}

func statementOf(t *testing.T, att *attest.Attestation) attest.Statement {
	t.Helper()
	payload, err := base64.StdEncoding.DecodeString(att.Envelope.Payload)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The offline verifier checks the chunk tree too: a statement whose root
// is not the file's (signed by the right key) fails like a wrong digest.
func TestVerifyOfflineChecksChunkTree(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	data := largeInstance(t, "1.2.826.0.1.3680043.10.88.10", 6)
	res, err := f.svc.Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.VerifyOffline(f.attestor.Verifier, res.Envelope, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	st := statementOf(t, res.Attestation)
	for name, change := range map[string]func(*chunks.Tree){
		"another root":       func(c *chunks.Tree) { c.Root = strings.Repeat("ab", 32) },
		"another chunk size": func(c *chunks.Tree) { c.ChunkSize = 4096 },
		"one chunk fewer":    func(c *chunks.Tree) { c.Count-- },
	} {
		forged := st
		tree := *st.Predicate.Chunks
		change(&tree)
		forged.Predicate.Chunks = &tree
		payload, _ := json.Marshal(forged)
		env, err := f.attestor.Sign(ctx, payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attest.VerifyOffline(f.attestor.Verifier, env, bytes.NewReader(data)); !errors.Is(err, attest.ErrFileMismatch) {
			t.Errorf("%s: %v, want ErrFileMismatch", name, err)
		}
	}
}

// An object already under a new attestation's digest (an orphan, here of
// the right size but other bytes) is overwritten by the attested bytes:
// the 2xx means the store holds what the attestation names.
func TestIngestOverwritesAnOrphan(t *testing.T) {
	dir := t.TempDir()
	f := newServiceIn(t, dir)
	data := fixture(t, "pydicom-CT_small.dcm")
	sum := sha256.Sum256(data)
	path := objectPath(dir, hex.EncodeToString(sum[:]))
	orphan := bytes.Clone(data)
	orphan[len(orphan)-3] ^= 0xff
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, orphan, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the store kept the orphan's bytes under the new attestation's digest")
	}
}

// droppingStore's first Get of an object breaks off after cut bytes, as a
// connection that drops mid-body does; the next reads are whole.
type droppingStore struct {
	attest.ObjectStore
	cut     int64
	dropped bool
}

func (d *droppingStore) Get(ctx context.Context, sha string) (io.ReadCloser, error) {
	rc, err := d.ObjectStore.Get(ctx, sha)
	if err != nil || d.dropped {
		return rc, err
	}
	d.dropped = true
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, d.cut), errReader{io.ErrUnexpectedEOF}), rc}, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A stream that breaks off while the stored copy reads back whole is an
// outage (503), not evidence: nothing is recorded.
func TestStreamDroppedReadIsAnOutage(t *testing.T) {
	d := &droppingStore{cut: 3*chunks.Size + 100}
	f := newServiceWith(t, t.TempDir(), func(s attest.ObjectStore) attest.ObjectStore { d.ObjectStore = s; return d })
	ctx := context.Background()
	data := largeInstance(t, "1.2.826.0.1.3680043.10.88.11", 16)
	res, err := f.svc.Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Stream(ctx, res.SOPInstanceUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = got.WriteTo(&out)
	got.Close()
	if attest.ErrorCode(err) != attest.EUnavailable || out.Len() != 3*chunks.Size {
		t.Fatalf("dropped read: %v after %d bytes, want EUnavailable after the 3 whole chunks", err, out.Len())
	}
	scanKind(t, f, custody.KindIntegrityFailure, func(b map[string]any) { t.Fatalf("recorded: %v", b) })
}
