package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/audit"
	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/mock"
	"github.com/dicomseal/dicomseal/report"
)

// Each report holds its bundle in memory: a server makes at most
// maxReports at once, and answers the next 429 until one ends.
func TestCustodyReportsAreBounded(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, maxReports)
	svc := &mock.Service{CustodyReportFn: func(ctx context.Context, q report.Query, _ report.Prover) (*report.Document, report.Query, error) {
		started <- struct{}{}
		<-release
		return nil, q, attest.Errorf(attest.ENotFound, attest.ProblemNotFound, "no such study")
	}}
	h, secrets, s := fakeServerWithTrail(t, svc)
	s.AuditLog = s.Audit.(*audit.Log)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/custody?study=1.2.3", nil)
		req.Header.Set("Authorization", "Bearer "+secrets[auth.RoleAuditor])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	var wg sync.WaitGroup
	for range maxReports {
		wg.Go(func() {
			if w := get(); w.Code != http.StatusNotFound {
				t.Errorf("a report in the bound: %d %s", w.Code, w.Body)
			}
		})
	}
	for range maxReports {
		<-started
	}
	if w := get(); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "rate-limited") || w.Header().Get("Retry-After") == "" {
		t.Errorf("a report past the bound: %d %s", w.Code, w.Body)
	}
	close(release)
	wg.Wait()
	svc.CustodyReportFn = func(ctx context.Context, q report.Query, _ report.Prover) (*report.Document, report.Query, error) {
		return nil, q, attest.Errorf(attest.ENotFound, attest.ProblemNotFound, "no such study")
	}
	if w := get(); w.Code != http.StatusNotFound {
		t.Errorf("after they ended: %d %s", w.Code, w.Body)
	}
}
