package attest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/dicomseal/dicomseal/chunks"
	"github.com/dicomseal/dicomseal/custody"
	"github.com/dicomseal/dicomseal/ledger"
	"github.com/dicomseal/dicomseal/signer"
)

// ErrFileMismatch: a file's bytes are not the ones an attestation names.
var ErrFileMismatch = errors.New("file does not match the attestation")

// DecodeEnvelope accepts either an attestation document (the JSON that
// ingest and /attestation answer, holding "envelope") or a bare DSSE envelope.
func DecodeEnvelope(doc []byte) (signer.Envelope, error) {
	var wrapped struct {
		Envelope *signer.Envelope `json:"envelope"`
	}
	if err := json.Unmarshal(doc, &wrapped); err != nil {
		return signer.Envelope{}, fmt.Errorf("attestation: %w", err)
	}
	if wrapped.Envelope != nil {
		return *wrapped.Envelope, nil
	}
	var env signer.Envelope
	if err := json.Unmarshal(doc, &env); err != nil || env.Payload == "" {
		return signer.Envelope{}, errors.New("attestation: neither an attestation with an \"envelope\" nor a DSSE envelope")
	}
	return env, nil
}

// VerifyOffline checks file against env using only the public key: the
// envelope's signature, the statement's form, the file's SHA-256 and, for
// a v3 statement, its chunk tree (what retrieval streams against). It
// trusts nothing from the server that produced them.
func VerifyOffline(v *signer.Verifier, env signer.Envelope, file io.Reader) (Statement, error) {
	payload, err := v.Open(env)
	if err != nil {
		return Statement{}, err
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return st, err
	}
	h := sha256.New()
	var sink io.Writer = h
	tree := st.Predicate.Chunks
	var leaves *chunks.Hasher
	if tree != nil && tree.ChunkSize > 0 {
		leaves = chunks.NewHasher(tree.ChunkSize)
		sink = io.MultiWriter(h, leaves)
	}
	n, err := io.Copy(sink, file)
	if err != nil {
		return st, fmt.Errorf("read file: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != st.SubjectSHA256() {
		return st, fmt.Errorf("%w: file SHA-256 %s, attested %s", ErrFileMismatch, got, st.SubjectSHA256())
	}
	if tree != nil {
		if leaves == nil {
			return st, fmt.Errorf("%w: the attested chunk tree has chunk size %d", ErrFileMismatch, tree.ChunkSize)
		}
		if err := tree.Check(n, leaves.Leaves()); err != nil {
			// The signer attested a tree these bytes do not have: a
			// streaming retrieval of them could never complete.
			return st, fmt.Errorf("%w: %w", ErrFileMismatch, err)
		}
	}
	return st, nil
}

// ErrNotIncluded: an attestation's inclusion proof, checkpoint or entry
// does not hold up.
var ErrNotIncluded = errors.New("attestation is not proven to be in the log")

// VerifyInclusionOffline checks, with only the log's verifier key, that an
// attestation is in the log: the checkpoint is a note signed by that key
// for origin, the entry bytes hash to the attestation's entry hash and
// embed exactly its envelope, and the inclusion proof leads from that leaf
// to the checkpoint's root. It returns the verified checkpoint.
func VerifyInclusionOffline(att *Attestation, v note.Verifier, origin string) (*log.Checkpoint, error) {
	if att.Inclusion == nil {
		return nil, fmt.Errorf("%w: the attestation carries no inclusion proof (not yet integrated when it was fetched?)", ErrNotIncluded)
	}
	inc := att.Inclusion
	cp, _, _, err := log.ParseCheckpoint([]byte(inc.Checkpoint), origin, v)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrNotIncluded, err)
	}
	if cp.Size != inc.TreeSize || inc.LeafIndex != att.LedgerIndex {
		return nil, fmt.Errorf("%w: proof is for index %d in size %d, checkpoint has size %d, attestation index %d",
			ErrNotIncluded, inc.LeafIndex, inc.TreeSize, cp.Size, att.LedgerIndex)
	}
	entry, err := base64.StdEncoding.DecodeString(att.Entry)
	if err != nil {
		return nil, fmt.Errorf("%w: entry: %v", ErrNotIncluded, err)
	}
	leaf := ledger.LeafHash(entry)
	if hex.EncodeToString(leaf[:]) != att.EntryHash {
		return nil, fmt.Errorf("%w: entry bytes do not hash to entry_hash", ErrNotIncluded)
	}
	e := ledger.Entry{Index: att.LedgerIndex, Subject: att.SOPInstanceUID, FileSHA256: att.Digests[DigestFile], Body: entry}
	hd, err := EntryFormats.Check(e)
	if err != nil {
		return nil, fmt.Errorf("%w: the logged entry cannot be read by this verifier: %w", ErrNotIncluded, err)
	}
	e.Kind = hd.Kind
	body, err := decodeIngestBody(e)
	if err != nil || !sameEnvelope(body.Envelope, att.Envelope) {
		return nil, fmt.Errorf("%w: the logged entry does not hold this attestation's envelope", ErrNotIncluded)
	}
	// What the document says of a correction must be what the log holds.
	var logged *IdentityCorrection
	if body.Kind == custody.KindIdentityCorrection {
		logged = &body.IdentityCorrection
	}
	if a, b := jsonOf(logged), jsonOf(att.IdentityCorrection); a != b {
		return nil, fmt.Errorf("%w: the attestation's identity_correction is not the logged entry's", ErrNotIncluded)
	}
	hashes := make([][]byte, len(inc.Hashes))
	for i, h := range inc.Hashes {
		if hashes[i], err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("%w: proof hash %d: %v", ErrNotIncluded, i, err)
		}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, inc.LeafIndex, inc.TreeSize, leaf[:], hashes, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotIncluded, err)
	}
	return cp, nil
}

func sameEnvelope(a, b signer.Envelope) bool {
	if a.PayloadType != b.PayloadType || a.Payload != b.Payload || len(a.Signatures) != len(b.Signatures) {
		return false
	}
	for i := range a.Signatures {
		if a.Signatures[i] != b.Signatures[i] {
			return false
		}
	}
	return true
}

// DecodeAttestation reads an attestation document (the JSON that ingest
// and /attestation answer).
func DecodeAttestation(doc []byte) (*Attestation, error) {
	var att Attestation
	if err := json.Unmarshal(doc, &att); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	return &att, nil
}

func jsonOf(v *IdentityCorrection) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
