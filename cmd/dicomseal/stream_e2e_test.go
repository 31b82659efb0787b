package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// TestVerifiedStreaming retrieves a 6 MiB instance through the native API
// and WADO-RS on both deployments: intact, it streams whole; altered in
// its fourth chunk behind dicomseal's back, the answer carries exactly the
// three chunks that verified and is then cut (the client sees a broken
// transfer, never a short image that looks whole), and the failure is
// recorded with the digest of what the store holds.
func TestVerifiedStreaming(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		srv := startServer(t, dir)
		streamingCase(t, srv, func(sha string, b []byte) {
			key, _ := store.Key(sha)
			if err := os.WriteFile(filepath.Join(dir, "objects", filepath.FromSlash(key)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("postgres+minio", func(t *testing.T) {
		cfg := s3test.Config(t)
		flags := s3Flags(cfg)
		if os.Getenv(pgtest.EnvURL) != "" {
			flags = append(flags, "--database-url", pgtest.New(t).Service)
		}
		srv := startServer(t, t.TempDir(), flags...)
		client := s3test.Client(t, cfg)
		streamingCase(t, srv, func(sha string, b []byte) {
			key, _ := store.Key(sha)
			if _, err := client.PutObject(context.Background(), cfg.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func streamingCase(t *testing.T, srv *testServer, overwrite func(sha string, b []byte)) {
	const uid = "1.2.826.0.1.3680043.10.88.77"
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if _, err := synth.Write(w, synth.Spec{SOPInstanceUID: uid, Rows: 512, Columns: 512, Frames: 12}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	data := buf.Bytes()
	for i := len(data) - 12*512*512*2; i < len(data); i++ {
		data[i] = byte(i * 7)
	}
	if r := srv.ingest(data); r.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	att := srv.do(http.MethodGet, "/v1/instances/"+uid+"/attestation", "", nil).json(t)
	study, series := att["study_instance_uid"].(string), att["series_instance_uid"].(string)
	wado := "/dicomweb/studies/" + study + "/series/" + series + "/instances/" + uid
	get := func(path string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+srv.tokens[auth.RoleViewer])
		req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, body, err := get("/v1/instances/" + uid)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.ContentLength != int64(len(data)) {
		t.Fatalf("intact: %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	if _, body, err = get(wado); err != nil || !bytes.Contains(body, data) {
		t.Fatalf("intact WADO-RS: %d bytes, %v", len(body), err)
	}

	altered := bytes.Clone(data)
	altered[3*chunks.Size+4321] ^= 0x08
	overwrite(sha256Hex(data), altered)
	for _, path := range []string{"/v1/instances/" + uid, wado} {
		resp, body, err = get(path)
		if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s altered: %d, %v: want the answer cut", path, resp.StatusCode, err)
		}
		prefix := data[:3*chunks.Size]
		if path == wado {
			// The part's bytes follow its headers.
			i := bytes.Index(body, data[:256])
			if i < 0 || !bytes.Equal(body[i:], prefix) {
				t.Fatalf("WADO-RS altered: %d bytes received, want the part's headers and exactly 3 verified chunks", len(body))
			}
		} else if !bytes.Equal(body, prefix) {
			t.Fatalf("altered: %d bytes received, want exactly the 3 chunks that verified (%d)", len(body), len(prefix))
		}
	}
	failures := srv.entriesOf("integrity-failure")
	if len(failures) != 1 || failures[0]["reason"] != "altered" || failures[0]["observed_sha256"] != sha256Hex(altered) {
		t.Fatalf("recorded %v, want one altered failure naming what the store holds", failures)
	}
	// A range is served from a copy verified whole: refused before a byte.
	r := srv.doWithHeader(http.MethodGet, "/v1/instances/"+uid, "", nil, "Range", "bytes=0-99")
	assertProblem(t, r, http.StatusBadGateway, "integrity-violation")
}
