package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/ledger/ledgertest"
	"github.com/dicomseal/dicomseal/ledger/sqlite"
)

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Backend{Open: func(t *testing.T) (ledgertest.Ledger, func() ledgertest.Ledger) {
		path := filepath.Join(t.TempDir(), "ledger.db")
		return open(t, path), func() ledgertest.Ledger { return open(t, path) }
	}})
}

// Two handles on one file stand for two processes (a server and a CLI):
// BEGIN IMMEDIATE and reading the head inside the transaction keep the
// indexes unique and gap-free across them.
func TestTwoWritersOnOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	handles := []*sqlite.DB{open(t, path), open(t, path)}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for h, db := range handles {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					uid := fmt.Sprintf("%d.%d.%d", h, w, i)
					e, err := db.AppendIngest(ctx, ledger.Record{Kind: ledger.KindIngest, SOPInstanceUID: uid,
						FileSHA256: fmt.Sprintf("%064d", h*1000+w*100+i), Body: []byte(uid)})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[e.Index] {
						t.Errorf("index %d assigned twice", e.Index)
					}
					seen[e.Index] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for i := uint64(0); i < 200; i++ {
		if !seen[i] {
			t.Fatalf("gap at index %d", i)
		}
	}
}

// The triggers refuse to rewrite history even to someone holding the file.
func TestEntriesAreAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	if _, err := l.AppendIngest(context.Background(), ledger.Record{Kind: ledger.KindIngest, SOPInstanceUID: "1.2",
		FileSHA256: strings.Repeat("a", 64), Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, stmt := range []string{
		`UPDATE entries SET body = x'00' WHERE idx = 0`,
		`DELETE FROM entries WHERE idx = 0`,
		`UPDATE instances SET file_sha256 = 'b' WHERE sop_instance_uid = '1.2'`,
		`DELETE FROM instances`,
	} {
		if _, err := raw.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want the append-only trigger", stmt, err)
		}
	}
}
