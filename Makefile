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

# The science checks (runner/science_test.go trains agents; arenas/sim/advantage_test.go runs
# ~1,500 pairs of branched episodes) and the tracker's long runs over recordings and simulated
# frames (arenas/track: the WormsPy and Helms recordings, the truth checks at several polarities
# and life stages, the scale estimate, debris in the frame) are too slow under the race detector, so they are built
# only without -race and run in a second, plain pass, as are the coordinator's tests of a
# million-item experiment's paged reads and of 20,000 idle connections, and the cluster's online
# fault test (its processes are what it tests; in the plain pass it runs beside the science
# check instead of lengthening the race pass's longest package).
test: deps vet
	$(GO) test -race -timeout 14m ./...
	$(GO) test -count=1 -timeout 10m -run 'TestScienceSubset|TestLightAdvantageDependsOnTheContinuation|TestWormsPyRecording|TestHelmsRecording|TestSimulatedFramesAgainstTruth|TestEstimateScaleSimulated|TestDebrisNeverTakenForTheWorm|TestMillionItemExperimentReadIsPaged|TestIdleConnectionFloodLeavesAPIAnswering|TestClusterOnlineSurvivesFaults' ./runner/ ./arenas/sim/ ./arenas/track/ ./coordinator/ ./cluster/

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
