package dicomfile_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"strings"
)

// A small writer of synthetic Part 10 files, for cases no real file has.

const (
	explicitLE = "1.2.840.10008.1.2.1"
	implicitLE = "1.2.840.10008.1.2"
	explicitBE = "1.2.840.10008.1.2.2"
	jpeg       = "1.2.840.10008.1.2.4.50"
	deflatedTS = "1.2.840.10008.1.2.1.99"
)

type elem struct {
	tag   uint32
	vr    string // ignored in implicit VR
	value []byte
	// undefined writes an undefined length: value is items (see item) or
	// fragments.
	undefined bool
}

// part10 writes a Part 10 file: explicit VR little endian File Meta, then
// the elements in the transfer syntax ts.
func part10(ts string, elems ...elem) []byte {
	b := bytes.NewBuffer(fileMeta(ts))
	var ds bytes.Buffer
	for _, e := range elems {
		encode(&ds, ts, e)
	}
	if ts != deflatedTS {
		b.Write(ds.Bytes())
		return b.Bytes()
	}
	fw, _ := flate.NewWriter(b, flate.BestCompression)
	fw.Write(ds.Bytes())
	fw.Close()
	return b.Bytes()
}

// fileMeta is the preamble, the magic word and a File Meta group of just
// the Transfer Syntax UID.
func fileMeta(ts string) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	encode(&b, explicitLE, elem{tag: 0x00020010, vr: "UI", value: uid(ts)})
	return b.Bytes()
}

// encode writes one element in the transfer syntax ts.
func encode(b *bytes.Buffer, ts string, e elem) {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if ts == explicitBE {
		bo = binary.BigEndian
	}
	b.Write(bo.AppendUint16(nil, uint16(e.tag>>16)))
	b.Write(bo.AppendUint16(nil, uint16(e.tag)))
	length := bo.AppendUint32(nil, uint32(len(e.value)))
	if e.undefined {
		length = []byte{0xFF, 0xFF, 0xFF, 0xFF}
	}
	switch {
	case ts == implicitLE:
		b.Write(length)
	case strings.Contains("OB OD OF OL OV OW SQ SV UC UN UR UT UV", e.vr):
		b.WriteString(e.vr)
		b.Write([]byte{0, 0})
		b.Write(length)
	default:
		b.WriteString(e.vr)
		b.Write(bo.AppendUint16(nil, uint16(len(e.value))))
	}
	b.Write(e.value)
}

// items encodes sequence items of undefined length, each of elements, and
// the sequence delimitation: the value of an undefined length SQ.
func items(ts string, items ...[]elem) []byte {
	var b bytes.Buffer
	for _, it := range items {
		b.Write([]byte{0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
		for _, e := range it {
			encode(&b, ts, e)
		}
		b.Write([]byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0})
	}
	b.Write([]byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	return b.Bytes()
}

// uid is a UI value padded to an even length with a NUL.
func uid(s string) []byte {
	if len(s)%2 == 1 {
		s += "\x00"
	}
	return []byte(s)
}

// text is a text value padded to an even length with a space.
func text(s string) []byte {
	if len(s)%2 == 1 {
		s += " "
	}
	return []byte(s)
}
