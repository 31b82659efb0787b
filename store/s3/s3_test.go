package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/store"
	"github.com/dicomseal/dicomseal/store/s3"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
	"github.com/dicomseal/dicomseal/store/storetest"
)

func open(t testing.TB, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Instance {
		cfg := s3test.Config(t)
		// Another upload under the key, without the checksum that would
		// tie it to the key: what a client other than dicomseal can do.
		corrupt := func(t *testing.T, sha256Hex string, data []byte) {
			key, err := store.Key(sha256Hex)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s3test.Client(t, cfg).PutObject(context.Background(), cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		return storetest.Instance{Store: open(t, cfg), Corrupt: corrupt}
	})
}

// The object carries its SHA-256 as an S3 checksum: the server verified
// the transfer, and anyone can read it back from the object's metadata.
func TestPutCarriesTheChecksum(t *testing.T) {
	cfg := s3test.Config(t)
	s := open(t, cfg)
	data := []byte("checked by the server too")
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	objKey, _ := store.Key(key)
	info, err := s3test.Client(t, cfg).StatObject(context.Background(), cfg.Bucket, objKey, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.ChecksumSHA256 == "" {
		t.Fatalf("object stored without x-amz-checksum-sha256: %+v", info)
	}
}

func TestUnreachableIsNotMissing(t *testing.T) {
	cfg := s3test.Config(t)
	cfg.Endpoint, cfg.CreateBucket, cfg.MaxRetries = "127.0.0.1:1", false, 1
	s := open(t, cfg)
	if _, err := s.Get(context.Background(), hex.EncodeToString(make([]byte, 32))); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get from an unreachable server: %v; an outage must not read as a missing object", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping of an unreachable server succeeded")
	}
}
