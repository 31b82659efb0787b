package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/sqlite/sqlitetest"
)

// trail writes events to an embedded audit ledger and returns it once
// every event is durable.
func trail(t *testing.T, events []audit.Event) (*audit.Log, *ledger.Log) {
	t.Helper()
	l := sqlitetest.Log(t, filepath.Join(t.TempDir(), "audit.db"), nil)
	a := audit.New(l, nil)
	for _, ev := range events {
		a.Record(ev)
	}
	a.Close() // flushes; queries read the ledger directly
	return a, l
}

func TestQuery(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	var events []audit.Event
	for i := range 10 {
		actor := "alice"
		if i%2 == 1 {
			actor = "bob"
		}
		events = append(events, audit.Event{Time: t0.Add(time.Duration(i) * time.Hour), Actor: actor,
			Action: "retrieve", Object: fmt.Sprintf("1.2.3.%d", i), Outcome: "allowed", Status: 200})
	}
	a, _ := trail(t, events)

	tests := []struct {
		name   string
		filter audit.Filter
		want   string // objects, in order
	}{
		{"everything", audit.Filter{}, "0123456789"},
		{"one actor", audit.Filter{Actor: "bob"}, "13579"},
		{"an unknown actor", audit.Filter{Actor: "mallory"}, ""},
		{"a limit stops early", audit.Filter{Limit: 3}, "012"},
		{"from an index, the next page", audit.Filter{From: 3, Limit: 3}, "345"},
		{"from an index, by actor", audit.Filter{Actor: "bob", From: 4}, "579"},
		{"from past the end", audit.Filter{From: 10}, ""},
		{"an actor and a limit", audit.Filter{Actor: "alice", Limit: 2}, "02"},
		{"a time range, inclusive", audit.Filter{Since: t0.Add(2 * time.Hour), Until: t0.Add(5 * time.Hour)}, "2345"},
		{"an actor in a time range", audit.Filter{Actor: "alice", Since: t0.Add(3 * time.Hour)}, "468"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := a.Query(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, f := range found {
				got += f.Object[len(f.Object)-1:]
				if tt.filter.Actor != "" && f.Actor != tt.filter.Actor {
					t.Errorf("entry %d is %q's", f.Index, f.Actor)
				}
			}
			if got != tt.want {
				t.Fatalf("objects %q, want %q", got, tt.want)
			}
		})
	}
}

// An integrated entry comes with a proof an auditor can check against the
// signed checkpoint on their own.
func TestQueryProvesInclusion(t *testing.T) {
	a, l := trail(t, []audit.Event{
		{Time: time.Now().UTC(), Actor: "alice", Action: "verify", Outcome: "allowed"},
		{Time: time.Now().UTC(), Actor: "bob", Action: "ingest", Outcome: "denied", Status: 403},
		{Time: time.Now().UTC(), Actor: "alice", Action: "retrieve", Outcome: "allowed"},
	})
	if _, _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	found, err := a.Query(context.Background(), audit.Filter{Actor: "alice"})
	if err != nil || len(found) != 2 {
		t.Fatalf("Query = %d entries, %v", len(found), err)
	}
	cp, err := l.LatestCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if f.Inclusion == nil || f.Inclusion.TreeSize != cp.Size {
			t.Fatalf("entry %d: inclusion %+v, want one at size %d", f.Index, f.Inclusion, cp.Size)
		}
		leaf, _ := hex.DecodeString(f.LeafHash)
		var hashes [][]byte
		for _, h := range f.Inclusion.Hashes {
			b, _ := hex.DecodeString(h)
			hashes = append(hashes, b)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, f.Index, cp.Size, leaf, hashes, cp.Root); err != nil {
			t.Errorf("entry %d: %v", f.Index, err)
		}
		wrong := sha256.Sum256([]byte("another entry"))
		if proof.VerifyInclusion(rfc6962.DefaultHasher, f.Index, cp.Size, wrong[:], hashes, cp.Root) == nil {
			t.Errorf("entry %d: the proof also proves a different leaf", f.Index)
		}
	}
}

// A client tailing the trail asks from past the signed checkpoint; a log
// cut back below the checkpoint's size still fails, not answers nothing.
func TestQueryFromPastTheCheckpointSeesATruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	l := sqlitetest.Log(t, path, nil)
	a := audit.New(l, nil)
	for i := range 4 {
		a.Record(audit.Event{Time: time.Now().UTC(), Actor: "alice", Action: "verify", Object: fmt.Sprint(i), Outcome: "allowed"})
	}
	a.Close()
	if _, _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Four events and the checkpoint's subject map: entries 0 to 4.
	if found, err := a.Query(context.Background(), audit.Filter{From: 5}); err != nil || len(found) != 0 {
		t.Fatalf("from the tail of a sound log: %d entries, %v", len(found), err)
	}
	sqlitetest.Tamper(t, path, `DELETE FROM entries WHERE idx = 4`)
	var tampered *audit.TamperedError
	if _, err := a.Query(context.Background(), audit.Filter{From: 5}); !errors.As(err, &tampered) || tampered.Index != 4 {
		t.Fatalf("from the tail of a truncated log: %v, want a TamperedError at 4", err)
	}
}

// Queries by object and by time read the audit log's own index, and still
// see every match: an event recorded late (its time before entries already
// in the log) is found, and the objects index pages past its first page.
func TestQueryThroughTheIndex(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	var events []audit.Event
	for i := range 1205 {
		events = append(events, audit.Event{Time: t0.Add(time.Duration(i) * time.Minute), Actor: "alice",
			Action: "retrieve", Object: fmt.Sprintf("obj-%d", i%2), Outcome: "allowed"})
	}
	// Recorded last, stamped in the middle: a request that took a while.
	events = append(events, audit.Event{Time: t0.Add(10*time.Minute + 30*time.Second), Actor: "bob", Action: "verify",
		Object: "late", Outcome: "allowed"})
	a, _ := trail(t, events)
	ctx := context.Background()

	got, err := a.Query(ctx, audit.Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(11 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	var idx []uint64
	for _, f := range got {
		idx = append(idx, f.Index)
	}
	if fmt.Sprint(idx) != "[10 11 1205]" {
		t.Fatalf("a ten-to-eleven minute window: entries %v, want [10 11 1205]", idx)
	}
	if got, err := a.Query(ctx, audit.Filter{Object: "late"}); err != nil || len(got) != 1 || got[0].Actor != "bob" {
		t.Fatalf("by object: %v %v", got, err)
	}
	got, err = a.Query(ctx, audit.Filter{Object: "obj-1", From: 1000, Limit: 10000})
	if err != nil || len(got) != 102 || got[0].Index != 1001 || got[101].Index != 1203 {
		t.Fatalf("by object from 1000: %d entries, %v", len(got), err)
	}
	if got, err := a.Query(ctx, audit.Filter{Since: t0.Add(48 * time.Hour)}); err != nil || len(got) != 0 {
		t.Fatalf("after everything: %v %v", got, err)
	}
}
