package dicomfile

import (
	"bytes"
	"fmt"
)

// identifyingUIDs are the UIDs that name an instance and its place in the
// study: they become ledger keys, object names and URL paths, so they must
// be UI values and nothing else (PS3.5 9.1).
var identifyingUIDs = []struct {
	tag  tagID
	name string
}{
	{0x00080016, "SOP Class UID"},
	{tagSOPInstanceUID, "SOP Instance UID"},
	{0x0020000D, "Study Instance UID"},
	{0x0020000E, "Series Instance UID"},
}

// maxUIDLen is the longest UID PS3.5 allows, without its padding.
const maxUIDLen = 64

// checkUIDs refuses an identifying UID that is present but not valid.
func (w *walkResult) checkUIDs() error {
	for _, u := range identifyingUIDs {
		if w.oversized[u.tag] {
			return fmt.Errorf("%w: %s %s is longer than %d characters", ErrInvalidUID, u.name, u.tag, maxUIDLen)
		}
		v, ok := w.values[u.tag]
		if !ok {
			continue
		}
		if v.vr != "UI" && v.vr != "UN" && v.vr != "" {
			// Another VR would decode the same bytes as something else
			// (a number, hex): the identifier must be the text checked.
			return fmt.Errorf("%w: %s %s is encoded with VR %q, not UI", ErrInvalidUID, u.name, u.tag, v.vr)
		}
		if err := ValidUID(string(bytes.TrimRight(v.bytes, "\x00"))); err != nil {
			return fmt.Errorf("%w: %s %s %v", ErrInvalidUID, u.name, u.tag, err)
		}
	}
	return nil
}

// LooksLikeUID tells whether s could name an attested instance: digits and
// dots, at most 64 long. Lookups use it rather than ValidUID, so that an
// instance attested before the stricter rule (a legacy leading zero) stays
// reachable, while a path or a query string never reaches the ledger.
func LooksLikeUID(s string) bool {
	if s == "" || len(s) > maxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// ValidUID reports why s (without its NUL padding) is not a UID: at most 64
// characters of digits and dots, no empty component, no leading zero in a
// component of more than one digit. The error never quotes s, which may be
// hostile.
func ValidUID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > maxUIDLen:
		return fmt.Errorf("is %d characters long, more than %d", len(s), maxUIDLen)
	}
	component, start := 1, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if s[i] < '0' || s[i] > '9' {
				return fmt.Errorf("holds byte 0x%02X at position %d: only digits and dots are allowed", s[i], i+1)
			}
			continue
		}
		switch {
		case i == start:
			return fmt.Errorf("has an empty component %d", component)
		case s[start] == '0' && i-start > 1:
			return fmt.Errorf("has a leading zero in component %d", component)
		}
		component, start = component+1, i+1
	}
	return nil
}
