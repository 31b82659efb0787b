package main

import (
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/dicomseal/dicomseal/custody"
)

// verify-report takes its bundle first, as the usage line shows, or last.
func TestReorderArgs(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("key", "", "")
	fs.Bool("quiet", false, "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"b.json", "--key", "k"}, []string{"--key", "k", "--", "b.json"}},
		{[]string{"--key=k", "b.json", "--quiet"}, []string{"--key=k", "--quiet", "--", "b.json"}},
		{[]string{"--quiet", "b.json"}, []string{"--quiet", "--", "b.json"}},
		{[]string{"--key", "k", "--", "-odd.json"}, []string{"--key", "k", "--", "-odd.json"}},
		{[]string{"-", "--key", "k"}, []string{"--key", "k", "--", "-"}},
	} {
		got := reorderArgs(fs, c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
		if err := fs.Parse(got); err != nil || fs.NArg() != 1 || fs.Arg(0) != c.want[len(c.want)-1] {
			t.Errorf("%q parsed: %v, args %q", c.in, err, fs.Args())
		}
	}
}

func TestPatientLine(t *testing.T) {
	for _, c := range []struct {
		id   custody.Identity
		want string
	}{
		{custody.Identity{PatientName: "Doe^John", PatientID: "123", PatientBirthDate: "19700101"}, "Doe John, ID 123, born 19700101"},
		{custody.Identity{PatientID: "123"}, "ID 123"},
		{custody.Identity{PatientName: "Doe^John^^^"}, "Doe John"},
		{custody.Identity{PatientName: "Yamada^Tarou=山田^太郎=やまだ^たろう"}, "Yamada Tarou"},
	} {
		if got := patientLine(c.id); got != c.want {
			t.Errorf("%+v: %q, want %q", c.id, got, c.want)
		}
	}
}
