package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// stowStream writes a multipart/related body of parts as they are
// generated, so that neither the test nor the server need hold it whole.
func stowStream(boundary string, parts ...func(io.Writer) (int64, error)) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for _, gen := range parts {
			fmt.Fprintf(pw, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
			if _, err := gen(pw); err != nil {
				pw.CloseWithError(err)
				return
			}
			io.WriteString(pw, "\r\n")
		}
		fmt.Fprintf(pw, "--%s--\r\n", boundary)
		pw.Close()
	}()
	return pr
}

// TestSTOWStreamsInBoundedMemory sends the real server process a STOW-RS
// request much larger than its memory budget, a bomb among its parts and
// a flood of tiny parts: parts are spooled one at a time, a bomb is one
// refused part, and the server's peak RSS stays far below the body.
func TestSTOWStreamsInBoundedMemory(t *testing.T) {
	_, err := os.Stat("/proc/self/status")
	requireOrSkip(t, err == nil, "peak memory is read from /proc: %v", err)
	bin := hostileBinary(t)
	data := t.TempDir()
	token := cliToken(t, auth.RoleIngest, "--data-dir", data)
	rep := startReplica(t, bin, "--data-dir", data, "--min-free-space", "1MiB")
	guardMemory(t, rep, 1<<30)

	post := func(body io.Reader) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, rep.url+"/dicomweb/studies", body)
		req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=big`)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var doc map[string]any
		json.Unmarshal(b, &doc)
		return resp.StatusCode, doc
	}
	count := func(doc map[string]any, tag string) int {
		if a, ok := doc[tag].(map[string]any); ok {
			v, _ := a["Value"].([]any)
			return len(v)
		}
		return 0
	}
	// Four instances of 64 MiB each and a deflate bomb: 256 MiB of body.
	var parts []func(io.Writer) (int64, error)
	for i := range 4 {
		uid := fmt.Sprintf("1.2.826.0.1.3680043.10.1405.%d", i+1)
		parts = append(parts, func(w io.Writer) (int64, error) {
			return synth.Write(w, synth.Spec{SOPInstanceUID: uid, Rows: 2048, Columns: 2048, Frames: 8})
		})
		if i == 1 {
			parts = append(parts, func(w io.Writer) (int64, error) { return synth.DeflateBomb(w, 1<<30) })
		}
	}
	status, doc := post(stowStream("big", parts...))
	if status != http.StatusAccepted || count(doc, "00081199") != 4 || count(doc, "00081198") != 1 {
		t.Fatalf("a 256 MiB STOW with a bomb among its parts: %d, %v", status, doc)
	}
	// 200,000 tiny parts: refused at --max-parts, quickly and in bounded memory.
	var tiny bytes.Buffer
	for range 200_000 {
		tiny.WriteString("--big\r\n\r\nx\r\n")
	}
	tiny.WriteString("--big--\r\n")
	if status, _ := post(&tiny); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("200,000 tiny parts: %d, want 413", status)
	}
	if peak := peakRSS(t, rep.cmd.Process.Pid); peak >= 160<<20 {
		t.Fatalf("server peak RSS %d MiB for a 256 MiB request, want under 160 MiB", peak>>20)
	} else {
		t.Logf("server peak RSS %d MiB", peak>>20)
	}
}
