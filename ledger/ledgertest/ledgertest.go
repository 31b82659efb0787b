// Package ledgertest is the conformance suite every ledger backend must
// pass: the same tests run against the embedded SQLite backend and
// PostgreSQL, through the generic ledger.Log above them.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
)

// Origin is the log origin the suite uses.
const Origin = "dicomseal.test/conformance"

// Instance is one backend under test.
type Instance struct {
	Backend ledger.Backend
	// Reopen closes nothing; it opens the same storage again (a restart).
	Reopen func() ledger.Backend
	// Tamper runs one SQL statement (with ? placeholders) directly against
	// the storage as its owner, append-only protections lifted: what a
	// database superuser can do behind the service's back.
	Tamper func(stmt string, args ...any)
	// Plain storage keeps the log's tables only (the audit log's schema):
	// the suite appends plain records, without the custody index.
	Plain bool
}

// Harness opens a fresh, empty backend for each test.
type Harness func(t testing.TB) Instance

// LogKey returns a fresh Ed25519 note signer and verifier for Origin.
func LogKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, Origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// fixture is a log over a fresh backend with its keys.
type fixture struct {
	Instance
	log      *custody.Log
	signer   note.Signer
	verifier note.Verifier
}

func newFixture(t testing.TB, h Harness) *fixture {
	t.Helper()
	inst := h(t)
	s, v := LogKey(t)
	l := &custody.Log{Log: ledger.New(inst.Backend, Origin, s, v)}
	if !inst.Plain {
		l = custody.New(l.Log)
		// The log's mechanics are tested without the subject map, which
		// adds an entry to every checkpoint; subjects.go tests it.
		l.SubjectMap = false
	}
	return &fixture{Instance: inst, log: l, signer: s, verifier: v}
}

// reopen is the fixture's custody log after a restart, as newFixture made it.
func (f *fixture) reopen() *custody.Log {
	l := custody.New(ledger.New(f.Reopen(), Origin, f.signer, f.verifier))
	l.SubjectMap = false
	return l
}

func ingest(uid, sha string) custody.Record {
	return custody.Record{
		Kind: custody.KindIngest, Subject: uid, FileSHA256: sha,
		Body:     []byte(fmt.Sprintf(`{"v":1,"kind":"ingest","subject":%q,"file_sha256":%q}`, uid, sha)),
		Identity: &custody.Identity{Salt: []byte("0123456789abcdef0123456789abcdef"), PatientID: "P-" + uid},
	}
}

func sha(n int) string { return fmt.Sprintf("%064x", n) }

// appendN appends n ingest entries numbered from start, with up to
// writers concurrent appenders (so that group commit forms real batches).
func appendN(t testing.TB, l *custody.Log, start, n, writers int) {
	t.Helper()
	if err := tryAppendN(l, start, n, writers); err != nil {
		t.Fatal(err)
	}
}

func tryAppendN(l *custody.Log, start, n, writers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				rec := ingest(fmt.Sprintf("9.%d", i), sha(i))
				var err error
				if l.Indexer == nil { // plain storage: the log alone
					_, err = l.Append(context.Background(), []ledger.Record{{Kind: rec.Kind, Subject: rec.Subject, FileSHA256: rec.FileSHA256, Body: rec.Body}})
				} else {
					_, err = l.AppendIngest(context.Background(), rec)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := start; i < start+n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

func integrate(t testing.TB, l *custody.Log) ledger.Checkpoint {
	t.Helper()
	cp, _, err := l.Integrate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("append", func(t *testing.T) { runAppend(t, h) })
	t.Run("tree", func(t *testing.T) { runTree(t, h) })
	t.Run("audit", func(t *testing.T) { runAudit(t, h) })
	t.Run("follow", func(t *testing.T) { runFollow(t, h) })
	t.Run("subjects", func(t *testing.T) { runSubjects(t, h) })
}

// RunTamperMatrix runs only the whole-log audit against every tamper case:
// for a second log kept by the same backend code (the audit log, in a
// schema or file of its own).
func RunTamperMatrix(t *testing.T, h Harness) { runAudit(t, h) }

func runAppend(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("append and look up", func(t *testing.T) {
		f := newFixture(t, h)
		for i := 0; i < 3; i++ {
			rec := ingest(fmt.Sprintf("1.2.3.%d", i), sha(i))
			e, err := f.log.AppendIngest(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if e.Index != uint64(i) || e.LeafHash != ledger.LeafHash(rec.Body) {
				t.Fatalf("entry %d: index %d, leaf %x", i, e.Index, e.LeafHash)
			}
		}
		bySOP, err := f.log.InstanceBySOP(ctx, "1.2.3.1")
		if err != nil || bySOP.Index != 1 || bySOP.FileSHA256 != sha(1) {
			t.Fatalf("InstanceBySOP = %+v, %v", bySOP, err)
		}
		bySHA, err := f.log.IngestBySHA256(ctx, sha(2))
		if err != nil || bySHA.Subject != "1.2.3.2" {
			t.Fatalf("IngestBySHA256 = %+v, %v", bySHA, err)
		}
		byLeaf, err := f.log.EntryByLeafHash(ctx, bySHA.LeafHash)
		if err != nil || byLeaf.Index != 2 {
			t.Fatalf("EntryByLeafHash = %+v, %v", byLeaf, err)
		}
		at, err := f.log.Entry(ctx, 0)
		if err != nil || string(at.Body) != string(ingest("1.2.3.0", sha(0)).Body) {
			t.Fatalf("Entry(0) = %+v, %v", at, err)
		}
		for name, err := range map[string]error{
			"unknown UID":    second(f.log.InstanceBySOP(ctx, "9.9")),
			"unknown digest": second(f.log.IngestBySHA256(ctx, sha(99))),
			"beyond the end": second(f.log.Entry(ctx, 3)),
			"unknown leaf":   second(f.log.EntryByLeafHash(ctx, [32]byte{1})),
		} {
			if !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("%s: error = %v, want ledger.ErrNotFound", name, err)
			}
		}
	})

	t.Run("scan one subject in index order", func(t *testing.T) {
		f := newFixture(t, h)
		// A plain log, without the custody index: the subject is the log's.
		plain := ledger.New(f.Backend, Origin, f.signer, f.verifier)
		const kindAudit ledger.Kind = "audit"
		audit := func(actor string, n int) ledger.Record {
			return ledger.Record{Kind: kindAudit, Subject: actor,
				Body: []byte(fmt.Sprintf(`{"v":1,"kind":"audit","subject":%q,"n":%d}`, actor, n))}
		}
		if _, err := f.log.AppendIngest(ctx, ingest("1.2.3.1", sha(1))); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Append(ctx, []ledger.Record{audit("alice", 0), audit("bob", 1), audit("alice", 2)}); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Append(ctx, []ledger.Record{audit("alice", 3)}); err != nil {
			t.Fatal(err)
		}
		// The custody index decides custody records only.
		if _, err := f.log.Append(ctx, []ledger.Record{audit("alice", 4)}); !errors.Is(err, custody.ErrNotCustody) {
			t.Fatalf("an audit record appended to the custody log: %v", err)
		}
		var got []uint64
		err := f.log.ScanSubject(ctx, "alice", func(e ledger.Entry) error {
			if e.Subject != "alice" || e.Kind != kindAudit {
				t.Errorf("entry %d: subject %q kind %q", e.Index, e.Subject, e.Kind)
			}
			got = append(got, e.Index)
			return nil
		})
		if err != nil || fmt.Sprint(got) != "[1 3 4]" {
			t.Fatalf("ScanSubject(alice) = %v, %v; want [1 3 4]", got, err)
		}
		stop := errors.New("stop")
		n := 0
		if err := f.log.ScanSubject(ctx, "alice", func(ledger.Entry) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Fatalf("a callback error stops the scan: %v after %d entries", err, n)
		}
		if err := f.log.ScanSubject(ctx, "nobody", func(e ledger.Entry) error {
			return fmt.Errorf("unexpected entry %d", e.Index)
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a caller waits for its own commit, not for the queue behind it", func(t *testing.T) {
		q := queueBehindLeader(ctx, t, h)
		l, gated, first, second := q.log, q.gated, q.first, q.second
		close(q.releaseFirst)
		var releaseSecond chan struct{}
		select {
		case err := <-first:
			if err != nil {
				t.Fatal(err)
			}
		case releaseSecond = <-gated.writes:
			// The second batch's commit started (and is held); the first
			// caller must still return.
			select {
			case err := <-first:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the first caller is held by a commit that is not its own")
			}
		}
		if releaseSecond == nil {
			releaseSecond = gated.next(t)
		}
		close(releaseSecond)
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		if e, err := l.InstanceBySOP(ctx, "1.2.3.2"); err != nil || e.Index != 1 {
			t.Fatalf("second entry: %+v, %v", e, err)
		}
	})

	t.Run("close waits for a commit whose caller stopped waiting", func(t *testing.T) {
		impatient, giveUp := context.WithCancel(ctx)
		q := queueBehindLeader(impatient, t, h)
		l, gated := q.log, q.gated
		giveUp()
		if err := <-q.second; !errors.Is(err, context.Canceled) {
			t.Fatalf("the impatient caller: %v", err)
		}
		close(q.releaseFirst)
		if err := <-q.first; err != nil {
			t.Fatal(err)
		}
		releaseSecond := gated.next(t) // the queued request's commit, which nobody waits for
		closed := make(chan error, 1)
		go func() { closed <- l.Close() }()
		select {
		case <-gated.closing:
			t.Fatal("Close closed the backend while a commit was in flight")
		case <-time.After(100 * time.Millisecond): // Close had its chance to go wrong
		}
		close(releaseSecond)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		// Had Close not waited, the commit would have met a closed backend.
		l2 := custody.New(ledger.New(q.inst.Reopen(), Origin, q.signer, q.verifier))
		defer l2.Close()
		if e, err := l2.InstanceBySOP(ctx, "1.2.3.2"); err != nil || e.Index != 1 {
			t.Fatalf("the queued request after Close: %+v, %v", e, err)
		}
	})

	t.Run("a UID is claimed once", func(t *testing.T) {
		f := newFixture(t, h)
		first, err := f.log.AppendIngest(ctx, ingest("1.2.3", sha(1)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.log.AppendIngest(ctx, ingest("1.2.3", sha(2)))
		var exists *custody.InstanceExistsError
		if !errors.As(err, &exists) || exists.Existing.Index != first.Index || exists.Existing.FileSHA256 != sha(1) {
			t.Fatalf("second claim error = %v, want InstanceExistsError naming entry %d", err, first.Index)
		}
		if _, err := f.log.Entry(ctx, 1); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("a refused claim appended an entry: %v", err)
		}
	})

	t.Run("a claim after a revision names the claiming ingest", func(t *testing.T) {
		f := newFixture(t, h)
		first, err := f.log.AppendIngest(ctx, ingest("4.1", sha(40)))
		if err != nil {
			t.Fatal(err)
		}
		rev := ingest("4.1", sha(41))
		rev.Kind, rev.Revises = custody.KindRevision, first.Index
		if _, err := f.log.AppendIngest(ctx, rev); err != nil {
			t.Fatal(err)
		}
		// Both backends answer the claim (InstanceEntries), not the
		// instance's latest version.
		_, err = f.log.AppendIngest(ctx, ingest("4.1", sha(42)))
		var exists *custody.InstanceExistsError
		if !errors.As(err, &exists) || exists.Existing.Index != first.Index || exists.Existing.Kind != custody.KindIngest ||
			exists.Existing.FileSHA256 != sha(40) {
			t.Fatalf("a claim after a revision: %v, want InstanceExistsError naming the ingest at %d", err, first.Index)
		}
	})

	t.Run("an instance's latest version, by digest of any version", func(t *testing.T) {
		f := newFixture(t, h)
		first, err := f.log.AppendIngest(ctx, ingest("4.2", sha(43)))
		if err != nil {
			t.Fatal(err)
		}
		if e, latest, err := f.log.IngestBySHA256WithLatest(ctx, sha(43)); err != nil || e.Index != first.Index || latest.Index != first.Index ||
			!bytes.Equal(latest.Body, first.Body) {
			t.Fatalf("one version: %v, %d, %d", err, e.Index, latest.Index)
		}
		rev := ingest("4.2", sha(44))
		rev.Kind, rev.Revises = custody.KindRevision, first.Index
		second, err := f.log.AppendIngest(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		e, latest, err := f.log.IngestBySHA256WithLatest(ctx, sha(43))
		if err != nil || e.Index != first.Index || latest.Index != second.Index || latest.Kind != custody.KindRevision ||
			!bytes.Equal(latest.Body, second.Body) || latest.LeafHash != second.LeafHash {
			t.Fatalf("after a revision: %v, %d, %d %s", err, e.Index, latest.Index, latest.Kind)
		}
		if _, _, err := f.log.IngestBySHA256WithLatest(ctx, sha(45)); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("unknown digest: %v", err)
		}
	})

	t.Run("the revision chain cannot fork", func(t *testing.T) {
		f := newFixture(t, h)
		first, err := f.log.AppendIngest(ctx, ingest("5.1", sha(50)))
		if err != nil {
			t.Fatal(err)
		}
		revision := func(n int, revises uint64) (ledger.Entry, error) {
			rec := ingest("5.1", sha(n))
			rec.Kind, rec.Revises = custody.KindRevision, revises
			return f.log.AppendIngest(ctx, rec)
		}
		a, err := revision(51, first.Index)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := revision(52, first.Index); !errors.Is(err, custody.ErrStaleRevision) {
			t.Fatalf("a second revision of the same entry: %v, want ErrStaleRevision", err)
		}
		if _, err := revision(53, a.Index); err != nil {
			t.Fatalf("a revision of the latest: %v", err)
		}
		latest, err := f.log.InstanceBySOP(ctx, "5.1")
		if err != nil || latest.FileSHA256 != sha(53) {
			t.Fatalf("latest revision: %+v, %v", latest, err)
		}
	})

	t.Run("an identity correction is a version of the instance", func(t *testing.T) {
		f := newFixture(t, h)
		first, err := f.log.AppendIngest(ctx, ingest("6.1", sha(60)))
		if err != nil {
			t.Fatal(err)
		}
		correction := func(n int, revises uint64) (ledger.Entry, error) {
			rec := ingest("6.1", sha(n))
			rec.Kind, rec.Revises = custody.KindIdentityCorrection, revises
			rec.Identity.CorrectionReason = "registered as Unknown in trauma bay 2"
			return f.log.AppendIngest(ctx, rec)
		}
		c, err := correction(61, first.Index)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := correction(62, first.Index); !errors.Is(err, custody.ErrStaleRevision) {
			t.Fatalf("a second correction of the same entry: %v, want ErrStaleRevision", err)
		}
		latest, err := f.log.InstanceBySOP(ctx, "6.1")
		if err != nil || latest.Index != c.Index || latest.Kind != custody.KindIdentityCorrection {
			t.Fatalf("latest: %+v, %v; want the correction at %d", latest, err, c.Index)
		}
		if e, err := f.log.IngestBySHA256(ctx, sha(61)); err != nil || e.Index != c.Index {
			t.Fatalf("by digest: %+v, %v", e, err)
		}
		id, err := f.log.Identity(ctx, sha(61))
		if err != nil || id.CorrectionReason != "registered as Unknown in trauma bay 2" {
			t.Fatalf("identity row: %+v, %v", id, err)
		}
		if id, err := f.log.Identity(ctx, sha(60)); err != nil || id.CorrectionReason != "" {
			t.Fatalf("the ingest's identity row: %+v, %v", id, err)
		}
	})

	t.Run("an incident repeated within one batch is appended once", func(t *testing.T) {
		f := newFixture(t, h)
		rec := ledger.Record{Kind: custody.KindSecurityAlert, Subject: "1.2.9", FileSHA256: sha(9),
			Body: []byte(`{"v":1,"kind":"security-alert","subject":"1.2.9"}`), Meta: custody.Meta{IncidentKey: "k", SeenAt: time.Now()}}
		ps, err := f.log.Submit(ctx, []ledger.Record{rec, rec, rec})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if p.Err != nil || p.Entry.Index != 0 || p.Value != int64(i+1) || string(p.Entry.Body) != string(rec.Body) {
				t.Fatalf("record %d: entry %d, count %v, %v", i, p.Entry.Index, p.Value, p.Err)
			}
		}
		if _, err := f.log.Entry(ctx, 1); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("a repeat was appended: %v", err)
		}
	})

	t.Run("incidents are recorded once and counted", func(t *testing.T) {
		f := newFixture(t, h)
		if _, err := f.log.AppendIngest(ctx, ingest("1.2.3", sha(1))); err != nil {
			t.Fatal(err)
		}
		rec := custody.Record{Kind: custody.KindIntegrityFailure, Subject: "1.2.3", FileSHA256: sha(7),
			IncidentKey: "altered:" + sha(7), Body: []byte(`{"kind":"integrity-failure"}`)}
		var first ledger.Entry
		for i := 1; i <= 3; i++ {
			e, count, err := f.log.RecordIncident(ctx, rec, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				first = e
			}
			if e.Index != first.Index || count != int64(i) {
				t.Fatalf("repeat %d: entry %d count %d, want entry %d count %d", i, e.Index, count, first.Index, i)
			}
		}
		other := rec
		other.IncidentKey, other.Body = "missing:", []byte(`{"kind":"integrity-failure","reason":"missing"}`)
		e, count, err := f.log.RecordIncident(ctx, other, time.Now())
		if err != nil || e.Index == first.Index || count != 1 {
			t.Fatalf("a different incident: entry %d count %d err %v", e.Index, count, err)
		}
	})

	t.Run("concurrent appends are gap-free and batched", func(t *testing.T) {
		f := newFixture(t, h)
		const n = 320
		appendN(t, f.log, 0, n, 32)
		seen := map[uint64]bool{}
		for i := 0; i < n; i++ {
			e, err := f.log.InstanceBySOP(ctx, fmt.Sprintf("9.%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if seen[e.Index] {
				t.Fatalf("index %d assigned twice", e.Index)
			}
			seen[e.Index] = true
		}
		for i := uint64(0); i < n; i++ {
			if !seen[i] {
				t.Fatalf("gap at index %d", i)
			}
		}
		batches := 0
		f.Backend.Read(ctx, func(tx ledger.Tx) error {
			return tx.ScanBatches(ctx, 0, func(ledger.Batch) error { batches++; return nil })
		})
		if batches >= n {
			t.Errorf("%d batches for %d concurrent appends: group commit did not group", batches, n)
		}
	})

	t.Run("concurrent first claims of one UID: one wins", func(t *testing.T) {
		f := newFixture(t, h)
		const n = 8
		var wg sync.WaitGroup
		results := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.log.AppendIngest(ctx, ingest("3.1", sha(i)))
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			var exists *custody.InstanceExistsError
			switch {
			case err == nil:
				wins++
			case !errors.As(err, &exists):
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d claims won, want 1", wins)
		}
	})

	t.Run("two logs on one storage stay gap-free", func(t *testing.T) {
		f := newFixture(t, h)
		other := custody.New(ledger.New(f.Reopen(), Origin, f.signer, f.verifier))
		defer other.Close()
		var wg sync.WaitGroup
		for k, l := range []*custody.Log{f.log, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := tryAppendN(l, k*1000, 100, 8); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		next := uint64(0)
		f.Backend.Read(ctx, func(tx ledger.Tx) error {
			return tx.ScanEntries(ctx, 0, 1<<40, func(e ledger.Entry) error {
				if e.Index != next {
					t.Fatalf("entry %d where %d was expected", e.Index, next)
				}
				next++
				return nil
			})
		})
		if next != 200 {
			t.Fatalf("%d entries, want 200", next)
		}
		if rep, err := ledger.Audit(ctx, f.Backend, Origin, f.verifier, ledger.AuditOptions{}); err != nil || !rep.OK() {
			t.Fatalf("audit after two writers: %v %v", err, rep)
		}
	})

	t.Run("entries survive a restart", func(t *testing.T) {
		f := newFixture(t, h)
		e, err := f.log.AppendIngest(ctx, ingest("4.1", sha(41)))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.log.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := f.reopen()
		defer l2.Close()
		got, err := l2.InstanceBySOP(ctx, "4.1")
		if err != nil || got.LeafHash != e.LeafHash || got.Index != e.Index {
			t.Fatalf("after restart: %+v, %v", got, err)
		}
		next, err := l2.AppendIngest(ctx, ingest("4.2", sha(42)))
		if err != nil || next.Index != e.Index+1 {
			t.Fatalf("append after restart: index %d, err %v", next.Index, err)
		}
		if cp := integrate(t, l2); cp.Size != 2 {
			t.Fatalf("checkpoint after restart: size %d", cp.Size)
		}
	})
}

func second[T any](_ T, err error) error { return err }

// gatedBackend holds every write transaction until the test releases it,
// and reports when it is closed.
type gatedBackend struct {
	ledger.Backend
	writes  chan chan struct{}
	closing chan struct{}
}

func (g *gatedBackend) Close() error {
	select {
	case g.closing <- struct{}{}:
	default:
	}
	return g.Backend.Close()
}

func (g *gatedBackend) Write(ctx context.Context, fn func(ledger.Tx) error) error {
	release := make(chan struct{})
	g.writes <- release
	<-release
	return g.Backend.Write(ctx, fn)
}

// next returns the release of the next write transaction to start.
func (g *gatedBackend) next(t *testing.T) chan struct{} {
	t.Helper()
	select {
	case r := <-g.writes:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no write transaction started")
		return nil
	}
}

// leaderAndQueue is a log over a gated backend whose first append leads
// and is held inside its commit, with a second append queued behind it.
type leaderAndQueue struct {
	inst          Instance
	gated         *gatedBackend
	log           *custody.Log
	signer        note.Signer
	verifier      note.Verifier
	releaseFirst  chan struct{}
	first, second chan error // the two appends' outcomes
}

// queueBehindLeader sets up a leaderAndQueue; the second append uses ctx.
func queueBehindLeader(ctx context.Context, t *testing.T, h Harness) *leaderAndQueue {
	t.Helper()
	q := &leaderAndQueue{inst: h(t), first: make(chan error, 1), second: make(chan error, 1)}
	q.signer, q.verifier = LogKey(t)
	q.gated = &gatedBackend{Backend: q.inst.Backend, writes: make(chan chan struct{}), closing: make(chan struct{}, 1)}
	q.log = custody.New(ledger.New(q.gated, Origin, q.signer, q.verifier))
	go func() { _, err := q.log.AppendIngest(context.Background(), ingest("1.2.3.1", sha(1))); q.first <- err }()
	q.releaseFirst = q.gated.next(t)
	go func() { _, err := q.log.AppendIngest(ctx, ingest("1.2.3.2", sha(2))); q.second <- err }()
	for deadline := time.Now().Add(10 * time.Second); q.log.Queued() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second append never queued")
		}
	}
	return q
}
