package custody

import (
	"context"
	"errors"
	"fmt"

	"github.com/dicomseal/dicomseal/ledger"
)

// Index is the custody log's ledger.Indexer: it decides each batch's
// records in the append's transaction, seeing the records before them in
// the same batch, and writes the claims, identity rows and incident
// counters after the batch's entries.
type Index struct{}

var _ ledger.Indexer = Index{}

func meta(p *ledger.Pending) Meta {
	m, _ := p.Record.Meta.(Meta)
	return m
}

// Decide implements ledger.Indexer.
func (Index) Decide(ctx context.Context, ltx ledger.Tx, batch []*ledger.Pending, add func(*ledger.Pending) ledger.Entry) (func() error, error) {
	tx, err := TxOf(ltx)
	if err != nil {
		return nil, err
	}
	var uids []string
	var keys []IncidentKey
	for _, p := range batch {
		switch k := p.Record.Kind; {
		case k == KindIngest:
			uids = append(uids, p.Record.Subject)
		case incident(k):
			keys = append(keys, incidentKey(p))
		}
	}
	claimed, err := tx.InstanceEntries(ctx, uids)
	if err != nil {
		return nil, err
	}
	incidents, err := tx.Incidents(ctx, keys)
	if err != nil {
		return nil, err
	}

	chains, err := newChainer(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	var rows Rows
	latest := map[string]uint64{} // versions appended in this batch, by UID
	touched := map[IncidentKey]bool{}
	added := map[IncidentKey]ledger.Entry{} // incidents first seen in this batch
	for _, p := range batch {
		rec, m := p.Record, meta(p)
		switch {
		case Revises(rec.Kind):
			head, ok := latest[rec.Subject]
			if !ok {
				e, err := tx.InstanceEntry(ctx, rec.Subject)
				if errors.Is(err, ledger.ErrNotFound) {
					p.Err = ErrStaleRevision // nothing to revise
					continue
				}
				if err != nil {
					return nil, err
				}
				head = e.Index
			}
			if head != m.Revises {
				p.Err = ErrStaleRevision
				continue
			}
			chains.link(p)
			e := add(p)
			latest[rec.Subject] = e.Index
			rows.identity(rec, m)
			rows.catalog(e, m)
		case rec.Kind == KindIngest:
			if e, ok := claimed[rec.Subject]; ok {
				p.Err = &InstanceExistsError{Existing: e}
				continue
			}
			chains.link(p)
			e := add(p)
			claimed[rec.Subject], latest[rec.Subject] = e, e.Index
			rows.Claims = append(rows.Claims, Claim{SOPInstanceUID: rec.Subject, Index: e.Index, FileSHA256: rec.FileSHA256})
			rows.identity(rec, m)
			rows.catalog(e, m)
		case incident(rec.Kind):
			k := incidentKey(p)
			if inc, ok := incidents[k]; ok {
				// Seen before: counted, not appended; answered with its entry.
				inc.Count++
				inc.LastSeen = m.SeenAt
				incidents[k], touched[k] = inc, true
				if e, ok := added[k]; ok {
					p.Entry = e // first seen earlier in this batch: not written yet
				} else if p.Entry, err = tx.Entry(ctx, inc.Index); err != nil {
					return nil, err
				}
				p.Value = inc.Count
				continue
			}
			chains.link(p)
			e := add(p)
			incidents[k], touched[k], added[k] = Incident{IncidentKey: k, Index: e.Index, Count: 1, LastSeen: m.SeenAt}, true, e
			p.Value = int64(1)
		case Event(rec.Kind):
			chains.link(p)
			add(p)
		default:
			p.Err = fmt.Errorf("%w: kind %q", ErrNotCustody, rec.Kind)
		}
	}
	for k := range touched {
		rows.Incidents = append(rows.Incidents, incidents[k])
	}
	rows.Patients = chains.added
	if len(rows.Claims)+len(rows.Identities)+len(rows.Incidents)+len(rows.Catalog)+len(rows.Patients) == 0 {
		return nil, nil
	}
	return func() error { return tx.PutRows(ctx, rows) }, nil
}

func (r *Rows) identity(rec ledger.Record, m Meta) {
	if m.Identity != nil {
		r.Identities = append(r.Identities, IdentityRow{FileSHA256: rec.FileSHA256, Identity: m.Identity})
	}
}

// catalog adds an attesting entry's search index row, under its index.
func (r *Rows) catalog(e ledger.Entry, m Meta) {
	if m.Catalog != nil {
		c := *m.Catalog
		c.LedgerIndex = e.Index
		r.Catalog = append(r.Catalog, c)
	}
}

func incidentKey(p *ledger.Pending) IncidentKey {
	return IncidentKey{Kind: p.Record.Kind, Subject: p.Record.Subject, Key: meta(p).IncidentKey}
}
