package destination

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// Dir exports instances into a directory (a file:// destination): each as
// <SOP Instance UID>.dcm, written durably (temporary file, fsync, rename,
// fsync of the directory) and read back, so that the export entry records
// the digest of what the directory holds.
type Dir struct {
	Path string
}

// NewDir returns the directory destination of a file:///PATH URL.
func NewDir(rawURL string) (*Dir, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "file" || u.Host != "" || u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("directory destination %q: want file:///ABSOLUTE/PATH", rawURL)
	}
	if err := os.MkdirAll(u.Path, 0o700); err != nil {
		return nil, fmt.Errorf("directory destination: %w", err)
	}
	return &Dir{Path: u.Path}, nil
}

func (d *Dir) String() string { return "file://" + d.Path }

// Send writes the instance and reads it back.
func (d *Dir) Send(ctx context.Context, inst Instance, r io.Reader, size int64) (Ack, error) {
	fail := func(err error) (Ack, error) {
		return Ack{}, &Error{Err: ErrUnreachable, Ack: Ack{Reason: err.Error()}}
	}
	if !dicomfile.LooksLikeUID(inst.SOPInstanceUID) {
		return fail(fmt.Errorf("not a UID: %q", inst.SOPInstanceUID)) // never a path
	}
	tmp, err := os.CreateTemp(d.Path, ".export-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	n, err := io.Copy(tmp, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("wrote %d of %d bytes", n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	path := filepath.Join(d.Path, inst.SOPInstanceUID+".dcm")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	if err := syncDir(d.Path); err != nil {
		return fail(err)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return fail(err)
	}
	item, _ := json.Marshal(map[string]string{"path": path, "sha256": got})
	ack := Ack{Item: item}
	if got != inst.SHA256 {
		ack.Reason = "the file read back has another digest"
		return ack, &Error{Err: ErrRefused, Ack: ack}
	}
	return ack, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
