package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// BenchmarkLargeInstance ingests, verifies (the full digest path: one byte
// differs, so it is not a digest lookup) and retrieves a 1 GiB multi-frame
// instance through a real dicomseal process, and reports that process's
// peak resident memory (VmHWM), which must stay under 128 MiB, and the
// retrieval's time to first byte.
//
//	go test ./cmd/dicomseal -run '^$' -bench LargeInstance -benchtime 1x
func BenchmarkLargeInstance(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "large.dcm")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	// 2048 frames of 512×512 16-bit samples: 1 GiB of Pixel Data.
	bw := bufio.NewWriterSize(f, 1<<20)
	size, err := synth.Write(bw, synth.Spec{SOPInstanceUID: "1.2.826.0.1.3680043.10.88.1",
		Rows: 512, Columns: 512, Frames: 2048})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ingestToken := cliToken(b, auth.RoleIngest, "--data-dir", data)
	viewerToken := cliToken(b, auth.RoleViewer, "--data-dir", data)
	rep := startReplica(b, buildBinary(b), "--data-dir", data, "--max-body", "2GiB")
	var answer map[string]any
	post := func(route string, r io.Reader) int {
		req, _ := http.NewRequest(http.MethodPost, rep.url+route, r)
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/dicom")
		req.Header.Set("Authorization", "Bearer "+map[bool]string{true: ingestToken, false: viewerToken}[route == "/v1/instances"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer = nil
		json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		return resp.StatusCode
	}
	b.SetBytes(3 * size)
	var firstByte time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, _ := os.Open(path)
		if status := post("/v1/instances", in); status != http.StatusCreated && status != http.StatusOK {
			b.Fatalf("ingest: %d", status)
		}
		in.Close()
		in, _ = os.Open(path)
		// One byte of the last frame changed on the way: verify must walk
		// and hash the whole file to name the frame.
		if status := post("/v1/verify", &flipOne{r: in, at: size - 7}); status != http.StatusOK ||
			answer["status"] != "tampered" || fmt.Sprint(answer["frames"]) != "[2047]" {
			b.Fatalf("verify: %d %v %v, want tampered in frame 2047", status, answer["status"], answer["frames"])
		}
		in.Close()
		req, _ := http.NewRequest(http.MethodGet, rep.url+"/v1/instances/1.2.826.0.1.3680043.10.88.1", nil)
		req.Header.Set("Authorization", "Bearer "+viewerToken)
		asked := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		// Time to first byte: verified streaming sends after one chunk.
		var one [1]byte
		n, _ := io.ReadFull(resp.Body, one[:])
		firstByte += time.Since(asked)
		rest, _ := io.Copy(io.Discard, resp.Body)
		n += int(rest)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || int64(n) != size {
			b.Fatalf("retrieve: %d, %d bytes", resp.StatusCode, n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(firstByte.Microseconds())/1000/float64(b.N), "first-byte-ms")
	peak := peakRSS(b, rep.cmd.Process.Pid)
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	if peak > 128<<20 {
		b.Errorf("peak RSS %d MiB moving a %d MiB instance: over the 128 MiB bound", peak>>20, size>>20)
	}
}

// flipOne passes r through with the byte at offset at inverted.
type flipOne struct {
	r   io.Reader
	at  int64
	off int64
}

func (f *flipOne) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0xFF
	}
	f.off += int64(n)
	return n, err
}
