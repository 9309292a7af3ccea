#!/usr/bin/env bash
# Runs every Go benchmark of the module once (one core: -cpu 1) and prints the results, then
# times the demo experiment through the local run and through a one-machine cluster of OS
# processes, side by side in this one sitting. BENCHMARKS.md records the latest figures and the
# machine they came from.
set -euo pipefail
bin=${1:-bin/optoloop}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version), load $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench . -benchmem -cpu 1 -timeout 30m ./... | grep -E '^(Benchmark|ok|FAIL|PASS|goos|pkg)'

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
seconds() { local t0; t0=$(date +%s.%N); "$@" >"$out/log" 2>&1 || { tail -20 "$out/log" >&2; return 1; }; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
local_s=$(seconds "$bin" experiment run experiments/demo.yaml --out "$out/local")
cluster_s=$(seconds "$bin" cluster up experiments/demo.yaml --out "$out/cluster")
echo "demo wall time: experiment run ${local_s} s, cluster up ${cluster_s} s, ratio $(awk -v a="$local_s" -v b="$cluster_s" 'BEGIN { printf "%.2f", b / a }')"
