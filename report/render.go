package report

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Instance is one instance's chain of custody as the human formats show
// it: its events in time order, and its patient when Names has it.
type Instance struct {
	UID     string
	Study   string
	Patient string
	Events  []Event
}

// ByInstance groups the report's events per instance, in the order of
// Instances, then the events about no attested instance (study-level
// requests, such as a study transfer or a search) under UID "".
func (v *Verified) ByInstance() []Instance {
	at := map[string]int{}
	out := make([]Instance, 0, len(v.Instances)+1)
	for _, uid := range v.Instances {
		at[uid] = len(out)
		out = append(out, Instance{UID: uid, Patient: v.Names[uid]})
	}
	var rest Instance
	for _, ev := range v.Events {
		i, ok := at[ev.Instance]
		if !ok {
			rest.Events = append(rest.Events, ev)
			continue
		}
		if out[i].Study == "" {
			out[i].Study = ev.Study
		}
		out[i].Events = append(out[i].Events, ev)
	}
	if len(rest.Events) > 0 {
		out = append(out, rest)
	}
	return out
}

// Subject names what the report is about, in words.
func (v *Verified) Subject() string {
	q := v.Query
	s := "study " + q.Study
	switch {
	case q.Patient != "":
		s = "patient " + q.Patient
	case q.SOP != "":
		s = "instance " + q.SOP + " of study " + q.Study
	}
	if q.From != nil || q.To != nil {
		s += ", events " + window(q.From, q.To)
	}
	return s
}

func window(from, to *time.Time) string {
	f, t := "the first", "now"
	if from != nil {
		f = from.UTC().Format(time.RFC3339)
	}
	if to != nil {
		t = to.UTC().Format(time.RFC3339)
	}
	return "from " + f + " to (not including) " + t
}

// Statement says, in plain words, what verifying the report proved: one
// line per fact.
func (v *Verified) Statement() []string {
	lines := []string{
		fmt.Sprintf("This report of %s was issued at %s by attestation key %s.", v.Subject(), v.Generated.UTC().Format(time.RFC3339), v.KeyID),
		proofLine("custody", v.Custody, fmt.Sprintf("the %d entries of the chain, about %d instances,", len(v.Custody.Entries), v.chainInstances)),
	}
	for _, a := range v.Audit {
		lines = append(lines, proofLine("audit", a, fmt.Sprintf("the %d access records chained under subject %s…", len(a.Entries), a.Subject.String()[:16])))
	}
	if v.Query.Patient != "" {
		lines = append(lines, "That the chain is this patient's rests on the issuer's signature alone: a patient's key is derived from a salt only the server holds.")
	}
	if v.AuditUnchecked > 0 {
		lines = append(lines, fmt.Sprintf("NOT CHECKED: the audit log's part (%d subject proofs), whose access records are not shown: its key was not given.", v.AuditUnchecked))
	}
	lines = append(lines,
		fmt.Sprintf("Every entry checked is the log's own, in its place, and none of the subject's entries up to those checkpoints is missing: %d events are shown.", len(v.Events)),
		"It does not prove what happened after those checkpoints (compare them with checkpoints you hold), nor what was never recorded; names and patient data are not in the logs, only commitments.")
	return lines
}

func proofLine(name string, p Proven, what string) string {
	w := "not witnessed"
	if len(p.Witnesses) > 0 {
		w = "witnessed by " + strings.Join(p.Witnesses, ", ")
	}
	return fmt.Sprintf("The %s log %s (key %s) proves %s complete up to its checkpoint of size %d (root %s), %s.", name, p.Origin, p.Key, what, p.Size, hex.EncodeToString(p.Root), w)
}

// HowToVerify is the command that verifies the report's JSON bundle.
const HowToVerify = "dicomseal verify-report BUNDLE.json --key attestation.pem --log-key log.vkey --audit-log-key audit.vkey " +
	"(the keys as GET /v1/keys publishes them; add --witness-key for each witness you trust)"
