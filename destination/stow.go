package destination

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// STOW sends instances to a DICOMweb server's STOW-RS endpoint, one
// instance per request, so that each answer is about one instance.
type STOW struct {
	// Base is the DICOMweb root, e.g. http://pacs:8042/dicom-web.
	Base   string
	auth   string
	client *http.Client
}

// maxAnswer bounds what is read of an answer: a Store Instances Response
// about one instance is a few KiB.
const maxAnswer = 1 << 20

// NewSTOW returns a STOW-RS destination; credentials come from tokenFile
// (see Config). timeout bounds one send (0: 2 minutes).
func NewSTOW(base, tokenFile string, timeout time.Duration) (*STOW, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("destination URL %q: want http(s)://HOST[:PORT]/PATH", Describe(base))
	}
	if u.User != nil {
		return nil, fmt.Errorf("destination URL %s: credentials go in --destination-token-file, never in the URL", Describe(base))
	}
	auth, err := authorization(tokenFile)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	return &STOW{Base: strings.TrimRight(base, "/"), auth: auth, client: &http.Client{
		Timeout: timeout,
		// Credentials go to the configured server only, never where it
		// redirects: a redirect is answered as a refusal.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// String describes the destination (no credentials).
func (d *STOW) String() string { return Describe(d.Base) }

// Send posts one instance (size bytes from r) to {Base}/studies/{study}
// as multipart/related; type="application/dicom", and reads the Store
// Instances Response: delivered only if the instance is in its
// ReferencedSOPSequence.
func (d *STOW) Send(ctx context.Context, inst Instance, r io.Reader, size int64) (Ack, error) {
	var b [16]byte
	rand.Read(b[:])
	boundary := "dicomseal-" + hex.EncodeToString(b[:])
	head := []byte("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n")
	tail := []byte("\r\n--" + boundary + "--\r\n")
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(r, size), bytes.NewReader(tail))
	target := d.Base + "/studies"
	if inst.StudyInstanceUID != "" {
		target += "/" + inst.StudyInstanceUID
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return Ack{}, &Error{Err: ErrUnreachable, Ack: Ack{Reason: err.Error()}}
	}
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+boundary)
	req.Header.Set("Accept", "application/dicom+json")
	if d.auth != "" {
		req.Header.Set("Authorization", d.auth)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		reason := err.Error()
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			reason = ue.Err.Error() // the URL is the configuration's, not news
		}
		return Ack{}, &Error{Err: ErrUnreachable, Ack: Ack{Reason: reason}}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	ack := Ack{Status: resp.StatusCode}
	if err != nil {
		ack.Reason = "reading the answer: " + err.Error()
		return ack, &Error{Err: ErrUnreachable, Ack: ack}
	}
	return judge(ack, answer, inst.SOPInstanceUID)
}

// judge reads a Store Instances Response (PS3.18 10.5.3) about uid.
func judge(ack Ack, answer []byte, uid string) (Ack, error) {
	status := ack.Status
	if status >= 500 {
		ack.Reason = fmt.Sprintf("the destination answered %d %s", status, http.StatusText(status))
		return ack, &Error{Err: ErrUnreachable, Ack: ack}
	}
	referenced, failed := items(answer, "00081199", uid), items(answer, "00081198", uid)
	switch {
	case status >= 200 && status < 300 && referenced != nil:
		ack.Item = referenced
		return ack, nil
	case failed != nil:
		ack.Item = failed
		ack.Reason = fmt.Sprintf("the destination answered %d and listed the instance as failed", status)
	case status >= 200 && status < 300:
		ack.Reason = fmt.Sprintf("the destination answered %d without acknowledging the instance", status)
	default:
		ack.Reason = fmt.Sprintf("the destination answered %d %s", status, http.StatusText(status))
	}
	return ack, &Error{Err: ErrRefused, Ack: ack}
}

// items finds, in a DICOM JSON response, the item of sequence tag whose
// Referenced SOP Instance UID (0008,1155) is uid.
func items(answer []byte, tag, uid string) json.RawMessage {
	var resp map[string]struct {
		Value []json.RawMessage `json:"Value"`
	}
	if json.Unmarshal(answer, &resp) != nil {
		return nil
	}
	for _, it := range resp[tag].Value {
		var item map[string]struct {
			Value []any `json:"Value"`
		}
		if json.Unmarshal(it, &item) != nil {
			continue
		}
		if v := item["00081155"].Value; len(v) == 1 && v[0] == uid {
			return it
		}
	}
	return nil
}
