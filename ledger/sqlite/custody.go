package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
)

// The custody index's tables: claims, identity rows and incident counters,
// written in the same transaction as the entries they index.

var _ custody.Tx = (*Tx)(nil)

// InstanceEntry returns the latest entry attesting bytes of uid (see custody.Attests).
func (t *Tx) InstanceEntry(ctx context.Context, uid string) (ledger.Entry, error) {
	return t.entry(ctx, `subject = ? AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx DESC LIMIT 1`, uid)
}

func (t *Tx) LatestIndex(ctx context.Context, uid string) (uint64, error) {
	var idx int64
	err := t.queryRow(ctx, `SELECT idx FROM entries WHERE subject = ? AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx DESC LIMIT 1`, uid).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ledger.ErrNotFound
	}
	return uint64(idx), err
}

func (t *Tx) Identity(ctx context.Context, sha string) (*custody.Identity, error) {
	var id custody.Identity
	err := t.queryRow(ctx, `SELECT salt, patient_name, patient_id, patient_birth_date, correction_reason FROM identity WHERE file_sha256 = ?`, sha).
		Scan(&id.Salt, &id.PatientName, &id.PatientID, &id.PatientBirthDate, &id.CorrectionReason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.ErrNotFound
	}
	return &id, err
}

func (t *Tx) IngestBySHA256(ctx context.Context, sha string) (ledger.Entry, error) {
	return t.entry(ctx, `file_sha256 = ? AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx LIMIT 1`, sha)
}

// InstanceEntries reads the claims: the ingest entry that claimed each
// UID, never a later revision of it.
func (t *Tx) InstanceEntries(ctx context.Context, uids []string) (map[string]ledger.Entry, error) {
	out := make(map[string]ledger.Entry, len(uids))
	for _, uid := range uids {
		e, err := scanEntry(t.queryRow(ctx, `SELECT e.idx, e.kind, e.subject, e.file_sha256, e.body, e.leaf_hash
			FROM instances i JOIN entries e ON e.idx = i.entry_idx WHERE i.sop_instance_uid = ?`, uid))
		switch {
		case err == nil:
			out[uid] = e
		case !errors.Is(err, ledger.ErrNotFound):
			return nil, err
		}
	}
	return out, nil
}

func (t *Tx) Incidents(ctx context.Context, keys []custody.IncidentKey) (map[custody.IncidentKey]custody.Incident, error) {
	out := make(map[custody.IncidentKey]custody.Incident, len(keys))
	for _, k := range keys {
		var idx, count int64
		var seen string
		err := t.tx.QueryRowContext(ctx,
			`SELECT entry_idx, count, last_seen FROM incidents WHERE kind = ? AND sop_instance_uid = ? AND incident_key = ?`,
			string(k.Kind), k.Subject, k.Key).Scan(&idx, &count, &seen)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, err
		}
		last, _ := time.Parse(time.RFC3339Nano, seen)
		out[k] = custody.Incident{IncidentKey: k, Index: uint64(idx), Count: count, LastSeen: last}
	}
	return out, nil
}

// PutRows writes a batch's claims, identity rows, incident updates and
// catalog rows.
func (t *Tx) PutRows(ctx context.Context, rows custody.Rows) error {
	if err := execEach(ctx, t.tx, `INSERT INTO instances (sop_instance_uid, entry_idx, file_sha256) VALUES (?, ?, ?)`,
		len(rows.Claims), func(i int) []any {
			c := rows.Claims[i]
			return []any{c.SOPInstanceUID, int64(c.Index), c.FileSHA256}
		}); err != nil {
		return err
	}
	if err := execEach(ctx, t.tx, `INSERT OR REPLACE INTO identity (file_sha256, salt, patient_name, patient_id, patient_birth_date, correction_reason) VALUES (?, ?, ?, ?, ?, ?)`,
		len(rows.Identities), func(i int) []any {
			id := rows.Identities[i]
			return []any{id.FileSHA256, id.Salt, id.PatientName, id.PatientID, id.PatientBirthDate, id.CorrectionReason}
		}); err != nil {
		return err
	}
	if err := execEach(ctx, t.tx, `INSERT INTO incidents (kind, sop_instance_uid, incident_key, entry_idx, count, last_seen) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, sop_instance_uid, incident_key) DO UPDATE SET count = excluded.count, last_seen = excluded.last_seen`,
		len(rows.Incidents), func(i int) []any {
			in := rows.Incidents[i]
			return []any{string(in.Kind), in.Subject, in.Key, int64(in.Index), in.Count, in.LastSeen.UTC().Format(time.RFC3339Nano)}
		}); err != nil {
		return err
	}
	if err := execEach(ctx, t.tx, `INSERT INTO patients (patient_id, salt) VALUES (?, ?)`, len(rows.Patients), func(i int) []any {
		return []any{rows.Patients[i].PatientID, rows.Patients[i].Salt}
	}); err != nil {
		return err
	}
	for _, e := range rows.Catalog {
		args, err := catalogRow(e)
		if err != nil {
			return err
		}
		if _, err := t.tx.ExecContext(ctx, catalogUpsert(), args...); err != nil {
			return fmt.Errorf("sqlite catalog: put %s: %w", e.SOPInstanceUID, err)
		}
	}
	return nil
}

// InstanceSubjects reads the study and patient of each instance from the
// search index, a chunk of UIDs per query.
func (t *Tx) InstanceSubjects(ctx context.Context, uids []string) (map[string]custody.Subjects, error) {
	out := make(map[string]custody.Subjects, len(uids))
	type row struct{ uid, study, patient string }
	scan := func(sc interface{ Scan(...any) error }) (r row, err error) {
		err = sc.Scan(&r.uid, &r.study, &r.patient)
		return
	}
	for c := range chunks(uids, 500) {
		err := each(ctx, t.tx, scan, func(r row) error {
			out[r.uid] = custody.Subjects{StudyInstanceUID: r.study, PatientID: r.patient}
			return nil
		}, `SELECT sop_instance_uid, study_instance_uid, patient_id FROM catalog WHERE sop_instance_uid IN (?`+strings.Repeat(",?", len(c)-1)+`)`, anys(c)...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PatientSalts reads the salts of patients, a chunk of IDs per query.
func (t *Tx) PatientSalts(ctx context.Context, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	type row struct {
		id   string
		salt []byte
	}
	scan := func(sc interface{ Scan(...any) error }) (r row, err error) { err = sc.Scan(&r.id, &r.salt); return }
	for c := range chunks(ids, 500) {
		err := each(ctx, t.tx, scan, func(r row) error { out[r.id] = r.salt; return nil },
			`SELECT patient_id, salt FROM patients WHERE patient_id IN (?`+strings.Repeat(",?", len(c)-1)+`)`, anys(c)...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// chunks yields s in pieces of at most n: SQLite bounds a statement's parameters.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			c := s[:min(n, len(s))]
			s = s[len(c):]
			if !yield(c) {
				return
			}
		}
	}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
