package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
)

// The custody index's tables: claims, identity rows and incident counters,
// written in the same transaction as the entries they index.

var _ custody.Tx = (*Tx)(nil)

// InstanceEntry returns the latest entry attesting bytes of uid (see custody.Attests).
func (t *Tx) InstanceEntry(ctx context.Context, uid string) (ledger.Entry, error) {
	return t.entry(ctx, `subject = $1 AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx DESC LIMIT 1`, uid)
}

func (t *Tx) LatestIndex(ctx context.Context, uid string) (uint64, error) {
	var idx int64
	err := t.queryRow(ctx, `SELECT idx FROM entries WHERE subject = $1 AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx DESC LIMIT 1`, uid).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ledger.ErrNotFound
	}
	return uint64(idx), err
}

func (t *Tx) Identity(ctx context.Context, sha string) (*custody.Identity, error) {
	var id custody.Identity
	err := t.queryRow(ctx, `SELECT salt, patient_name, patient_id, patient_birth_date, correction_reason FROM identity WHERE file_sha256 = $1`, sha).
		Scan(&id.Salt, &id.PatientName, &id.PatientID, &id.PatientBirthDate, &id.CorrectionReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.ErrNotFound
	}
	return &id, err
}

func (t *Tx) IngestBySHA256(ctx context.Context, sha string) (ledger.Entry, error) {
	return t.entry(ctx, `file_sha256 = $1 AND kind IN ('ingest', 'revision', 'identity-correction') ORDER BY idx LIMIT 1`, sha)
}

func (t *Tx) InstanceEntries(ctx context.Context, uids []string) (map[string]ledger.Entry, error) {
	out := make(map[string]ledger.Entry, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := t.query(ctx,
		`SELECT e.idx, e.kind, e.subject, e.file_sha256, e.body, e.leaf_hash
		 FROM instances i JOIN entries e ON e.idx = i.entry_idx WHERE i.sop_instance_uid = ANY($1)`, uids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out[e.Subject] = e
	}
	return out, rows.Err()
}

func (t *Tx) Incidents(ctx context.Context, keys []custody.IncidentKey) (map[custody.IncidentKey]custody.Incident, error) {
	out := make(map[custody.IncidentKey]custody.Incident, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	kinds, uids, ks := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		kinds[i], uids[i], ks[i] = string(k.Kind), k.Subject, k.Key
	}
	rows, err := t.query(ctx,
		`SELECT i.kind, i.sop_instance_uid, i.incident_key, i.entry_idx, i.count, i.last_seen
		 FROM incidents i JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(kind, uid, key)
		   ON i.kind = k.kind AND i.sop_instance_uid = k.uid AND i.incident_key = k.key`, kinds, uids, ks)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var in custody.Incident
		var kind string
		var idx int64
		if err := rows.Scan(&kind, &in.Subject, &in.Key, &idx, &in.Count, &in.LastSeen); err != nil {
			return nil, err
		}
		in.Kind, in.Index = ledger.Kind(kind), uint64(idx)
		out[in.IncidentKey] = in
	}
	return out, rows.Err()
}

// PutRows queues a batch's claims, identity rows, incident updates and
// catalog rows.
func (t *Tx) PutRows(ctx context.Context, rows custody.Rows) error {
	for _, c := range rows.Claims {
		t.queue(`INSERT INTO instances (sop_instance_uid, entry_idx, file_sha256) VALUES ($1, $2, $3)`,
			c.SOPInstanceUID, int64(c.Index), c.FileSHA256)
	}
	for _, id := range rows.Identities {
		t.queue(`INSERT INTO identity (file_sha256, salt, patient_name, patient_id, patient_birth_date, correction_reason) VALUES ($1, $2, $3, $4, $5, $6)
		         ON CONFLICT (file_sha256) DO UPDATE SET salt = excluded.salt, patient_name = excluded.patient_name,
		           patient_id = excluded.patient_id, patient_birth_date = excluded.patient_birth_date,
		           correction_reason = excluded.correction_reason`,
			id.FileSHA256, id.Salt, id.PatientName, id.PatientID, id.PatientBirthDate, id.CorrectionReason)
	}
	for _, in := range rows.Incidents {
		t.queue(`INSERT INTO incidents (kind, sop_instance_uid, incident_key, entry_idx, count, last_seen) VALUES ($1, $2, $3, $4, $5, $6)
		         ON CONFLICT (kind, sop_instance_uid, incident_key) DO UPDATE SET count = excluded.count, last_seen = excluded.last_seen`,
			string(in.Kind), in.Subject, in.Key, int64(in.Index), in.Count, in.LastSeen.UTC())
	}
	for _, pt := range rows.Patients {
		t.queue(`INSERT INTO patients (patient_id, salt) VALUES ($1, $2)`, pt.PatientID, pt.Salt)
	}
	for _, e := range rows.Catalog {
		args, err := catalogRow(e)
		if err != nil {
			return err
		}
		t.queue(catalogUpsert(), args...)
	}
	return nil
}

// InstanceSubjects reads the study and patient of each instance from the
// search index, in one query.
func (t *Tx) InstanceSubjects(ctx context.Context, uids []string) (map[string]custody.Subjects, error) {
	out := make(map[string]custody.Subjects, len(uids))
	type row struct{ uid, study, patient string }
	scan := func(r pgx.Row) (v row, err error) { err = r.Scan(&v.uid, &v.study, &v.patient); return }
	err := each(ctx, t, scan, func(r row) error {
		out[r.uid] = custody.Subjects{StudyInstanceUID: r.study, PatientID: r.patient}
		return nil
	}, `SELECT sop_instance_uid, study_instance_uid, patient_id FROM catalog WHERE sop_instance_uid = ANY($1)`, uids)
	return out, err
}

// PatientSalts reads the salts of patients, in one query.
func (t *Tx) PatientSalts(ctx context.Context, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	type row struct {
		id   string
		salt []byte
	}
	scan := func(r pgx.Row) (v row, err error) { err = r.Scan(&v.id, &v.salt); return }
	err := each(ctx, t, scan, func(r row) error { out[r.id] = r.salt; return nil },
		`SELECT patient_id, salt FROM patients WHERE patient_id = ANY($1)`, ids)
	return out, err
}
