package main

import (
	"context"
	"flag"
	"path/filepath"

	"github.com/dicomseal/dicomseal/attest"
	fsstore "github.com/dicomseal/dicomseal/store/fs"
	"github.com/dicomseal/dicomseal/store/s3"
)

// storeConfig selects the object store: S3 with --s3-endpoint, else the
// filesystem store in <data-dir>/objects.
type storeConfig struct {
	s3 s3.Config
}

func (c *storeConfig) flags(fs *flag.FlagSet) {
	c.s3.Lookup, c.s3.CreateBucket, c.s3.MaxRetries, c.s3.Bucket = "auto", true, 3, "dicomseal"
	fs.StringVar(&c.s3.Endpoint, "s3-endpoint", c.s3.Endpoint, "S3-compatible object store, HOST:PORT (MinIO, AWS S3, Ceph); empty: the filesystem store in <data-dir>/objects")
	fs.StringVar(&c.s3.Bucket, "s3-bucket", c.s3.Bucket, "bucket for the instances")
	fs.StringVar(&c.s3.Region, "s3-region", c.s3.Region, "bucket region (empty: the server's default)")
	fs.StringVar(&c.s3.AccessKey, "s3-access-key", c.s3.AccessKey, "access key")
	fs.StringVar(&c.s3.SecretKey, "s3-secret-key", c.s3.SecretKey, "secret key (prefer the DICOMSEAL_S3_SECRET_KEY variable: flags show in process lists)")
	fs.BoolVar(&c.s3.DisableTLS, "s3-disable-tls", c.s3.DisableTLS, "talk plain HTTP to the object store (only on a trusted network)")
	fs.StringVar(&c.s3.Lookup, "s3-bucket-lookup", c.s3.Lookup, "auto, path (path-style, MinIO's usual) or dns (virtual-host style)")
	fs.BoolVar(&c.s3.CreateBucket, "s3-create-bucket", c.s3.CreateBucket, "create the bucket when it is missing (needs the permission)")
	fs.IntVar(&c.s3.MaxRetries, "s3-max-retries", c.s3.MaxRetries, "retries of one S3 request before the client gets a 503")
}

func (c *storeConfig) open(ctx context.Context, dataDir string) (attest.ObjectStore, error) {
	if c.s3.Endpoint == "" {
		return fsstore.Open(filepath.Join(dataDir, "objects"))
	}
	return s3.Open(ctx, c.s3)
}
