#!/usr/bin/env bash
# make dashboard-shot: the demo experiment (experiments/demo.yaml: 3 lines x 4 arenas, rendered
# and tracked) on a one-machine cluster with its dashboard (`optoloop cluster up --dashboard`),
# paced so that all twelve arenas run at once; once every tile shows its thumbnail and most
# arenas run an episode, headless Chromium signs in as a viewer and writes docs/dashboard.png
# (scripts/dashshot). Everything started here is stopped on exit.
#
# Usage: scripts/dashboard-shot.sh [OPTOLOOP_BINARY] [OUT_DIR]
# Environment: PACE (default 3), DOCS (default docs).
set -euo pipefail
bin=${1:-bin/optoloop}
out=${2:-demo-out}
pace=${PACE:-3}
docs=${DOCS:-docs}
demo="$out/dashboard-shot"

die() {
	echo "dashboard-shot: $*" >&2
	exit 1
}
[ -x "$bin" ] || die "$bin not found: run make build first"
command -v chromium >/dev/null 2>&1 || die "chromium not found: make deps installs it"

rm -rf "$demo"
mkdir -p "$demo" "$docs"
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" cluster up experiments/demo.yaml --dir "$demo/cluster" --out "$demo/run" --pace "$pace" \
	--dashboard 127.0.0.1:0 >"$demo/cluster-up.log" 2>&1 &
pid=$!
url=""
for _ in $(seq 600); do
	url=$(sed -n 's#^dashboard: \(http://[^ ]*\)/ui/ .*#\1#p' "$demo/cluster-up.log")
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || die "cluster up exited: $(tail -5 "$demo/cluster-up.log")"
	sleep 0.1
done
[ -n "$url" ] || die "no dashboard URL in $demo/cluster-up.log"
echo "dashboard: $url/ui/"
go run ./scripts/dashshot --url "$url" --token-file "$demo/cluster/secrets/viewer-token" --arenas 12 --running 8 --min-step 150 \
	--out "$docs/dashboard.png"
