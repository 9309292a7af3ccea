# optoloop: `make demo` runs the main job, `make test` passes the tests.
# Both install what is missing first (scripts/deps.sh).

GO      ?= go
BIN     := bin/optoloop
DEMO    := demo-out

.PHONY: all deps build test vet demo bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/optoloop

vet: deps
	$(GO) vet ./...

# The science checks (runner/science_test.go trains agents; arenas/sim/advantage_test.go runs
# ~1,500 pairs of branched episodes) are too slow under the race detector, so they are built only
# without -race and run in a second, plain pass.
test: deps vet
	$(GO) test -race -timeout 14m ./...
	$(GO) test -count=1 -timeout 10m -run 'TestScienceSubset|TestLightAdvantageDependsOnTheContinuation' ./runner/ ./arenas/sim/

demo: build
	scripts/demo.sh $(BIN) $(DEMO)

bench: build
	scripts/bench.sh $(BIN)

clean:
	rm -rf bin $(DEMO)
