// Command ingestload posts distinct copies of one DICOM file to a
// dicomseal server's POST /v1/instances from a number of clients, and
// prints the rate of 201s: the A/B measure of native ingest across
// releases in BENCHMARKS.md (scripts/ingest-ab.sh runs it), for commits
// that predate the benchmarks that measure it in-process.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the server")
	tokenFile := flag.String("token-file", "", "an ingest token")
	file := flag.String("file", "testdata/dicom/pydicom-CT_small.dcm", "the template file")
	uid := flag.String("uid", "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", "the template's SOP Instance UID, replaced by ones of the same length")
	n := flag.Int("n", 3000, "ingests")
	clients := flag.Int("c", 8, "concurrent clients")
	flag.Parse()
	tmpl, err := os.ReadFile(*file)
	token, err2 := os.ReadFile(*tokenFile)
	if err != nil || err2 != nil || !bytes.Contains(tmpl, []byte(*uid)) || len(*uid) < 13 {
		fmt.Fprintln(os.Stderr, "ingestload: need --file holding --uid, and --token-file:", err, err2)
		os.Exit(2)
	}
	old := []byte(*uid)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *clients {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(*n); i = next.Add(1) {
				fresh := fmt.Appendf(nil, "%s%0*d", old[:len(old)-12], 12, i)
				req, _ := http.NewRequest(http.MethodPost, *url+"/v1/instances", bytes.NewReader(bytes.ReplaceAll(tmpl, old, fresh)))
				req.Header.Set("Content-Type", "application/dicom")
				req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.0f instances/s, %d failed\n", float64(*n)/time.Since(start).Seconds(), failed.Load())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
