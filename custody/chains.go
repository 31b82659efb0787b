package custody

import (
	"context"
	"errors"
	"slices"

	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/subject"
)

// Subject chains (ledger/chain.go): every custody entry about an instance
// is chained under the instance's study and patient. An attesting entry
// names the version it writes (its catalog row); a revision or identity
// correction also the version it replaces, so an instance moved to
// another study or patient stays in the chains of both; every other entry
// is about the instance as its current version stands. Fixity summaries
// are about no one instance, and are chained under nothing.

// chainer resolves a batch's subjects: it reads the instances' current
// study and patient and the patients' salts once per batch, and makes the
// salts of patients first seen.
type chainer struct {
	current map[string]Subjects // by SOP Instance UID, as of the entries decided so far
	// fallback holds, for instances the search index lacks (it is
	// mutable: emptied by index rebuild --reset, for one), the subjects
	// their latest attesting entry was chained under, read from the log.
	fallback map[string][]ledger.SubjectKey
	salts    map[string][]byte // by Patient ID
	added    []PatientSalt
}

func newChainer(ctx context.Context, tx Tx, batch []*ledger.Pending) (*chainer, error) {
	var uids []string
	for _, p := range batch {
		if p.Record.Kind != KindIngest && p.Record.Kind != KindFixity {
			uids = append(uids, p.Record.Subject)
		}
	}
	c := &chainer{current: map[string]Subjects{}, fallback: map[string][]ledger.SubjectKey{}, salts: map[string][]byte{}}
	if len(uids) > 0 {
		var err error
		if c.current, err = tx.InstanceSubjects(ctx, uids); err != nil {
			return nil, err
		}
	}
	for _, uid := range uids {
		if _, ok := c.current[uid]; ok {
			continue
		}
		if _, ok := c.fallback[uid]; ok {
			continue
		}
		e, err := tx.InstanceEntry(ctx, uid)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // never attested: about no study yet
		}
		if err != nil {
			return nil, err
		}
		links, err := ledger.ChainsOf(e.Body)
		if err != nil {
			continue // not JSON (log verify reports the format): no chain
		}
		keys := make([]ledger.SubjectKey, len(links))
		for i, l := range links {
			keys[i] = l.Subject
		}
		c.fallback[uid] = keys
	}
	ids := map[string]bool{}
	for _, s := range c.current {
		ids[s.PatientID] = true
	}
	for _, p := range batch {
		if m := meta(p); m.Catalog != nil {
			ids[m.Catalog.PatientID] = true
		}
	}
	delete(ids, "")
	if len(ids) > 0 {
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		var err error
		if c.salts, err = tx.PatientSalts(ctx, list); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// keys are the subject keys of s; a patient first seen gets a salt.
func (c *chainer) keys(out []ledger.SubjectKey, s Subjects) []ledger.SubjectKey {
	if s.StudyInstanceUID != "" {
		out = append(out, subject.Study(s.StudyInstanceUID))
	}
	if s.PatientID != "" {
		salt, ok := c.salts[s.PatientID]
		if !ok {
			salt = subject.NewSalt()
			c.salts[s.PatientID] = salt
			c.added = append(c.added, PatientSalt{PatientID: s.PatientID, Salt: salt})
		}
		out = append(out, subject.Patient(salt))
	}
	return out
}

// link sets the chains of a record about to be added, and records the
// version an attesting record writes as the instance's current one.
func (c *chainer) link(p *ledger.Pending) {
	rec, m := &p.Record, meta(p)
	if rec.Kind == KindFixity {
		return
	}
	var keys []ledger.SubjectKey
	if Attests(rec.Kind) && m.Catalog != nil {
		now := Subjects{StudyInstanceUID: m.Catalog.StudyInstanceUID, PatientID: m.Catalog.PatientID}
		keys = c.keys(keys, now)
		if Revises(rec.Kind) {
			if before, ok := c.current[rec.Subject]; ok && before != now {
				keys = c.keys(keys, before)
			} else if !ok {
				for _, k := range c.fallback[rec.Subject] {
					if !slices.Contains(keys, k) {
						keys = append(keys, k)
					}
				}
			}
		}
		c.current[rec.Subject] = now
	} else if s, ok := c.current[rec.Subject]; ok {
		keys = c.keys(keys, s)
	} else {
		keys = append(keys, c.fallback[rec.Subject]...)
	}
	rec.Chains = keys
}
