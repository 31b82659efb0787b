package attest

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/dicomfile"
)

// The verdict rules (judge, identityChanges, revisable, refusal) on
// hand-built predicates and digests: no DICOM file, no dcmtk. Digest values
// are opaque strings here; judge only compares them for equality.

// attested is the attested side of every case: a three-frame native image
// with attributes of each class (metadata, correctable metadata, identity,
// geometry, pixel).
func attested() Predicate {
	return Predicate{
		Digests:       map[string]string{DigestFile: "file", DigestPixel: "px", DigestMetadata: "meta", DigestIdentity: "ident"},
		PixelEncoding: "native",
		Frames:        []string{"f0", "f1", "f2"},
		Attributes: map[string]string{
			"Modality":             "c:Modality",             // metadata
			"StudyDate":            "c:StudyDate",            // metadata
			"StudyInstanceUID":     "c:StudyInstanceUID",     // metadata, but correctable
			"PatientID":            "c:PatientID",            // identity
			"PatientName":          "c:PatientName",          // identity
			"PixelSpacing":         "c:PixelSpacing",         // geometry
			"ImagePositionPatient": "c:ImagePositionPatient", // geometry
			"Rows":                 "c:Rows",                 // pixel
		},
	}
}

// sameFile is the digests of a file that matches p in every digest (the
// bytes themselves may differ: judge never sees them).
func sameFile(p Predicate) *dicomfile.Digests {
	return &dicomfile.Digests{
		Pixel:         p.Digests[DigestPixel],
		PixelEncoding: p.PixelEncoding,
		Frames:        slices.Clone(p.Frames),
		Metadata:      p.Digests[DigestMetadata],
		Identity:      p.Digests[DigestIdentity],
		Attributes:    maps.Clone(p.Attributes),
	}
}

// noPixels strips the Pixel Data from both sides (a structured report, say).
func noPixels(p *Predicate, d *dicomfile.Digests) {
	delete(p.Digests, DigestPixel)
	p.PixelEncoding, p.Frames = "", nil
	d.Pixel, d.PixelEncoding, d.Frames = "", "", nil
}

func ch(attribute, class string, explained bool) Change {
	return Change{Attribute: attribute, Class: class, Explained: explained}
}

// Reasons the code gives, spelled once.
const (
	detailIntact        = "the pixels and geometry are the attested ones; the bytes differ"
	detailIntactChanged = detailIntact + " and so do the attributes listed"
	detailPixels        = "the pixel data differs from the attested pixels"
	detailPixelsAndAttr = "the pixel data or the pixel-describing attributes differ from the attested ones"
	detailGeometry      = "the image geometry differs from the attested geometry"
	refusalNothing      = "no identity attribute differs from the attested ones"
)

func unverifiable(from, to string) string {
	return "the pixel encoding changed (" + from + " → " + to + ") and dicomseal does not decode it: the pixels cannot be compared"
}

func identityRefused(list string) string {
	return "identity attributes changed (" + list + "): only a reconciler's identity correction may change them"
}

func noPrevious(k string) string {
	return "identity attribute " + k + " changed but no Modified Attributes Sequence (0400,0550) of the Original " +
		"Attributes Sequence (0400,0561) gives its previous value"
}

func wrongPrevious(k string) string {
	return "the Original Attributes Sequence's previous value of " + k + " (its newest item's) is not the attested one"
}

func TestJudgeVerdictRevisable(t *testing.T) {
	cases := []struct {
		name string
		// edit turns the attested predicate and a matching file's digests
		// into the case (nil: identical digests).
		edit     func(p *Predicate, d *dicomfile.Digests)
		status   string
		detail   string
		changes  []Change
		frames   []int
		identity []string // identityChanges()
		// revisable()'s answer; its reason is detail whenever the status
		// is not pixels-intact.
		revisable bool
		reason    string
		refusal   string // refusal(j, d, p, identityChanges())
	}{
		{
			// Only byte identity gives "verified" (verify.go, before judge
			// runs); identical digests with other bytes are a benign
			// re-encoding.
			name:      "identical digests",
			status:    StatusPixelsIntact,
			detail:    detailIntact,
			revisable: true,
			refusal:   refusalNothing,
		},
		{
			// The pixel switch's first case: nothing to compare, and the
			// encodings are not looked at.
			name:      "no pixel data on either side",
			edit:      noPixels,
			status:    StatusPixelsIntact,
			detail:    detailIntact,
			revisable: true,
			refusal:   refusalNothing,
		},
		{
			name: "no pixel data, metadata changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				noPixels(p, d)
				d.Attributes["Modality"] = "other"
			},
			status:  StatusPixelsIntact,
			detail:  detailIntactChanged,
			changes: []Change{ch("Modality", "metadata", false)},
			reason:  "clinical attribute Modality changed",
			refusal: "clinical attribute Modality changed: a correction changes identity only",
		},
		{
			// revisable names the first change in keyword order.
			name: "metadata changed, removed and added",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["StudyDate"] = "other"
				delete(d.Attributes, "Modality")
				d.Attributes["BodyPartExamined"] = "c:BodyPartExamined"
			},
			status: StatusPixelsIntact,
			detail: detailIntactChanged,
			changes: []Change{
				ch("BodyPartExamined", "metadata", false),
				ch("Modality", "metadata", false),
				ch("StudyDate", "metadata", false),
			},
			reason:  "clinical attribute BodyPartExamined changed",
			refusal: "clinical attribute BodyPartExamined changed: a correction changes identity only",
		},
		{
			// An Original Attributes Sequence documents a change but does
			// not make it revisable.
			name: "metadata changed, explained",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["StudyDate"] = "other"
				d.OriginalAttributes = []string{"StudyDate"}
			},
			status:  StatusPixelsIntact,
			detail:  detailIntactChanged,
			changes: []Change{ch("StudyDate", "metadata", true)},
			reason:  "clinical attribute StudyDate changed",
			refusal: "clinical attribute StudyDate changed: a correction changes identity only",
		},
		{
			// A documented attribute that did not change is no change.
			name: "explained but unchanged",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.OriginalAttributes = []string{"PatientID"}
			},
			status:    StatusPixelsIntact,
			detail:    detailIntact,
			revisable: true,
			refusal:   refusalNothing,
		},
		{
			name: "identity changed, unexplained",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["PatientID"] = "other"
			},
			status:   StatusPixelsIntact,
			detail:   detailIntactChanged,
			changes:  []Change{ch("PatientID", "identity", false)},
			identity: []string{"PatientID"},
			reason:   identityRefused("PatientID"),
			refusal:  noPrevious("PatientID"),
		},
		{
			// identityChanges is sorted, and holds StudyInstanceUID (class
			// metadata, yet correctable); the previous values given match
			// the attested ones, so this is an identity correction.
			name: "identity changed, explained, correct previous values",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["StudyInstanceUID"] = "other"
				d.Attributes["PatientName"] = "other"
				d.Attributes["PatientID"] = "other"
				d.OriginalAttributes = []string{"PatientID", "PatientName", "StudyInstanceUID"}
				d.PreviousValues = map[string][]string{
					"PatientID":        {"c:PatientID"},
					"PatientName":      {"older", "c:PatientName"}, // any item may hold it
					"StudyInstanceUID": {"c:StudyInstanceUID"},
				}
			},
			status: StatusPixelsIntact,
			detail: detailIntactChanged,
			changes: []Change{
				ch("PatientID", "identity", true),
				ch("PatientName", "identity", true),
				ch("StudyInstanceUID", "metadata", true),
			},
			identity: []string{"PatientID", "PatientName", "StudyInstanceUID"},
			reason:   identityRefused("PatientID, PatientName, StudyInstanceUID"),
		},
		{
			// An attribute the attestation lacks (here also a v2-only one,
			// which is why a file is digested in its attestation's version)
			// is a change; an empty previous value stands for "absent".
			name: "identity added, previous value absent",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["OtherPatientNames"] = "c:OtherPatientNames"
				d.OriginalAttributes = []string{"OtherPatientNames"}
				d.PreviousValues = map[string][]string{"OtherPatientNames": {"c:empty", ""}}
			},
			status:   StatusPixelsIntact,
			detail:   detailIntactChanged,
			changes:  []Change{ch("OtherPatientNames", "identity", true)},
			identity: []string{"OtherPatientNames"},
			reason:   identityRefused("OtherPatientNames"),
		},
		{
			name: "identity changed, previous value not the attested one",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["PatientID"] = "other"
				d.OriginalAttributes = []string{"PatientID"}
				d.PreviousValues = map[string][]string{"PatientID": {"forged"}}
			},
			status:   StatusPixelsIntact,
			detail:   detailIntactChanged,
			changes:  []Change{ch("PatientID", "identity", true)},
			identity: []string{"PatientID"},
			reason:   identityRefused("PatientID"),
			refusal:  wrongPrevious("PatientID"),
		},
		{
			// revisable reports the identity change before the clinical
			// one (keyword order would put Modality first); a correction
			// refuses the clinical one.
			name: "identity and metadata changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["Modality"] = "other"
				d.Attributes["PatientID"] = "other"
				d.PreviousValues = map[string][]string{"PatientID": {"c:PatientID"}}
			},
			status: StatusPixelsIntact,
			detail: detailIntactChanged,
			changes: []Change{
				ch("Modality", "metadata", false),
				ch("PatientID", "identity", false),
			},
			identity: []string{"PatientID"},
			reason:   identityRefused("PatientID"),
			refusal:  "clinical attribute Modality changed: a correction changes identity only",
		},
		{
			name: "geometry changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["PixelSpacing"] = "other"
			},
			status:  StatusTampered,
			detail:  detailGeometry,
			changes: []Change{ch("PixelSpacing", "geometry", false)},
		},
		{
			// Explained or not, and with identity changes besides: still
			// tampered.
			name: "geometry removed, explained, with an identity change",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				delete(d.Attributes, "ImagePositionPatient")
				d.Attributes["PatientID"] = "other"
				d.OriginalAttributes = []string{"ImagePositionPatient"}
			},
			status: StatusTampered,
			detail: detailGeometry,
			changes: []Change{
				ch("ImagePositionPatient", "geometry", true),
				ch("PatientID", "identity", false),
			},
			identity: []string{"PatientID"},
		},
		{
			// Pixel-class attributes are in the pixel digest, which then
			// differs too in a real file; this case isolates the attribute
			// rule: a changed pixel attribute alone is tampering.
			name: "pixel attribute changed, pixel digest equal",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Attributes["Rows"] = "other"
			},
			status:  StatusTampered,
			detail:  detailGeometry,
			changes: []Change{ch("Rows", "pixel", false)},
		},
		{
			name: "pixels changed in frames 0 and 2",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel = "other"
				d.Frames[0], d.Frames[2] = "other", "other"
			},
			status: StatusTampered,
			detail: detailPixels,
			frames: []int{0, 2},
		},
		{
			// A frame count that differs gives no per-frame answer.
			name: "pixels changed, a frame removed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel = "other"
				d.Frames = d.Frames[:2]
			},
			status: StatusTampered,
			detail: detailPixels,
		},
		{
			// Frames not separable: the whole-pixel digest alone decides.
			name: "pixels changed, no frame digests",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				p.Frames, d.Frames = nil, nil
				d.Pixel = "other"
			},
			status: StatusTampered,
			detail: detailPixels,
		},
		{
			// Equal frames and an unequal whole digest (the pixel
			// attributes are in it): tampered, no frame named.
			name: "pixels and a pixel attribute changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel = "other"
				d.Attributes["Rows"] = "other"
				d.Attributes["StudyDate"] = "other"
			},
			status: StatusTampered,
			detail: detailPixelsAndAttr,
			changes: []Change{
				ch("Rows", "pixel", false),
				ch("StudyDate", "metadata", false),
			},
		},
		{
			name: "pixels and geometry changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel = "other"
				d.Frames[1] = "other"
				d.Attributes["PixelSpacing"] = "other"
			},
			status:  StatusTampered,
			detail:  detailPixelsAndAttr,
			changes: []Change{ch("PixelSpacing", "geometry", false)},
			frames:  []int{1},
		},
		{
			// Only metadata besides the pixels: the plain pixel detail.
			name: "pixels and metadata changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel = "other"
				d.Attributes["PatientID"] = "other"
			},
			status:   StatusTampered,
			detail:   detailPixels,
			changes:  []Change{ch("PatientID", "identity", false)},
			identity: []string{"PatientID"},
		},
		{
			// The encoding is checked before the pixel digests (which
			// then differ anyway), and before geometry: the changes are
			// still listed.
			name: "encoding changed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.PixelEncoding = "1.2.840.10008.1.2.4.50"
				d.Pixel = "other"
				d.Frames = nil
				d.Attributes["PixelSpacing"] = "other"
				d.Attributes["PatientID"] = "other"
			},
			status: StatusPixelsUnverifiable,
			detail: unverifiable("native", "1.2.840.10008.1.2.4.50"),
			changes: []Change{
				ch("PatientID", "identity", false),
				ch("PixelSpacing", "geometry", false),
			},
			identity: []string{"PatientID"},
		},
		{
			// Equal pixel digests do not help across encodings.
			name: "encoding changed, pixel digest equal",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				p.PixelEncoding = "1.2.840.10008.1.2.4.90"
			},
			status: StatusPixelsUnverifiable,
			detail: unverifiable("1.2.840.10008.1.2.4.90", "native"),
		},
		{
			name: "pixel data removed",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				d.Pixel, d.PixelEncoding, d.Frames = "", "", nil
			},
			status: StatusPixelsUnverifiable,
			detail: unverifiable("native", "none"),
		},
		{
			name: "pixel data added",
			edit: func(p *Predicate, d *dicomfile.Digests) {
				noPixels(p, d)
				d.Pixel, d.PixelEncoding = "px", "native"
			},
			status: StatusPixelsUnverifiable,
			detail: unverifiable("none", "native"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := attested()
			d := sameFile(p)
			if tc.edit != nil {
				tc.edit(&p, d)
			}
			j := judge(p, d)
			if j.status != tc.status {
				t.Errorf("status = %q, want %q", j.status, tc.status)
			}
			if j.detail != tc.detail {
				t.Errorf("detail = %q, want %q", j.detail, tc.detail)
			}
			if !slices.Equal(j.changes, tc.changes) {
				t.Errorf("changes = %+v, want %+v", j.changes, tc.changes)
			}
			if !slices.Equal(j.frames, tc.frames) {
				t.Errorf("frames = %v, want %v", j.frames, tc.frames)
			}
			identity := j.identityChanges()
			if !slices.Equal(identity, tc.identity) {
				t.Errorf("identityChanges = %v, want %v", identity, tc.identity)
			}
			if !slices.IsSorted(identity) {
				t.Errorf("identityChanges = %v, not sorted", identity)
			}
			wantReason := tc.reason
			if tc.status != StatusPixelsIntact {
				wantReason = tc.detail
			}
			ok, reason := j.revisable()
			if ok != tc.revisable || reason != wantReason {
				t.Errorf("revisable = %v, %q; want %v, %q", ok, reason, tc.revisable, wantReason)
			}
			wantRefusal := tc.refusal
			if tc.status != StatusPixelsIntact {
				wantRefusal = tc.detail
			}
			if got := refusal(j, d, p, identity); got != wantRefusal {
				t.Errorf("refusal = %q, want %q", got, wantRefusal)
			}
		})
	}
}

// judge compares digests of one version; the version comes from the
// predicate type, and a predicate without one (a new attestation) is of
// the current version.
func TestVerdictDigestVersion(t *testing.T) {
	if v := (Predicate{}).DigestVersion(); v != dicomfile.DigestVersion {
		t.Errorf("new predicate: DigestVersion = %d, want %d", v, dicomfile.DigestVersion)
	}
	for typ, want := range map[string]int{PredicateTypeV1: 1, PredicateTypeV2: 2, PredicateType: 2} {
		st := newStatement(attested())
		st.PredicateType = typ
		if typ == PredicateType {
			st.Predicate.Chunks = &chunks.Tree{ChunkSize: chunks.Size, Count: 1, Root: strings.Repeat("0", 64)}
		}
		payload, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseStatement(payload)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if v := parsed.Predicate.DigestVersion(); v != want {
			t.Errorf("%s: DigestVersion = %d, want %d", typ, v, want)
		}
	}
}
