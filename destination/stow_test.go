package destination

import (
	"errors"
	"strings"
	"testing"
)

// judge reads Store Instances Responses (PS3.18 10.5.3) as Orthanc and
// other servers write them: only an instance in the ReferencedSOPSequence
// of a 2xx answer is delivered.
func TestJudge(t *testing.T) {
	const uid = "1.2.3.4"
	ref := `{"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},"00081155":{"vr":"UI","Value":["` + uid + `"]}}]}}`
	failed := `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["` + uid + `"]},"00081197":{"vr":"US","Value":[272]}}]}}`
	other := `{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["9.9.9"]}}]}}`
	for _, c := range []struct {
		name   string
		status int
		answer string
		want   error // nil: delivered
		item   string
	}{
		{"referenced", 200, ref, nil, uid},
		{"referenced with warnings", 202, ref, nil, uid},
		{"failed sequence", 409, failed, ErrRefused, "00081197"},
		{"failed in a 200", 200, failed, ErrRefused, "00081197"},
		{"another instance acknowledged", 200, other, ErrRefused, ""},
		{"2xx without an answer", 200, ``, ErrRefused, ""},
		{"not JSON", 200, `<html>ok</html>`, ErrRefused, ""},
		{"unauthorized", 401, `Unauthorized`, ErrRefused, ""},
		{"redirect", 302, ``, ErrRefused, ""},
		{"server error", 500, ref, ErrUnreachable, ""},
		{"unavailable", 503, ``, ErrUnreachable, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ack, err := judge(Ack{Status: c.status}, []byte(c.answer), uid)
			if c.want == nil {
				if err != nil {
					t.Fatalf("delivered answer judged %v", err)
				}
			} else if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.item != "" && !strings.Contains(string(ack.Item), c.item) {
				t.Fatalf("acknowledgement %s lacks %s", ack.Item, c.item)
			}
			if c.item == "" && ack.Item != nil {
				t.Fatalf("an acknowledgement for an instance the answer does not name: %s", ack.Item)
			}
			if err != nil && ack.Reason == "" {
				t.Fatal("a failure without a reason")
			}
		})
	}
}

func TestNewSTOWRefusesCredentialsInTheURL(t *testing.T) {
	if _, err := NewSTOW("http://user:secret@pacs:8042/dicom-web", "", 0); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("credentials in the URL: %v", err)
	}
	if _, err := NewSTOW("ftp://pacs/dicom-web", "", 0); err == nil {
		t.Fatal("a non-HTTP destination was accepted")
	}
}

func TestDirRefusesPathsForUIDs(t *testing.T) {
	d, err := NewDir("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Send(t.Context(), Instance{SOPInstanceUID: "../../etc/passwd"}, strings.NewReader("x"), 1)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a path as UID: %v", err)
	}
}
