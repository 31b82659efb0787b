// Package subject derives the keys dicomseal chains log entries under
// (ledger/chain.go): a study by its Study Instance UID, a patient by a
// random salt kept, by Patient ID, in the correctable patients table. A
// key is a hash: the log never holds the identifier it stands for, and a
// patient's key names nobody once the salt is deleted.
package subject

import (
	"crypto/rand"
	"crypto/sha256"

	"github.com/dicomseal/dicomseal/ledger"
)

// SaltSize is the size of a patient's salt.
const SaltSize = 32

func key(kind string, id []byte) ledger.SubjectKey {
	h := sha256.New()
	h.Write([]byte("dicomseal-subject/v1\n" + kind + "\n"))
	h.Write(id)
	return ledger.SubjectKey(h.Sum(nil))
}

// Study is the key of the study with that Study Instance UID.
func Study(uid string) ledger.SubjectKey { return key("study", []byte(uid)) }

// Patient is the key of the patient whose salt that is.
func Patient(salt []byte) ledger.SubjectKey { return key("patient", salt) }

// NewSalt is a new patient's random salt.
func NewSalt() []byte {
	b := make([]byte, SaltSize)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}
