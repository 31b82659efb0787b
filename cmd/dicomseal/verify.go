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
key (from 'GET /v1/keys' or the key's owner): the DSSE signature, the in-toto
statement, and the file's SHA-256. The attestation is the JSON answered by
ingest or 'GET /v1/instances/{uid}/attestation', or a bare DSSE envelope.

Exit status: 0 verified, 1 not verified (the reason is printed), 2 usage.`

func verifyCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "public key of the attestation key (PEM)")
	attPath := fs.String("attestation", "", "attestation JSON or DSSE envelope")
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
	p := st.Predicate
	fmt.Fprintf(stdout, "verified: %s\n  sha256 %s\n  SOP Instance UID %s\n  attested %s by key %s\n",
		fs.Arg(0), st.SubjectSHA256(), p.SOPInstanceUID, p.AttestedAt.Format("2006-01-02T15:04:05Z07:00"), p.KeyID)
	return 0
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
