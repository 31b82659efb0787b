package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/ledger/internal/catalogsql"
)

// The search index (catalog.Store): an ordinary table in the custody
// database, rewritten in place and emptied before a rebuild; nothing here
// touches the log. Patterns are GLOBs, not LIKEs: SQLite's LIKE ignores
// the case of ASCII letters, and DICOM matching is case-sensitive.

var _ catalog.Store = (*DB)(nil)

// PutEntry indexes e unless its row shows a newer ledger version.
func (d *DB) PutEntry(ctx context.Context, e catalog.Entry) error {
	args, err := catalogRow(e)
	if err != nil {
		return err
	}
	if _, err := d.write.ExecContext(ctx, catalogUpsert(), args...); err != nil {
		return fmt.Errorf("sqlite catalog: put %s: %w", e.SOPInstanceUID, err)
	}
	return nil
}

// catalogUpsert writes a row unless the one there shows a later version:
// for PutEntry, and for the rows an append writes in its transaction
// (Tx.PutRows).
var catalogUpsert = sync.OnceValue(func() string { return catalogsql.Upsert(func(int) string { return "?" }) })

func catalogRow(e catalog.Entry) ([]any, error) {
	if e.LedgerIndex > math.MaxInt64 {
		return nil, fmt.Errorf("sqlite catalog: ledger index %d out of range", e.LedgerIndex)
	}
	at := e.IndexedAt
	if at.IsZero() {
		at = time.Now()
	}
	attrs := string(e.Attributes)
	if attrs == "" {
		attrs = "{}"
	}
	return []any{e.SOPInstanceUID, e.StudyInstanceUID, e.SeriesInstanceUID, e.SOPClassUID, e.PatientName,
		e.PatientID, e.AccessionNumber, e.StudyDate, e.StudyTime, e.StudyDescription, e.Modality,
		nullInt(e.SeriesNumber), nullInt(e.InstanceNumber), e.TransferSyntaxUID, int64(e.LedgerIndex), e.FileSHA256,
		attrs, at.UTC().Format(time.RFC3339Nano), catalog.FoldName(e.PatientName)}, nil
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func scanCatalogEntry(sc interface{ Scan(...any) error }, extra ...any) (catalog.Entry, error) {
	var e catalog.Entry
	var series, instance sql.NullInt64
	var index int64
	var attrs, at string
	err := sc.Scan(append([]any{&e.SOPInstanceUID, &e.StudyInstanceUID, &e.SeriesInstanceUID, &e.SOPClassUID, &e.PatientName,
		&e.PatientID, &e.AccessionNumber, &e.StudyDate, &e.StudyTime, &e.StudyDescription, &e.Modality,
		&series, &instance, &e.TransferSyntaxUID, &index, &e.FileSHA256, &attrs, &at}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return e, catalog.ErrNotFound
	}
	if err != nil {
		return e, err
	}
	e.SeriesNumber, e.InstanceNumber = intPtr(series), intPtr(instance)
	e.LedgerIndex = uint64(index)
	e.Attributes = json.RawMessage(attrs)
	e.IndexedAt, _ = time.Parse(time.RFC3339Nano, at)
	return e, nil
}

func intPtr(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	i := int(n.Int64)
	return &i
}

// Entry returns the row of a SOP Instance UID.
func (d *DB) Entry(ctx context.Context, uid string) (catalog.Entry, error) {
	q := `SELECT ` + catalogsql.Select("") + ` FROM catalog WHERE sop_instance_uid = ?`
	if st := d.readStmts.get(ctx, q); st != nil {
		return scanCatalogEntry(st.QueryRowContext(ctx, uid))
	}
	return scanCatalogEntry(d.read.QueryRowContext(ctx, q, uid))
}

// Entries lists a study's instances, or one series' of it.
func (d *DB) Entries(ctx context.Context, study, series string) ([]catalog.Entry, error) {
	where, args := `study_instance_uid = ?`, []any{study}
	if series != "" {
		where, args = where+` AND series_instance_uid = ?`, append(args, series)
	}
	return d.catalogEntries(ctx, `SELECT `+catalogsql.SelectLean("")+` FROM catalog WHERE `+where+`
		ORDER BY series_number IS NULL, series_number, series_instance_uid, instance_number IS NULL, instance_number, sop_instance_uid`, args...)
}

func (d *DB) catalogEntries(ctx context.Context, q string, args ...any) ([]catalog.Entry, error) {
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Entry{}
	for rows.Next() {
		e, err := scanCatalogEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite catalog: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// catalogWhere is the condition of a query's matches, on table alias a.
func catalogWhere(q catalog.Query, a string) (string, []any, error) {
	conds := []string{"1"}
	var args []any
	for _, m := range q.Matches {
		col, ok := catalogsql.ColumnOf[m.Key]
		if !ok {
			return "", nil, fmt.Errorf("sqlite catalog: no column matches %v", m.Key)
		}
		col = a + "." + col
		switch {
		case len(m.Values) > 0:
			conds = append(conds, col+` IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(m.Values)), ", ")+`)`)
			for _, v := range m.Values {
				if m.Key == catalog.SeriesNumber || m.Key == catalog.InstanceNumber {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return "", nil, fmt.Errorf("sqlite catalog: %v %q is not an integer", m.Key, v)
					}
					args = append(args, n)
					continue
				}
				args = append(args, v)
			}
		case m.From != "" || m.To != "":
			// A bound compares with as many characters as it has: a time
			// "-10" takes 10:59 in; a date has all eight.
			conds = append(conds, col+` <> ''`)
			if m.From != "" {
				conds, args = append(conds, col+` >= ?`), append(args, m.From)
			}
			if m.To != "" {
				conds, args = append(conds, `substr(`+col+`, 1, ?) <= ?`), append(args, len(m.To), m.To)
			}
		case m.Pattern == "":
		case m.Key == catalog.PatientName && q.Fuzzy:
			p := glob(catalog.FoldName(m.Pattern))
			conds = append(conds, `(`+a+`.patient_name_folded GLOB ? OR `+a+`.patient_name_folded GLOB ?)`)
			args = append(args, p+"*", "*^"+p+"*")
		case catalog.HasWildcards(m.Pattern):
			conds, args = append(conds, col+` GLOB ?`), append(args, glob(m.Pattern))
		default:
			conds, args = append(conds, col+` = ?`), append(args, m.Pattern)
		}
	}
	return strings.Join(conds, " AND "), args, nil
}

// glob turns a DICOM pattern into a GLOB: '*' and '?' are the same, and
// '[', GLOB's one other metacharacter, becomes a class of itself.
func glob(p string) string { return strings.ReplaceAll(p, "[", "[[]") }

// page is the LIMIT and OFFSET of a query (LIMIT -1: none).
func page(q catalog.Query) []any {
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	return []any{limit, max(q.Offset, 0)}
}

// SearchInstances runs an instance-level query.
func (d *DB) SearchInstances(ctx context.Context, q catalog.Query) ([]catalog.Entry, error) {
	where, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	return d.catalogEntries(ctx, `SELECT `+catalogsql.Select("c")+` FROM catalog c WHERE `+where+`
		ORDER BY c.instance_number IS NULL, c.instance_number, c.sop_instance_uid LIMIT ? OFFSET ?`, append(args, page(q)...)...)
}

// SearchSeries runs a series-level query: the series any of whose
// instances matches, counted over all of their instances.
func (d *DB) SearchSeries(ctx context.Context, q catalog.Query) ([]catalog.Series, error) {
	where, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	rows, err := d.read.QueryContext(ctx, `
		WITH hit AS (SELECT DISTINCT c.study_instance_uid, c.series_instance_uid FROM catalog c WHERE `+where+`),
		rep AS (SELECT c.sop_instance_uid,
		               row_number() OVER (PARTITION BY c.study_instance_uid, c.series_instance_uid ORDER BY c.ledger_index DESC, c.sop_instance_uid DESC) AS rn,
		               count(*) OVER (PARTITION BY c.study_instance_uid, c.series_instance_uid) AS instances
		        FROM catalog c JOIN hit ON hit.study_instance_uid = c.study_instance_uid AND hit.series_instance_uid = c.series_instance_uid)
		SELECT `+catalogsql.Select("r")+`, rep.instances
		FROM rep JOIN catalog r ON r.sop_instance_uid = rep.sop_instance_uid
		WHERE rep.rn = 1
		ORDER BY r.series_number IS NULL, r.series_number, r.series_instance_uid, r.study_instance_uid
		LIMIT ? OFFSET ?`, append(args, page(q)...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Series{}
	for rows.Next() {
		var s catalog.Series
		if s.Representative, err = scanCatalogEntry(rows, &s.Instances); err != nil {
			return nil, fmt.Errorf("sqlite catalog: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SearchStudies runs a study-level query: the studies any of whose
// instances matches, counted over all of their instances.
func (d *DB) SearchStudies(ctx context.Context, q catalog.Query) ([]catalog.Study, error) {
	where, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	rows, err := d.read.QueryContext(ctx, `
		WITH hit AS (SELECT c.study_instance_uid, max(c.study_date) AS d FROM catalog c WHERE `+where+`
		             GROUP BY c.study_instance_uid ORDER BY d DESC, c.study_instance_uid
		             LIMIT ? OFFSET ?),
		agg AS (SELECT c.study_instance_uid, count(*) AS instances, count(DISTINCT c.series_instance_uid) AS series,
		               json_group_array(DISTINCT c.modality) AS modalities
		        FROM catalog c JOIN hit ON hit.study_instance_uid = c.study_instance_uid
		        GROUP BY c.study_instance_uid),
		rep AS (SELECT c.sop_instance_uid, c.study_instance_uid,
		               row_number() OVER (PARTITION BY c.study_instance_uid ORDER BY c.ledger_index DESC, c.sop_instance_uid DESC) AS rn
		        FROM catalog c JOIN hit ON hit.study_instance_uid = c.study_instance_uid)
		SELECT `+catalogsql.Select("r")+`, agg.instances, agg.series, agg.modalities
		FROM rep JOIN catalog r ON r.sop_instance_uid = rep.sop_instance_uid
		         JOIN agg ON agg.study_instance_uid = rep.study_instance_uid
		         JOIN hit ON hit.study_instance_uid = rep.study_instance_uid
		WHERE rep.rn = 1
		ORDER BY hit.d DESC, hit.study_instance_uid`, append(args, page(q)...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Study{}
	for rows.Next() {
		var s catalog.Study
		var modalities string
		if s.Representative, err = scanCatalogEntry(rows, &s.Instances, &s.Series, &modalities); err != nil {
			return nil, fmt.Errorf("sqlite catalog: %w", err)
		}
		var all []string
		if err := json.Unmarshal([]byte(modalities), &all); err != nil {
			return nil, fmt.Errorf("sqlite catalog: the modalities of study %s: %w", s.Representative.StudyInstanceUID, err)
		}
		s.Modalities = sortedModalities(all)
		out = append(out, s)
	}
	return out, rows.Err()
}

// sortedModalities drops the empty modality and sorts (byte by byte).
func sortedModalities(all []string) []string {
	out := []string{}
	for _, m := range all {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Reset empties the index.
func (d *DB) Reset(ctx context.Context) error {
	if _, err := d.write.ExecContext(ctx, `DELETE FROM catalog`); err != nil {
		return fmt.Errorf("sqlite catalog: reset: %w", err)
	}
	return nil
}

// Count returns the number of indexed instances.
func (d *DB) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := d.read.QueryRowContext(ctx, `SELECT count(*) FROM catalog`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite catalog: count: %w", err)
	}
	return n, nil
}
