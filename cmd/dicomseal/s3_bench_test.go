package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// BenchmarkS3 puts the same kind of 512 KiB DICOM instances through (a) a
// plain minio-go PUT and (b) dicomseal ingest over HTTP, on the same MinIO
// with 16 concurrent clients, in one run. The ratio of the two is the cost
// of attestation. Ledger: PostgreSQL when DICOMSEAL_TEST_DATABASE_URL is set.
//
//	eval "$(scripts/minio.sh start)"; DICOMSEAL_TEST_DATABASE_URL=$(scripts/postgres.sh) \
//	  go test ./cmd/dicomseal -run '^$' -bench S3 -benchtime 2000x
func BenchmarkS3(b *testing.B) {
	const clients = 16
	template := synth.Instance(synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.77.000000000000", Rows: 512, Columns: 512})
	uidAt := bytes.Index(template, []byte("77.000000000000"))
	// instance n is the template with a unique UID (every occurrence patched).
	instance := func(n int64) []byte {
		data := bytes.Clone(template)
		id := []byte(fmt.Sprintf("77.%012d", n))
		for i := uidAt; i >= 0; {
			copy(data[i:], id)
			next := bytes.Index(data[i+len(id):], []byte("77.000000000000"))
			if next < 0 {
				break
			}
			i += len(id) + next
		}
		return data
	}
	var seq atomic.Int64
	parallel := func(b *testing.B, op func(data []byte) error) {
		b.SetBytes(int64(len(template)))
		b.SetParallelism(max(1, clients/runtimeProcs()))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(instance(seq.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
	}

	b.Run("raw-minio-put", func(b *testing.B) {
		cfg := s3test.Config(b)
		client := s3test.Client(b, cfg)
		if err := client.MakeBucket(context.Background(), cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
			b.Fatal(err)
		}
		parallel(b, func(data []byte) error {
			key := fmt.Sprintf("raw/%x", sha256.Sum256(data))
			_, err := client.PutObject(context.Background(), cfg.Bucket, key, bytes.NewReader(data), int64(len(data)),
				minio.PutObjectOptions{ContentType: "application/dicom", DisableMultipart: true})
			return err
		})
	})

	b.Run("dicomseal-ingest", func(b *testing.B) {
		flags := append(s3Flags(s3test.Config(b)), "--log-level", "warn")
		if os.Getenv(pgtest.EnvURL) != "" {
			flags = append(flags, "--database-url", pgtest.New(b).Service)
		}
		srv := startServer(b, b.TempDir(), flags...)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		parallel(b, func(data []byte) error {
			req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/instances", bytes.NewReader(data))
			req.Header.Set("Content-Type", "application/dicom")
			req.Header.Set("Authorization", "Bearer "+srv.tokens[auth.RoleIngest])
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("ingest: %s", resp.Status)
			}
			return nil
		})
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
