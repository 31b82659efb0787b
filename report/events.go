package report

import (
	"cmp"
	"encoding/base64"

	"fmt"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/subject"
)

// Event is one entry of a report as a row: what happened, to which
// instance, by whom, from where to where, on which bytes, with what
// verdict. Log and Index say where it is proven.
type Event struct {
	Time        time.Time `json:"time"`
	Log         string    `json:"log"` // custody or audit
	Index       uint64    `json:"index"`
	Instance    string    `json:"instance,omitempty"` // SOP Instance UID; "" for a study-level event
	Study       string    `json:"study,omitempty"`
	Event       string    `json:"event"` // the custody entry's kind, or the audit event's action
	Actor       string    `json:"actor,omitempty"`
	Source      string    `json:"source,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Purpose     string    `json:"purpose,omitempty"`
	Digest      string    `json:"digest,omitempty"` // SHA-256 of the bytes the event concerns
	Verdict     string    `json:"verdict,omitempty"`

	object string // an audit event's object, an instance's when it is one of the chain's
}

// Log names.
const (
	LogCustody = "custody"
	LogAudit   = "audit"
)

// custodyBody holds the members of every custody kind a row shows
// (docs/entries.md); each kind fills its own.
type custodyBody struct {
	Kind           ledger.Kind `json:"kind"`
	Subject        string      `json:"subject"`
	SOPInstanceUID string      `json:"sop_instance_uid"` // version 0
	FileSHA256     string      `json:"file_sha256"`
	Envelope       *struct {
		Payload string `json:"payload"`
	} `json:"envelope"`
	Actor             string    `json:"actor"`
	StudyInstanceUID  string    `json:"study_instance_uid"`
	Destination       string    `json:"destination"`
	Purpose           string    `json:"purpose"`
	Outcome           string    `json:"outcome"`
	Reason            string    `json:"reason"`
	Verdict           string    `json:"verdict"`
	ExpectedSHA256    string    `json:"expected_sha256"`
	ObservedSHA256    string    `json:"observed_sha256"`
	AttemptedSHA256   string    `json:"attempted_sha256"`
	FromStore         string    `json:"from_store"`
	ToStore           string    `json:"to_store"`
	SourceSHA256      string    `json:"source_sha256"`
	DestinationSHA256 string    `json:"destination_sha256"`
	Found             string    `json:"found"`
	RecordedAt        time.Time `json:"recorded_at"`
	CorrectedAt       time.Time `json:"corrected_at"`
}

// predicate is what a row needs of an attestation's statement.
type predicate struct {
	Predicate struct {
		StudyInstanceUID string    `json:"study_instance_uid"`
		AttestedAt       time.Time `json:"attested_at"`
	} `json:"predicate"`
}

func custodyEvent(e ledger.Entry) (Event, error) {
	var b custodyBody
	if err := jsonv2.Unmarshal(e.Body, &b, bodyOptions); err != nil {
		return Event{}, fmt.Errorf("custody entry %d: %w", e.Index, err)
	}
	ev := Event{Log: LogCustody, Index: e.Index, Instance: either(b.Subject, b.SOPInstanceUID), Event: string(b.Kind),
		Actor: b.Actor, Study: b.StudyInstanceUID, Time: b.RecordedAt, Digest: b.FileSHA256}
	switch k := b.Kind; {
	case custody.Attests(k):
		ev.Verdict = "attested"
		if b.Envelope != nil {
			// The log proves these bytes; the signature on them is the
			// ingest's own (dicomseal verify checks it with the file).
			var p predicate
			payload, err := base64.StdEncoding.DecodeString(b.Envelope.Payload)
			if err == nil {
				err = jsonv2.Unmarshal(payload, &p, bodyOptions)
			}
			if err != nil {
				return Event{}, fmt.Errorf("custody entry %d: the attestation's statement: %v", e.Index, err)
			}
			ev.Study, ev.Time = p.Predicate.StudyInstanceUID, p.Predicate.AttestedAt
		}
		if k == custody.KindIdentityCorrection && !b.CorrectedAt.IsZero() {
			ev.Time = b.CorrectedAt
		}
	case k == custody.KindConflict || k == custody.KindSecurityAlert:
		ev.Digest, ev.Verdict = b.AttemptedSHA256, "refused: "+either(b.Reason, b.Verdict)
	case k == custody.KindIntegrityFailure:
		ev.Digest, ev.Verdict = either(b.ObservedSHA256, b.ExpectedSHA256), "FAILED: "+b.Reason
	case k == custody.KindTransfer || k == custody.KindExport:
		ev.Destination, ev.Purpose, ev.Verdict = b.Destination, b.Purpose, b.Outcome
		if b.Reason != "" {
			ev.Verdict += ": " + b.Reason
		}
	case k == custody.KindStorageMigration:
		ev.Source, ev.Destination, ev.Verdict = b.FromStore, b.ToStore, "verified on both sides"
		if b.SourceSHA256 != b.DestinationSHA256 || b.SourceSHA256 != b.FileSHA256 {
			ev.Verdict = "MISMATCH"
		}
	case k == custody.KindRepair:
		ev.Verdict = "repaired (found " + b.Found + ")"
	}
	return ev, nil
}

// auditBody is an audit entry's event (audit.Event, every version).
type auditBody struct {
	Subject string    `json:"subject"`
	Actor   string    `json:"actor"` // version 0
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Object  string    `json:"object"`
	Study   string    `json:"study"`
	Outcome string    `json:"outcome"`
	Status  int       `json:"status"`
	Source  string    `json:"source"`
}

func auditEvent(e ledger.Entry) (Event, error) {
	var b auditBody
	if err := jsonv2.Unmarshal(e.Body, &b, bodyOptions); err != nil {
		return Event{}, fmt.Errorf("audit entry %d: %w", e.Index, err)
	}
	ev := Event{Time: b.Time, Log: LogAudit, Index: e.Index, Study: b.Study, Event: b.Action,
		Actor: either(b.Subject, b.Actor), Source: b.Source, Verdict: b.Outcome}
	if b.Status != 0 {
		ev.Verdict += " " + strconv.Itoa(b.Status)
	}
	ev.object = b.Object // an instance's UID, a study's or series', a log index…: decode tells
	return ev, nil
}

// bodyOptions read entry bodies as encoding/json does where the two
// differ on what a logged entry could hold (the last of duplicate names
// wins; invalid UTF-8 is replaced): a genuine entry is never refused.
var bodyOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

func either(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decode turns the proven entries into the report's rows: every custody
// entry about an instance, every audit entry, in time order (then audit
// before custody, then by index), within the query's instance and window.
func (v *Verified) decode() error {
	type job struct {
		audit bool
		e     ledger.Entry
	}
	var jobs []job
	for _, e := range v.Custody.Entries {
		jobs = append(jobs, job{false, e})
	}
	for _, a := range v.Audit {
		for _, e := range a.Entries {
			jobs = append(jobs, job{true, e})
		}
	}
	// Thousands of bodies, each parsed on its own: on every core.
	all := make([]Event, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), max(1, len(jobs)/256))
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(jobs); i += workers {
				if jobs[i].audit {
					all[i], errs[i] = auditEvent(jobs[i].e)
				} else {
					all[i], errs[i] = custodyEvent(jobs[i].e)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	studyOf := map[string]string{}
	v.digests = map[string]string{}
	for _, ev := range all[:len(v.Custody.Entries)] {
		// A study's chain offered as a patient's: some entry of it names
		// the study whose key it is (its first one does, at least).
		if v.Query.Patient != "" && ev.Study != "" && subject.Study(ev.Study) == v.Custody.Subject {
			return fmt.Errorf("the custody proof is study %s's, not a patient's", ev.Study)
		}
		if custody.Attests(ledger.Kind(ev.Event)) {
			if _, seen := studyOf[ev.Instance]; !seen {
				v.Instances = append(v.Instances, ev.Instance)
			}
			studyOf[ev.Instance] = ev.Study
			v.digests[ev.Instance] = ev.Digest
		}
	}
	v.chainInstances = len(v.Instances)
	if v.Query.SOP != "" {
		// Of the study now: after a move, the study it left holds its
		// history only up to the move.
		if st, ok := studyOf[v.Query.SOP]; !ok {
			return fmt.Errorf("instance %s is not attested in study %s's custody chain", v.Query.SOP, v.Query.Study)
		} else if st != v.Query.Study {
			return fmt.Errorf("instance %s is of study %s now, not of %s", v.Query.SOP, st, v.Query.Study)
		}
		v.Instances = []string{v.Query.SOP}
	}
	for i := range all {
		if _, ok := studyOf[all[i].object]; ok && all[i].Log == LogAudit {
			all[i].Instance = all[i].object
		}
		if all[i].Study == "" {
			all[i].Study = studyOf[all[i].Instance]
		}
	}
	slices.SortStableFunc(all, func(a, b Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if a.Log != b.Log {
			return strings.Compare(a.Log, b.Log) // audit before custody at the same instant: the request, then its entry
		}
		return cmp.Compare(a.Index, b.Index)
	})
	q := v.Query
	for _, ev := range all {
		switch {
		// An instance's report keeps the study-level requests (a study or
		// series retrieved whole hands the instance out too).
		case q.SOP != "" && ev.Instance != q.SOP && ev.Instance != "",
			q.From != nil && ev.Time.Before(*q.From),
			q.To != nil && !ev.Time.Before(*q.To):
			continue
		}
		v.Events = append(v.Events, ev)
	}
	return nil
}
