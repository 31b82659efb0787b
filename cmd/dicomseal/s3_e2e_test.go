package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store"
	"github.com/dicomseal/dicomseal/store/s3"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

func s3Flags(cfg s3.Config) []string {
	return []string{"--s3-endpoint", cfg.Endpoint, "--s3-bucket", cfg.Bucket, "--s3-access-key", cfg.AccessKey,
		"--s3-secret-key", cfg.SecretKey, "--s3-disable-tls", "--s3-bucket-lookup", "path", "--s3-max-retries", "1"}
}

// The production configuration: PostgreSQL (where available) and MinIO.
// Objects altered or deleted behind dicomseal's back are never served.
func TestServeOnS3(t *testing.T) {
	cfg := s3test.Config(t)
	flags := s3Flags(cfg)
	if os.Getenv(pgtest.EnvURL) != "" {
		flags = append(flags, "--database-url", pgtest.New(t).Service)
	}
	srv := startServer(t, t.TempDir(), flags...)
	if !strings.Contains(srv.logs.String(), `"objects":"s3 `) {
		t.Fatal("server is not using the S3 store")
	}
	for name := range ingestible {
		data := fixture(t, name)
		r := srv.ingest(data)
		if r.status == http.StatusConflict {
			continue // MR_small in three transfer syntaxes shares one UID
		}
		if r.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		uid := r.json(t)["sop_instance_uid"].(string)
		if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status != 200 || !bytes.Equal(got.body, data) {
			t.Fatalf("%s: retrieval %d", name, got.status)
		}
	}

	client := s3test.Client(t, cfg)
	ctx := context.Background()
	data := fixture(t, "pydicom-CT_small.dcm")
	key, _ := store.Key(sha256Hex(data))
	uid := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	forged := bytes.Clone(data)
	forged[len(forged)-7] ^= 0x40
	if _, err := client.PutObject(ctx, cfg.Bucket, key, bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil)
	if p := assertProblem(t, r, http.StatusBadGateway, "integrity-violation"); p["reason"] != "altered" {
		t.Fatalf("overwritten object: %v", p)
	}
	if err := client.RemoveObject(ctx, cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusBadGateway, "integrity-violation"); p["reason"] != "missing" {
		t.Fatalf("deleted object: %v", p)
	}
}

// MinIO stops mid-run: ingest and retrieval answer 503 (an outage is not
// tampering), nothing is recorded, and once MinIO is back ingest works
// again without a restart.
func TestS3OutageAnswers503(t *testing.T) {
	m := s3test.Start(t)
	cfg := m.Config("outage")
	srv := startServer(t, t.TempDir(), s3Flags(cfg)...)
	first := fixture(t, "pydicom-MR_small.dcm")
	att := srv.ingest(first).json(t)
	uid := att["sop_instance_uid"].(string)

	m.Stop()
	data := fixture(t, "pydicom-CT_small.dcm")
	r := srv.ingest(data)
	assertProblem(t, r, http.StatusServiceUnavailable, "storage-unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	assertProblem(t, srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil), http.StatusServiceUnavailable, "storage-unavailable")
	assertProblem(t, srv.readyzUntil(http.StatusServiceUnavailable), http.StatusServiceUnavailable, "storage-unavailable")
	if v := srv.do(http.MethodGet, "/v1/verify?sha256="+sha256Hex(data), "", nil).json(t); v["status"] != "unknown" {
		t.Fatalf("an ingest during the outage left an entry: %v", v)
	}

	m.Resume()
	r = srv.ingest(data)
	if r.status != http.StatusCreated {
		t.Fatalf("ingest after MinIO came back: %d %s", r.status, r.body)
	}
	// The failed ingest took no index: only the checkpoints' subject maps
	// lie between the two ingests.
	srv.onlySubjectMaps(t, 1, uint64(r.json(t)["ledger_index"].(float64)))
	if got := srv.do(http.MethodGet, "/v1/instances/"+uid, "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, first) {
		t.Fatalf("retrieval after MinIO came back: %d", got.status)
	}
}
