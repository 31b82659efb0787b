package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/store"
)

// scrubFixture ingests n unique instances and returns their bytes, the
// scrubber over the ledger's own lease and progress tables, and the path
// of each stored object.
func scrubFixture(t *testing.T, n int) (fixtureService, *attest.Scrubber, [][]byte, []string) {
	t.Helper()
	f := newService(t)
	files := uniqueInstances(t, "pydicom-CT_small.dcm", n)
	paths := make([]string, n)
	for i, b := range files {
		res, err := f.svc.Ingest(context.Background(), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		uids[string(b)] = res.SOPInstanceUID
		sum := sha256.Sum256(b)
		paths[i] = objectPath(filepath.Dir(f.ledgerDB), hex.EncodeToString(sum[:]))
	}
	state, err := sqlite.Open(context.Background(), f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	return f, attest.NewScrubber(f.svc, state, "test"), files, paths
}

func outcomes(p fixity.Progress) map[string]string {
	out := map[string]string{}
	for _, f := range p.Failures {
		out[f.SOPInstanceUID] = f.Outcome
	}
	return out
}

// One pass finds exactly what was damaged, by outcome; its summary is
// signed and breaks when shortened; the next pass after repair is clean.
func TestScrubFindsDamageAndSignsTheSummary(t *testing.T) {
	f, sc, files, paths := scrubFixture(t, 5)
	ctx := context.Background()
	flipped := bytes.Clone(files[1])
	flipped[len(flipped)-100] ^= 1
	if err := os.WriteFile(paths[1], flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paths[2], files[2][:len(files[2])/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(paths[3]); err != nil {
		t.Fatal(err)
	}
	res, err := sc.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uid := func(i int) string { return uidOf(t, files[i]) }
	want := map[string]string{uid(1): fixity.DigestMismatch, uid(2): fixity.SizeMismatch, uid(3): fixity.Missing}
	if got := outcomes(res.Progress); len(got) != 3 || got[uid(1)] != want[uid(1)] || got[uid(2)] != want[uid(2)] || got[uid(3)] != want[uid(3)] {
		t.Fatalf("failures %v, want %v", got, want)
	}
	if res.Progress.Counts[fixity.OK] != 2 || res.Progress.Pass != 1 {
		t.Fatalf("counts %v pass %d", res.Progress.Counts, res.Progress.Pass)
	}
	for _, fl := range res.Progress.Failures {
		if fl.IncidentIndex == nil {
			t.Fatalf("%s: no integrity-failure entry", fl.SOPInstanceUID)
		}
		e, err := f.svc.LogEntry(ctx, *fl.IncidentIndex)
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != *fl.IncidentIndex {
			t.Fatal("wrong entry")
		}
	}
	sum, err := f.svc.OpenFixity(res.Summary)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Objects != 5 || len(sum.Failures) != 3 || sum.Repair == "" {
		t.Fatalf("summary %+v", sum)
	}
	// The summary cannot be shortened: its failures are bound by the
	// statement's subject digest, under the signature.
	forged := res.Summary
	forged.Body = bytes.Replace(forged.Body, []byte(`"pass":1`), []byte(`"pass":2`), 1)
	forged.LeafHash = ledger.LeafHash(forged.Body)
	if _, err := f.svc.OpenFixity(forged); err == nil {
		t.Fatal("a fixity entry whose pass was changed verifies")
	}

	// Repair: the original bytes again rewrite each damaged copy, with a
	// repair entry naming what was found.
	for i := 1; i <= 3; i++ {
		if _, err := f.svc.Ingest(ctx, bytes.NewReader(files[i])); err != nil {
			t.Fatalf("re-ingest %d: %v", i, err)
		}
	}
	var found []string
	scanKind(t, f, custody.KindRepair, func(body map[string]any) { found = append(found, body["found"].(string)) })
	if len(found) != 3 || found[0] != attest.ReasonAltered || found[1] != attest.ReasonAltered || found[2] != attest.ReasonMissing {
		t.Fatalf("repair entries found %v", found)
	}
	// An intact copy is not "repaired".
	if _, err := f.svc.Ingest(ctx, bytes.NewReader(files[0])); err != nil {
		t.Fatal(err)
	}
	n := 0
	scanKind(t, f, custody.KindRepair, func(map[string]any) { n++ })
	if n != 3 {
		t.Fatalf("%d repair entries after re-ingesting an intact instance", n)
	}
	res, err = sc.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Progress.Pass != 2 || res.Progress.Counts[fixity.OK] != 5 || len(res.Progress.Failures) != 0 {
		t.Fatalf("after repair: pass %d counts %v failures %v", res.Progress.Pass, res.Progress.Counts, res.Progress.Failures)
	}
}

// A pass stopped half way resumes where it stopped: every object is
// checked once in the pass, none twice.
func TestScrubResumes(t *testing.T) {
	_, sc, files, _ := scrubFixture(t, 6)
	sc.Batch = 1
	total := int64(0)
	for _, b := range files {
		total += int64(len(b))
	}
	// About one object per 50 ms: stopped after ~120 ms, two or three are done.
	sc.Rate = float64(len(files[0])) * 20
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	if _, err := sc.Pass(ctx); err == nil {
		t.Fatal("a pass stopped by its context reports no error")
	}
	mid := sc.Status().Progress
	if mid.Position == 0 || total64(mid.Counts) == 0 || total64(mid.Counts) >= 6 || mid.Counts[fixity.OK] != total64(mid.Counts) {
		t.Fatalf("interrupted at %+v", mid)
	}
	sc.Rate = 0
	res, err := sc.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Progress.Pass != 1 || res.Progress.Counts[fixity.OK] != 6 || res.Progress.Bytes != total {
		t.Fatalf("resumed pass: %+v (want pass 1, 6 OK, %d bytes)", res.Progress, total)
	}
}

// The lease: a second scrubber is refused while the first holds it, and
// takes over once it is released.
func TestScrubLease(t *testing.T) {
	f, sc, _, _ := scrubFixture(t, 1)
	state, err := sqlite.Open(context.Background(), f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	other := attest.NewScrubber(f.svc, state, "other")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sc.Run(ctx, time.Hour) }()
	deadline := time.Now().Add(10 * time.Second)
	for !sc.Status().Scrubbing || sc.Status().Progress.Pass == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the scrubber never took the lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := other.Pass(context.Background()); !errors.Is(err, attest.ErrLeaseHeld) {
		t.Fatalf("second scrubber while the first runs: %v", err)
	}
	cancel()
	<-done
	if _, err := other.Pass(context.Background()); err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
}

// objectPath is where the filesystem store under dir keeps sha's object.
func objectPath(dir, sha string) string {
	key, _ := store.Key(sha)
	return filepath.Join(dir, "objects", filepath.FromSlash(key))
}

var uids = map[string]string{} // file bytes → SOP Instance UID, as ingested

func uidOf(t *testing.T, b []byte) string {
	t.Helper()
	u, ok := uids[string(b)]
	if !ok {
		t.Fatal("not ingested")
	}
	return u
}

// scanKind calls fn with the body of every entry of kind, in order.
func scanKind(t *testing.T, f fixtureService, kind ledger.Kind, fn func(map[string]any)) {
	t.Helper()
	for i := uint64(0); ; i++ {
		e, err := f.svc.LogEntry(context.Background(), i)
		if err != nil {
			return
		}
		raw, _ := base64.StdEncoding.DecodeString(e.Entry)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		if body["kind"] == string(kind) {
			fn(body)
		}
	}
}

func total64(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
