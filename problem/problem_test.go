package problem_test

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/problem"
)

// Every problem type is documented in openapi.yaml, and the table is
// whole: a title and one status per code.
func TestTableAndOpenAPIAgree(t *testing.T) {
	spec, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	statusOfCode := map[problem.Code]int{}
	for _, ty := range problem.All() {
		if ty.Title == "" || ty.Status < 400 {
			t.Errorf("%s: title %q, status %d", ty.Slug, ty.Title, ty.Status)
		}
		if s, ok := statusOfCode[ty.Code]; ok && s != ty.Status {
			t.Errorf("%s: code %s answered %d here and %d elsewhere", ty.Slug, ty.Code, ty.Status, s)
		}
		statusOfCode[ty.Code] = ty.Status
		if !strings.Contains(string(spec), "`"+ty.Slug+"`") {
			t.Errorf("problem type %s is not listed in openapi.yaml", ty.Slug)
		}
	}
	if got := problem.Of("no-such-slug"); got.Slug != problem.Internal || got.Title == "" {
		t.Fatalf("an unknown slug is answered as %+v", got)
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, contentType, body string
		status                  int
		slug, title, detail     string
		code                    problem.Code
	}{
		{"a type of the table", "application/problem+json",
			`{"type":"https://dicomseal.dev/problems/forbidden","title":"whatever the server said","status":403,"detail":"role viewer","role":"viewer"}`,
			403, problem.Forbidden, "Forbidden", "role viewer", problem.EForbidden},
		{"with parameters", "application/problem+json; charset=utf-8",
			`{"type":"https://dicomseal.dev/problems/no-checkpoint","title":"x","status":404,"detail":"none yet"}`,
			404, problem.NoCheckpoint, "No checkpoint yet", "none yet", problem.ENotFound},
		{"a type this client does not know", "application/problem+json",
			`{"type":"https://dicomseal.dev/problems/from-the-future","title":"Future","status":418,"detail":"d"}`,
			418, "from-the-future", "Future", "d", problem.EInternal},
		{"not a problem", "text/html", `<h1>Bad Gateway</h1>`, 502, "", "Bad Gateway", "<h1>Bad Gateway</h1>", problem.EInternal},
		{"a broken problem", "application/problem+json", `{"type":`, 500, "", "Internal Server Error", `{"type":`, problem.EInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error = problem.Decode(tc.status, tc.contentType, []byte(tc.body))
			var r *problem.Response
			if !errors.As(err, &r) || r.Slug != tc.slug || r.Title != tc.title || r.Detail != tc.detail ||
				r.Code != tc.code || r.Status != tc.status {
				t.Fatalf("Decode = %+v", r)
			}
			if tc.slug == problem.Forbidden && r.Fields["role"] != "viewer" {
				t.Fatalf("extension members: %v", r.Fields)
			}
			if !strings.Contains(err.Error(), http.StatusText(tc.status)) && !strings.Contains(err.Error(), tc.title) {
				t.Fatalf("Error() = %q", err)
			}
		})
	}
}
