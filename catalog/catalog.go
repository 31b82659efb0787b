// Package catalog owns the DICOMweb search index (QIDO-RS): which
// instances are stored, under which study and series, with the keys a
// search matches and the attributes a result shows. It is an ordinary,
// correctable table beside the log, never in it: names and IDs are patient
// data, and an identity correction rewrites them in place. It proves
// nothing (the log does), and can be emptied and rebuilt from the stored
// instances. The package holds the domain types, the query parser and the
// rendering of results; the SQL is the backends' (ledger/sqlite,
// ledger/postgres), held to one contract by catalogtest.
//
// # Matching
//
// A query (ParseQuery) is a conjunction of matches, one per key:
//
//   - UIDs (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
//     SOPClassUID) match exactly, any of a "\"-separated list.
//   - StudyDate matches a DA date or an inclusive range ("A-B", "A-",
//     "-B"); an instance without a study date matches no range. StudyTime
//     is the same for TM times; a bound compares with as many digits as it
//     gives, so "-10" takes 10:59 in. Date and time are matched apart (no
//     combined date-time range).
//   - SeriesNumber and InstanceNumber match an integer exactly.
//   - Modality and ModalitiesInStudy match a code, any of a "\"-separated
//     list, or a pattern.
//   - Other strings (PatientID, AccessionNumber, StudyDescription,
//     PatientName) match exactly or as a pattern: '*' matches any run of
//     characters, '?' exactly one; every other character, '%', '_', '\'
//     and '[' included, matches only itself. Matching is case-sensitive.
//   - PatientName (the PN's alphabetic form, "Family^Given^Middle") with
//     fuzzymatching=true is matched case-insensitively (FoldName), and the
//     value, pattern or not, may match the start of any name component:
//     "john" matches "Doe^John", "doe^j" matches too, "ohn" does not.
//     Fuzzy matching changes no other key.
//   - An empty value is a universal match: the key is ignored.
//
// A series matches when any of its instances matches every key; a study
// when any of its instances does, so ModalitiesInStudy=SR finds a CT study
// with one structured report. A study's counts and modalities, and the
// representative whose attributes a result shows (the instance indexed
// last, by ledger index), are over all of its instances, not only the
// matching ones; so are a series'. Results come in a stable order:
// studies by study date, newest first (the latest date among their
// matching instances: a study is paged before its instances are counted),
// then Study Instance UID; series by
// series number (none last), then Series Instance UID; instances by
// instance number (none last), then SOP Instance UID (UIDs compared byte
// by byte). Limit and offset page through that order.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Level is what a search returns.
type Level int

// Levels.
const (
	StudyLevel Level = iota
	SeriesLevel
	InstanceLevel
)

func (l Level) String() string {
	switch l {
	case StudyLevel:
		return "study"
	case SeriesLevel:
		return "series"
	case InstanceLevel:
		return "instance"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// Entry is one indexed instance: matching keys and its attributes.
type Entry struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID string

	// PatientName is the PN's alphabetic form, e.g. "Doe^John".
	PatientName, PatientID, AccessionNumber string
	// StudyDate is DA text (YYYYMMDD) or "": ranges compare it as text.
	StudyDate, StudyTime, StudyDescription, Modality string

	SeriesNumber, InstanceNumber *int // nil: none, or not an integer

	TransferSyntaxUID string
	// LedgerIndex is the ledger version the row shows: a row of an older
	// version never replaces a newer one.
	LedgerIndex uint64
	FileSHA256  string
	// Attributes is a DICOM JSON object (PS3.18 F.2) of the instance's
	// top-level attributes, bulk values left out.
	Attributes json.RawMessage
	// IndexedAt is when the row was written (the indexer's clock; a zero
	// time is stored as the backend's now).
	IndexedAt time.Time
}

// ErrNotIndexable: an instance without a Study or Series Instance UID has
// no place in DICOMweb's hierarchy.
var ErrNotIndexable = errors.New("catalog: not indexable")

// ErrNotFound: no instance of that SOP Instance UID is indexed.
var ErrNotFound = errors.New("catalog: not found")

// Store is the index as a backend keeps it. Every method returns the
// backend's errors as they are; only Entry has one of its own.
type Store interface {
	// PutEntry indexes e, replacing the row of its SOP Instance UID unless
	// that row has a greater LedgerIndex (an older version re-stored never
	// replaces a newer one; the same version replaces itself).
	PutEntry(ctx context.Context, e Entry) error
	// Entry returns the row of a SOP Instance UID; ErrNotFound if none.
	Entry(ctx context.Context, sopInstanceUID string) (Entry, error)
	// Entries lists a study's instances (series "": all its series; else
	// that series) ordered by series number, series UID, instance number,
	// SOP UID, their Attributes left out ("{}": a retrieval needs where to
	// look, not what to show, and a study may have thousands). An empty
	// list, and no error, when there are none.
	Entries(ctx context.Context, study, series string) ([]Entry, error)
	// SearchStudies, SearchSeries and SearchInstances run a query of their
	// level (see the package doc for what matches, in which order).
	SearchStudies(ctx context.Context, q Query) ([]Study, error)
	SearchSeries(ctx context.Context, q Query) ([]Series, error)
	SearchInstances(ctx context.Context, q Query) ([]Entry, error)
	// Reset empties the index (before a rebuild).
	Reset(ctx context.Context) error
	// Count returns the number of indexed instances.
	Count(ctx context.Context) (int64, error)
}

// Study is a study found by a search.
type Study struct {
	// Representative is the study's instance with the greatest LedgerIndex:
	// its attributes are the study's (the latest correction shows).
	Representative Entry
	// Series and Instances count all of the study's series and instances.
	Series, Instances int
	// Modalities are the distinct modalities of all its instances, sorted.
	Modalities []string
}

// Series is a series found by a search.
type Series struct {
	// Representative is the series' instance with the greatest LedgerIndex.
	Representative Entry
	// Instances counts all of the series' instances.
	Instances int
}

// FoldName is the form of a patient name fuzzy matching compares: lower
// case, by Unicode's rules. Backends store it beside the name, computed
// here, so that they fold alike (SQLite's lower() knows only ASCII).
func FoldName(pn string) string { return strings.ToLower(pn) }

// HasWildcards tells whether a pattern has '*' or '?': without, a match is
// an exact comparison.
func HasWildcards(pattern string) bool { return strings.ContainsAny(pattern, "*?") }
