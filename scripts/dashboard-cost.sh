#!/usr/bin/env bash
# What the dashboard costs with 64 arenas: one worker process serving 64 simulated arenas of
# line 301 (unrendered, paced at real time: 3 frames per second each, as on a rig) on a
# one-machine cluster, run twice: without a dashboard (the workers publish no tiles) and with
# one (every arena publishes its tile twice a second to Redis, and a headless Chromium page
# stays open on the dashboard). For each run it prints the CPU the worker process, redis-server
# and the dashboard used over the same window of the collect phase, per arena for the worker,
# and the page's time to apply each update.
#
# Usage: scripts/dashboard-cost.sh [OPTOLOOP_BINARY] [OUT_DIR]
# Environment: WINDOW (seconds, default 60), WARMUP (seconds, default 20).
set -euo pipefail
bin=${1:-bin/optoloop}
out=${2:-demo-out}
window=${WINDOW:-60}
warmup=${WARMUP:-20}
dir="$out/dashboard-cost"

die() {
	echo "dashboard-cost: $*" >&2
	exit 1
}
[ -x "$bin" ] || die "$bin not found: run make build first"
command -v chromium >/dev/null 2>&1 || die "chromium not found: make deps installs it"
rm -rf "$dir"
mkdir -p "$dir"
cat >"$dir/arenas64.yaml" <<'YAML'
name: arenas64
seed: 1
lines: ["301"]
arenas_per_line: 64
collect: { hours_per_line: 64, episode_seconds: 600, light_probability: 0.1 }
train: { ensemble_size: 1, updates: 100, checkpoint_every: 100 }
evaluate: { episodes_per_condition: 1 }
YAML

pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tck=$(getconf CLK_TCK)
# cpu PID prints the process's user+system CPU time in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# pidof_proc NAME prints the pid processes.json lists for the cluster's process NAME.
pidof_proc() {
	python3 -c 'import json,sys; print(next(p["pid"] for p in json.load(open(sys.argv[1])) if p["name"] == sys.argv[2] and not p.get("exited")))' "$1/processes.json" "$2"
}

run() { # run NAME [--dashboard ADDR]
	local name=$1
	shift
	local c="$dir/$name"
	"$bin" cluster up "$dir/arenas64.yaml" --dir "$c" --out "$c-run" --pace 1 --no-render "$@" >"$c.log" 2>&1 &
	pid=$!
	for _ in $(seq 600); do
		grep -q '^time=.*msg=submitted' "$c.log" && break
		kill -0 "$pid" 2>/dev/null || die "cluster up exited: $(tail -5 "$c.log")"
		sleep 0.1
	done
	local url
	url=$(sed -n 's#^dashboard: \(http://[^ ]*\)/ui/ .*#\1#p' "$c.log")
	local shot=""
	if [ -n "$url" ]; then
		go build -o "$dir/dashshot" ./scripts/dashshot
		"$dir/dashshot" --url "$url" --token-file "$c/secrets/viewer-token" --arenas 64 --running 32 --out "" \
			--hold "$((warmup + window + 5))s" >"$c-page.log" 2>&1 &
		shot=$!
	fi
	sleep "$warmup"
	local w r d w0 r0 d0=0 w1 r1 d1=0
	w=$(pidof_proc "$c" worker-0)
	r=$(pidof_proc "$c" redis)
	w0=$(cpu "$w")
	r0=$(cpu "$r")
	if [ -n "$url" ]; then
		d=$(pidof_proc "$c" dashboard)
		d0=$(cpu "$d")
	fi
	sleep "$window"
	w1=$(cpu "$w")
	r1=$(cpu "$r")
	[ -n "$url" ] && d1=$(cpu "$d")
	awk -v n="$name" -v w="$((w1 - w0))" -v r="$((r1 - r0))" -v d="$((d1 - d0))" -v t="$tck" -v s="$window" 'BEGIN {
		printf "%-12s worker process %5.1f %% of a core (%.3f %% per arena), redis-server %5.2f %%, dashboard %5.2f %%\n",
			n, 100 * w / t / s, 100 * w / t / s / 64, 100 * r / t / s, 100 * d / t / s }'
	if [ -n "$shot" ]; then
		wait "$shot" || die "dashshot failed: $(cat "$c-page.log")"
		sed 's/^dashshot: /             page: /' "$c-page.log"
	fi
	kill -INT "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
}

echo "== 64 arenas on one worker process, ${window} s of collection each ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
run no-dashboard
run dashboard --dashboard 127.0.0.1:0
