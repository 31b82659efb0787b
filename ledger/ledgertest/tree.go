package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/dicomseal/dicomseal/ledger"
)

var hasher = rfc6962.DefaultHasher

func runTree(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("checkpoints are signed notes that extend each other", func(t *testing.T) {
		f := newFixture(t, h)
		if _, err := f.log.LatestCheckpoint(ctx); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("a log never integrated has a checkpoint: %v", err)
		}
		// A new log publishes its empty tree, once.
		cp0 := integrate(t, f.log)
		if parsed, _, _, err := log.ParseCheckpoint(cp0.Note, Origin, f.verifier); err != nil || parsed.Size != 0 ||
			!bytes.Equal(parsed.Hash, hasher.EmptyRoot()) {
			t.Fatalf("the new log's checkpoint: %v %+v", err, parsed)
		}
		if _, published, _ := f.log.Integrate(ctx); published {
			t.Fatal("a second size-0 checkpoint was published")
		}
		appendN(t, f.log, 0, 5, 1)
		cp1 := integrate(t, f.log)
		if hashes, _, err := f.log.ConsistencyProof(ctx, 0, cp1.Size); err != nil || len(hashes) != 0 {
			t.Fatalf("consistency 0→5: %v %v", hashes, err)
		}
		if _, published, _ := f.log.Integrate(ctx); published {
			t.Fatal("a checkpoint was published with no new entries")
		}
		appendN(t, f.log, 5, 12, 4)
		cp2 := integrate(t, f.log)
		for _, cp := range []ledger.Checkpoint{cp1, cp2} {
			parsed, _, _, err := log.ParseCheckpoint(cp.Note, Origin, f.verifier)
			if err != nil || parsed.Size != cp.Size || !bytes.Equal(parsed.Hash, cp.Root) {
				t.Fatalf("checkpoint %d: %v %+v", cp.Size, err, parsed)
			}
		}
		if cp1.Size != 5 || cp2.Size != 17 {
			t.Fatalf("sizes %d, %d; want 5, 17", cp1.Size, cp2.Size)
		}
		hashes, _, err := f.log.ConsistencyProof(ctx, cp1.Size, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, cp1.Size, cp2.Size, hashes, cp1.Root, cp2.Root); err != nil {
			t.Fatalf("consistency 5→17: %v", err)
		}
		// The database itself refuses a checkpoint that does not extend the latest.
		for _, c := range []ledger.Checkpoint{cp1, cp0} {
			err = f.Backend.Write(ctx, func(tx ledger.Tx) error {
				return tx.InsertCheckpoint(ctx, ledger.Checkpoint{Size: c.Size, Root: c.Root, Note: c.Note})
			})
			if err == nil {
				t.Fatalf("a checkpoint of size %d, smaller than the latest, was stored", c.Size)
			}
		}
		if rep, err := ledger.Audit(ctx, f.Backend, Origin, f.verifier, ledger.AuditOptions{}); err != nil || !rep.OK() || rep.Checkpoints != 3 {
			t.Fatalf("audit of a log checkpointed from size 0: %v %+v", err, rep)
		}
		latest, err := f.log.LatestCheckpoint(ctx)
		if err != nil || latest.Size != 17 {
			t.Fatalf("latest checkpoint %d, %v", latest.Size, err)
		}
	})

	t.Run("bad proof parameters", func(t *testing.T) {
		f := newFixture(t, h)
		appendN(t, f.log, 0, 10, 1)
		integrate(t, f.log)
		for name, err := range map[string]error{
			"index ≥ size":     second2(f.log.InclusionProof(ctx, 5, 5)),
			"size beyond tree": second2(f.log.InclusionProof(ctx, 0, 11)),
			"from > to":        second2(f.log.ConsistencyProof(ctx, 7, 3)),
			"to beyond tree":   second2(f.log.ConsistencyProof(ctx, 3, 11)),
		} {
			var bad *ledger.BadParameterError
			if !errors.As(err, &bad) {
				t.Errorf("%s: error %v, want BadParameterError", name, err)
			}
		}
	})

	t.Run("every proof verifies and every mutated proof fails", func(t *testing.T) {
		f := newFixture(t, h)
		rnd := rand.New(rand.NewSource(62))
		total := 1500 + rnd.Intn(1500)
		var cps []ledger.Checkpoint
		for done := 0; done < total; {
			n := min(1+rnd.Intn(400), total-done)
			appendN(t, f.log, done, n, 16)
			done += n
			cps = append(cps, integrate(t, f.log))
		}
		leaves := make([][]byte, total)
		f.Backend.Read(ctx, func(tx ledger.Tx) error {
			return tx.ScanEntries(ctx, 0, uint64(total), func(e ledger.Entry) error {
				leaves[e.Index] = bytes.Clone(e.LeafHash[:])
				return nil
			})
		})
		// Every leaf against every checkpoint's tree, plus random sizes in between.
		sizes := map[uint64][]byte{}
		for _, cp := range cps {
			sizes[cp.Size] = cp.Root
		}
		for range 5 {
			s := uint64(1 + rnd.Intn(total))
			sizes[s] = rootOf(leaves[:s])
		}
		proofs := 0
		for size, root := range sizes {
			for idx := uint64(0); idx < size; idx++ {
				hashes, _, err := f.log.InclusionProof(ctx, idx, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyInclusion(hasher, idx, size, leaves[idx], hashes, root); err != nil {
					t.Fatalf("inclusion %d in %d: %v", idx, size, err)
				}
				if idx%37 == 0 {
					for _, bad := range mutations(hashes) {
						if proof.VerifyInclusion(hasher, idx, size, leaves[idx], bad, root) == nil {
							t.Fatalf("a mutated inclusion proof for %d in %d verified", idx, size)
						}
					}
					if size > 1 && proof.VerifyInclusion(hasher, (idx+1)%size, size, leaves[idx], hashes, root) == nil {
						t.Fatalf("inclusion proof for %d verified at another index", idx)
					}
				}
				proofs++
			}
			for from, fromRoot := range sizes {
				if from > size {
					continue
				}
				hashes, _, err := f.log.ConsistencyProof(ctx, from, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyConsistency(hasher, from, size, hashes, fromRoot, root); err != nil {
					t.Fatalf("consistency %d→%d: %v", from, size, err)
				}
				if from > 0 && from < size {
					for _, bad := range mutations(hashes) {
						if proof.VerifyConsistency(hasher, from, size, bad, fromRoot, root) == nil {
							t.Fatalf("a mutated consistency proof %d→%d verified", from, size)
						}
					}
				}
				proofs++
			}
		}
		t.Logf("%d entries, %d checkpoints, %d proofs checked", total, len(cps), proofs)
	})
}

// mutations returns broken copies of a proof: each hash with a flipped
// bit, one hash dropped, one hash added.
func mutations(p [][]byte) [][][]byte {
	var out [][][]byte
	for i := range p {
		m := cloneProof(p)
		m[i][0] ^= 1
		out = append(out, m)
	}
	if len(p) > 0 {
		out = append(out, cloneProof(p)[1:])
	}
	out = append(out, append(cloneProof(p), make([]byte, 32)))
	return out
}

func cloneProof(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i])
	}
	return out
}

// rootOf computes a tree root independently of the log: RFC 6962's
// recursive definition, straight from the leaves.
func rootOf(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		return hasher.EmptyRoot()
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return hasher.HashChildren(rootOf(leaves[:k]), rootOf(leaves[k:]))
}

func second2[A, B any](_ A, _ B, err error) error { return err }
