#!/usr/bin/env bash
# The main job on the embedded defaults, with no servers: a quick experiment (lines 301, 446 and
# 73; experiments/demo.yaml) that collects random-light data on simulated arenas, trains each
# line's ensemble, evaluates agent against no light and random light, prints the table and writes
# the HTML report; plus a few rendered camera frames and a short trajectory of one worm.
set -euo pipefail
bin=${1:-bin/optoloop}
out=${2:-demo-out}
rm -rf "$out"
mkdir -p "$out"

echo "== a simulated worm of line 301 under random light: rendered frames and its track"
"$bin" sim --line 301 --episodes 1 --seconds 20 --policy random:0.3 --seed 7 --frames "$out/frames" --frame-every 15
echo "frames and track: $out/frames"

echo
echo "== experiment: experiments/demo.yaml (collect, train, evaluate; writes the report)"
start=$(date +%s)
"$bin" experiment run experiments/demo.yaml --out "$out/run"
echo "experiment wall time: $(( $(date +%s) - start )) s"
