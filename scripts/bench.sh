#!/usr/bin/env bash
# Runs every Go benchmark of the module once (one core: -cpu 1) and prints the results.
# BENCHMARKS.md records the latest figures and the machine they came from.
set -euo pipefail
bin=${1:-bin/optoloop}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version)"
go test -run '^$' -bench . -benchmem -cpu 1 -timeout 30m ./... | grep -E '^(Benchmark|ok|FAIL|PASS|goos|pkg)' 
