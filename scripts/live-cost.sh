#!/usr/bin/env bash
# What the live dashboard costs the run: open-loop send lateness of `loadgen bench
# --live` with no browser connected against the same run with 50 connected (each a
# `curl` reading /events, 10 frames a second), alternating, round by round.
#
#   scripts/live-cost.sh [ROUNDS] [SECONDS] [RATE]      # defaults: 3 15 2000
#   LOADGEN_CPUS=0 OTHER_CPUS=1 scripts/live-cost.sh   # loadgen on CPU 0; server
#                                                      # and readers on CPU 1
#
# With LOADGEN_CPUS and OTHER_CPUS (taskset lists), loadgen runs on the first
# and the server and the readers on the second: what serving the page costs
# loadgen itself, apart from what the readers' own CPU takes from it.
#
# Builds loadgen and servers in release mode; writes each run's JSON and
# summary.md under results/live-cost/<UTC timestamp>/. All traffic goes to
# 127.0.0.1. A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-15}
RATE=${3:-2000}
CLIENTS=${CLIENTS:-50}
LOADGEN_CPUS=${LOADGEN_CPUS:-}
OTHER_CPUS=${OTHER_CPUS:-}
pin_loadgen=()
pin_others=()
if [ -n "$LOADGEN_CPUS" ] || [ -n "$OTHER_CPUS" ]; then
  [ -n "$LOADGEN_CPUS" ] && [ -n "$OTHER_CPUS" ] || { echo "give both LOADGEN_CPUS and OTHER_CPUS" >&2; exit 2; }
  pin_loadgen=(taskset -c "$LOADGEN_CPUS")
  pin_others=(taskset -c "$OTHER_CPUS")
fi

cargo build --release -p loadgen -p servers
out="results/live-cost/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
"${pin_others[@]}" target/release/servers --variant spawn-blocking >"$out/server.stdout" 2>"$out/server.log" &
server_pid=$!
clients=()
cleanup() {
  kill "${clients[@]}" "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
base=$(announced_url "$out/server.stdout" 5) || exit 1

# One run; with CONNECT=yes, CLIENTS readers join during the warm-up.
run() {
  local name=$1 connect=$2 log="$out/$1.stderr"
  "${pin_loadgen[@]}" target/release/loadgen bench --url "$base/health" --rate "$RATE" -c 32 \
    -d "${SECONDS_PER_RUN}s" -w 2s --interval 100ms --live --json "$out/$name.json" \
    >"$out/$name.txt" 2>"$log" &
  local bench=$!
  local url=""
  for _ in $(seq 50); do
    url=$(sed -n 's/^live dashboard: //p' "$log" | head -1)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "no dashboard address in $log" >&2; exit 1; }
  clients=()
  if [ "$connect" = yes ]; then
    for _ in $(seq "$CLIENTS"); do
      "${pin_others[@]}" curl -sN "${url}events" >/dev/null &
      clients+=($!)
    done
  fi
  wait "$bench"
  # The readers end with the run's stream.
  for pid in "${clients[@]}"; do wait "$pid" 2>/dev/null || true; done
  clients=()
}

for round in $(seq "$ROUNDS"); do
  echo "round $round: no browser"
  run "alone.$round" no
  echo "round $round: $CLIENTS browsers"
  run "watched.$round" yes
done

python3 - "$out" "$ROUNDS" "$SECONDS_PER_RUN" "$RATE" "$CLIENTS" "$LOADGEN_CPUS" "$OTHER_CPUS" <<'PY'
import json, os, platform, statistics, sys
out, rounds, secs, rate, clients, loadgen_cpus, other_cpus = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
placement = (f"loadgen on CPU {loadgen_cpus}; server and readers on CPU {other_cpus}" if loadgen_cpus
             else "server, client and readers share the cores")
def figures(name):
    s = json.load(open(f"{out}/{name}.json"))["streams"][0]
    return {
        "lateness p99 µs": s["lateness"]["p99_us"],
        "lateness max µs": s["lateness"]["max_us"],
        "pacer lateness p99 µs": (s.get("pacer_lateness") or {}).get("p99_us", float("nan")),
        "corrected p99 µs": s["latency"]["corrected"]["p99_us"],
        "achieved/s": s["achieved_rate"],
    }
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
rows = {kind: [figures(f"{kind}.{r}") for r in range(1, rounds + 1)] for kind in ("alone", "watched")}
keys = list(rows["alone"][0])
lines = [
    f"# Live dashboard cost: {rate}/s open loop, {secs} s, 100 ms intervals, {rounds} rounds alternating",
    "",
    f"`alone`: `bench --live` with no browser; `watched`: the same with {clients} readers of /events (curl).",
    f"Environment: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}; server `servers --variant spawn-blocking`; {placement}.",
    "",
    "| run | " + " | ".join(keys) + " |",
    "|---|" + "---|" * len(keys),
]
for kind, runs in rows.items():
    for r, f in enumerate(runs, 1):
        lines.append(f"| {kind} {r} | " + " | ".join(f"{f[k]:.1f}" for k in keys) + " |")
for kind, runs in rows.items():
    lines.append(f"| {kind} median | " + " | ".join(f"{statistics.median(f[k] for f in runs):.1f}" for k in keys) + " |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "raw output and summary.md in $out"
