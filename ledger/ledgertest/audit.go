package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/ledger"
)

// auditFixture is a log of 40 entries in several signed batches with
// checkpoints at sizes 20 and 40.
func auditFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	f := newFixture(t, h)
	appendN(t, f.log, 0, 20, 4)
	integrate(t, f.log)
	appendN(t, f.log, 20, 20, 4)
	if cp := integrate(t, f.log); cp.Size != 40 {
		t.Fatalf("fixture checkpoint size %d", cp.Size)
	}
	return f
}

func (f *fixture) entry(t *testing.T, idx uint64) ledger.Entry {
	t.Helper()
	e, err := f.log.Entry(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) audit(t *testing.T) *ledger.AuditReport {
	t.Helper()
	rep, err := ledger.Audit(context.Background(), f.Backend, Origin, f.verifier, ledger.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func runAudit(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("a sound log passes", func(t *testing.T) {
		f := auditFixture(t, h)
		rep := f.audit(t)
		if !rep.OK() || rep.Entries != 40 || rep.TreeSize != 40 || rep.Checkpoints != 2 {
			t.Fatalf("audit of a sound log: %+v", rep)
		}
	})

	tamper := []struct {
		name  string
		do    func(t *testing.T, f *fixture)
		index uint64
		says  string
	}{
		{"one byte of an entry changed", func(t *testing.T, f *fixture) {
			body := bytes.Clone(f.entry(t, 13).Body)
			body[5] ^= 1
			f.Tamper(`UPDATE entries SET body = ? WHERE idx = ?`, body, 13)
		}, 13, "does not match its stored leaf hash"},
		{"an entry and its leaf hash rewritten", func(t *testing.T, f *fixture) {
			body := []byte(strings.Replace(string(f.entry(t, 13).Body), "9.", "6.", 1))
			leaf := ledger.LeafHash(body)
			f.Tamper(`UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = ?`, body, leaf[:], 13)
		}, 13, "signed batch"},
		{"an entry deleted", func(t *testing.T, f *fixture) {
			if !f.Plain {
				f.Tamper(`DELETE FROM instances WHERE entry_idx = ?`, 13)
			}
			f.Tamper(`DELETE FROM entries WHERE idx = ?`, 13)
		}, 13, "missing"},
		{"two entries swapped", func(t *testing.T, f *fixture) {
			a, b := f.entry(t, 7), f.entry(t, 29)
			f.Tamper(`UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = ?`, b.Body, b.LeafHash[:], 7)
			f.Tamper(`UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = ?`, a.Body, a.LeafHash[:], 29)
		}, 7, "signed batch"},
		{"a forged entry inserted", func(t *testing.T, f *fixture) {
			body := []byte(`{"kind":"ingest","sop_instance_uid":"6.6.6","file_sha256":"forged"}`)
			leaf := ledger.LeafHash(body)
			f.Tamper(`INSERT INTO entries (idx, kind, subject, file_sha256, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)`,
				40, "ingest", "6.6.6", sha(666), body, leaf[:])
		}, 40, "not covered by any signed batch"},
		{"the tail truncated", func(t *testing.T, f *fixture) {
			if !f.Plain { // the claims reference the entries
				f.Tamper(`DELETE FROM instances WHERE entry_idx >= ?`, 33)
			}
			f.Tamper(`DELETE FROM entries WHERE idx >= ?`, 33)
		}, 33, "truncated"},
		{"the latest checkpoint re-signed by another key", func(t *testing.T, f *fixture) {
			cp, err := f.log.LatestCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := LogKey(t)
			text := cp.Note[:bytes.Index(cp.Note, []byte("\n\n"))+1]
			forged, err := note.Sign(&note.Note{Text: string(text)}, other)
			if err != nil {
				t.Fatal(err)
			}
			f.Tamper(`DELETE FROM checkpoints WHERE size = ?`, 40)
			f.Tamper(`INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)`,
				40, cp.Root, forged, time.Now().UTC().Format(time.RFC3339Nano))
		}, 39, "checkpoint at tree size 40"},
		{"a stored tree node altered", func(t *testing.T, f *fixture) {
			// Node (level 1, index 3) covers leaves 6 and 7.
			f.Tamper(`UPDATE tree_nodes SET hash = ? WHERE id = ?`, make([]byte, 32), ledger.NodeKey(compact.NewNodeID(1, 3)))
		}, 6, "tree node"},
	}
	for _, tc := range tamper {
		t.Run("caught: "+tc.name, func(t *testing.T) {
			f := auditFixture(t, h)
			tc.do(t, f)
			rep := f.audit(t)
			if rep.OK() {
				t.Fatal("audit found nothing")
			}
			first := rep.Findings[0]
			if first.Index != tc.index || !strings.Contains(first.What, tc.says) {
				t.Fatalf("first finding %q; want index %d saying %q (all: %v)", first, tc.index, tc.says, rep.Findings)
			}
		})
	}

	t.Run("rows inserted behind the service are never integrated", func(t *testing.T) {
		f := auditFixture(t, h)
		appendN(t, f.log, 100, 2, 1) // indexes 40, 41, signed
		body := []byte(`{"kind":"ingest","sop_instance_uid":"6.6.6"}`)
		leaf := ledger.LeafHash(body)
		f.Tamper(`INSERT INTO entries (idx, kind, subject, file_sha256, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)`,
			42, "ingest", "6.6.6", sha(666), body, leaf[:])
		appendN(t, f.log, 200, 1, 1) // index 43, in a signed batch starting at 43
		cp, _, err := f.log.Integrate(ctx)
		var halt *ledger.HaltError
		if !errors.As(err, &halt) || halt.Index != 42 {
			t.Fatalf("Integrate: %v, want a halt at index 42", err)
		}
		if cp.Size != 42 {
			t.Fatalf("integrated up to %d, want 42 (the signed entries before the forged one)", cp.Size)
		}
		if first := f.audit(t).Findings[0]; first.Index != 42 {
			t.Fatalf("audit: first finding %v, want index 42", first)
		}
	})

	t.Run("a tampered tree is not extended", func(t *testing.T) {
		f := auditFixture(t, h)
		f.Tamper(`UPDATE tree_nodes SET hash = ? WHERE id = ?`, make([]byte, 32), ledger.NodeKey(compact.NewNodeID(5, 0))) // root of leaves 0..31
		appendN(t, f.log, 100, 3, 1)
		if _, published, err := f.log.Integrate(ctx); err == nil || published {
			t.Fatalf("Integrate over altered nodes: published=%v err=%v", published, err)
		}
	})
}
