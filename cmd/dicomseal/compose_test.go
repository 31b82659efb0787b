package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dicomseal/dicomseal/ledger/postgres/pgtest"
	"github.com/dicomseal/dicomseal/store/s3/s3test"
)

// docker-compose.yml cannot run here (no Docker engine), so these tests
// keep it correct by reading it: every dicomseal setting it uses must be a
// real flag of the command it is given to, and the dicomseal service's own
// configuration must serve on PostgreSQL and MinIO natively.

type composeFile struct {
	Services map[string]struct {
		Build       string            `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

var composeVar = regexp.MustCompile(`\$\{([A-Z_]+)(:\?[^}]*)?\}`)

func readCompose(t *testing.T, vars map[string]string) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	expanded := composeVar.ReplaceAllStringFunc(string(raw), func(m string) string {
		name := composeVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			t.Fatalf("docker-compose.yml uses ${%s}, which the test does not know", name)
		}
		return v
	})
	var c composeFile
	if err := yaml.Unmarshal([]byte(expanded), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// commandFlags lists the flags a dicomseal command accepts, as its --help says.
func commandFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	var out strings.Builder
	run(t.Context(), []string{command, "--help"}, &out, &out)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names[m[1]] = true
	}
	if len(names) < 3 {
		t.Fatalf("could not read the flags of %s from --help:\n%s", command, out.String())
	}
	return names
}

func TestComposeUsesRealSettings(t *testing.T) {
	c := readCompose(t, map[string]string{"POSTGRES_PASSWORD": "p", "DICOMSEAL_SERVICE_PASSWORD": "s", "MINIO_ROOT_PASSWORD": "m"})
	for _, name := range []string{"postgres", "minio", "migrate", "dicomseal"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no %s service", name)
		}
	}
	for name, svc := range c.Services {
		if svc.Build != "." {
			continue
		}
		flags := commandFlags(t, svc.Command[0])
		for _, arg := range svc.Command[1:] {
			if strings.HasPrefix(arg, "--") && !flags[strings.TrimPrefix(strings.SplitN(arg, "=", 2)[0], "--")] {
				t.Errorf("service %s: dicomseal %s has no flag %s", name, svc.Command[0], arg)
			}
		}
		for env := range svc.Environment {
			flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "DICOMSEAL_")), "_", "-")
			if strings.HasPrefix(env, "DICOMSEAL_") && !flags[flagName] {
				t.Errorf("service %s: %s sets no flag of dicomseal %s", name, env, svc.Command[0])
			}
		}
	}
}

// The compose dicomseal service, run natively: its command and
// environment, with only the addresses and secrets of this machine's
// PostgreSQL and MinIO in place of the compose hosts.
func TestComposeServiceRunsNatively(t *testing.T) {
	db := pgtest.New(t)
	s3cfg := s3test.Config(t)
	c := readCompose(t, map[string]string{"POSTGRES_PASSWORD": "p", "DICOMSEAL_SERVICE_PASSWORD": "s", "MINIO_ROOT_PASSWORD": s3cfg.SecretKey})
	svc := c.Services["dicomseal"]
	local := map[string]string{
		"DICOMSEAL_DATABASE_URL":  db.Service,
		"DICOMSEAL_S3_ENDPOINT":   s3cfg.Endpoint,
		"DICOMSEAL_S3_BUCKET":     s3cfg.Bucket,
		"DICOMSEAL_S3_ACCESS_KEY": s3cfg.AccessKey,
		"DICOMSEAL_S3_SECRET_KEY": s3cfg.SecretKey,
	}
	for k, v := range svc.Environment {
		if l, ok := local[k]; ok {
			v = l
		}
		t.Setenv(k, v)
	}
	args := svc.Command[1:]
	for i, a := range args {
		switch {
		case a == "--addr":
			args[i+1] = "127.0.0.1:0"
		case a == "--data-dir":
			args[i+1] = t.TempDir()
		}
	}
	srv := startServer(t, t.TempDir(), args...)
	if !strings.Contains(srv.logs.String(), `"ledger":"postgresql"`) || !strings.Contains(srv.logs.String(), `"objects":"s3 `) {
		t.Fatalf("the compose configuration did not select PostgreSQL and S3:\n%s", srv.logs.String())
	}
	data := fixture(t, "pydicom-CT_small.dcm")
	r := srv.ingest(data)
	if r.status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	if got := srv.do(http.MethodGet, "/v1/instances/"+r.json(t)["sop_instance_uid"].(string), "", nil); got.status != http.StatusOK {
		t.Fatalf("retrieve: %d", got.status)
	}
	if code, out := runCLI("health", "--url", srv.url+"/readyz"); code != 0 {
		t.Fatalf("health: exit %d: %s", code, out)
	}
}
