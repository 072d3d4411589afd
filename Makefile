# Portaria. `make run` serves on the embedded default; `make test` runs every test.
GO ?= go
# Real-service tests use these when the services answer; they skip otherwise (and fail in CI).
PORTARIA_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
PORTARIA_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export PORTARIA_TEST_DATABASE_URL PORTARIA_TEST_REDIS_URL

.PHONY: run build test test-long test-full nightly lint bench fuzz fuzz-verify fuzz-decode-json fuzz-token-request fuzz-cookie clean

run:
	$(GO) run ./cmd/portaria serve

build:
	$(GO) build -o bin/portaria ./cmd/portaria

test:
	$(GO) test -race -count=1 -timeout 15m ./...

# The fault tests on the full timelines of SECURITY.md's figures (F4: Redis killed at t=20 s and
# restarted at t=30 s of a 60 s load; F5: PostgreSQL cut for 30 s; F8: kill -9 during key
# rotation; F9: 10,000 requests/s with unknown kids for 60 s), with real redis-server and portaria
# processes, and F6 (an instance killed every 15 s for 90 s) and F3 (replay of a 60 s load's
# refresh tokens) compressed: about 8 minutes. `make test` runs short versions of all but F8.
# F9 runs without the race detector: the test process is its driver, and under the detector it
# cannot send that many requests.
test-long:
	$(GO) test -race -count=1 -tags long -timeout 20m -run '^TestFault(RedisKilled|PostgresCut|Kill9|ChaosPodKill|ReplayStorm)' -v ./cmd/portaria
	$(GO) test -count=1 -tags long -timeout 5m -run '^TestFaultUnknownKidStorm$$' -v ./cmd/portaria

# F6 (an instance killed every 60 s for 10 min at 200 req/s asked) and F3 (replay of every refresh
# token of a 10-minute load) on SECURITY.md's own timelines, and F12 (1,000 timed samples of each
# side with production argon2id, medians and a Kolmogorov–Smirnov test; without the race
# detector, which would time its own work): about 27 minutes, more than CI has beside the rest;
# `make nightly` runs them.
test-full:
	$(GO) test -race -count=1 -tags 'long full' -timeout 40m -run '^TestFault(ChaosPodKill|ReplayStorm)$$' -v ./cmd/portaria
	$(GO) test -count=1 -tags long -timeout 15m -run '^TestEnumerationTimingDistributions$$' -v ./server

# The scheduled job: the full timelines and every fuzz target for 10 minutes (F13's nightly), the
# fuzzers' corpora kept in the Go build cache from run to run.
nightly: test-full
	$(MAKE) fuzz FUZZTIME=10m

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run TestImportDirection ./internal/layering

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./keys ./identity ./tokens/...
	$(GO) run ./cmd/loadgen -portaria bin/portaria

# Each fuzz target for FUZZTIME (go test -fuzz runs one target at a time), then FUZZ_REQUESTS
# random requests through the whole server (TestHTTPFuzz, SECURITY.md F13; about 10 minutes).
# FUZZ_JOBS targets run at once, each with FUZZ_WORKERS workers (default: one per CPU): CI runs
# two at a time with one worker each, so every target still fuzzes for FUZZTIME in half the time.
FUZZTIME ?= 60s
FUZZ_REQUESTS ?= 1000000
FUZZ_JOBS ?= 1
FUZZ_WORKERS ?=
FUZZ_TARGETS = fuzz-verify fuzz-decode-json fuzz-token-request fuzz-cookie
fuzzflags = -run '^$$' -fuzztime $(FUZZTIME) $(if $(FUZZ_WORKERS),-parallel $(FUZZ_WORKERS))
fuzz:
	$(MAKE) --no-print-directory -j$(FUZZ_JOBS) --output-sync=target $(FUZZ_TARGETS)
	PORTARIA_FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(GO) test -count=1 -timeout 60m -run '^TestHTTPFuzz$$' -v ./server
fuzz-verify:
	$(GO) test $(fuzzflags) -fuzz '^FuzzVerify$$' ./tokens
fuzz-decode-json:
	$(GO) test $(fuzzflags) -fuzz '^FuzzDecodeJSON$$' ./server
fuzz-token-request:
	$(GO) test $(fuzzflags) -fuzz '^FuzzTokenRequest$$' ./server
fuzz-cookie:
	$(GO) test $(fuzzflags) -fuzz '^FuzzCookie$$' ./server

clean:
	rm -rf bin
