package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
	"github.com/dicomseal/dicomseal/signer"
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

// watchedStore is the real filesystem store, counting the reads of each
// object; after reads, its Get calls stop (a process stopping), and while
// down it answers as an unreachable store does.
type watchedStore struct {
	attest.ObjectStore
	mu    sync.Mutex
	gets  map[string]int
	after int
	stop  context.CancelFunc
	down  bool
	flaky map[string]bool
}

var errDown = errors.New("connection refused")

func (w *watchedStore) Get(ctx context.Context, sha string) (io.ReadCloser, error) {
	w.mu.Lock()
	w.gets[sha]++
	n, down := total(w.gets), w.down
	if w.flaky[sha] { // fails once, as a dropped connection would
		delete(w.flaky, sha)
		down = true
	}
	if w.stop != nil && n > w.after {
		w.stop()
	}
	w.mu.Unlock()
	if down {
		return nil, errDown
	}
	return w.ObjectStore.Get(ctx, sha)
}

func (w *watchedStore) Ping(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return errDown
	}
	return w.ObjectStore.Ping(ctx)
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// scrubWatched is scrubFixture over a watchedStore.
func scrubWatched(t *testing.T, n int) (fixtureService, *attest.Scrubber, [][]byte, *watchedStore) {
	t.Helper()
	w := &watchedStore{gets: map[string]int{}}
	f := newServiceWith(t, t.TempDir(), func(s attest.ObjectStore) attest.ObjectStore { w.ObjectStore = s; return w })
	files := uniqueInstances(t, "pydicom-CT_small.dcm", n)
	for _, b := range files {
		if _, err := f.svc.Ingest(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	state, err := sqlite.Open(context.Background(), f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	w.mu.Lock()
	clear(w.gets) // the ingests' own reads
	w.mu.Unlock()
	return f, attest.NewScrubber(f.svc, state, "test"), files, w
}

// A pass stopped half way resumes where it stopped: every object is read
// once in the pass, none twice, none skipped, and the progress of the
// batches done before the stop is kept.
func TestScrubResumes(t *testing.T) {
	_, sc, files, w := scrubWatched(t, 6)
	sc.Batch = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.mu.Lock()
	w.after, w.stop = 3, cancel // the 4th read stops the process
	w.mu.Unlock()
	if _, err := sc.Pass(ctx); err == nil {
		t.Fatal("a pass stopped by its context reports no error")
	}
	mid := sc.Status().Progress
	// Stopped during the second batch: that batch was checked, and its
	// progress is saved all the same.
	if mid.Counts[fixity.OK] != 4 || total64(mid.Counts) != 4 || mid.Position == 0 {
		t.Fatalf("interrupted at %+v: want the two batches checked before the stop saved", mid)
	}
	w.mu.Lock()
	w.stop = nil
	readBefore := maps.Clone(w.gets)
	w.mu.Unlock()
	// Metrics read the status while the pass counts (run with -race).
	polled := make(chan struct{})
	passDone := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-passDone:
				return
			default:
				st := sc.Status()
				_ = st.Progress.Checked()
			}
		}
	}()
	res, err := sc.Pass(context.Background())
	close(passDone)
	<-polled
	if err != nil {
		t.Fatal(err)
	}
	if res.Progress.Pass != 1 || res.Progress.Counts[fixity.OK] != 6 {
		t.Fatalf("resumed pass: %+v (want pass 1, 6 OK)", res.Progress)
	}
	// Each object read once, but for those of the batch in hand when it
	// stopped (read again after the resumption): never more than twice.
	for _, b := range files {
		sum := sha256.Sum256(b)
		sha := hex.EncodeToString(sum[:])
		if n := w.gets[sha]; n == 0 || n > 2 || (n == 2 && readBefore[sha] == 0) {
			t.Fatalf("object read %d times (%d before the stop)", n, readBefore[sha])
		}
	}
	if twice := total(w.gets) - len(files); twice > sc.Batch {
		t.Fatalf("%d objects read twice: more than the batch in hand", twice)
	}
}

// A store that is down is an outage, not damage: the pass stops with
// ErrStoreDown, records no integrity failure and no summary, and resumes
// once the store is back.
func TestScrubDuringAnOutageRecordsNothing(t *testing.T) {
	f, sc, _, w := scrubWatched(t, 3)
	w.mu.Lock()
	w.down = true
	w.mu.Unlock()
	if _, err := sc.Pass(context.Background()); !errors.Is(err, attest.ErrStoreDown) {
		t.Fatalf("pass with the store down: %v", err)
	}
	for _, k := range []ledger.Kind{custody.KindIntegrityFailure, custody.KindFixity} {
		scanKind(t, f, k, func(b map[string]any) { t.Fatalf("recorded during an outage: %v", b) })
	}
	w.mu.Lock()
	w.down = false
	w.mu.Unlock()
	res, err := sc.Pass(context.Background())
	if err != nil || res.Progress.Counts[fixity.OK] != 3 {
		t.Fatalf("after the outage: %+v %v", res, err)
	}
}

// The objects' root gone (an unmounted volume) is an outage too, never
// every image MISSING.
func TestScrubOfAVanishedStoreIsAnOutage(t *testing.T) {
	f, sc, _, _ := scrubFixture(t, 2)
	root := filepath.Join(filepath.Dir(f.ledgerDB), "objects")
	if err := os.Rename(root, root+".unmounted"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pass(context.Background()); !errors.Is(err, attest.ErrStoreDown) {
		t.Fatalf("pass over a vanished store: %v", err)
	}
	// And an empty root in its place, as an unmounted volume's mountpoint.
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pass(context.Background()); !errors.Is(err, attest.ErrStoreDown) {
		t.Fatalf("pass over an empty mountpoint: %v", err)
	}
	scanKind(t, f, custody.KindIntegrityFailure, func(b map[string]any) { t.Fatalf("recorded: %v", b) })
}

// A pass checked to its end whose summary was not recorded as such (the
// process stopped between the append and the save) gets exactly one
// summary: appended if absent, found if present.
func TestScrubSummaryOncePerPass(t *testing.T) {
	f, sc, _, _ := scrubFixture(t, 2)
	ctx := context.Background()
	res, err := sc.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	state, err := sqlite.Open(ctx, f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	p := res.Progress
	p.Summarized = false
	if ok, err := state.AcquireLease(ctx, "scrub", "test", time.Now(), time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := state.SaveProgress(ctx, "scrub", "test", time.Now(), p); err != nil {
		t.Fatal(err)
	}
	again, err := sc.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Progress.Pass != 1 || again.Summary.Index != res.Summary.Index {
		t.Fatalf("resumed summary: pass %d at %d, want pass 1 at %d", again.Progress.Pass, again.Summary.Index, res.Summary.Index)
	}
	n := 0
	scanKind(t, f, custody.KindFixity, func(map[string]any) { n++ })
	if n != 1 {
		t.Fatalf("%d fixity entries for one pass", n)
	}
}

// A read that fails once is read again: a dropped connection is not an
// unreadable image.
func TestScrubReadsTwiceBeforeReadError(t *testing.T) {
	f, sc, files, w := scrubWatched(t, 2)
	sum := sha256.Sum256(files[0])
	w.mu.Lock()
	w.flaky = map[string]bool{hex.EncodeToString(sum[:]): true}
	w.mu.Unlock()
	res, err := sc.Pass(context.Background())
	if err != nil || res.Progress.Counts[fixity.OK] != 2 {
		t.Fatalf("pass with one dropped read: %+v %v", res, err)
	}
	scanKind(t, f, custody.KindIntegrityFailure, func(b map[string]any) { t.Fatalf("recorded: %v", b) })
}

// Attestations this server cannot check (another attestation key) are
// UNCHECKED: counted, not failures, no incident, and the pass completes.
func TestScrubOfAnotherKeysAttestationsIsUnchecked(t *testing.T) {
	f, _, _, _ := scrubFixture(t, 3)
	// The signed tree proves the entries genuine: a foreign key is this
	// server's configuration, not evidence (otherwise it is ATTESTATION_INVALID).
	if _, _, err := f.log.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, err := signer.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	other := attest.NewService(f.log, f.objects, key, slog.New(slog.NewTextHandler(io.Discard, nil)))
	state, err := sqlite.Open(context.Background(), f.ledgerDB)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	res, err := attest.NewScrubber(other, state, "other-key").Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := res.Progress
	if p.Counts[fixity.Unchecked] != 3 || p.Failed() != 0 || len(p.Failures) != 0 {
		t.Fatalf("pass under another key: counts %v failures %v", p.Counts, p.Failures)
	}
	scanKind(t, f, custody.KindIntegrityFailure, func(b map[string]any) { t.Fatalf("recorded: %v", b) })
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
