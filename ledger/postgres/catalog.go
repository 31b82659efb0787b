package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dicomseal/dicomseal/catalog"
	"github.com/dicomseal/dicomseal/ledger/internal/catalogsql"
)

// The search index (catalog.Store): an ordinary table in schema
// dicomseal, rewritten in place and emptied before a rebuild (the one table
// the service may DELETE from, migrate.go); nothing here touches the log.
// Its text columns are COLLATE "C", so LIKE is case-sensitive and UIDs
// sort byte by byte, as in SQLite.

var _ catalog.Store = (*DB)(nil)

// PutEntry indexes e unless its row shows a newer ledger version.
func (d *DB) PutEntry(ctx context.Context, e catalog.Entry) error {
	args, err := catalogRow(e)
	if err != nil {
		return err
	}
	if _, err := d.pool.Exec(ctx, catalogUpsert(), args...); err != nil {
		return fmt.Errorf("postgres catalog: put %s: %w", e.SOPInstanceUID, err)
	}
	return nil
}

// catalogUpsert writes a row unless the one there shows a later version:
// for PutEntry, and for the rows an append writes in its transaction
// (Tx.PutRows).
var catalogUpsert = sync.OnceValue(func() string { return catalogsql.Upsert(func(i int) string { return "$" + strconv.Itoa(i) }) })

func catalogRow(e catalog.Entry) ([]any, error) {
	if e.LedgerIndex > math.MaxInt64 {
		return nil, fmt.Errorf("postgres catalog: ledger index %d out of range", e.LedgerIndex)
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
		e.SeriesNumber, e.InstanceNumber, e.TransferSyntaxUID, int64(e.LedgerIndex), e.FileSHA256,
		attrs, at.UTC(), catalog.FoldName(e.PatientName)}, nil
}

func scanCatalogEntry(row pgx.Row, extra ...any) (catalog.Entry, error) {
	var e catalog.Entry
	var index int64
	var attrs string
	err := row.Scan(append([]any{&e.SOPInstanceUID, &e.StudyInstanceUID, &e.SeriesInstanceUID, &e.SOPClassUID, &e.PatientName,
		&e.PatientID, &e.AccessionNumber, &e.StudyDate, &e.StudyTime, &e.StudyDescription, &e.Modality,
		&e.SeriesNumber, &e.InstanceNumber, &e.TransferSyntaxUID, &index, &e.FileSHA256, &attrs, &e.IndexedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, catalog.ErrNotFound
	}
	if err != nil {
		return e, err
	}
	e.LedgerIndex = uint64(index)
	e.Attributes = []byte(attrs)
	e.IndexedAt = e.IndexedAt.UTC()
	return e, nil
}

// Entry returns the row of a SOP Instance UID.
func (d *DB) Entry(ctx context.Context, uid string) (catalog.Entry, error) {
	return scanCatalogEntry(d.pool.QueryRow(ctx, `SELECT `+catalogsql.Select("")+` FROM catalog WHERE sop_instance_uid = $1`, uid))
}

// Entries lists a study's instances, or one series' of it.
func (d *DB) Entries(ctx context.Context, study, series string) ([]catalog.Entry, error) {
	where, args := `study_instance_uid = $1`, []any{study}
	if series != "" {
		where, args = where+` AND series_instance_uid = $2`, append(args, series)
	}
	return d.catalogEntries(ctx, `SELECT `+catalogsql.SelectLean("")+` FROM catalog WHERE `+where+`
		ORDER BY series_number IS NULL, series_number, series_instance_uid, instance_number IS NULL, instance_number, sop_instance_uid`, args...)
}

func (d *DB) catalogEntries(ctx context.Context, q string, args ...any) ([]catalog.Entry, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Entry{}
	for rows.Next() {
		e, err := scanCatalogEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres catalog: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// catalogArgs numbers a statement's parameters as they are added.
type catalogArgs []any

func (a *catalogArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// catalogWhere is the condition of a query's matches, on table alias a,
// followed by its LIMIT and OFFSET.
func catalogWhere(q catalog.Query, a string) (where, paging string, args catalogArgs, err error) {
	conds := []string{"TRUE"}
	for _, m := range q.Matches {
		col, ok := catalogsql.ColumnOf[m.Key]
		if !ok {
			return "", "", nil, fmt.Errorf("postgres catalog: no column matches %v", m.Key)
		}
		col = a + "." + col
		switch {
		case len(m.Values) > 0 && (m.Key == catalog.SeriesNumber || m.Key == catalog.InstanceNumber):
			ns := make([]int64, len(m.Values))
			for i, v := range m.Values {
				if ns[i], err = strconv.ParseInt(v, 10, 64); err != nil {
					return "", "", nil, fmt.Errorf("postgres catalog: %v %q is not an integer", m.Key, v)
				}
			}
			conds = append(conds, col+` = ANY(`+args.add(ns)+`::bigint[])`)
		case len(m.Values) > 0:
			conds = append(conds, col+` = ANY(`+args.add(m.Values)+`::text[])`)
		case m.From != "" || m.To != "":
			// A bound compares with as many characters as it has: a time
			// "-10" takes 10:59 in; a date has all eight.
			conds = append(conds, col+` <> ''`)
			if m.From != "" {
				conds = append(conds, col+` >= `+args.add(m.From))
			}
			if m.To != "" {
				conds = append(conds, `left(`+col+`, `+args.add(len(m.To))+`::integer) <= `+args.add(m.To))
			}
		case m.Pattern == "":
		case m.Key == catalog.PatientName && q.Fuzzy:
			p := like(catalog.FoldName(m.Pattern))
			conds = append(conds, `(`+a+`.patient_name_folded LIKE `+args.add(p+"%")+` ESCAPE E'\\' OR `+
				a+`.patient_name_folded LIKE `+args.add("%^"+p+"%")+` ESCAPE E'\\')`)
		case catalog.HasWildcards(m.Pattern):
			conds = append(conds, col+` LIKE `+args.add(like(m.Pattern))+` ESCAPE E'\\'`)
		default:
			conds = append(conds, col+` = `+args.add(m.Pattern))
		}
	}
	var limit any // NULL: no limit
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}
	paging = `LIMIT ` + args.add(limit) + `::bigint OFFSET ` + args.add(int64(max(q.Offset, 0)))
	return strings.Join(conds, " AND "), paging, args, nil
}

// like turns a DICOM pattern into a LIKE pattern: '%', '_' and '\' are
// escaped to stand for themselves, then '*' becomes '%' and '?' '_'. The
// statements name the escape as E'\\', which reads as one backslash
// whatever standard_conforming_strings says.
var like = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`, `*`, `%`, `?`, `_`).Replace

// SearchInstances runs an instance-level query.
func (d *DB) SearchInstances(ctx context.Context, q catalog.Query) ([]catalog.Entry, error) {
	where, paging, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	return d.catalogEntries(ctx, `SELECT `+catalogsql.Select("c")+` FROM catalog c WHERE `+where+`
		ORDER BY c.instance_number IS NULL, c.instance_number, c.sop_instance_uid `+paging, args...)
}

// SearchSeries runs a series-level query: the series any of whose
// instances matches, counted over all of their instances.
func (d *DB) SearchSeries(ctx context.Context, q catalog.Query) ([]catalog.Series, error) {
	where, paging, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `
		WITH hit AS (SELECT DISTINCT c.study_instance_uid, c.series_instance_uid FROM catalog c WHERE `+where+`),
		rep AS (SELECT c.sop_instance_uid,
		               row_number() OVER (PARTITION BY c.study_instance_uid, c.series_instance_uid ORDER BY c.ledger_index DESC, c.sop_instance_uid DESC) AS rn,
		               count(*) OVER (PARTITION BY c.study_instance_uid, c.series_instance_uid) AS instances
		        FROM catalog c JOIN hit ON hit.study_instance_uid = c.study_instance_uid AND hit.series_instance_uid = c.series_instance_uid)
		SELECT `+catalogsql.Select("r")+`, rep.instances
		FROM rep JOIN catalog r ON r.sop_instance_uid = rep.sop_instance_uid
		WHERE rep.rn = 1
		ORDER BY r.series_number IS NULL, r.series_number, r.series_instance_uid, r.study_instance_uid
		`+paging, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Series{}
	for rows.Next() {
		var s catalog.Series
		var n int64
		if s.Representative, err = scanCatalogEntry(rows, &n); err != nil {
			return nil, fmt.Errorf("postgres catalog: %w", err)
		}
		s.Instances = int(n)
		out = append(out, s)
	}
	return out, rows.Err()
}

// SearchStudies runs a study-level query: the studies any of whose
// instances matches, counted over all of their instances.
func (d *DB) SearchStudies(ctx context.Context, q catalog.Query) ([]catalog.Study, error) {
	where, paging, args, err := catalogWhere(q, "c")
	if err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `
		WITH hit AS (SELECT c.study_instance_uid, max(c.study_date) AS d FROM catalog c WHERE `+where+`
		             GROUP BY c.study_instance_uid ORDER BY d DESC, c.study_instance_uid
		             `+paging+`),
		agg AS (SELECT c.study_instance_uid, count(*) AS instances, count(DISTINCT c.series_instance_uid) AS series,
		               array_agg(DISTINCT c.modality) FILTER (WHERE c.modality <> '') AS modalities
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
		ORDER BY hit.d DESC, hit.study_instance_uid`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres catalog: %w", err)
	}
	defer rows.Close()
	out := []catalog.Study{}
	for rows.Next() {
		var s catalog.Study
		var instances, series int64
		var modalities []string
		if s.Representative, err = scanCatalogEntry(rows, &instances, &series, &modalities); err != nil {
			return nil, fmt.Errorf("postgres catalog: %w", err)
		}
		s.Instances, s.Series = int(instances), int(series)
		s.Modalities = append([]string{}, modalities...)
		slices.Sort(s.Modalities) // byte by byte, whatever the session's collation
		out = append(out, s)
	}
	return out, rows.Err()
}

// Reset empties the index.
func (d *DB) Reset(ctx context.Context) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM catalog`); err != nil {
		return fmt.Errorf("postgres catalog: reset: %w", err)
	}
	return nil
}

// Count returns the number of indexed instances.
func (d *DB) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM catalog`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres catalog: count: %w", err)
	}
	return n, nil
}
