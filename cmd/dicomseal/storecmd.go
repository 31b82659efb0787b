package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/fixity"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/store"
	fsstore "github.com/dicomseal/dicomseal/store/fs"
	"github.com/dicomseal/dicomseal/store/s3"
)

const storeMigrateDescription = `
Copies every attested object from the configured store (the store flags, as
serve's) to another, given by --to:

  file:///ABSOLUTE/DIR                          a filesystem store
  s3://[ACCESS_KEY@]HOST:PORT/BUCKET[?OPTIONS]  an S3 bucket; OPTIONS:
      tls=false (plain HTTP), region=R, lookup=path|dns|auto,
      create-bucket=false; the secret key comes from --to-s3-secret-key
      (better: DICOMSEAL_TO_S3_SECRET_KEY), never from the URL

Each object is checked against its signed attestation before the copy
(a damaged one is not copied: it is reported, recorded as an integrity
failure, and the exit status is 1) and read back from the new store after
it; then one storage-migration entry records the object, both stores and
both digests. Interrupted, it resumes: objects whose entry names the same
destination are skipped, and one found already intact there is recorded
without copying again. Progress (count, rate, ETA) goes to stderr.

When it is done, point the service at the new store (--s3-endpoint and its
flags, or no S3 flags for the data directory's own store).

Exit status: 0 every object migrated, 1 some could not be (damaged), 2
usage, or a store or the ledger cannot be used.`

func storeCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprint(stderr, "Usage: dicomseal store migrate --to URL [flags]\n"+storeMigrateDescription+"\n")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return 0
		}
		return 2
	}
	m := NewMain()
	m.Stderr = stderr
	m.LogLevel = "warn"
	fs := flag.NewFlagSet("store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.storageFlags(fs)
	to := fs.String("to", "", "the destination store: file:///DIR or s3://[ACCESS_KEY@]HOST:PORT/BUCKET[?tls=false&region=&lookup=]")
	secret := fs.String("to-s3-secret-key", "", "the destination bucket's secret key (prefer DICOMSEAL_TO_S3_SECRET_KEY)")
	workers := fs.Int("workers", 4, "objects copied at once")
	every := fs.Duration("progress-interval", 2*time.Second, "how often progress is printed")
	fs.Usage = usage(fs, stderr, "dicomseal store migrate --to URL [flags]", storeMigrateDescription)
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return exitUsage(err)
	}
	if *to == "" || *workers < 1 || *every <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "dicomseal store migrate: --to is required (and --workers and --progress-interval positive); see --help")
		return 2
	}
	dest, toDesc, err := openStoreURL(ctx, *to, *secret, m.S3Timeout)
	if err != nil {
		fmt.Fprintln(stderr, "dicomseal store migrate: --to:", err)
		return 2
	}
	m.Objects.s3.CreateBucket = false
	fail := func(err error) int { fmt.Fprintln(stderr, "dicomseal store migrate:", err); return 2 }
	defer m.Close()
	svc, _, err := m.open(ctx)
	if err != nil {
		return fail(err)
	}
	fromDesc := m.storeDescription()
	if fromDesc == toDesc {
		return fail(fmt.Errorf("--to is the store in use (%s)", toDesc))
	}
	actor := "dicomseal store migrate"
	if u, err := user.Current(); err == nil {
		actor += " (" + u.Username + ")"
	}
	// What an earlier run already recorded for this destination.
	done := map[string]bool{}
	if err := m.ledger.Scan(ctx, 0, func(e ledger.Entry) error {
		if sha, toStore, ok := attest.MigratedTo(e); ok && toStore == toDesc {
			done[sha] = true
		}
		return nil
	}); err != nil {
		return fail(fmt.Errorf("read the log: %w", err))
	}
	size, err := m.ledger.Size(ctx)
	if err != nil {
		return fail(err)
	}
	var todo []ledger.Entry
	seen := map[string]bool{}
	var skipped int64
	for from := uint64(0); from < size; {
		es, next, err := m.ledger.ScanAttesting(ctx, from, size, 4096)
		if err != nil {
			return fail(fmt.Errorf("read the log: %w", err))
		}
		for _, e := range es {
			switch {
			case seen[e.FileSHA256]:
			case done[e.FileSHA256]:
				skipped++
			default:
				todo = append(todo, e)
			}
			seen[e.FileSHA256] = true
		}
		from = next
	}
	fmt.Fprintf(stderr, "store migrate: %s -> %s: %d objects, %d already migrated\n", fromDesc, toDesc, len(todo)+int(skipped), skipped)

	var copied, present, damaged, bytes atomic.Int64
	start := time.Now()
	stopProgress := progressEvery(*every, func() {
		n := copied.Load() + present.Load() + damaged.Load()
		el := time.Since(start).Seconds()
		rate := float64(n) / el
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(int64(len(todo))-n)/rate) * time.Second).String()
		}
		fmt.Fprintf(stderr, "store migrate: %d/%d objects (%d copied, %d already there, %d damaged), %.0f objects/s, %s/s, ETA %s\n",
			n, len(todo), copied.Load(), present.Load(), damaged.Load(), rate, humanBytes(int64(float64(bytes.Load())/el)), eta)
	})
	jobs := make(chan ledger.Entry)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range *workers {
		wg.Go(func() {
			for e := range jobs {
				mg, err := svc.MigrateObject(ctx, e, dest, fromDesc, toDesc, actor)
				switch {
				case err != nil:
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s (ledger index %d): %w", e.Subject, e.Index, err)
					}
					mu.Unlock()
					cancel()
				case mg.Outcome == "":
					present.Add(1) // no object by design: nothing to move
				case mg.Outcome != fixity.OK:
					damaged.Add(1)
					why := "damaged: recorded as an integrity failure"
					if mg.Outcome == fixity.Unchecked {
						why = "its attestation cannot be checked here: configure its key"
					}
					mu.Lock()
					fmt.Fprintf(stdout, "%s %s (not migrated; %s)\n", mg.SOPInstanceUID, mg.Outcome, why)
					mu.Unlock()
				case mg.Copied:
					copied.Add(1)
					bytes.Add(mg.Size)
				default:
					present.Add(1)
				}
			}
		})
	}
feed:
	for _, e := range todo {
		select {
		case jobs <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	stopProgress()
	if _, _, err := m.ledger.Integrate(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintln(stderr, "dicomseal store migrate: integrate the new entries:", err)
	}
	fmt.Fprintf(stderr, "store migrate: %d copied, %d already there, %d skipped (migrated before), %d damaged, in %s\n",
		copied.Load(), present.Load(), skipped, damaged.Load(), time.Since(start).Round(time.Millisecond))
	if firstErr != nil {
		return fail(fmt.Errorf("%w (run it again to resume)", firstErr))
	}
	if done := copied.Load() + present.Load() + damaged.Load(); done < int64(len(todo)) {
		return fail(fmt.Errorf("interrupted after %d of %d objects (run it again to resume)", done, len(todo)))
	}
	if damaged.Load() > 0 {
		return 1
	}
	return 0
}

// storeDescription names the configured store as migration entries do.
func (m *Main) storeDescription() string {
	if m.Objects.s3.Endpoint != "" {
		return "s3://" + m.Objects.s3.Endpoint + "/" + m.Objects.s3.Bucket
	}
	dir, err := filepath.Abs(filepath.Join(m.DataDir, "objects"))
	if err != nil {
		dir = filepath.Join(m.DataDir, "objects")
	}
	return "file://" + dir
}

// openStoreURL opens a store named by URL, and describes it without
// credentials.
func openStoreURL(ctx context.Context, raw, secret string, timeout time.Duration) (attest.ObjectStore, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, "", fmt.Errorf("want file:///ABSOLUTE/DIR, got %q", raw)
		}
		st, err := fsstore.Open(u.Path)
		return st, "file://" + filepath.Clean(u.Path), err
	case "s3":
		bucket := u.Path
		if len(bucket) > 0 && bucket[0] == '/' {
			bucket = bucket[1:]
		}
		if u.Host == "" || bucket == "" {
			return nil, "", fmt.Errorf("want s3://[ACCESS_KEY@]HOST:PORT/BUCKET, got %q", u.Redacted())
		}
		if _, set := u.User.Password(); set {
			return nil, "", errors.New("the secret key goes in --to-s3-secret-key or DICOMSEAL_TO_S3_SECRET_KEY, never in the URL")
		}
		q := u.Query()
		cfg := s3.Config{Endpoint: u.Host, Bucket: bucket, Region: q.Get("region"), Lookup: q.Get("lookup"),
			SecretKey: secret, CreateBucket: true, MaxRetries: 3}
		if u.User != nil {
			cfg.AccessKey = u.User.Username()
		}
		if v := q.Get("tls"); v != "" {
			tls, err := strconv.ParseBool(v)
			if err != nil {
				return nil, "", fmt.Errorf("tls=%q: want true or false", v)
			}
			cfg.DisableTLS = !tls
		}
		if v := q.Get("create-bucket"); v != "" {
			if cfg.CreateBucket, err = strconv.ParseBool(v); err != nil {
				return nil, "", fmt.Errorf("create-bucket=%q: want true or false", v)
			}
		}
		st, err := s3.Open(ctx, cfg)
		if err != nil {
			return nil, "", err
		}
		return store.Timeout{Backend: st, D: timeout}, "s3://" + u.Host + "/" + bucket, nil
	}
	return nil, "", fmt.Errorf("want a file:// or s3:// URL, got %q", u.Redacted())
}
