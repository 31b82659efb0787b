package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Every entry body is a JSON object that starts by saying what it is:
// {"v": N, "kind": K, ...}. Bodies are permanent (the leaf hash covers
// their bytes), so a reader never guesses at one: it knows the version of
// each kind it reads, and refuses the rest by name. The first releases
// wrote no "v": that is version 0. docs/entries.md documents every kind
// and version.

// Header is what every entry body begins with.
type Header struct {
	Version int
	Kind    Kind
}

// ErrUnknownFormat: an entry's kind or version is not one this release
// reads (see FormatError).
var ErrUnknownFormat = errors.New("unknown entry format")

// FormatError reports an entry body this release cannot read: not a JSON
// object with a kind, a kind this log does not hold, or a version newer
// (or other) than those it knows.
type FormatError struct {
	Index   uint64
	Kind    Kind
	Version int
	Reason  string
	// Mismatch: the body's kind is not the one the entry is indexed
	// under. A genuine entry never disagrees with itself: that is
	// evidence of an edit, not of a newer writer.
	Mismatch bool
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("entry %d: %s", e.Index, e.Reason)
}

func (e *FormatError) Is(target error) bool { return target == ErrUnknownFormat }

// Formats lists, by kind, the body versions a reader understands.
type Formats map[Kind][]int

// Check reads an entry's header and tells whether this reader knows its
// kind and version, and whether the kind is the one the entry is indexed
// under. It returns the header, or a *FormatError.
func (f Formats) Check(e Entry) (Header, error) {
	var h struct {
		V    *int  `json:"v"`
		Kind *Kind `json:"kind"`
	}
	if !bytes.HasPrefix(bytes.TrimSpace(e.Body), []byte("{")) || json.Unmarshal(e.Body, &h) != nil || h.Kind == nil {
		return Header{}, &FormatError{Index: e.Index, Reason: "the body is not a JSON object with a kind"}
	}
	hd := Header{Kind: *h.Kind}
	if h.V != nil {
		hd.Version = *h.V
		if hd.Version < 1 {
			return hd, &FormatError{Index: e.Index, Kind: hd.Kind, Version: hd.Version,
				Reason: fmt.Sprintf("version %d is never written (version 0 bodies carry no \"v\")", hd.Version)}
		}
	}
	versions, ok := f[hd.Kind]
	switch {
	case !ok:
		return hd, &FormatError{Index: e.Index, Kind: hd.Kind, Version: hd.Version,
			Reason: fmt.Sprintf("kind %q is unknown to this log (written by a newer dicomseal, or not this log's entry)", hd.Kind)}
	case !slices.Contains(versions, hd.Version):
		return hd, &FormatError{Index: e.Index, Kind: hd.Kind, Version: hd.Version,
			Reason: fmt.Sprintf("kind %q version %d is unknown to this dicomseal, which reads versions %v (written by a newer release?)", hd.Kind, hd.Version, versions)}
	case e.Kind != "" && e.Kind != hd.Kind:
		return hd, &FormatError{Index: e.Index, Kind: hd.Kind, Version: hd.Version, Mismatch: true,
			Reason: fmt.Sprintf("the body is kind %q but the entry is indexed as %q", hd.Kind, e.Kind)}
	}
	return hd, nil
}
