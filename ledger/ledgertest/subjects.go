package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/subject"
)

// Subject chains, the subject map and subject proofs, on a custody log
// whose checkpoints commit the map.

// subjectFixture is a custody log with the subject map, holding a study
// with ingests, revisions, incidents and events, interleaved with
// another study's, over several checkpoints.
type subjectFixture struct {
	*fixture
	// study's entries, by index, as the log holds them; other's too.
	study, other []uint64
	earlier      ledger.Checkpoint // a checkpoint before the last entries
}

const (
	studyA = "1.2.826.0.1.3680043.10.1"
	studyB = "1.2.826.0.1.3680043.10.2"
)

func catalogRow(uid, study, patient string) *catalog.Entry {
	return &catalog.Entry{SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: study + ".1", PatientID: patient}
}

func chainedIngest(uid, study, patient string, n int) custody.Record {
	r := ingest(uid, sha(n))
	r.Body = []byte(fmt.Sprintf(`{"v":2,"kind":"ingest","subject":%q,"file_sha256":%q}`, uid, sha(n)))
	r.Catalog = catalogRow(uid, study, patient)
	return r
}

func newSubjectFixture(t *testing.T, h Harness) *subjectFixture {
	t.Helper()
	f := newFixture(t, h)
	f.log.SubjectMap = true
	sf := &subjectFixture{fixture: f}
	ctx := context.Background()
	add := func(e ledger.Entry, err error) ledger.Entry {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for i := range 6 {
		e := add(f.log.AppendIngest(ctx, chainedIngest(fmt.Sprintf("%s.1.%d", studyA, i), studyA, "PAT-A", i)))
		sf.study = append(sf.study, e.Index)
		e = add(f.log.AppendIngest(ctx, chainedIngest(fmt.Sprintf("%s.1.%d", studyB, i), studyB, "PAT-B", 100+i)))
		sf.other = append(sf.other, e.Index)
		if i == 2 {
			integrate(t, f.log)
		}
	}
	uid := studyA + ".1.0"
	// A conflict (counted on repeat: one entry), an integrity failure and
	// a transfer, all about an instance of the study.
	conflict := custody.Record{Kind: custody.KindConflict, Subject: uid, FileSHA256: sha(900), IncidentKey: "k",
		Body: []byte(fmt.Sprintf(`{"v":2,"kind":"conflict","subject":%q}`, uid))}
	for range 2 {
		e, _, err := f.log.RecordIncident(ctx, conflict, time.Now())
		add(e, err)
		if !slices.Contains(sf.study, e.Index) {
			sf.study = append(sf.study, e.Index)
		}
	}
	failure := custody.Record{Kind: custody.KindIntegrityFailure, Subject: uid, IncidentKey: "missing",
		Body: []byte(fmt.Sprintf(`{"v":2,"kind":"integrity-failure","subject":%q}`, uid))}
	e, _, err := f.log.RecordIncident(ctx, failure, time.Now())
	sf.study = append(sf.study, add(e, err).Index)
	sf.earlier = integrate(t, f.log)
	es, err := f.log.AppendEvents(ctx, []custody.Record{{Kind: custody.KindTransfer, Subject: uid, FileSHA256: sha(0),
		Body: []byte(fmt.Sprintf(`{"v":2,"kind":"transfer","subject":%q}`, uid))}})
	if err != nil {
		t.Fatal(err)
	}
	sf.study = append(sf.study, es[0].Index)
	integrate(t, f.log)
	return sf
}

func (sf *subjectFixture) prove(t *testing.T, key ledger.SubjectKey, size uint64) *ledger.SubjectProof {
	t.Helper()
	p, err := sf.log.SubjectProof(context.Background(), key, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (sf *subjectFixture) verify(key ledger.SubjectKey, p *ledger.SubjectProof) (*ledger.SubjectEntries, error) {
	return ledger.VerifySubjectProof(Origin, sf.verifier, key, 0, p)
}

func indexesOf(es []ledger.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Index
	}
	return out
}

func runSubjects(t *testing.T, h Harness) {
	ctx := context.Background()
	t.Run("a study's proof verifies and lists exactly its entries", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		key := subject.Study(studyA)
		got, err := sf.verify(key, sf.prove(t, key, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(indexesOf(got.Entries), sf.study) {
			t.Fatalf("proven entries %v, want %v", indexesOf(got.Entries), sf.study)
		}
		// At an older checkpoint the same study has fewer entries, proven
		// complete as of that checkpoint.
		old, err := sf.verify(key, sf.prove(t, key, sf.earlier.Size))
		if err != nil {
			t.Fatal(err)
		}
		if want := sf.study[:len(sf.study)-1]; !slices.Equal(indexesOf(old.Entries), want) || old.Size != sf.earlier.Size {
			t.Fatalf("at size %d: %v, want %v", sf.earlier.Size, indexesOf(old.Entries), want)
		}
	})

	t.Run("a patient's proof goes through the salt in the correctable table", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		var salts map[string][]byte
		err := sf.log.View(ctx, func(ltx ledger.Tx) error {
			tx, err := custody.TxOf(ltx)
			if err != nil {
				return err
			}
			salts, err = tx.PatientSalts(ctx, []string{"PAT-B"})
			return err
		})
		if err != nil || len(salts["PAT-B"]) != subject.SaltSize {
			t.Fatalf("salt of PAT-B: %x, %v", salts["PAT-B"], err)
		}
		key := subject.Patient(salts["PAT-B"])
		got, err := sf.verify(key, sf.prove(t, key, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(indexesOf(got.Entries), sf.other) {
			t.Fatalf("patient's entries %v, want %v", indexesOf(got.Entries), sf.other)
		}
		// No entry body names the patient.
		for _, e := range got.Entries {
			if strings.Contains(string(e.Body), "PAT-B") {
				t.Fatalf("entry %d names the patient: %s", e.Index, e.Body)
			}
		}
	})

	t.Run("a subject with no entry is proven absent", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		key := subject.Study("1.2.3.absent")
		p := sf.prove(t, key, 0)
		got, err := sf.verify(key, p)
		if err != nil || len(got.Entries) != 0 || p.Head != nil {
			t.Fatalf("absent study: %+v, %v", got, err)
		}
	})

	t.Run("every omission, reordering or substitution fails", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		key := subject.Study(studyA)
		good := sf.prove(t, key, 0)
		otherProof := sf.prove(t, subject.Study(studyB), 0)
		older := sf.prove(t, key, sf.earlier.Size)
		clone := func() *ledger.SubjectProof {
			c := *good
			c.Entries = slices.Clone(good.Entries)
			head := *good.Head
			c.Head = &head
			return &c
		}
		cases := map[string]func(p *ledger.SubjectProof){
			"an entry dropped": func(p *ledger.SubjectProof) { p.Entries = slices.Delete(p.Entries, 2, 3) },
			"an entry dropped, the count lowered": func(p *ledger.SubjectProof) {
				p.Entries = slices.Delete(p.Entries, 2, 3)
				p.Head.Count--
			},
			"the newest entry dropped (truncation)": func(p *ledger.SubjectProof) {
				p.Entries = p.Entries[:len(p.Entries)-1]
				last := p.Entries[len(p.Entries)-1]
				p.Head = &ledger.Head{Index: last.Index, LeafHash: ledger.Hash(ledger.LeafHash(last.Body)), Count: uint64(len(p.Entries))}
			},
			"two entries reordered":            func(p *ledger.SubjectProof) { p.Entries[1], p.Entries[2] = p.Entries[2], p.Entries[1] },
			"another study's entry slipped in": func(p *ledger.SubjectProof) { p.Entries[3] = otherProof.Entries[3] },
			"the map proof from an older checkpoint": func(p *ledger.SubjectProof) {
				p.Map, p.MapProof, p.Head, p.Entries = older.Map, older.MapProof, older.Head, older.Entries
			},
			"the map entry's root forged": func(p *ledger.SubjectProof) {
				b := slices.Clone(p.Map.Body)
				i := strings.Index(string(b), `"root":"`) + len(`"root":"`)
				b[i] = map[bool]byte{true: '1', false: '0'}[b[i] == '0'] // another hex digit, the body still well formed
				p.Map.Body = b
			},
			"the absence of a present subject": func(p *ledger.SubjectProof) { p.Head, p.Entries = nil, nil },
			"an entry's body edited": func(p *ledger.SubjectProof) {
				p.Entries[0].Body = []byte(strings.Replace(string(p.Entries[0].Body), "ingest", "Ingest", 1))
			},
		}
		if _, err := sf.verify(key, good); err != nil {
			t.Fatalf("the untouched proof: %v", err)
		}
		for name, mutate := range cases {
			p := clone()
			mutate(p)
			if _, err := sf.verify(key, p); err == nil {
				t.Errorf("%s: the proof still verifies", name)
			}
		}
		if _, err := sf.verify(subject.Study(studyB), good); err == nil {
			t.Error("a proof verifies for another subject")
		}
		// A server asked for one checkpoint answering another: an older
		// one's sound proof would hide what came after it.
		if _, err := ledger.VerifySubjectProof(Origin, sf.verifier, key, sf.earlier.Size, good); err == nil {
			t.Error("a proof at another checkpoint than the one asked for verifies")
		}
		if _, err := ledger.VerifySubjectProof(Origin, sf.verifier, key, sf.earlier.Size, older); err != nil {
			t.Errorf("the proof at the checkpoint asked for: %v", err)
		}
	})

	t.Run("log verify rebuilds the map and names the checkpoint whose map was forged", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		rep, err := ledger.Audit(ctx, sf.Backend, Origin, sf.verifier, ledger.AuditOptions{})
		if err != nil || !rep.OK() || rep.SubjectMaps != 3 || rep.Subjects != 4 {
			t.Fatalf("sound log: %+v, %v", rep, err)
		}
		// The stored map's nodes altered (all but the root, which an
		// update recomputes): the next map the service signs is built on
		// them, so its root is not the log's map.
		sf.Tamper(`UPDATE subject_map_nodes SET hash = ? WHERE label <> ?`, make([]byte, 32), make([]byte, 34))
		if _, err := sf.log.AppendIngest(ctx, chainedIngest(studyA+".1.99", studyA, "PAT-A", 99)); err != nil {
			t.Fatal(err)
		}
		cp := integrate(t, sf.log)
		rep, err = ledger.Audit(ctx, sf.Backend, Origin, sf.verifier, ledger.AuditOptions{})
		if err != nil || rep.OK() {
			t.Fatalf("forged map: %+v, %v", rep, err)
		}
		want := fmt.Sprintf("checkpoint at tree size %d: its subject map", cp.Size)
		if f := rep.Findings[0]; f.Index != cp.Size-1 || !strings.Contains(f.What, want) {
			t.Fatalf("first finding %v, want %q", f, want)
		}
	})

	// Thousands of subjects in one integration: the update inserts them a
	// group at a time (mapGroup), each after one prefetch of its paths,
	// and reads and writes the backend in chunks; the map it commits must
	// still be the one log verify rebuilds, and prove each subject.
	t.Run("an integration of thousands of subjects commits the map log verify rebuilds", func(t *testing.T) {
		f := newFixture(t, h)
		f.log.SubjectMap = true
		for round := range 2 {
			if err := appendStudies(f.log, round*1500, 1500); err != nil {
				t.Fatal(err)
			}
			integrate(t, f.log)
		}
		rep, err := ledger.Audit(ctx, f.Backend, Origin, f.verifier, ledger.AuditOptions{})
		if err != nil || !rep.OK() || rep.SubjectMaps != 2 || rep.Subjects != 6000 {
			t.Fatalf("log verify: %+v, %v", rep, err)
		}
		cp, err := f.log.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 1499, 1500, 2999} {
			key := subject.Study(fmt.Sprintf("%s.%d", studyB, i))
			p, err := f.log.SubjectProof(ctx, key, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ledger.VerifySubjectProof(Origin, f.verifier, key, cp.Size, p); err != nil || len(got.Entries) != 1 {
				t.Fatalf("study %d: %+v, %v", i, got, err)
			}
		}
	})

	// The search index is mutable (index rebuild --reset empties it): an
	// entry about an instance it lost is chained under the subjects of
	// the instance's attesting entry, read from the log.
	t.Run("an entry about an instance the search index lost is still chained", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		sf.Tamper(`DELETE FROM catalog`)
		uid := studyA + ".1.1"
		es, err := sf.log.AppendEvents(ctx, []custody.Record{{Kind: custody.KindTransfer, Subject: uid, FileSHA256: sha(1),
			Body: []byte(fmt.Sprintf(`{"v":2,"kind":"transfer","subject":%q}`, uid))}})
		if err != nil {
			t.Fatal(err)
		}
		integrate(t, sf.log)
		got, err := sf.verify(subject.Study(studyA), sf.prove(t, subject.Study(studyA), 0))
		if err != nil || got.Entries[len(got.Entries)-1].Index != es[0].Index {
			t.Fatalf("study's entries %v (%v), want them to end with %d", indexesOf(got.Entries), err, es[0].Index)
		}
		var salts map[string][]byte
		if err := sf.log.View(ctx, func(ltx ledger.Tx) error {
			tx, err := custody.TxOf(ltx)
			if err == nil {
				salts, err = tx.PatientSalts(ctx, []string{"PAT-A"})
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		key := subject.Patient(salts["PAT-A"])
		if got, err := sf.verify(key, sf.prove(t, key, 0)); err != nil || got.Entries[len(got.Entries)-1].Index != es[0].Index {
			t.Fatalf("patient's entries (%v), want them to end with %d", err, es[0].Index)
		}
	})

	t.Run("a record with a chain member of its own is refused, alone", func(t *testing.T) {
		f := newFixture(t, h)
		f.log.SubjectMap = true
		for _, body := range []string{`{"v":2,"kind":"ingest","Chain":[]}`, `{"v":2,"kind":"ingest","\u0063hain":[]}`} {
			if _, err := f.log.Log.Append(ctx, []ledger.Record{{Kind: custody.KindIngest, Subject: "1.2.3", Body: []byte(body)}}); err == nil {
				t.Fatalf("%s appended", body)
			}
		}
		// A chain quoted deeper is the writer's own data, and the log
		// chains the entry as any other.
		rec := chainedIngest(studyA+".9", studyA, "PAT-A", 9)
		rec.Body = []byte(fmt.Sprintf(`{"v":2,"kind":"ingest","subject":%q,"reply":{"chain":[1]}}`, rec.Subject))
		e, err := f.log.AppendIngest(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if links, err := ledger.ChainsOf(e.Body); err != nil || len(links) != 2 {
			t.Fatalf("its chain: %+v, %v", links, err)
		}
	})

	t.Run("a chain link that skips an entry is reported", func(t *testing.T) {
		sf := newSubjectFixture(t, h)
		// What a sequencer that forgot a subject's head would write: the
		// next entry of the study follows the one before the head.
		key := subject.Study(studyB)
		sf.Tamper(`DELETE FROM subject_links WHERE subject = ? AND seq = (SELECT MAX(seq) FROM subject_links WHERE subject = ?)`, key[:], key[:])
		if _, err := sf.log.AppendIngest(ctx, chainedIngest(studyB+".1.77", studyB, "PAT-B", 77)); err != nil {
			t.Fatal(err)
		}
		integrate(t, sf.log)
		rep, err := ledger.Audit(ctx, sf.Backend, Origin, sf.verifier, ledger.AuditOptions{})
		if err != nil || rep.OK() || !strings.Contains(rep.Findings[0].What, "does not follow the subject's previous entry") {
			t.Fatalf("broken chain: %+v, %v", rep, err)
		}
	})

	t.Run("a proof at a checkpoint without a map is refused by name", func(t *testing.T) {
		f := newFixture(t, h) // the mechanics fixture: no subject map
		appendN(t, f.log, 0, 3, 1)
		cp := integrate(t, f.log)
		if _, err := f.log.SubjectProof(ctx, subject.Study(studyA), cp.Size); !errors.Is(err, ledger.ErrNoSubjectMap) {
			t.Fatalf("proof without a map: %v", err)
		}
	})
}
