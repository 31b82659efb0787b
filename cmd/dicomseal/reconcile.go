package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
)

const reconcileDescription = `
Compares the object store with the custody log, offline: prints
"orphan <sha256>" for each stored object no entry references (an ingest that
crashed between storing and logging leaves one; they are harmless and
content-addressed) and "missing <SOP Instance UID> ..." for each attested
version whose object is gone (retrieval answers 502 missing for it).

With --remove-orphans it deletes the orphans last written more than
--older-than ago, so that an ingest in flight (object stored, entry not yet
logged) is never undone. Referenced objects are never removed.

Exit status: 0 nothing found, 1 orphans or missing objects found, 2 usage or
the ledger or the store cannot be read.`

// reconcilable is what reconcile needs of an object store.
type reconcilable interface {
	List(ctx context.Context, fn func(sha256Hex string, size int64) error) error
	Remove(ctx context.Context, sha256Hex string, cutoff time.Time) (bool, error)
}

func reconcileCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./dicomseal-data", "data directory of the embedded ledger and the filesystem store")
	var lc ledgerConfig
	lc.flags(fs)
	var sc storeConfig
	sc.flags(fs)
	remove := fs.Bool("remove-orphans", false, "delete orphans older than --older-than")
	olderThan := fs.Duration("older-than", 24*time.Hour, "with --remove-orphans: only orphans last written longer ago than this")
	fs.Usage = usage(fs, stderr, "dicomseal reconcile [flags]", reconcileDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	sc.s3.CreateBucket = false // an audit of what is there, never a change of it
	fail := func(err error) int { fmt.Fprintln(stderr, "dicomseal reconcile:", err); return 2 }
	backend, err := lc.open(ctx, *dataDir)
	if err != nil {
		return fail(err)
	}
	defer backend.Close()
	objects, err := sc.open(ctx, *dataDir)
	if err != nil {
		return fail(err)
	}
	st, ok := objects.(reconcilable)
	if !ok {
		return fail(fmt.Errorf("the object store cannot list its objects"))
	}
	// The store is listed before the ledger is read: an object whose entry
	// is logged meanwhile is seen referenced, not orphaned.
	stored := map[string]bool{}
	if err := st.List(ctx, func(sha string, _ int64) error {
		stored[sha] = true
		return nil
	}); err != nil {
		return fail(fmt.Errorf("list the store: %w", err))
	}
	type version struct {
		uid   string
		index uint64
	}
	referenced := map[string]version{}
	err = backend.Read(ctx, func(tx ledger.Tx) error {
		return tx.ScanEntries(ctx, 0, 1<<62, func(e ledger.Entry) error {
			if custody.Attests(e.Kind) {
				referenced[e.FileSHA256] = version{e.Subject, e.Index}
			}
			return nil
		})
	})
	if err != nil {
		return fail(fmt.Errorf("read the ledger: %w", err))
	}
	var orphans []string
	for sha := range stored {
		if _, ok := referenced[sha]; !ok {
			orphans = append(orphans, sha)
		}
	}
	slices.Sort(orphans)
	// stillOrphan asks the ledger again, just before a removal: a retried
	// ingest of the same bytes may have logged it since.
	stillOrphan := func(sha string) (bool, error) {
		var found bool
		err := backend.Read(ctx, func(tx ledger.Tx) error {
			ct, err := custody.TxOf(tx)
			if err != nil {
				return err
			}
			_, err = ct.IngestBySHA256(ctx, sha)
			found = err == nil
			if errors.Is(err, ledger.ErrNotFound) {
				return nil
			}
			return err
		})
		return !found, err
	}
	left, missing := 0, 0 // orphans still there, attested objects gone
	cutoff := time.Now().Add(-*olderThan)
	for _, sha := range orphans {
		line := "orphan " + sha
		left++
		if *remove {
			orphan, err := stillOrphan(sha)
			if err != nil {
				return fail(err)
			}
			if !orphan {
				fmt.Fprintln(stdout, line+" (kept: logged meanwhile)")
				left--
				continue
			}
			removed, err := st.Remove(ctx, sha, cutoff)
			switch {
			case err != nil:
				return fail(err)
			case removed:
				line += " (removed)"
				left--
			default:
				line += " (kept: newer than --older-than)"
			}
		}
		fmt.Fprintln(stdout, line)
	}
	for sha, v := range referenced {
		if !stored[sha] {
			missing++
			fmt.Fprintf(stdout, "missing %s (sha256 %s, ledger index %d)\n", v.uid, sha, v.index)
		}
	}
	fmt.Fprintf(stderr, "reconcile: %d attested objects, %d stored, %d orphans (%d left), %d missing\n",
		len(referenced), len(stored), len(orphans), left, missing)
	if left+missing > 0 {
		return 1
	}
	return 0
}
