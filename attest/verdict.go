package attest

import (
	"slices"
	"strings"

	"github.com/dicomseal/dicomseal/dicomfile"
)

// Verdicts beyond byte identity.
const (
	StatusPixelsIntact       = "pixels-intact"       // pixels and geometry unchanged; other attributes may differ
	StatusPixelsUnverifiable = "pixels-unverifiable" // the pixel encoding changed and cannot be compared
)

// Change is one allow-listed attribute that differs from the attestation.
type Change struct {
	Attribute string `json:"attribute"`
	// Class is metadata, geometry, identity or pixel (see the README).
	Class string `json:"class"`
	// Explained: the file's Original Attributes Sequence documents it.
	Explained bool `json:"explained"`
}

// judgement compares a file's digests with an attested predicate, both
// keyed with the same salt.
type judgement struct {
	status string
	detail string
	// changes lists differing allow-listed attributes, in allow-list order.
	changes []Change
	// frames lists 0-based frames whose digests differ.
	frames []int
}

func judge(p Predicate, d *dicomfile.Digests) judgement {
	var j judgement
	explained := map[string]bool{}
	for _, k := range d.OriginalAttributes {
		explained[k] = true
	}
	seen := map[string]bool{}
	for k := range p.Attributes {
		seen[k] = true
	}
	for k := range d.Attributes {
		seen[k] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	geometry := false
	for _, k := range keys {
		if p.Attributes[k] == d.Attributes[k] {
			continue
		}
		c := Change{Attribute: k, Class: dicomfile.Class(k), Explained: explained[k]}
		j.changes = append(j.changes, c)
		if c.Class == "geometry" || c.Class == "pixel" {
			geometry = true
		}
	}
	switch {
	case p.Digests[DigestPixel] == "" && d.Pixel == "":
	case p.PixelEncoding != d.PixelEncoding:
		j.status = StatusPixelsUnverifiable
		j.detail = "the pixel encoding changed (" + orNone(p.PixelEncoding) + " → " + orNone(d.PixelEncoding) +
			") and dicomseal does not decode it: the pixels cannot be compared"
		return j
	case p.Digests[DigestPixel] != d.Pixel:
		j.status = StatusTampered
		j.detail = "the pixel data differs from the attested pixels"
		if len(p.Frames) == len(d.Frames) {
			for i := range p.Frames {
				if p.Frames[i] != d.Frames[i] {
					j.frames = append(j.frames, i)
				}
			}
		}
		if geometry {
			j.detail = "the pixel data or the pixel-describing attributes differ from the attested ones"
		}
		return j
	}
	if geometry {
		j.status, j.detail = StatusTampered, "the image geometry differs from the attested geometry"
		return j
	}
	j.status, j.detail = StatusPixelsIntact, "the pixels and geometry are the attested ones; the bytes differ"
	if len(j.changes) > 0 {
		j.detail += " and so do the attributes listed"
	}
	return j
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// correctable are the attributes that only an identity correction may
// change: patient and order identifiers, and the study and series UIDs.
var correctable = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range dicomfile.CorrectableAttributes() {
		m[k] = true
	}
	return m
}()

// identityChanges lists the changed attributes that name whose image this
// is, and where it is filed.
func (j judgement) identityChanges() []string {
	var out []string
	for _, c := range j.changes {
		if correctable[c.Attribute] {
			out = append(out, c.Attribute)
		}
	}
	return out
}

// revisable tells whether a judged file may be ingested as a revision:
// pixels, geometry, the clinical allow-list and the identity unchanged. An
// Original Attributes Sequence documents a change; written by whoever wrote
// the file, it cannot authorise one: identity changes only by correction.
func (j judgement) revisable() (bool, string) {
	if j.status != StatusPixelsIntact {
		return false, j.detail
	}
	if changed := j.identityChanges(); len(changed) > 0 {
		return false, "identity attributes changed (" + strings.Join(changed, ", ") +
			"): only a reconciler's identity correction may change them"
	}
	if len(j.changes) > 0 {
		return false, "clinical attribute " + j.changes[0].Attribute + " changed"
	}
	return true, ""
}
