// Package synth writes synthetic but well-formed DICOM Part 10 files
// (explicit VR little endian, native 16-bit monochrome pixels) of any size,
// for benchmarks and memory tests that need instances larger than the real
// fixtures. Real files from other projects remain the test data of record.
package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Spec describes an instance.
type Spec struct {
	SOPInstanceUID string
	Rows, Columns  int
	Frames         int
	// Fill sets pixel (frame, i); nil fills a deterministic pattern.
	Fill func(frame, i int) uint16
}

const (
	secondaryCapture = "1.2.840.10008.5.1.4.1.1.7"
	explicitLE       = "1.2.840.10008.1.2.1"
)

// Instance returns the file bytes.
func Instance(s Spec) []byte {
	var b bytes.Buffer
	Write(&b, s)
	return b.Bytes()
}

// Write writes the file to w frame by frame, so that a multi-gigabyte
// instance never sits in memory.
func Write(w io.Writer, s Spec) (int64, error) {
	if s.Frames == 0 {
		s.Frames = 1
	}
	var ds bytes.Buffer
	str := func(g, e uint16, vr, v string) { element(&ds, g, e, vr, pad(v, vr)) }
	us := func(g, e, v uint16) { element(&ds, g, e, "US", binary.LittleEndian.AppendUint16(nil, v)) }
	str(0x0008, 0x0016, "UI", secondaryCapture)
	str(0x0008, 0x0018, "UI", s.SOPInstanceUID)
	str(0x0008, 0x0060, "CS", "OT")
	str(0x0010, 0x0010, "PN", "Synthetic^Patient")
	str(0x0010, 0x0020, "LO", "SYNTH-0001")
	str(0x0020, 0x000D, "UI", s.SOPInstanceUID+".1")
	str(0x0020, 0x000E, "UI", s.SOPInstanceUID+".2")
	us(0x0028, 0x0002, 1)
	str(0x0028, 0x0004, "CS", "MONOCHROME2")
	if s.Frames > 1 {
		str(0x0028, 0x0008, "IS", fmt.Sprint(s.Frames))
	}
	us(0x0028, 0x0010, uint16(s.Rows))
	us(0x0028, 0x0011, uint16(s.Columns))
	us(0x0028, 0x0100, 16)
	us(0x0028, 0x0101, 12)
	us(0x0028, 0x0102, 11)
	us(0x0028, 0x0103, 0)
	n := s.Rows * s.Columns
	// Pixel Data's header; its value follows, frame by frame.
	binary.Write(&ds, binary.LittleEndian, [2]uint16{0x7FE0, 0x0010})
	ds.WriteString("OW")
	ds.Write([]byte{0, 0})
	binary.Write(&ds, binary.LittleEndian, uint32(2*n*s.Frames))

	var meta bytes.Buffer
	element(&meta, 0x0002, 0x0001, "OB", []byte{0, 1})
	element(&meta, 0x0002, 0x0002, "UI", pad(secondaryCapture, "UI"))
	element(&meta, 0x0002, 0x0003, "UI", pad(s.SOPInstanceUID, "UI"))
	element(&meta, 0x0002, 0x0010, "UI", pad(explicitLE, "UI"))
	element(&meta, 0x0002, 0x0012, "UI", pad("1.2.826.0.1.3680043.10.1", "UI"))

	var head bytes.Buffer
	head.Write(make([]byte, 128))
	head.WriteString("DICM")
	element(&head, 0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(meta.Len())))
	head.Write(meta.Bytes())
	head.Write(ds.Bytes())
	total, err := w.Write(head.Bytes())
	written := int64(total)
	if err != nil {
		return written, err
	}
	frame := make([]byte, 2*n)
	for f := 0; f < s.Frames; f++ {
		for i := 0; i < n; i++ {
			v := uint16((i*7 + f*13) & 0x0FFF)
			if s.Fill != nil {
				v = s.Fill(f, i)
			}
			binary.LittleEndian.PutUint16(frame[2*i:], v)
		}
		k, err := w.Write(frame)
		written += int64(k)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func pad(v, vr string) []byte {
	b := []byte(v)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	return b
}

var longVR = map[string]bool{"OB": true, "OW": true, "SQ": true, "UN": true, "UT": true}

func element(w *bytes.Buffer, group, elem uint16, vr string, value []byte) {
	binary.Write(w, binary.LittleEndian, group)
	binary.Write(w, binary.LittleEndian, elem)
	w.WriteString(vr)
	if longVR[vr] {
		w.Write([]byte{0, 0})
		binary.Write(w, binary.LittleEndian, uint32(len(value)))
	} else {
		binary.Write(w, binary.LittleEndian, uint16(len(value)))
	}
	w.Write(value)
}
