// Package s3 is the production object store: any S3-compatible server
// (MinIO, AWS S3, Ceph) through minio-go. Objects are content-addressed,
// uploaded in a single PUT that carries their precomputed SHA-256 as
// x-amz-checksum-sha256, so the server itself rejects a corrupted transfer
// (multipart checksums are composite and could not match the content
// address), and downloaded as a stream. Nothing holds a whole object in
// memory.
package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dicomseal/dicomseal/store"
)

// maxSinglePut is S3's limit for one PUT.
const maxSinglePut = 5 << 30

// Config says where and how to connect.
type Config struct {
	Endpoint   string // HOST:PORT
	Region     string
	Bucket     string
	AccessKey  string
	SecretKey  string
	DisableTLS bool
	// Lookup is "auto", "path" (path-style, MinIO's usual) or "dns" (virtual-host).
	Lookup string
	// CreateBucket creates the bucket when it is missing.
	CreateBucket bool
	// MaxRetries bounds minio-go's retries of one request (0: its default).
	MaxRetries int
}

// Store is an S3 bucket of content-addressed objects.
type Store struct {
	client *minio.Client
	bucket string
}

// Open connects and, if asked, creates the bucket.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	lookup := map[string]minio.BucketLookupType{"": minio.BucketLookupAuto, "auto": minio.BucketLookupAuto,
		"path": minio.BucketLookupPath, "dns": minio.BucketLookupDNS}
	bl, ok := lookup[cfg.Lookup]
	if !ok {
		return nil, fmt.Errorf("s3 store: bucket lookup must be auto, path or dns, got %q", cfg.Lookup)
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3 store: endpoint and bucket are required")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:           credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:          !cfg.DisableTLS,
		Region:          cfg.Region,
		BucketLookup:    bl,
		TrailingHeaders: true,
		MaxRetries:      cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	s := &Store{client: client, bucket: cfg.Bucket}
	if cfg.CreateBucket {
		exists, err := client.BucketExists(ctx, cfg.Bucket)
		if err != nil {
			return nil, fmt.Errorf("s3 store: bucket %s: %w", cfg.Bucket, err)
		}
		if !exists {
			err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
			if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
				return nil, fmt.Errorf("s3 store: create bucket %s: %w", cfg.Bucket, err)
			}
		}
	}
	return s, nil
}

// Put uploads size bytes from r under their SHA-256 in one PUT carrying
// x-amz-checksum-sha256: the server refuses bytes that do not match
// (store.ErrDigestMismatch). Re-putting an object is harmless: the key is
// its content.
func (s *Store) Put(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	key, err := store.Key(sha256Hex)
	if err != nil {
		return err
	}
	if size > maxSinglePut {
		return fmt.Errorf("s3 store: %d bytes exceed the 5 GiB single-PUT limit", size)
	}
	// Already there with its size: nothing to send (content addressing
	// makes the key the content).
	if info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil && info.Size == size {
		return nil
	}
	return s.put(ctx, key, sha256Hex, r, size)
}

// Replace uploads size bytes from r under their SHA-256 as Put does, but
// whether or not an object is already there, for repairing a copy that was
// altered behind the store's back: Put trusts a present object of the
// right size, so it cannot undo a same-size overwrite. The PUT is atomic
// on the server: bytes that do not match (store.ErrDigestMismatch) or fall
// short leave the present object as it is.
func (s *Store) Replace(ctx context.Context, sha256Hex string, r io.Reader, size int64) error {
	key, err := store.Key(sha256Hex)
	if err != nil {
		return err
	}
	if size > maxSinglePut {
		return fmt.Errorf("s3 store: %d bytes exceed the 5 GiB single-PUT limit", size)
	}
	return s.put(ctx, key, sha256Hex, r, size)
}

// put sends the object in one PUT that carries its checksum.
func (s *Store) put(ctx context.Context, key, sha256Hex string, r io.Reader, size int64) error {
	sum, _ := hex.DecodeString(sha256Hex)
	_, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{
		ContentType:      "application/dicom",
		DisableMultipart: true,
		UserMetadata:     map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum)},
		// The signed x-amz-checksum-sha256 header already binds the body
		// end to end (the server recomputes it); hashing the payload a
		// second time for the signature would only double the cost.
		DisableContentSha256: true,
	})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BadDigest" || code == "XAmzContentChecksumMismatch" || strings.Contains(err.Error(), "checksum") {
			return fmt.Errorf("%w: %s: %v", store.ErrDigestMismatch, sha256Hex, err)
		}
		return fmt.Errorf("s3 store: put %s: %w", key, err)
	}
	return nil
}

// Get streams the object stored under sha256Hex; store.ErrNotFound when absent.
func (s *Store) Get(ctx context.Context, sha256Hex string) (io.ReadCloser, error) {
	key, err := store.Key(sha256Hex)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3 store: get %s: %w", key, err)
	}
	// GetObject is lazy: Stat makes the request, so absence and outages
	// surface here, before anyone reads.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", store.ErrNotFound, sha256Hex)
		}
		return nil, fmt.Errorf("s3 store: get %s: %w", key, err)
	}
	return obj, nil
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 store: %w", err)
	}
	if !ok {
		return fmt.Errorf("s3 store: bucket %s does not exist", s.bucket)
	}
	return nil
}

// List calls fn for every stored object (its digest and size), for
// reconciliation against the ledger.
func (s *Store) List(ctx context.Context, fn func(sha256Hex string, size int64) error) error {
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: "sha256/", Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3 store: list: %w", obj.Err)
		}
		sha := obj.Key[strings.LastIndex(obj.Key, "/")+1:]
		if k, err := store.Key(sha); err != nil || k != obj.Key {
			continue // not ours
		}
		if err := fn(sha, obj.Size); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the object stored under sha256Hex if it was last written
// before cutoff, and reports whether it did (see fs.Store.Remove).
func (s *Store) Remove(ctx context.Context, sha256Hex string, cutoff time.Time) (bool, error) {
	key, err := store.Key(sha256Hex)
	if err != nil {
		return false, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil || !info.LastModified.Before(cutoff) {
		return false, err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return false, fmt.Errorf("s3 store: remove %s: %w", key, err)
	}
	return true, nil
}
