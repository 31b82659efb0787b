package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/dicomseal/dicomseal/auth"
)

// BenchmarkVerifyByDigest measures GET /v1/verify?sha256= (a viewer's
// check before display) with 64 and 256 concurrent clients, with and
// without the audit trail, in one run: auditing must cost less than 10 %.
// Each audited verification waits for its durable record (a few
// milliseconds, shared by a crowd), so a closed loop of 64 clients on two
// cores keeps part of its clients waiting rather than the CPU busy; 256
// saturate both.
//
//	go test ./cmd/dicomseal -run '^$' -bench VerifyByDigest -benchtime 20000x -count 3
func BenchmarkVerifyByDigest(b *testing.B) {
	for _, clients := range []int{64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchmarkVerifyByDigest(b, clients) })
	}
}

func benchmarkVerifyByDigest(b *testing.B, clients int) {
	// Interleaved, so that drift on a shared machine hits both alike.
	for _, audited := range []bool{true, false, false, true, true, false} {
		name := map[bool]string{false: "unaudited", true: "audited"}[audited]
		b.Run(name, func(b *testing.B) {
			logs := &syncBuffer{}
			m := NewMain()
			m.Stderr, m.noAudit = logs, !audited
			if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data-dir", b.TempDir(), "--log-level", "warn",
				"--rate-limit", "1000000", "--rate-burst", "1000000", "--max-conns-per-source", "1024"}); err != nil {
				b.Fatal(err)
			}
			if err := m.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			srv := &testServer{t: b, main: m, url: "http://" + m.ListenAddr(), logs: logs, client: &http.Client{},
				tokens: map[auth.Role]string{}}
			for _, role := range []auth.Role{auth.RoleIngest, auth.RoleViewer} {
				srv.tokens[role] = srv.makeToken("bench-"+string(role)+"-"+randomSuffix(), role, 0)
			}
			data := fixture(b, "pydicom-CT_small.dcm")
			srv.ingest(data)
			url := srv.url + "/v1/verify?sha256=" + sha256Hex(data)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+srv.tokens[auth.RoleViewer])
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("verify: %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		})
	}
}
