#!/usr/bin/env bash
# make trace-demo: the cluster demo (experiments/demo.yaml, --no-render) exporting its traces
# over OTLP/HTTP to a real Jaeger on loopback, then one evaluation episode's trace: printed by
# `optoloop trace --jaeger`, as optoloop's HTML waterfall, and screenshots taken in headless
# Chromium (docs/trace-jaeger.png: Jaeger's UI; docs/trace-waterfall.png: optoloop's page).
#
# Jaeger (v2, `github.com/jaegertracing/jaeger/cmd/jaeger`) is built with the Go toolchain from
# the separate tools module (tools/go.mod) into bin/jaeger when missing, and runs with in-memory
# storage on free loopback ports; everything started here is stopped on exit.
#
# Jaeger's web UI is not part of its Go module (a binary built from the module serves a
# placeholder page); set JAEGER_UI_DIR to a built jaeger-ui (the folder holding its
# index.html and static/) to have Jaeger serve it and take docs/trace-jaeger.png. Without it
# the demo still runs, reads the trace back through Jaeger's query API and takes
# docs/trace-waterfall.png.
#
# Usage: scripts/trace-demo.sh [OPTOLOOP_BINARY] [OUT_DIR]
# Environment: JAEGER_UI_DIR (above), EXPERIMENT (default experiments/demo.yaml), EPISODE (an
# item id; default the first agent evaluation episode of the run), DOCS (default docs).
set -euo pipefail
bin=${1:-bin/optoloop}
out=${2:-demo-out}
experiment=${EXPERIMENT:-experiments/demo.yaml}
docs=${DOCS:-docs}
jaeger=bin/jaeger
demo="$out/trace-demo"

die() {
	echo "trace-demo: $*" >&2
	exit 1
}

[ -x "$bin" ] || die "$bin not found: run make build first"
command -v chromium >/dev/null 2>&1 || die "chromium not found: make deps installs it"
command -v curl >/dev/null 2>&1 || die "curl not found"
"$bin" cluster up --help 2>/dev/null | grep -q -- '--otlp-endpoint' || die "$bin cluster up has no --otlp-endpoint flag"
"$bin" trace --help >/dev/null 2>&1 || die "$bin has no trace command"
if [ -n "${JAEGER_UI_DIR:-}" ] && [ ! -f "$JAEGER_UI_DIR/index.html" ]; then
	die "JAEGER_UI_DIR=$JAEGER_UI_DIR holds no index.html (want a built jaeger-ui)"
fi

if [ ! -x "$jaeger" ]; then
	echo "== building Jaeger from the tools module (tools/go.mod; takes minutes the first time)"
	start=$(date +%s)
	(cd tools && go build -o ../"$jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
	echo "built $jaeger in $(($(date +%s) - start)) s"
fi

# free_port prints a loopback TCP port nothing listens on.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free loopback port found"
}

rm -rf "$demo"
mkdir -p "$demo" "$docs"
tmp=$(mktemp -d)
jaeger_pid=""
cleanup() {
	if [ -n "$jaeger_pid" ] && kill -0 "$jaeger_pid" 2>/dev/null; then
		kill "$jaeger_pid" 2>/dev/null || true
		wait "$jaeger_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

otlp_port=$(free_port)
query_port=$(free_port)
grpc_port=$(free_port)
ui=""
if [ -n "${JAEGER_UI_DIR:-}" ]; then
	ui="    ui:
      assets_path: $(cd "$JAEGER_UI_DIR" && pwd)"
fi
cat >"$tmp/jaeger.yaml" <<EOF
# Jaeger v2 all in one, on loopback only: an OTLP/HTTP receiver, in-memory storage, the query
# service (API and UI). No internal metrics endpoint.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 200000
  jaeger_query:
    storage:
      traces: memory_store
    # Jaeger's query service traces itself to localhost:4317 by default: not here.
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:$query_port
    grpc:
      endpoint: 127.0.0.1:$grpc_port
$ui
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$otlp_port
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
EOF
query="http://127.0.0.1:$query_port"
otlp="http://127.0.0.1:$otlp_port"

echo "== Jaeger: OTLP/HTTP receiver $otlp, UI and query API $query (log: $demo/jaeger.log)"
"$jaeger" --config "file:$tmp/jaeger.yaml" >"$demo/jaeger.log" 2>&1 &
jaeger_pid=$!
for _ in $(seq 100); do
	curl -fsS "$query/api/services" >/dev/null 2>&1 && break
	kill -0 "$jaeger_pid" 2>/dev/null || die "Jaeger exited: $(tail -5 "$demo/jaeger.log")"
	sleep 0.2
done
curl -fsS "$query/api/services" >/dev/null || die "Jaeger's query service did not answer at $query"

echo
echo "== cluster: $experiment, every process exporting its spans to Jaeger"
start=$(date +%s)
"$bin" cluster up "$experiment" --no-render --otlp-endpoint "$otlp" --out "$demo/run"
echo "cluster experiment wall time: $(($(date +%s) - start)) s"

episode=${EPISODE:-}
if [ -z "$episode" ]; then
	first=$(grep -l '"condition": "agent"' "$demo"/run/episodes/*.json | sort -V | head -1 || true)
	[ -n "$first" ] || die "no agent evaluation episode in $demo/run/episodes"
	episode=$(basename "$first" .json)
fi
echo
echo "== the trace of evaluation episode $episode"
# The processes flushed their spans before they exited; Jaeger's batch processor may still hold
# the last ones for a moment.
trace_args=("$episode" --jaeger "$query" --links --html "$demo/trace.html")
trace_id=""
for _ in $(seq 50); do
	if "$bin" trace "${trace_args[@]}" >"$demo/trace.txt" 2>"$demo/trace.err"; then
		trace_id=$(head -1 "$demo/trace.txt" | awk '{print $2}')
		break
	fi
	sleep 0.2
done
[ -n "$trace_id" ] || die "no trace of $episode in Jaeger: $(cat "$demo/trace.err")"
# Jaeger's batch processor may have been mid-batch: read once more after a pause.
sleep 2
"$bin" trace "${trace_args[@]}" >"$demo/trace.txt"
cat "$demo/trace.txt"
echo "text: $demo/trace.txt; page: $demo/trace.html"

shot() { # shot URL PNG
	local ud
	ud=$(mktemp -d -p "$tmp")
	chromium --headless --no-sandbox --disable-gpu --disable-quic --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
		--user-data-dir="$ud" --window-size=1600,1000 --virtual-time-budget=20000 \
		--screenshot="$2" "$1" >"$ud.log" 2>&1 || die "chromium failed on $1: $(tail -3 "$ud.log")"
	[ -s "$2" ] || die "chromium wrote no $2"
	echo "screenshot of $1: $2"
}

echo
echo "== screenshots (headless Chromium)"
shot "file://$(cd "$demo" && pwd)/trace.html" "$docs/trace-waterfall.png"
if [ -n "${JAEGER_UI_DIR:-}" ]; then
	shot "$query/trace/$trace_id" "$docs/trace-jaeger.png"
else
	echo "JAEGER_UI_DIR not set: Jaeger serves no UI (see the top of $0), so no $docs/trace-jaeger.png"
fi
echo "Jaeger is stopped on exit; its UI was at $query/trace/$trace_id"
