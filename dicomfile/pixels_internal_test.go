package dicomfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// slowCanonical is the canonical form by definition, one sample at a time:
// the reference the hasher's fast paths must match.
func slowCanonical(d pixelDescription, bo binary.ByteOrder, vr string, raw []byte) []byte {
	swap := 0
	if bo == binary.BigEndian {
		swap = map[string]int{"OW": 2, "OL": 4}[vr]
	}
	out := bytes.Clone(raw)
	for i := 0; swap > 1 && i+swap <= len(out); i += swap {
		for a, b := i, i+swap-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	}
	width, shift := d.bitsAllocated/8, uint(d.highBit+1-d.bitsStored)
	mask := uint32(1)<<uint(d.bitsStored) - 1
	if d.bitsStored == 32 {
		mask = 0xFFFFFFFF
	}
	for i := 0; i+width <= len(out); i += width {
		switch width {
		case 1:
			out[i] = byte(uint32(out[i]) >> shift & mask)
		case 2:
			binary.LittleEndian.PutUint16(out[i:], uint16(uint32(binary.LittleEndian.Uint16(out[i:]))>>shift&mask))
		case 4:
			binary.LittleEndian.PutUint32(out[i:], binary.LittleEndian.Uint32(out[i:])>>shift&mask)
		}
	}
	return out
}

// TestNativeHasherFastPaths checks that hashing without a copy (data
// already canonical) and the single frame's digest taken from the whole
// one give exactly the digests of the canonical form, whatever the
// chunking, for clean and dirty unused bits alike.
func TestNativeHasherFastPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name              string
		alloc, stored, hi int
		frames            int
		bo                binary.ByteOrder
		vr                string
		dirty             bool // unused high bits set in some samples
	}{
		{"16/16 one frame", 16, 16, 15, 1, binary.LittleEndian, "OW", false},
		{"16/12 clean one frame", 16, 12, 11, 1, binary.LittleEndian, "OW", false},
		{"16/12 dirty one frame", 16, 12, 11, 1, binary.LittleEndian, "OW", true},
		{"16/12 clean three frames", 16, 12, 11, 3, binary.LittleEndian, "OW", false},
		{"16/12 dirty three frames", 16, 12, 11, 3, binary.LittleEndian, "OW", true},
		{"16/12 high bit 15", 16, 12, 15, 1, binary.LittleEndian, "OW", true},
		{"8/8", 8, 8, 7, 2, binary.LittleEndian, "OB", false},
		{"8/7 dirty", 8, 7, 6, 1, binary.LittleEndian, "OB", true},
		{"32/24 dirty", 32, 24, 23, 1, binary.LittleEndian, "OL", true},
		{"32/32", 32, 32, 31, 2, binary.LittleEndian, "OL", false},
		{"16/16 big endian", 16, 16, 15, 1, binary.BigEndian, "OW", false},
		{"16/12 big endian", 16, 12, 11, 2, binary.BigEndian, "OW", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := pixelDescription{samples: 1, rows: 37, columns: 41, frames: c.frames,
				bitsAllocated: c.alloc, bitsStored: c.stored, highBit: c.hi}
			frameLen := 37 * 41 * c.alloc / 8
			raw := make([]byte, frameLen*c.frames)
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if !c.dirty {
				// Clear what lies outside the window: already canonical.
				raw = slowCanonical(d, binary.LittleEndian, c.vr, raw)
				if c.bo == binary.BigEndian {
					raw = slowCanonical(pixelDescription{bitsAllocated: c.alloc, bitsStored: c.alloc, highBit: c.alloc - 1},
						binary.BigEndian, c.vr, raw)
				}
			}
			want := slowCanonical(d, c.bo, c.vr, raw)
			for _, step := range []int{1, 3, 7, 64, len(raw)} {
				h := newNativeHasher(d, c.bo, c.vr, int64(len(raw)))
				for p := raw; len(p) > 0; {
					n := min(step+rng.IntN(step+1), len(p))
					h.Write(p[:n])
					p = p[n:]
				}
				got := h.result()
				if got.Whole != sha(want) {
					t.Fatalf("step %d: whole digest differs from the canonical form's", step)
				}
				if len(got.Frames) != c.frames {
					t.Fatalf("step %d: %d frame digests, want %d", step, len(got.Frames), c.frames)
				}
				for i, f := range got.Frames {
					if f != sha(want[i*frameLen:(i+1)*frameLen]) {
						t.Fatalf("step %d: frame %d digest differs from the canonical form's", step, i+1)
					}
				}
			}
		})
	}
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
