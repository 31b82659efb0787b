package custody

import (
	"context"
	"errors"
	"fmt"
	"github.com/dicomseal/dicomseal/catalog"
	"time"

	"github.com/dicomseal/dicomseal/ledger"
)

// Log is the custody log: the verifiable log with the custody index
// deciding its appends, and the index's lookups.
type Log struct {
	*ledger.Log
}

// New makes l the custody log: its appends are decided by the index, and
// its checkpoints commit the subject map of its studies and patients.
func New(l *ledger.Log) *Log {
	l.Indexer = Index{}
	l.SubjectMap = true
	return &Log{Log: l}
}

// Record is a custody entry to append.
type Record struct {
	Kind    ledger.Kind
	Subject string // the SOP Instance UID
	// FileSHA256 is the digest the entry is about: the stored object for
	// an attesting entry, the attempted bytes for a conflict, the observed
	// bytes for an integrity failure ("" when the object was missing).
	FileSHA256 string
	Body       []byte
	// Identity, Revises, IncidentKey and Catalog: see Meta.
	Identity    *Identity
	Revises     uint64
	IncidentKey string
	Catalog     *catalog.Entry
}

func (r Record) ledger(seenAt time.Time) ledger.Record {
	return ledger.Record{Kind: r.Kind, Subject: r.Subject, FileSHA256: r.FileSHA256, Body: r.Body,
		Meta: Meta{Identity: r.Identity, Revises: r.Revises, IncidentKey: r.IncidentKey, SeenAt: seenAt, Catalog: r.Catalog}}
}

// AppendIngest appends an attesting entry: an ingest claims its SOP
// Instance UID in the same transaction (*InstanceExistsError, and nothing
// appended, when it is already claimed, including by an earlier record of
// the same batch); a revision or identity correction must follow the
// instance's latest entry (ErrStaleRevision otherwise).
func (c *Log) AppendIngest(ctx context.Context, rec Record) (ledger.Entry, error) {
	if !Attests(rec.Kind) {
		return ledger.Entry{}, fmt.Errorf("custody: AppendIngest given a %s record", rec.Kind)
	}
	ps, err := c.Submit(ctx, []ledger.Record{rec.ledger(time.Time{})})
	if err != nil {
		return ledger.Entry{}, err
	}
	return ps[0].Entry, ps[0].Err
}

// RecordIncident appends an incident entry (a conflict, security alert or
// integrity failure) the first time one is seen for its kind, SOP Instance
// UID and incident key; repeats only raise its count. It returns the entry
// and how often the incident has now been seen.
func (c *Log) RecordIncident(ctx context.Context, rec Record, seenAt time.Time) (ledger.Entry, int64, error) {
	if !incident(rec.Kind) {
		return ledger.Entry{}, 0, fmt.Errorf("custody: RecordIncident given a %s record", rec.Kind)
	}
	ps, err := c.Submit(ctx, []ledger.Record{rec.ledger(seenAt)})
	if err != nil {
		return ledger.Entry{}, 0, err
	}
	if ps[0].Err != nil {
		return ledger.Entry{}, 0, ps[0].Err
	}
	count, _ := ps[0].Value.(int64)
	return ps[0].Entry, count, nil
}

// AppendEvents appends custody events (transfers, exports, migrations,
// fixity summaries, repairs) in one commit, in order.
func (c *Log) AppendEvents(ctx context.Context, recs []Record) ([]ledger.Entry, error) {
	lrs := make([]ledger.Record, len(recs))
	for i, r := range recs {
		if !Event(r.Kind) {
			return nil, fmt.Errorf("custody: AppendEvents given a %s record", r.Kind)
		}
		lrs[i] = r.ledger(time.Time{})
	}
	ps, err := c.Submit(ctx, lrs)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Entry, len(ps))
	for i, p := range ps {
		if p.Err != nil {
			return nil, p.Err
		}
		out[i] = p.Entry
	}
	return out, nil
}

// Size is the number of entries in the log, integrated or not.
func (c *Log) Size(ctx context.Context) (n uint64, err error) {
	err = c.View(ctx, func(tx ledger.Tx) error {
		n, err = tx.NextIndex(ctx)
		return err
	})
	return n, err
}

// ScanAttesting returns up to max attesting entries (ingests, revisions,
// corrections: every version that has a stored object) with indexes in
// [from, to), in index order, and the index to continue from (to when the
// range is done).
func (c *Log) ScanAttesting(ctx context.Context, from, to uint64, max int) (out []ledger.Entry, next uint64, err error) {
	const window = 4096 // indexes read per transaction, whatever their kinds
	next = from
	for len(out) < max && next < to {
		full := false
		err = c.View(ctx, func(tx ledger.Tx) error {
			end := min(next+window, to)
			err := tx.ScanEntries(ctx, next, end, func(e ledger.Entry) error {
				if Attests(e.Kind) {
					if len(out) >= max {
						full = true
						return errStop
					}
					out = append(out, e)
				}
				return nil
			})
			if full {
				next = out[len(out)-1].Index + 1
				return nil
			}
			if err == nil {
				next = end
			}
			return err
		})
		if err != nil {
			return nil, from, err
		}
		if full {
			break
		}
	}
	return out, next, nil
}

var errStop = errors.New("stop")

func (c *Log) view(ctx context.Context, fn func(Tx) error) error {
	return c.View(ctx, func(ltx ledger.Tx) error {
		tx, err := TxOf(ltx)
		if err != nil {
			return err
		}
		return fn(tx)
	})
}

// InstanceBySOP returns the latest attesting entry of uid.
func (c *Log) InstanceBySOP(ctx context.Context, uid string) (e ledger.Entry, err error) {
	err = c.view(ctx, func(tx Tx) error { e, err = tx.InstanceEntry(ctx, uid); return err })
	return e, err
}

// IngestBySHA256 returns the attesting entry of the object with that digest.
func (c *Log) IngestBySHA256(ctx context.Context, sha256Hex string) (e ledger.Entry, err error) {
	err = c.view(ctx, func(tx Tx) error { e, err = tx.IngestBySHA256(ctx, sha256Hex); return err })
	return e, err
}

// IngestBySHA256WithLatest is IngestBySHA256 together with the latest
// attesting entry of the same instance, read in one transaction: what a
// verification by digest needs to tell a current version from a
// superseded one, at the cost of one read.
func (c *Log) IngestBySHA256WithLatest(ctx context.Context, sha256Hex string) (e, latest ledger.Entry, err error) {
	err = c.view(ctx, func(tx Tx) error {
		if e, err = tx.IngestBySHA256(ctx, sha256Hex); err != nil {
			return err
		}
		// Usually these bytes are the latest version: their row (a
		// signed envelope, kilobytes) is then not read twice.
		idx, err := tx.LatestIndex(ctx, e.Subject)
		switch {
		case err != nil:
			return err
		case idx == e.Index:
			latest = e
			return nil
		}
		latest, err = tx.Entry(ctx, idx)
		return err
	})
	return e, latest, err
}

// Identity returns the salt and identifiers recorded for attested bytes;
// ledger.ErrNotFound when there are none (or they were erased).
func (c *Log) Identity(ctx context.Context, sha256Hex string) (id *Identity, err error) {
	err = c.view(ctx, func(tx Tx) error { id, err = tx.Identity(ctx, sha256Hex); return err })
	return id, err
}

// PatientSalt returns the salt of a patient's subject key (package
// subject); ledger.ErrNotFound when the patient has none (or it was
// deleted).
func (c *Log) PatientSalt(ctx context.Context, patientID string) (salt []byte, err error) {
	err = c.view(ctx, func(tx Tx) error {
		salts, err := tx.PatientSalts(ctx, []string{patientID})
		if err != nil {
			return err
		}
		var ok bool
		if salt, ok = salts[patientID]; !ok {
			return ledger.ErrNotFound
		}
		return nil
	})
	return salt, err
}
