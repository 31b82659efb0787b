package ledger

import (
	"bytes"
	"encoding/hex"
	"strconv"
)

// scanChain reads a chain exactly as withChain writes it (encoding/json's
// form of []Link: the fields in order, no space) and reports false for
// anything else, which the caller then decodes with encoding/json. A proof
// of thousands of entries reads thousands of chains; reflection-driven
// decoding was most of its verification time.
func scanChain(b []byte) ([]Link, bool) {
	s := chainScanner{b: b}
	if !s.lit("[") {
		return nil, false
	}
	links := []Link{} // as encoding/json decodes []
	for first := true; !s.lit("]"); first = false {
		if !first && !s.lit(",") {
			return nil, false
		}
		var l Link
		if !s.lit(`{"subject":`) || !s.hash((*Hash)(&l.Subject)) || !s.lit(`,"seq":`) || !s.uint(&l.Seq) {
			return nil, false
		}
		if s.lit(`,"prev_index":`) {
			l.PrevIndex = new(uint64)
			if !s.uint(l.PrevIndex) {
				return nil, false
			}
		}
		if s.lit(`,"prev_leaf_hash":`) {
			l.PrevLeafHash = new(Hash)
			if !s.hash(l.PrevLeafHash) {
				return nil, false
			}
		}
		if !s.lit("}") {
			return nil, false
		}
		links = append(links, l)
	}
	return links, len(s.b) == 0
}

type chainScanner struct{ b []byte }

func (s *chainScanner) lit(l string) bool {
	if !bytes.HasPrefix(s.b, []byte(l)) {
		return false
	}
	s.b = s.b[len(l):]
	return true
}

// hash reads a quoted run of 64 hex digits.
func (s *chainScanner) hash(h *Hash) bool {
	if len(s.b) < 66 || s.b[0] != '"' || s.b[65] != '"' {
		return false
	}
	if _, err := hex.Decode(h[:], s.b[1:65]); err != nil {
		return false
	}
	s.b = s.b[66:]
	return true
}

// uint reads a JSON number that is a uint64: digits, no leading zero.
func (s *chainScanner) uint(v *uint64) bool {
	n := 0
	for n < len(s.b) && s.b[n] >= '0' && s.b[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && s.b[0] == '0' {
		return false
	}
	u, err := strconv.ParseUint(string(s.b[:n]), 10, 64)
	if err != nil {
		return false
	}
	*v, s.b = u, s.b[n:]
	return true
}
