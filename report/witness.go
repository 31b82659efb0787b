package report

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// ParseWitnessKey reads a witness's verifier key (c2sp.org/signed-note
// vkey): a timestamped cosignature key (c2sp.org/tlog-cosignature,
// algorithm 4), what witnesses such as litewitness hold, or a plain
// Ed25519 note key (algorithm 1).
func ParseWitnessKey(vkey string) (note.Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || name == "" {
		return nil, fmt.Errorf("witness key %q: not name+hash+key", vkey)
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("witness key %q: the key is not base64", vkey)
	}
	if key[0] != algCosignatureV1 {
		return note.NewVerifier(vkey)
	}
	h, err := strconv.ParseUint(hash, 16, 32)
	if err != nil || len(hash) != 8 || len(key) != 1+ed25519.PublicKeySize {
		return nil, fmt.Errorf("witness key %q: malformed", vkey)
	}
	if uint32(h) != keyHash(name, key) {
		return nil, fmt.Errorf("witness key %q: its hash does not match its name and key", vkey)
	}
	return &cosignatureVerifier{name: name, hash: uint32(h), key: ed25519.PublicKey(key[1:])}, nil
}

const algCosignatureV1 = 4

func keyHash(name string, key []byte) uint32 {
	s := sha256.Sum256([]byte(name + "\n" + string(key)))
	return binary.BigEndian.Uint32(s[:4])
}

// cosignatureVerifier checks a c2sp.org/tlog-cosignature signature: an
// 8-byte timestamp, then Ed25519 over "cosignature/v1\ntime T\n" and the
// checkpoint.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", t, msg)
	return ed25519.Verify(v.key, m, sig[8:])
}

// checkpointFacts are a verified checkpoint's root and the names of the
// trusted witnesses whose signatures on it verify.
func checkpointFacts(cp []byte, origin string, v note.Verifier, witnesses []note.Verifier) ([]byte, []string, error) {
	c, _, n, err := log.ParseCheckpoint(cp, origin, v, witnesses...)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	var names []string
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			continue
		}
		names = append(names, s.Name) // note.Open keeps only signatures it verified
	}
	return c.Hash, names, nil
}
