# Field video command server. `make run` starts the whole system with demo
# cameras; `make test` installs what the tests need and runs them all.

GO      ?= go
BIN     := bin
FUZZTIME ?= 5s

.PHONY: all build run test vet unit fuzz bench loadgen clean

all: build

build:
	$(GO) build -o $(BIN)/sfu ./cmd/sfu
	$(GO) build -o $(BIN)/ingest ./cmd/ingest
	$(GO) build -o $(BIN)/democam ./testbench/democam

run: build
	scripts/deps.sh run
	exec scripts/run.sh

test:
	scripts/deps.sh test
	$(MAKE) vet unit fuzz

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -p 1 -timeout 20m ./...

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./testbench/loadgen -sfu $(BIN)/sfu -cameras 4 -viewers 10 -duration 15s

clean:
	rm -rf $(BIN) .run
