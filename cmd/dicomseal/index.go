package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/spool"
	"github.com/dicomseal/dicomseal/store"
)

const indexDescription = `
Rebuilds the DICOMweb search index (the catalog: an ordinary, correctable
table beside the log) from the stored objects: for the latest attested
version of every instance in the custody log, the object is read from the
store, checked against the digest the log holds, and indexed. Rows that are
missing or stale are written; with --reset the index is emptied first, so
that rows of nothing attested go too. The service may keep running: an
ingest meanwhile indexes its own instance, and a row never goes back to an
older version.

Progress goes to stderr every few seconds. Exit status: 0 all indexed, 1
some instances could not be (their object missing or altered: run
'dicomseal reconcile' and 'log verify'), 2 usage or the ledger, the store
or the index cannot be used.`

func indexCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprint(stderr, "Usage: dicomseal index rebuild [flags]\n"+indexDescription+"\n")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("index rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./dicomseal-data", "data directory of the embedded ledger and the filesystem store")
	var lc ledgerConfig
	lc.flags(fs)
	var sc storeConfig
	sc.flags(fs)
	reset := fs.Bool("reset", false, "empty the index before rebuilding it")
	maxInflated := byteSize(defaultLimits.MaxInflated)
	fs.Var(&maxInflated, "max-inflated", "as serve's: most bytes a deflated data set may inflate to")
	maxRatio := fs.Int64("max-inflate-ratio", defaultLimits.MaxInflateRatio, "as serve's")
	maxElements := fs.Int("max-elements", defaultLimits.MaxElements, "as serve's")
	fs.Usage = usage(fs, stderr, "dicomseal index rebuild [flags]", indexDescription)
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return exitUsage(err)
	}
	sc.s3.CreateBucket = false
	fail := func(err error) int { fmt.Fprintln(stderr, "dicomseal index rebuild:", err); return 2 }
	backend, err := lc.open(ctx, *dataDir)
	if err != nil {
		return fail(err)
	}
	defer backend.Close()
	cat, ok := backend.(catalog.Store)
	if !ok {
		return fail(errors.New("the ledger backend keeps no catalog"))
	}
	objects, err := sc.open(ctx, *dataDir)
	if err != nil {
		return fail(err)
	}
	limits := dicomfile.Limits{MaxInflated: int64(maxInflated), MaxInflateRatio: *maxRatio, MaxElements: *maxElements}
	// Emptied before the log is read: an ingest in between writes its own
	// row, and is then in the scan too.
	if *reset {
		if err := cat.Reset(ctx); err != nil {
			return fail(fmt.Errorf("empty the index: %w", err))
		}
	}
	latest, err := latestVersions(ctx, backend)
	if err != nil {
		return fail(fmt.Errorf("read the ledger: %w", err))
	}
	uids := make([]string, 0, len(latest))
	for uid := range latest {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	spoolDir, err := os.MkdirTemp("", "dicomseal-index-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(spoolDir)
	indexed, skipped, failed := 0, 0, 0
	last := time.Now()
	for i, uid := range uids {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		v := latest[uid]
		err := indexOne(ctx, objects, cat, spoolDir, limits, uid, v)
		switch {
		case err == nil:
			indexed++
		case errors.Is(err, catalog.ErrNotIndexable):
			skipped++
		case errors.Is(err, errIndexDependency):
			return fail(err)
		default:
			failed++
			fmt.Fprintf(stdout, "failed %s (ledger index %d): %v\n", uid, v.index, err)
		}
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(stderr, "indexed %d of %d instances\n", i+1, len(uids))
			last = time.Now()
		}
	}
	fmt.Fprintf(stdout, "indexed %d instances, %d failed\n", indexed, failed)
	if skipped > 0 {
		fmt.Fprintf(stdout, "skipped %d instances without a Study or Series Instance UID (attested, but not in DICOMweb)\n", skipped)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// attested is an instance's latest attested version: all a rebuild keeps
// of each while it reads the log (not its entry, envelope and all).
type attested struct {
	index uint64
	sha   string
}

// latestVersions is the latest attesting entry of every instance.
func latestVersions(ctx context.Context, backend ledger.Backend) (map[string]attested, error) {
	latest := map[string]attested{}
	err := backend.Read(ctx, func(tx ledger.Tx) error {
		return tx.ScanEntries(ctx, 0, 1<<62, func(e ledger.Entry) error {
			if custody.Attests(e.Kind) {
				latest[e.Subject] = attested{e.Index, e.FileSHA256} // entries come in index order
			}
			return nil
		})
	})
	return latest, err
}

// errIndexDependency: the store or the index failed, not one instance.
var errIndexDependency = errors.New("dependency failed")

// indexOne reads a version's object, checks it against the log's digest
// and indexes it.
func indexOne(ctx context.Context, objects attest.ObjectStore, cat catalog.Store, spoolDir string, limits dicomfile.Limits, uid string, v attested) error {
	e := ledger.Entry{Index: v.index, Subject: uid, FileSHA256: v.sha}
	rc, err := objects.Get(ctx, e.FileSHA256)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("object %s is missing from the store", e.FileSHA256)
	}
	if err != nil {
		return fmt.Errorf("%w: object %s: %v", errIndexDependency, e.FileSHA256, err)
	}
	sp, err := spool.Fill(spoolDir, 16<<20, rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("%w: read object %s: %v", errIndexDependency, e.FileSHA256, err)
	}
	defer sp.Close()
	if got := sp.SHA256Hex(); got != e.FileSHA256 {
		return fmt.Errorf("the stored object hashes to %s, not the attested %s", got, e.FileSHA256)
	}
	ce, err := attest.CatalogEntry(limits, sp, sp.Size())
	if err != nil {
		return err
	}
	ce.LedgerIndex, ce.FileSHA256, ce.IndexedAt = e.Index, e.FileSHA256, time.Now().UTC()
	if err := cat.PutEntry(ctx, ce); err != nil {
		return fmt.Errorf("%w: write the index: %v", errIndexDependency, err)
	}
	return nil
}
