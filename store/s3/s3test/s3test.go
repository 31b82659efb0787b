// Package s3test gives tests a real S3 server: a bucket of their own on the
// MinIO that scripts/test.sh starts (DICOMSEAL_TEST_S3_*), or a MinIO
// process of their own that they may stop and start (for fault tests).
// Without the variables tests skip; under CI they fail.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dicomseal/dicomseal/store/s3"
)

var (
	runID = randomHex(3)
	count atomic.Int64
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func require(t testing.TB, names ...string) []string {
	t.Helper()
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = os.Getenv(n)
		if vals[i] == "" {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI must run the S3 tests: %s is not set (run scripts/test.sh)", n)
			}
			t.Skipf("%s is not set; scripts/test.sh (make test) starts MinIO and sets it", n)
		}
	}
	return vals
}

// Config returns the configuration of a fresh bucket on the shared MinIO,
// emptied and removed after the test.
func Config(t testing.TB) s3.Config {
	t.Helper()
	v := require(t, "DICOMSEAL_TEST_S3_ENDPOINT", "DICOMSEAL_TEST_S3_ACCESS_KEY", "DICOMSEAL_TEST_S3_SECRET_KEY")
	cfg := s3.Config{Endpoint: v[0], AccessKey: v[1], SecretKey: v[2], DisableTLS: true, Lookup: "path",
		Bucket: fmt.Sprintf("dicomseal-%s-%d", runID, count.Add(1)), CreateBucket: true}
	t.Cleanup(func() { removeBucket(cfg) })
	return cfg
}

// Client is a plain minio-go client on cfg's server, for tests that act
// behind dicomseal's back (overwrite or delete an object).
func Client(t testing.TB, cfg s3.Config) *minio.Client {
	t.Helper()
	c, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: !cfg.DisableTLS, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func removeBucket(cfg s3.Config) {
	ctx := context.Background()
	c, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: !cfg.DisableTLS})
	if err != nil {
		return
	}
	for obj := range c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err == nil {
			c.RemoveObject(ctx, cfg.Bucket, obj.Key, minio.RemoveObjectOptions{})
		}
	}
	c.RemoveBucket(ctx, cfg.Bucket)
}

// MinIO is a server process owned by one test.
type MinIO struct {
	t       testing.TB
	bin     string
	dir     string
	Addr    string
	User    string
	Secret  string
	process *exec.Cmd
}

// Start runs a MinIO of the test's own on a free loopback port.
func Start(t testing.TB) *MinIO {
	t.Helper()
	bin := require(t, "DICOMSEAL_TEST_MINIO_BIN")[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := &MinIO{t: t, bin: bin, dir: t.TempDir(), Addr: addr, User: "test" + randomHex(4), Secret: randomHex(16)}
	m.Resume()
	t.Cleanup(m.Stop)
	return m
}

// Config is a bucket configuration on this server.
func (m *MinIO) Config(bucket string) s3.Config {
	return s3.Config{Endpoint: m.Addr, AccessKey: m.User, SecretKey: m.Secret, DisableTLS: true, Lookup: "path",
		Bucket: bucket, CreateBucket: true}
}

// Stop kills the server (its data stays).
func (m *MinIO) Stop() {
	if m.process != nil {
		m.process.Process.Kill()
		m.process.Wait()
		m.process = nil
	}
}

// Resume starts the server again on the same port and data, and waits
// until it is ready.
func (m *MinIO) Resume() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Addr, "--console-address", "127.0.0.1:0", filepath.Join(m.dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.User, "MINIO_ROOT_PASSWORD="+m.Secret, "MINIO_BROWSER=off")
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.process = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + m.Addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("MinIO did not become ready on %s", m.Addr)
}
