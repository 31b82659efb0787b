package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

const healthDescription = `
Asks a running dicomseal whether it is ready (GET --url) and exits 0 only on
200. Meant for container health checks, where images carry no curl.`

func healthCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL to check")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	fs.Usage = usage(fs, stderr, "dicomseal health [--url URL]", healthDescription)
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage(err)
	}
	resp, err := (&http.Client{Timeout: *timeout}).Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s: %s\n", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s\n", body)
	return 0
}
