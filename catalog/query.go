package catalog

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Limits of a page of results: a query without limit gets DefaultLimit,
// and a larger limit than MaxLimit is lowered to it (a client pages on with
// offset; PS3.18 lets a server return fewer than asked).
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query is a search of one level (see the package doc for what matches).
type Query struct {
	Level   Level
	Matches []Match
	// Limit is the most results returned (≤ 0: no limit; ParseQuery always
	// sets one); Offset how many to skip first.
	Limit, Offset int
	// Fuzzy is fuzzymatching=true: PatientName matches case-insensitively,
	// at the start of any name component.
	Fuzzy bool
	// IncludeAll (includefield=all) shows every stored attribute of a
	// result; otherwise Include adds these tags to the level's defaults.
	IncludeAll bool
	Include    []uint32
}

// Match is one key's condition. One of Values, a range (From, To) or
// Pattern is set; a Match with none of them (an empty Pattern) matches
// everything, as an empty value does in DICOM.
type Match struct {
	Key Key
	// Values are exact values, any of which matches (a UID list).
	Values []string
	// Pattern is an exact value, or one with wildcards: '*' any run of
	// characters, '?' exactly one.
	Pattern string
	// From and To bound a date or time range, inclusive; either may be "".
	From, To string
}

// Key is a matching key.
type Key int

// Matching keys.
const (
	PatientName Key = iota + 1
	PatientID
	AccessionNumber
	StudyDate
	StudyTime
	StudyDescription
	ModalitiesInStudy
	StudyInstanceUID
	Modality
	SeriesInstanceUID
	SeriesNumber
	SOPInstanceUID
	SOPClassUID
	InstanceNumber
)

// MaxListValues bounds a matching key's list of values (UIDs, codes,
// numbers): a longer list is refused, not sent to the database.
const MaxListValues = 1000

type kind int

const (
	kindString kind = iota // exact or a pattern
	kindUID                // exact, a list
	kindDate               // DA, a range
	kindTime               // TM, a range
	kindCode               // CS: a list, or a pattern
	kindNumber             // IS: exact, a list
)

type keyInfo struct {
	keyword string
	tag     uint32
	kind    kind
	// level is the key's own: it applies to searches of that level and
	// below (a study key narrows a series search too), except onlyAt.
	level  Level
	onlyAt bool
}

var keys = map[Key]keyInfo{
	PatientName:       {"PatientName", tagPatientName, kindString, StudyLevel, false},
	PatientID:         {"PatientID", tagPatientID, kindString, StudyLevel, false},
	AccessionNumber:   {"AccessionNumber", tagAccessionNumber, kindString, StudyLevel, false},
	StudyDate:         {"StudyDate", tagStudyDate, kindDate, StudyLevel, false},
	StudyTime:         {"StudyTime", tagStudyTime, kindTime, StudyLevel, false},
	StudyDescription:  {"StudyDescription", tagStudyDescription, kindString, StudyLevel, false},
	ModalitiesInStudy: {"ModalitiesInStudy", tagModalitiesInStudy, kindCode, StudyLevel, true},
	StudyInstanceUID:  {"StudyInstanceUID", tagStudyInstanceUID, kindUID, StudyLevel, false},
	Modality:          {"Modality", tagModality, kindCode, SeriesLevel, false},
	SeriesInstanceUID: {"SeriesInstanceUID", tagSeriesInstanceUID, kindUID, SeriesLevel, false},
	SeriesNumber:      {"SeriesNumber", tagSeriesNumber, kindNumber, SeriesLevel, false},
	SOPInstanceUID:    {"SOPInstanceUID", tagSOPInstanceUID, kindUID, InstanceLevel, false},
	SOPClassUID:       {"SOPClassUID", tagSOPClassUID, kindUID, InstanceLevel, false},
	InstanceNumber:    {"InstanceNumber", tagInstanceNumber, kindNumber, InstanceLevel, false},
}

// Keyword is the key's DICOM keyword, e.g. "PatientName".
func (k Key) Keyword() string { return keys[k].keyword }

// Tag is the key's attribute tag, e.g. 0x00100010.
func (k Key) Tag() uint32 { return keys[k].tag }

func (k Key) String() string {
	if info, ok := keys[k]; ok {
		return info.keyword
	}
	return "Key(" + strconv.Itoa(int(k)) + ")"
}

// AppliesTo tells whether k may narrow a search of level l.
func (k Key) AppliesTo(l Level) bool {
	info, ok := keys[k]
	return ok && (l == info.level || !info.onlyAt && l > info.level)
}

// Keys lists the matching keys of a level, in a fixed order.
func Keys(l Level) []Key {
	var out []Key
	for k := PatientName; k <= InstanceNumber; k++ {
		if k.AppliesTo(l) {
			out = append(out, k)
		}
	}
	return out
}

// QueryError is a query parameter ParseQuery refuses.
type QueryError struct {
	Param  string // the parameter, as given
	Reason string
	// Supported lists the level's matching keys when Param is not one.
	Supported []string
}

func (e *QueryError) Error() string {
	s := fmt.Sprintf("query parameter %q: %s", e.Param, e.Reason)
	if len(e.Supported) > 0 {
		s += "; the matching keys supported are " + strings.Join(e.Supported, ", ") +
			" (by keyword or tag), with limit, offset, fuzzymatching and includefield"
	}
	return s
}

// ParseQuery reads a QIDO-RS query string for a search of level: matching
// keys by keyword (PatientName) or tag (00100010), UIDs, codes and numbers
// as "\"-separated lists (or the parameter repeated), StudyDate and
// StudyTime as a value or a range ("A-B", "A-", "-B"), wildcards '*' and
// '?' in strings and codes (never in UIDs, dates, times or numbers); an
// empty value is a universal match and is ignored. Also:
// fuzzymatching=true|false, limit (DefaultLimit, at most MaxLimit), offset,
// and includefield (comma-separated or repeated, keywords or tags, or
// "all"). A key unknown, or not of the level, is refused naming the
// supported ones; so is a malformed value. Errors are *QueryError.
func ParseQuery(level Level, v url.Values) (Query, error) {
	q := Query{Level: level, Limit: DefaultLimit}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // the same error for the same query
	given := map[Key]string{}
	values := map[Key][]string{}
	var order []Key
	for _, name := range names {
		vals := v[name]
		switch strings.ToLower(name) {
		case "limit":
			n, err := single(name, vals, 1)
			if err != nil {
				return Query{}, err
			}
			if n > 0 {
				q.Limit = min(n, MaxLimit)
			}
			continue
		case "offset":
			n, err := single(name, vals, 0)
			if err != nil {
				return Query{}, err
			}
			q.Offset = max(n, 0)
			continue
		case "fuzzymatching":
			for _, s := range vals {
				switch s {
				case "true":
					q.Fuzzy = true
				case "false", "":
					q.Fuzzy = false
				default:
					return Query{}, &QueryError{Param: name, Reason: fmt.Sprintf("%q is neither true nor false", s)}
				}
			}
			continue
		case "includefield":
			if err := q.include(name, vals); err != nil {
				return Query{}, err
			}
			continue
		}
		k, ok := keyByName(name)
		if !ok || !k.AppliesTo(level) {
			reason := fmt.Sprintf("not a matching key of a %s search", level)
			if !ok {
				reason = "not a matching key"
			}
			return Query{}, &QueryError{Param: name, Reason: reason, Supported: keywords(level)}
		}
		if other, dup := given[k]; dup {
			return Query{}, &QueryError{Param: name, Reason: fmt.Sprintf("%s is given twice (also as %q)", k, other)}
		}
		given[k] = name
		order = append(order, k)
		values[k] = vals
	}
	for _, k := range order {
		m, ok, err := parseMatch(k, given[k], values[k])
		if err != nil {
			return Query{}, err
		}
		if ok {
			q.Matches = append(q.Matches, m)
		}
	}
	slices.SortFunc(q.Matches, func(a, b Match) int { return int(a.Key) - int(b.Key) })
	return q, nil
}

// single reads a parameter that may appear once, an integer of at least
// least; "" reads as -1 (not given).
func single(name string, vals []string, least int) (int, error) {
	if len(vals) > 1 {
		return 0, &QueryError{Param: name, Reason: "given more than once"}
	}
	if len(vals) == 0 || vals[0] == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil || n < least {
		return 0, &QueryError{Param: name, Reason: fmt.Sprintf("%q is not an integer of at least %d", vals[0], least)}
	}
	return n, nil
}

func (q *Query) include(name string, vals []string) error {
	for _, v := range vals {
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case strings.EqualFold(f, "all"):
				q.IncludeAll = true
			default:
				t, ok := attributeTag(f)
				if !ok {
					return &QueryError{Param: name, Reason: fmt.Sprintf("%q is neither a DICOM keyword nor a tag (GGGGEEEE), nor \"all\"", f)}
				}
				if !slices.Contains(q.Include, t) {
					q.Include = append(q.Include, t)
				}
			}
		}
	}
	slices.Sort(q.Include)
	return nil
}

var hexTag = regexp.MustCompile(`^[0-9A-Fa-f]{8}$`)

// attributeTag reads a tag (GGGGEEEE) or a keyword of the DICOM dictionary.
func attributeTag(s string) (uint32, bool) {
	if hexTag.MatchString(s) {
		n, _ := strconv.ParseUint(s, 16, 32)
		return uint32(n), true
	}
	for _, info := range keys {
		if info.keyword == s {
			return info.tag, true
		}
	}
	info, err := tag.FindByKeyword(s)
	if err != nil || info.Keyword != s {
		return 0, false
	}
	return info.Tag.Uint32(), true
}

func keyByName(name string) (Key, bool) {
	if hexTag.MatchString(name) {
		n, _ := strconv.ParseUint(name, 16, 32)
		for k, info := range keys {
			if info.tag == uint32(n) {
				return k, true
			}
		}
		return 0, false
	}
	for k, info := range keys {
		if strings.EqualFold(info.keyword, name) {
			return k, true
		}
	}
	return 0, false
}

func keywords(l Level) []string {
	var out []string
	for _, k := range Keys(l) {
		out = append(out, k.Keyword())
	}
	return out
}

// parseMatch reads one key's values; ok is false for a universal match.
func parseMatch(k Key, name string, vals []string) (m Match, ok bool, err error) {
	info := keys[k]
	bad := func(format string, args ...any) (Match, bool, error) {
		return Match{}, false, &QueryError{Param: name, Reason: fmt.Sprintf(format, args...)}
	}
	var nonEmpty []string
	for _, v := range vals {
		if v != "" {
			nonEmpty = append(nonEmpty, v)
		}
	}
	if len(nonEmpty) == 0 {
		return Match{}, false, nil
	}
	for _, v := range nonEmpty {
		// The index holds UTF-8 text without NULs (NewEntry): other bytes
		// match nothing, and PostgreSQL would refuse them as a parameter.
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return bad("the value is not UTF-8 text")
		}
	}
	m.Key = k
	switch info.kind {
	case kindUID, kindNumber, kindCode:
		var list []string
		seen := map[string]bool{}
		for _, v := range nonEmpty {
			for item := range strings.SplitSeq(v, `\`) {
				if item != "" && !seen[item] {
					seen[item] = true
					list = append(list, item)
				}
			}
		}
		if len(list) > MaxListValues {
			return bad("a list of %d values; at most %d per key", len(list), MaxListValues)
		}
		if len(list) == 0 {
			return Match{}, false, nil
		}
		if info.kind == kindCode && len(list) == 1 && len(nonEmpty) == 1 && HasWildcards(list[0]) {
			m.Pattern = list[0]
			return m, true, nil
		}
		for _, item := range list {
			switch {
			case HasWildcards(item) && info.kind == kindCode:
				return bad("wildcards match a single %s, not one of a list", k)
			case HasWildcards(item):
				return bad("%s takes no wildcards", k)
			case info.kind == kindUID && !looksLikeUID(item):
				return bad("%q is not a UID (digits and dots, at most 64)", item)
			case info.kind == kindNumber && !isInteger(item):
				return bad("%q is not an integer", item)
			}
		}
		m.Values = list
	case kindDate, kindTime:
		if len(nonEmpty) > 1 {
			return bad("given more than once: one %s or range", k)
		}
		valid, form := isDate, "a date YYYYMMDD"
		if info.kind == kindTime {
			valid, form = isTime, "a time HH[MM[SS[.FFFFFF]]]"
		}
		from, to, err := parseRange(nonEmpty[0], valid)
		if err != "" {
			return bad("%q is not %s or a range of them (A-B, A-, -B): %s", nonEmpty[0], form, err)
		}
		m.From, m.To = from, to
	default:
		if len(nonEmpty) > 1 {
			return bad("given more than once")
		}
		m.Pattern = nonEmpty[0]
	}
	return m, true, nil
}

// parseRange reads "A", "A-B", "A-" or "-B"; a single value is the range
// from itself to itself.
func parseRange(s string, valid func(string) bool) (from, to, err string) {
	a, b, isRange := strings.Cut(s, "-")
	switch {
	case HasWildcards(s):
		return "", "", "wildcards are not allowed"
	case !isRange:
		b = a
	case a == "" && b == "":
		return "", "", "a range needs a bound"
	}
	for _, v := range []string{a, b} {
		if v != "" && !valid(v) {
			return "", "", fmt.Sprintf("%q is malformed", v)
		}
	}
	if n := min(len(a), len(b)); a != "" && b != "" && a[:n] > b[:n] {
		return "", "", "the range ends before it starts"
	}
	return a, b, ""
}

var timeRE = regexp.MustCompile(`^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?$`)

func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

func isTime(s string) bool { return timeRE.MatchString(s) }

// isCode tells a CS value (PS3.5 Table 6.2-1): what the audit trail may
// keep of a Modality search, as no patient data fits in it. (A search for
// another value is run, and matches nothing.)
func isCode(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '_') {
			return false
		}
	}
	return true
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 32)
	return err == nil
}

// looksLikeUID: digits and dots, at most 64 (PS3.5 9.1, leniently: a
// legacy leading zero still finds its instance).
func looksLikeUID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// Audit is the query as the audit trail keeps it: what was searched for,
// by canonical keyword, with the values of keys that hold patient data
// (names, IDs, accession numbers, descriptions: kindString) redacted. The
// audit log is immutable; UIDs, dates, codes and numbers are no patient
// data in themselves.
func (q Query) Audit() string {
	var parts []string
	for _, m := range q.Matches {
		info := keys[m.Key]
		var v string
		switch {
		case info.kind == kindString:
			v = "(redacted)"
		case len(m.Values) > 10:
			v = fmt.Sprintf("(%d values)", len(m.Values))
		case len(m.Values) > 0:
			v = strings.Join(m.Values, `\`)
			for _, x := range m.Values {
				if info.kind == kindCode && !isCode(x) {
					v = "(redacted)" // not a code: it could be anything typed
				}
			}
		case m.Pattern != "":
			v = m.Pattern
			if !isCode(strings.NewReplacer("*", "", "?", "").Replace(v)) {
				v = "(redacted)"
			}
		default:
			v = m.From + "-" + m.To
			if m.From == m.To {
				v = m.From
			}
		}
		parts = append(parts, info.keyword+"="+v)
	}
	slices.Sort(parts)
	parts = append(parts, fmt.Sprintf("limit=%d", q.Limit), fmt.Sprintf("offset=%d", q.Offset))
	if q.Fuzzy {
		parts = append(parts, "fuzzymatching=true")
	}
	switch {
	case q.IncludeAll:
		parts = append(parts, "includefield=all")
	case len(q.Include) > 0:
		parts = append(parts, fmt.Sprintf("includefield=(%d attributes)", len(q.Include)))
	}
	return strings.Join(parts, "&")
}
