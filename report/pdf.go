package report

import (
	"encoding/hex"
	"fmt"
	"io"

	"codeberg.org/go-pdf/fpdf"
)

// pdfColumns are the event table's columns and widths (mm, A4 landscape).
var pdfColumns = []struct {
	name  string
	width float64
	cell  func(Event) string
}{
	{"time (UTC)", 36, func(e Event) string { return e.Time.UTC().Format("2006-01-02 15:04:05.000") }},
	{"event", 34, func(e Event) string { return e.Event }},
	{"actor", 30, func(e Event) string { return e.Actor }},
	{"source", 24, func(e Event) string { return e.Source }},
	{"destination", 36, func(e Event) string { return e.Destination }},
	{"purpose", 26, func(e Event) string { return e.Purpose }},
	{"digest (SHA-256, first 16)", 34, func(e Event) string { return e.Digest[:min(16, len(e.Digest))] }},
	{"verdict", 37, func(e Event) string { return e.Verdict }},
	{"entry", 20, func(e Event) string { return fmt.Sprintf("%s #%d", e.Log, e.Index) }},
}

// latin1 tells whether the core fonts' encoding holds every character.
func latin1(s string) bool {
	for _, r := range s {
		if r > 0xff {
			return false
		}
	}
	return true
}

// WritePDF writes the report for people: what was proven, the checkpoints
// and keys, each instance's chain of custody, and how to verify the
// bundle. Core fonts only, so it needs no font files.
func (v *Verified) WritePDF(w io.Writer) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetCreationDate(v.Generated)
	pdf.SetModificationDate(v.Generated)
	pdf.SetTitle("Chain of custody: "+v.Subject(), true)
	pdf.SetCreator("dicomseal", true)
	pdf.SetMargins(10, 10, 10)
	pdf.SetAutoPageBreak(true, 12)
	pdf.AliasNbPages("")
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: the core fonts' encoding
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("Helvetica", "", 7)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("dicomseal chain of custody, %s: page %d of {nb}", v.Subject(), pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	heading := func(size float64, s string) {
		pdf.SetFont("Helvetica", "B", size)
		pdf.MultiCell(0, size*0.5, tr(s), "", "L", false)
		pdf.Ln(1)
	}
	para := func(s string) {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 4.5, tr(s), "", "L", false)
		pdf.Ln(1)
	}
	heading(15, "Chain of custody: "+v.Subject())
	heading(11, "What was proven")
	for _, l := range v.Statement() {
		para("- " + l)
	}
	heading(11, "Checkpoints and keys")
	para(fmt.Sprintf("Custody log %s, key %s: tree size %d, root %s.", v.Custody.Origin, v.Custody.Key, v.Custody.Size, hex.EncodeToString(v.Custody.Root)))
	for _, a := range v.Audit {
		para(fmt.Sprintf("Audit log %s, key %s: tree size %d, root %s.", a.Origin, a.Key, a.Size, hex.EncodeToString(a.Root)))
	}
	para("Attestation key id: " + v.KeyID)
	heading(11, "How to verify")
	para("This document is a reading of the report; the proof is its JSON bundle. Anyone holding the service's public keys checks it offline: " + HowToVerify)

	fit := func(s string, width float64) string {
		s = tr(s)
		if pdf.GetStringWidth(s) <= width-1 {
			return s
		}
		for len(s) > 0 && pdf.GetStringWidth(s+"\x85") > width-1 {
			s = s[:len(s)-1]
		}
		return s + "\x85" // an ellipsis in cp1252; the CSV and JSON hold every value whole
	}
	header := func() {
		pdf.SetFont("Helvetica", "B", 7)
		pdf.SetFillColor(235, 235, 235)
		for _, c := range pdfColumns {
			pdf.CellFormat(c.width, 5, c.name, "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
	}
	for _, in := range v.ByInstance() {
		if pdf.GetY() > 170 {
			pdf.AddPage()
		}
		pdf.Ln(2)
		if in.UID != "" {
			heading(10, "Instance "+in.UID)
			if in.Study != "" {
				para("Study " + in.Study)
			}
			if in.Patient != "" {
				p := in.Patient
				if !latin1(p) {
					p += " [characters the PDF's fonts lack are shown as dots: the HTML shows them]"
				}
				para("Patient: " + p + " (from the correctable identity table, not proven by the logs)")
			}
		} else {
			heading(10, "Requests about the study as a whole")
		}
		header()
		for _, e := range in.Events {
			if pdf.GetY() > 190 {
				pdf.AddPage()
				header()
			}
			for _, c := range pdfColumns {
				style := ""
				if c.name == "verdict" && Failed(e.Verdict) {
					style = "B"
				}
				pdf.SetFont("Helvetica", style, 7)
				pdf.CellFormat(c.width, 4.5, fit(c.cell(e), c.width), "1", 0, "L", false, 0, "")
			}
			pdf.Ln(-1)
		}
	}
	if err := pdf.Error(); err != nil {
		return err
	}
	return pdf.Output(w)
}
