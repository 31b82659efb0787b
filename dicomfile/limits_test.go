package dicomfile_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dicomseal/dicomseal/dicomfile"
	"github.com/dicomseal/dicomseal/dicomfile/synth"
)

// Each limit refuses the input that would cost more, names itself, and
// lets through the same kind of input just under it.
func TestLimits(t *testing.T) {
	build := func(f func(*bytes.Buffer)) []byte {
		var b bytes.Buffer
		f(&b)
		return b.Bytes()
	}
	bomb := build(func(b *bytes.Buffer) { synth.DeflateBomb(b, 8<<20) })   // ~8 KiB inflating to 8 MiB
	zeros := build(func(b *bytes.Buffer) { synth.Zeros(b, 64<<10) })       // 8,192 empty elements
	many := build(func(b *bytes.Buffer) { synth.ManyElements(b, 10_000) }) // 10,000 tiny elements
	tests := []struct {
		name   string
		data   []byte
		limits dicomfile.Limits
		want   string // "" accepts
	}{
		{"deflate bomb, ratio binds", bomb, dicomfile.Limits{MaxInflated: 1 << 30, MaxInflateRatio: 100, MaxElements: 1000}, "max-inflate-ratio"},
		{"deflate bomb, size binds", bomb, dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 1 << 20, MaxElements: 1000}, "max-inflated"},
		{"deflate bomb within both", bomb, dicomfile.Limits{MaxInflated: 16 << 20, MaxInflateRatio: 1 << 20, MaxElements: 1000}, ""},
		{"zero elements", zeros, dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 100, MaxElements: 8000}, "max-elements"},
		{"many elements", many, dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 100, MaxElements: 9_999}, "max-elements"},
		{"many elements within", many, dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 100, MaxElements: 20_000}, ""},
		{"fragment bomb", build(func(b *bytes.Buffer) { synth.FragmentBomb(b, 65536, 20_000) }),
			dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 100, MaxElements: 1000}, "max-elements"},
		{"fragments within", build(func(b *bytes.Buffer) { synth.FragmentBomb(b, 16, 500) }),
			dicomfile.Limits{MaxInflated: 1 << 20, MaxInflateRatio: 100, MaxElements: 1000}, ""},
		{"defaults refuse the zero elements", build(func(b *bytes.Buffer) { synth.Zeros(b, 8<<20) }), dicomfile.DefaultLimits, "max-elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.limits.Analyze(bytes.NewReader(tt.data), int64(len(tt.data)))
			if tt.want == "" {
				if errors.Is(err, dicomfile.ErrLimitExceeded) {
					t.Fatalf("refused within the limits: %v", err)
				}
				return
			}
			if !errors.Is(err, dicomfile.ErrLimitExceeded) || !strings.Contains(err.Error(), "(limit "+tt.want+")") {
				t.Fatalf("error = %v, want ErrLimitExceeded naming %s", err, tt.want)
			}
		})
	}
}

func TestValidUID(t *testing.T) {
	for _, tt := range []struct {
		uid  string
		want string // "" for valid
	}{
		{"1.2.840.10008.1.2.1", ""},
		{"0", ""},
		{"1.0.3", ""},
		{strings.Repeat("1", 64), ""},
		{"", "is empty"},
		{strings.Repeat("1", 65), "more than 64"},
		{"1.02.3", "leading zero in component 2"},
		{"1..2", "empty component 2"},
		{".1", "empty component 1"},
		{"1.2.", "empty component 3"},
		{"../../etc/passwd", "empty component 1"},
		{"1.2/../etc", "byte 0x2F at position 4"},
		{"1.2.3 ", "byte 0x20"},
		{"1.2\x003", "byte 0x00"},
		{"1.2\n3", "byte 0x0A"},
		{"\xff\xfe", "byte 0xFF"},
		{"1.2'; DROP TABLE entries;--", "byte 0x27"},
		{`1.2\1.3`, "byte 0x5C"},
	} {
		err := dicomfile.ValidUID(tt.uid)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidUID(%q) = %v, want valid", tt.uid, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidUID(%q) = %v, want an error saying %q", tt.uid, err, tt.want)
		}
	}
}

// A file is refused for an invalid identifying UID wherever it sits, and
// the error names the attribute by its tag; NUL padding is not part of it.
func TestInvalidUIDsNameTheAttribute(t *testing.T) {
	valid := synth.ValidUIDs("1.2.826.0.1.3680043.10.99.1")
	for _, tt := range []struct {
		tag string
		set func(*synth.UIDs, string)
	}{
		{"(0008,0016)", func(u *synth.UIDs, v string) { u.SOPClass = v }},
		{"(0008,0018)", func(u *synth.UIDs, v string) { u.SOPInstance = v }},
		{"(0020,000D)", func(u *synth.UIDs, v string) { u.Study = v }},
		{"(0020,000E)", func(u *synth.UIDs, v string) { u.Series = v }},
	} {
		for _, bad := range []string{"../../etc/passwd", "1.2.3\n", "\xff\xfe", strings.Repeat("9", 10_000), "1.02"} {
			u := valid
			tt.set(&u, bad)
			var b bytes.Buffer
			synth.WithUIDs(&b, u)
			_, err := dicomfile.Parse(bytes.NewReader(b.Bytes()), int64(b.Len()))
			if !errors.Is(err, dicomfile.ErrInvalidUID) || !strings.Contains(err.Error(), tt.tag) {
				t.Errorf("%s = %.20q: error %v, want ErrInvalidUID naming %s", tt.tag, bad, err, tt.tag)
			}
		}
		u := valid
		tt.set(&u, "1.2.3\x00") // padded by the writer to an even length
		var b bytes.Buffer
		synth.WithUIDs(&b, u)
		if _, err := dicomfile.Parse(bytes.NewReader(b.Bytes()), int64(b.Len())); err != nil {
			t.Errorf("%s with NUL padding: %v", tt.tag, err)
		}
	}
}

// The UIDs must be encoded as UI: the same bytes under another VR decode as
// a number or hex, which would then stand as the identifier.
func TestUIDsMustBeEncodedAsUI(t *testing.T) {
	var b bytes.Buffer
	synth.WithUIDs(&b, synth.ValidUIDs("1.2.826.0.1.3680043.10.99.2"))
	for _, vr := range []string{"DS", "US", "SH", "AT"} {
		data := bytes.Clone(b.Bytes())
		i := bytes.Index(data, []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I'})
		if i < 0 {
			t.Fatal("no SOP Instance UID element")
		}
		copy(data[i+4:], vr)
		_, err := dicomfile.Parse(bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, dicomfile.ErrInvalidUID) || !strings.Contains(err.Error(), "(0008,0018)") {
			t.Errorf("SOP Instance UID as %s: %v, want ErrInvalidUID naming (0008,0018)", vr, err)
		}
	}
}
