#!/usr/bin/env bash
# Issue 17's comparison, side by side in one sitting: for each seed given (default 1 2 3 4), the
# online file experiments/online.yaml (1 h of animal time per line) and the same lines, settings
# and seed offline with 20 h and with 1 h of random-light data (experiments/online.yaml with
# train.mode offline, critic_target behaviour, the reference's learning rate and batch size, as
# experiments/science.yaml trains), each with --no-render on the one engine. Prints per seed and
# line the agent's closest approach, the baselines, the p values, the animal hours and the wall
# time of each run, whether the online agent meets the criterion (within 0.1 cm of the offline
# 20 h agent and beating both baselines with p < 0.05; for the wild type read "not driven": p
# against no light stays above 0.05) with the difference from the offline 20 h agent and its
# standard error (the criterion's 0.1 cm against the measurement's precision), and writes
# docs/online-animal-time.png from the first seed's runs (the first seed alone also runs offline
# with 1 h).
#   scripts/online-bench.sh BIN OUT [SEED...]
set -euo pipefail
bin=${1:-bin/optoloop}
out=${2:-online-bench}
shift 2 || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4)
mkdir -p "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
offline() { # FILE HOURS NAME: the online file made offline with HOURS of random light, trained as
	# experiments/science.yaml trains (behaviour target, rounds of 5000 updates, batches of 64,
	# 20 min episodes)
	sed -e "s/^name: .*/name: $3/" -e 's/^  mode: online/  mode: offline/' -e "s/^  hours_per_line: .*/  hours_per_line: $2/" \
		-e 's/^  critic_target: collection/  critic_target: behaviour/' -e 's/^  episode_seconds: 300/  episode_seconds: 1200/' \
		-e 's/^  checkpoint_every: .*/  checkpoint_every: 5000/' -e 's/^  batch_size: .*/  batch_size: 64/' -e '/^  learning_rate: /d' "$1"
}
for seed in "${seeds[@]}"; do
	modes=(online offline20)
	[ "$seed" != "${seeds[0]}" ] || modes+=(offline1)
	for mode in "${modes[@]}"; do
		f="$out/$mode-s$seed.yaml"
		case $mode in
		online) sed -e "s/^seed: .*/seed: $seed/" experiments/online.yaml >"$f" ;;
		offline20) offline experiments/online.yaml 20 offline20 | sed -e "s/^seed: .*/seed: $seed/" >"$f" ;;
		offline1) offline experiments/online.yaml 1 offline1 | sed -e "s/^seed: .*/seed: $seed/" >"$f" ;;
		esac
		if [ -f "$out/$mode-s$seed/report.json" ] && [ -f "$out/$mode-s$seed.seconds" ]; then
			continue # already run (a rerun of the script after an interruption)
		fi
		rm -rf "$out/$mode-s$seed"
		t0=$(date +%s.%N)
		"$bin" experiment run "$f" --out "$out/$mode-s$seed" --no-render >"$out/$mode-s$seed.log" 2>&1
		awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f\n", b - a }' >"$out/$mode-s$seed.seconds"
	done
done
python3 - "$out" "${seeds[@]}" <<'PY'
import json, math, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
def lines(run):
    r = json.load(open(f"{out}/{run}/report.json"))
    return {l["line"]: l for l in r["lines"]}
def mean(l, c):
    c = l["conditions"].get(c)
    return c["mean"] if c else float("nan")
def diff(a, b):  # online minus offline 20 h agent's mean closest approach, and its standard error
    a, b = a["conditions"]["agent"]["closest_cm"], b["conditions"]["agent"]["closest_cm"]
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return f"{statistics.fmean(a) - statistics.fmean(b):+.2f} ({se:.2f})"
print("seed line  mode       animal_h  agent  none   random  p_none   p_random  wall_s  online-offline20 (se)  online_meets")
met = {}
for s in seeds:
    modes = ("online", "offline20", "offline1") if s == seeds[0] else ("online", "offline20")
    runs = {m: lines(f"{m}-s{s}") for m in modes}
    for line in runs["online"]:
        off = mean(runs["offline20"][line], "agent")
        for m in modes:
            l = runs[m][line]
            wall = open(f"{out}/{m}-s{s}.seconds").read().strip()
            ok, d = "", ""
            if m == "online":
                d = diff(l, runs["offline20"][line])
                a = mean(l, "agent")
                ok = "yes" if a <= off + 0.1 and l["p_agent_vs_none"] < 0.05 and l["p_agent_vs_random"] < 0.05 and a < mean(l, "none") and a < mean(l, "random") else "no"
                met.setdefault(line, []).append(ok == "yes")
            print(f"{s:>4} {line:<5} {m:<10} {l['animal_hours']:8.2f}  {mean(l,'agent'):.2f}  {mean(l,'none'):.2f}  {mean(l,'random'):.2f}    {l['p_agent_vs_none']:.1e}  {l['p_agent_vs_random']:.1e}   {wall:>6}  {d:>21}  {ok}")
print("online meets the criterion on:", {k: f"{sum(v)} of {len(v)} seeds" for k, v in met.items()})
PY
first=${seeds[0]}
"$bin" animal-time "$out/online-s$first" "$out/offline1-s$first" "$out/offline20-s$first" --lines 446,301,281 --out docs/online-animal-time.png
