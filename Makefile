# Field video command server. `make run` starts the whole system with demo
# cameras; `make test` installs what the tests need and runs them all;
# `make drill` runs the disaster-recovery drill and writes drill-report/.

GO      ?= go
BIN     := bin
FUZZTIME ?= 4s

.PHONY: all build run run-cluster test vet unit fuzz bench loadgen drill chaos clean

all: build

build:
	$(GO) build -o $(BIN)/sfu ./cmd/sfu
	$(GO) build -o $(BIN)/ingest ./cmd/ingest
	$(GO) build -o $(BIN)/democam ./testbench/democam

run: build
	scripts/deps.sh run
	exec scripts/run.sh

# A cluster on this machine: NATS, three SFU nodes, two ingests sharing the demo cameras.
run-cluster: build
	scripts/deps.sh run-cluster
	exec scripts/run-cluster.sh

test:
	scripts/deps.sh test
	$(MAKE) vet unit fuzz

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# Packages that drive Chromium or keep both cores busy run one at a time; the
# rest, which mostly wait on real time (segments, retries, timeouts), two at a time.
ALONE := ./web/console ./test/e2e ./testbench/cluster ./internal/store ./internal/testkit ./internal/playback
unit:
	$(GO) test -race -count=1 -p 2 -timeout 20m $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(ALONE))")
	$(GO) test -race -count=1 -p 1 -timeout 20m $(ALONE)

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# Go benchmarks, then the load generator through ingest and the SFU (cameras push
# RTSP into ingest; NACKing WHEP viewers), once quiet and once with one core busy.
LOAD ?= -cameras 8 -viewers 25 -duration 15s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./testbench/loadgen -sfu $(BIN)/sfu -ingest $(BIN)/ingest $(LOAD)
	$(GO) run ./testbench/loadgen -sfu $(BIN)/sfu -ingest $(BIN)/ingest -burn $(LOAD)

# The disaster-recovery drill on real processes, longer than its CI form;
# the report goes to drill-report/drill.md and drill.json.
DRILL_RECORD ?= 60s
drill:
	scripts/deps.sh test
	$(GO) test -count=1 -timeout 15m -run TestDrill -v ./testbench/drill -args \
		-drill.report=$(CURDIR)/drill-report -drill.record=$(DRILL_RECORD) -drill.cameras=4

# The cluster's chaos run: three SFU nodes and two ingests on loopback with
# viewers, a random node killed every CHAOS_EVERY for CHAOS; prints availability.
CHAOS ?= 10m
CHAOS_EVERY ?= 20s
chaos:
	scripts/deps.sh test
	$(GO) test -count=1 -timeout 30m -run TestChaos -v ./testbench/cluster -args -chaos=$(CHAOS) -chaos.every=$(CHAOS_EVERY)

clean:
	rm -rf $(BIN) .run
