# The two commands a newcomer needs are `make run` and `make test`; both
# are thin wrappers so that the README, CI and this file say the same thing.

.PHONY: run test soak bench build vet fmt

run: ## run the service on embedded defaults (./dicomseal-data, 127.0.0.1:8080)
	go run ./cmd/dicomseal serve

test: ## the whole test suite, as CI runs it
	./scripts/test.sh

soak: ## 30 minutes of mixed load with faults, then every check (not in CI; DICOMSEAL_SOAK=5m for less)
	./scripts/soak.sh

bench: ## issue 19's table: dicomseal beside Orthanc, raw MinIO and SHA-256, 3 interleaved rounds (not in CI; ~15 min; BENCH_ROUNDS=1 for less)
	./scripts/bench.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/dicomseal ./cmd/dicomseal

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
