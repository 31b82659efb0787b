package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/signer"
)

const verifyDescription = `
Checks a DICOM file against an attestation offline, trusting only the public
keys (from 'GET /v1/keys' or the keys' owner): the DSSE signature, the in-toto
statement, and the file's SHA-256. The attestation is the JSON answered by
ingest or 'GET /v1/instances/{uid}/attestation', or a bare DSSE envelope.

With --log-key it also checks that the attestation is in the log: the
checkpoint it carries is signed by the log key, the logged entry holds this
envelope, and the inclusion proof leads from the entry to the checkpoint's root.
(Fetch the attestation after its entry is integrated, typically within a second.)

Exit status: 0 verified, 1 not verified (the reason is printed), 2 usage.`

func verifyCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "public key of the attestation key (PEM)")
	attPath := fs.String("attestation", "", "attestation JSON or DSSE envelope")
	logKeyPath := fs.String("log-key", "", "file with the log's verifier key (`verifier_key` in /v1/keys): also check the inclusion proof")
	origin := fs.String("log-origin", defaultLogOrigin, "the log's origin line (with --log-key)")
	fs.Usage = usage(fs, stderr, "dicomseal verify --key pub.pem --attestation a.json FILE.dcm", verifyDescription)
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *keyPath == "" || *attPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	st, err := verifyOfflineFiles(*keyPath, *attPath, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "NOT VERIFIED: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	var logged string
	if *logKeyPath != "" {
		size, err := verifyInclusionFiles(*logKeyPath, *attPath, *origin)
		if err != nil {
			fmt.Fprintf(stderr, "NOT VERIFIED: %s: %v\n", fs.Arg(0), err)
			return 1
		}
		logged = fmt.Sprintf("\n  in log %s, proven against its signed checkpoint of size %d", *origin, size)
	}
	p := st.Predicate
	fmt.Fprintf(stdout, "verified: %s\n  sha256 %s\n  SOP Instance UID %s\n  attested %s by key %s%s\n",
		fs.Arg(0), st.SubjectSHA256(), p.SOPInstanceUID, p.AttestedAt.Format("2006-01-02T15:04:05Z07:00"), p.KeyID, logged)
	return 0
}

func verifyInclusionFiles(keyPath, attPath, origin string) (uint64, error) {
	v, err := signer.LoadLogVerifier(keyPath)
	if err != nil {
		return 0, err
	}
	doc, err := os.ReadFile(attPath)
	if err != nil {
		return 0, err
	}
	att, err := attest.DecodeAttestation(doc)
	if err != nil {
		return 0, err
	}
	cp, err := attest.VerifyInclusionOffline(att, v, origin)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

func verifyOfflineFiles(keyPath, attPath, filePath string) (attest.Statement, error) {
	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		return attest.Statement{}, err
	}
	v, err := signer.NewVerifierFromPEM(pemBytes)
	if err != nil {
		return attest.Statement{}, err
	}
	doc, err := os.ReadFile(attPath)
	if err != nil {
		return attest.Statement{}, err
	}
	env, err := attest.DecodeEnvelope(doc)
	if err != nil {
		return attest.Statement{}, err
	}
	f, err := os.Open(filePath)
	if err != nil {
		return attest.Statement{}, err
	}
	defer f.Close()
	return attest.VerifyOffline(v, env, f)
}
