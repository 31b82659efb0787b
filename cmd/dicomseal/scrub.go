package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/fixity"
)

const scrubDescription = `
Checks the fixity of every stored object, offline (no server needed): each
object attested in the custody log is re-read from the store, its SHA-256
recomputed and compared, with its size, to the digest in its signed
attestation (never to anything stored beside the object). Prints one line
per failure, "<SOP Instance UID> <OUTCOME>" (MISSING, SIZE_MISMATCH,
DIGEST_MISMATCH, READ_ERROR, or ATTESTATION_INVALID when the entry itself
fails), then a summary on stderr. Failures are recorded in the log as
integrity-failure entries, and the pass as a signed fixity entry.

It runs one pass, resuming one a server or an earlier run left unfinished.
It takes the scrub lease: while a server with --scrub-interval holds it,
scrub refuses (exit 2). Repair a failure by re-ingesting the instance's
original bytes (they rewrite the stored copy and log a repair entry).

Exit status: 0 every object OK, 1 any failure, 2 usage, or the ledger or
the store cannot be used.`

func scrubCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := NewMain()
	m.Stderr = stderr
	m.LogLevel = "warn"
	fs := flag.NewFlagSet("scrub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.storageFlags(fs)
	rate := byteSize(0)
	fs.Var(&rate, "rate", "most bytes per second to read from the store (e.g. 64MiB; 0: as fast as it goes)")
	fs.Usage = usage(fs, stderr, "dicomseal scrub [flags]", scrubDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dicomseal scrub: no arguments expected, got %q\n", fs.Args())
		return 2
	}
	m.Objects.s3.CreateBucket = false
	fail := func(err error) int { fmt.Fprintln(stderr, "dicomseal scrub:", err); return 2 }
	defer m.Close()
	svc, backend, err := m.open(ctx)
	if err != nil {
		return fail(err)
	}
	sc, err := m.newScrubber(svc, backend)
	if err != nil {
		return fail(err)
	}
	sc.Rate = float64(rate)
	sc.Actor = "dicomseal scrub"
	if u, err := user.Current(); err == nil {
		sc.Actor += " (" + u.Username + ")"
	}
	stopProgress := progressEvery(2*time.Second, func() {
		st := sc.Status()
		fmt.Fprintf(stderr, "scrub: pass %d, %d objects checked, %s read, %d%% of the log\n", st.Progress.Pass,
			st.Progress.Checked(), humanBytes(st.Progress.Bytes), percent(st.Progress.Position, st.Progress.End))
	})
	res, err := sc.Pass(ctx)
	stopProgress()
	if errors.Is(err, attest.ErrLeaseHeld) {
		return fail(fmt.Errorf("%w; stop it or let it finish (its progress is in /metrics)", err))
	}
	if err != nil {
		return fail(fmt.Errorf("%w (the pass is saved: run scrub again to resume)", err))
	}
	if _, _, err := m.ledger.Integrate(ctx); err != nil {
		fmt.Fprintln(stderr, "dicomseal scrub: integrate the new entries:", err)
	}
	p := res.Progress
	for _, f := range p.Failures {
		fmt.Fprintf(stdout, "%s %s\n", f.SOPInstanceUID, f.Outcome)
	}
	failed := p.Failed()
	fmt.Fprintf(stderr, "scrub: pass %d: %d objects, %d OK, %d failed", p.Pass, p.Checked(), p.Counts[fixity.OK], failed)
	for _, o := range fixity.Outcomes[1:] {
		if p.Counts[o] > 0 {
			fmt.Fprintf(stderr, ", %d %s", p.Counts[o], o)
		}
	}
	fmt.Fprintf(stderr, "; %s read in %s; signed summary at ledger index %d\n", humanBytes(p.Bytes),
		time.Since(p.Started).Round(time.Millisecond), res.Summary.Index)
	if n := p.Counts[fixity.Unchecked]; n > 0 {
		fmt.Fprintf(stderr, "scrub: %d objects could not be checked: their attestations are signed by a key this server is not configured with, or of a newer format (see the log's warnings); configure the key or upgrade\n", n)
	}
	if failed > 0 {
		if omitted := failed - int64(len(p.Failures)); omitted > 0 {
			fmt.Fprintf(stderr, "scrub: %d more failures are not listed (see the integrity-failure entries)\n", omitted)
		}
		fmt.Fprintln(stderr, "scrub: to repair:", attest.RepairHint)
		return 1
	}
	if p.Counts[fixity.Unchecked] > 0 {
		return 1 // not all OK
	}
	return 0
}

func percent(a, b uint64) uint64 {
	if b == 0 {
		return 100
	}
	return min(a, b) * 100 / b
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressEvery calls fn every d until the returned stop is called.
func progressEvery(d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done); <-finished }
}
