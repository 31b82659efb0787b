package report

import (
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed templates/report.html
var templates embed.FS

var page = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"hex":    hex.EncodeToString,
	"utc":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"failed": Failed,
	"witnesses": func(w []string) string {
		if len(w) == 0 {
			return "not witnessed"
		}
		return strings.Join(w, ", ")
	},
}).ParseFS(templates, "templates/report.html"))

// Failed tells whether a verdict is a failure a reader must not miss.
func Failed(verdict string) bool {
	return strings.HasPrefix(verdict, "FAILED") || strings.HasPrefix(verdict, "refused") ||
		strings.HasPrefix(verdict, "blocked") || verdict == "MISMATCH"
}

// WriteHTML writes the report as one self-contained page (no script, no
// external resource): what was proven, the checkpoints and keys, each
// instance's chain of custody, and how to verify the bundle.
func (v *Verified) WriteHTML(w io.Writer) error {
	return page.Execute(w, struct {
		V         *Verified
		Instances []Instance
		How       string
	}{v, v.ByInstance(), HowToVerify})
}
