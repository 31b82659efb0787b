package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dicomseal/dicomseal/attest"
	"github.com/dicomseal/dicomseal/destination"
	"github.com/dicomseal/dicomseal/fixity"
)

// namedValues is a repeatable NAME=VALUE flag.
type namedValues map[string]string

func (n *namedValues) String() string {
	if n == nil || *n == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*n)) {
		parts = append(parts, k+"="+(*n)[k])
	}
	return strings.Join(parts, ",")
}

func (n *namedValues) Set(s string) error {
	if *n == nil {
		*n = namedValues{}
	}
	// NAME=VALUE items are separated by white space (which no URL holds;
	// a comma it may), so that one environment variable can hold several.
	for _, item := range strings.Fields(s) {
		name, v, err := destination.Parse(item)
		if err != nil {
			return err
		}
		if _, dup := (*n)[name]; dup {
			return fmt.Errorf("%s is given twice", name)
		}
		(*n)[name] = v
	}
	return nil
}

// destinationFlags are --destination and --destination-token-file.
type destinationFlags struct {
	urls, tokens namedValues
}

// open builds the configured destinations.
func (d destinationFlags) open(timeout time.Duration) (map[string]attest.Destination, error) {
	for name := range d.tokens {
		if _, ok := d.urls[name]; !ok {
			return nil, &configError{fmt.Sprintf("--destination-token-file names %s, which no --destination configures", name)}
		}
	}
	out := map[string]attest.Destination{}
	for name, u := range d.urls {
		var dst attest.Destination
		var err error
		if strings.HasPrefix(u, "file:") {
			if d.tokens[name] != "" {
				return nil, &configError{fmt.Sprintf("destination %s is a directory: it takes no credentials", name)}
			}
			dst, err = destination.NewDir(u)
		} else {
			dst, err = destination.NewSTOW(u, d.tokens[name], timeout)
		}
		if err != nil {
			return nil, &configError{fmt.Sprintf("--destination %s: %v", name, err)}
		}
		out[name] = dst
	}
	return out, nil
}

// scrubber builds the fixity scrubber over the ledger backend's lease and
// progress tables.
func (m *Main) newScrubber(svc *attest.Service, backend any) (*attest.Scrubber, error) {
	state, ok := backend.(fixity.Store)
	if !ok {
		return nil, fmt.Errorf("the ledger backend keeps no scrub progress")
	}
	host, _ := os.Hostname()
	sc := attest.NewScrubber(svc, state, fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()))
	sc.Rate = float64(m.ScrubRate)
	return sc, nil
}
