# optoloop: `make demo` runs the main job, `make test` passes the tests.
# Both install what is missing first (scripts/deps.sh).

GO      ?= go
BIN     := bin/optoloop
DEMO    := demo-out

.PHONY: all deps build test vet demo cluster-demo trace-demo dashboard-shot dashboard-cost bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/optoloop

vet: deps
	$(GO) vet ./...

# The race pass leaves out the tracker and the renderer (arenas/track, arenas/sim/render): neither
# package nor its tests start a goroutine or share memory (no go statement, sync or atomic), so
# the race detector has nothing to find there and only multiplied their image loops' time (189 s
# of the race pass on the 2-core CI machine); they run whole in the plain pass. The science
# checks (runner/science_test.go trains agents; arenas/sim/advantage_test.go runs ~1,500 pairs of
# branched episodes) are too slow under the race detector too, so they are built only without
# -race and run in the plain pass, as are the coordinator's tests of a million-item experiment's
# paged reads and of 20,000 idle connections, and the cluster's online fault test (its processes
# are what it tests; in the plain pass it runs beside the science check instead of lengthening
# the race pass's longest package). The plain pass's two invocations run at once; the recipe
# fails if either does.
RACE_FREE := /arenas/track$$|/arenas/sim/render$$
test: deps vet
	$(GO) test -race -timeout 14m $$($(GO) list ./... | grep -Ev '$(RACE_FREE)')
	$(GO) test -count=1 -timeout 10m ./arenas/track/ ./arenas/sim/render/ & images=$$!; \
	$(GO) test -count=1 -timeout 10m -run 'TestScienceSubset|TestLightAdvantageDependsOnTheContinuation|TestMillionItemExperimentReadIsPaged|TestIdleConnectionFloodLeavesAPIAnswering|TestClusterOnlineSurvivesFaults' ./runner/ ./arenas/sim/ ./coordinator/ ./cluster/; \
	rc=$$?; wait $$images && exit $$rc

demo: build
	scripts/demo.sh $(BIN) $(DEMO)

# The demo experiment (experiments/demo.yaml) on a cluster of separate processes on this machine:
# redis-server, 3 coordinators, one worker process per line and a learner (optoloop cluster up).
cluster-demo: build
	rm -rf $(DEMO)/cluster-run
	@mkdir -p $(DEMO)
	@start=$$(date +%s); $(BIN) cluster up experiments/demo.yaml --out $(DEMO)/cluster-run && \
		echo "cluster experiment wall time: $$(( $$(date +%s) - start )) s"

# The cluster demo exporting its traces to a real Jaeger (built from the tools module into
# bin/jaeger when missing), one evaluation episode's trace printed and screenshotted in headless
# Chromium (docs/trace-*.png). JAEGER_UI_DIR=DIR (a built jaeger-ui) adds Jaeger's own UI.
trace-demo: build
	scripts/trace-demo.sh $(BIN) $(DEMO)

# The demo experiment on a one-machine cluster with its dashboard; headless Chromium takes
# docs/dashboard.png once the twelve arenas run.
dashboard-shot: build
	scripts/dashboard-shot.sh $(BIN) $(DEMO)

# What the dashboard costs a worker process of 64 arenas, Redis and the page (BENCHMARKS.md).
dashboard-cost: build
	scripts/dashboard-cost.sh $(BIN) $(DEMO)

bench: build
	scripts/bench.sh $(BIN)

clean:
	rm -rf bin $(DEMO)
