#!/usr/bin/env bash
# A paired cross-evaluation of a run's agents: every agent line's ensemble acts on the same
# simulated animals (seeds 900001 to 900000+EPISODES, the four targets in turn, --no-render) of
# every animal line, so the animals' own variation cancels out of the comparison. The run's
# cross_evaluate draws other animals for every pair; this shows whether one line's agents really
# do better than another's on an animal line, or whether a cross-evaluation column was won by
# chance (issue 15).
# Prints, per animal line, each agent line's mean closest approach and its share within 0.5 cm,
# and each agent line's mean paired difference from the animal line's own agents with its
# standard error.
#   scripts/cross-paired.sh BIN RUN_DIR EPISODES LINE LINE [LINE...]
set -euo pipefail
[ $# -ge 5 ] || {
	echo "usage: scripts/cross-paired.sh BIN RUN_DIR EPISODES LINE LINE [LINE...]" >&2
	exit 2
}
bin=$1
run=$2
n=$3
shift 3
lines=("$@")
case $n in '' | *[!0-9]* | 0)
	echo "cross-paired: EPISODES must be a positive whole number, not \"$n\"" >&2
	exit 2
	;;
esac
for l in "${lines[@]}"; do
	[ -d "$run/lines/$l/ensemble" ] || {
		echo "cross-paired: $run/lines/$l/ensemble: no trained ensemble of line $l in the run" >&2
		exit 2
	}
done
targets=(up down left right)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for animal in "${lines[@]}"; do
	: >"$tmp"
	for i in $(seq 1 "$n"); do
		seed=$((900000 + i))
		target=${targets[$((i % 4))]}
		row=""
		for agent in "${lines[@]}"; do
			c=$("$bin" episode --line "$animal" --no-render --ensemble "$run/lines/$agent/ensemble" --agent-line "$agent" \
				--seed "$seed" --target "$target" | grep -o '"closest_cm":[^,}]*' | cut -d: -f2)
			row="$row $c"
		done
		echo "$row" >>"$tmp"
	done
	own=0
	for k in "${!lines[@]}"; do [ "${lines[$k]}" != "$animal" ] || own=$((k + 1)); done
	echo "animals of line $animal ($n, the same for every agent line):"
	for k in "${!lines[@]}"; do
		awk -v c=$((k + 1)) -v o="$own" -v agent="${lines[$k]}" '
			{ x = $c; s += x; if (x < 0.5) r++; d = x - $o; sd += d; sdd += d * d; m++ }
			END {
				md = sd / m; se = (m > 1) ? sqrt((sdd - m * md * md) / (m - 1) / m) : 0
				if (c == o) printf "  agents of %-6s mean %.3f cm, within 0.5 cm %d of %d (own line)\n", agent, s / m, r, m
				else printf "  agents of %-6s mean %.3f cm, within 0.5 cm %d of %d, paired difference from own %+.3f cm (SE %.3f)\n", agent, s / m, r, m, md, se
			}' "$tmp"
	done
done
