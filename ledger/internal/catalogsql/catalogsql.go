// Package catalogsql is what the two backends' catalog tables share: the
// columns, in the order both read and write them, and the column each
// matching key compares (the schema itself is in migrations).
package catalogsql

import (
	"strings"

	"github.com/dicomseal/dicomseal/catalog"
)

// Columns are the catalog table's columns, in scan order.
var Columns = []string{
	"sop_instance_uid", "study_instance_uid", "series_instance_uid", "sop_class_uid", "patient_name",
	"patient_id", "accession_number", "study_date", "study_time", "study_description", "modality",
	"series_number", "instance_number", "transfer_syntax_uid", "ledger_index", "file_sha256", "attributes", "indexed_at",
}

// Select is the column list, of table alias a ("" for none).
func Select(a string) string {
	if a == "" {
		return strings.Join(Columns, ", ")
	}
	return a + "." + strings.Join(Columns, ", "+a+".")
}

// ColumnOf is the column a key matches.
var ColumnOf = map[catalog.Key]string{
	catalog.PatientName:       "patient_name",
	catalog.PatientID:         "patient_id",
	catalog.AccessionNumber:   "accession_number",
	catalog.StudyDate:         "study_date",
	catalog.StudyTime:         "study_time",
	catalog.StudyDescription:  "study_description",
	catalog.ModalitiesInStudy: "modality",
	catalog.StudyInstanceUID:  "study_instance_uid",
	catalog.Modality:          "modality",
	catalog.SeriesInstanceUID: "series_instance_uid",
	catalog.SeriesNumber:      "series_number",
	catalog.SOPInstanceUID:    "sop_instance_uid",
	catalog.SOPClassUID:       "sop_class_uid",
	catalog.InstanceNumber:    "instance_number",
}

// Upsert is the statement that writes a row unless the one there shows a
// later version (INSERT … ON CONFLICT, which both backends speak), with
// placeholder(i) the dialect's i-th parameter (from 1): the Columns, then
// patient_name_folded.
func Upsert(placeholder func(i int) string) string {
	set := make([]string, 0, len(Columns))
	params := make([]string, 0, len(Columns)+1)
	for i, c := range Columns {
		params = append(params, placeholder(i+1))
		if i > 0 {
			set = append(set, c+" = excluded."+c)
		}
	}
	params = append(params, placeholder(len(Columns)+1))
	set = append(set, "patient_name_folded = excluded.patient_name_folded")
	return `INSERT INTO catalog (` + Select("") + `, patient_name_folded)
		VALUES (` + strings.Join(params, ", ") + `)
		ON CONFLICT (sop_instance_uid) DO UPDATE SET ` + strings.Join(set, ", ") + `
		WHERE excluded.ledger_index >= catalog.ledger_index`
}

// SelectLean is Select with the attributes left out (an empty object in
// their place): for listings that need where to look, not what to show.
func SelectLean(a string) string {
	cols := make([]string, len(Columns))
	for i, c := range Columns {
		switch {
		case c == "attributes":
			cols[i] = "'{}' AS attributes"
		case a != "":
			cols[i] = a + "." + c
		default:
			cols[i] = c
		}
	}
	return strings.Join(cols, ", ")
}
