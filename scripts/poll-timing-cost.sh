#!/usr/bin/env bash
# What timing every poll costs (the pollwatch layer and task wrapper): closed-loop
# GET /health on one reference server with poll timing on and off
# (`--no-poll-timing`), one of each per round, which goes first alternating
# round by round, so drift and order on a shared machine hit both alike. Per
# round: throughput, and the server's CPU per answer (sampled from /proc by
# `bench --server-pid`), which moves less with the client's share of the cores;
# then `loadgen compare off on` over the rounds (medians and ranges of throughput
# and latency; on ÷ off). Needs jq.
#
#   scripts/poll-timing-cost.sh [ROUNDS] [SECONDS] [VARIANT]
#
# Writes each round's bench report and the comparison under
# results/poll-timing-cost/<UTC timestamp>/. All traffic goes to 127.0.0.1.
# A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh
command -v jq >/dev/null || { echo "poll-timing-cost.sh needs jq (apt-get install jq)" >&2; exit 1; }

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
VARIANT=${3:-rayon}

cargo build -p loadgen -p servers
loadgen=target/debug/loadgen   # the dev profile is optimised (opt-level 3)
servers=target/debug/servers

out="results/poll-timing-cost/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/on" "$out/off"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

# One round: start the server (extra flags in "$@"), load it, stop it.
measure() {
  local side=$1 round=$2
  shift 2
  local announce
  announce=$(mktemp)
  "$servers" --variant "$VARIANT" --port 0 "$@" >"$announce" 2>/dev/null &
  server_pid=$!
  local url
  url=$(announced_url "$announce" 10) || exit 1
  rm -f "$announce"
  "$loadgen" bench --url "$url/health" --connections 16 \
    --duration "${SECONDS_PER_RUN}s" --warmup 2s --server-pid "$server_pid" \
    --json "$out/$side/round-$round.json" >/dev/null
  stop_server
}

for round in $(seq "$ROUNDS"); do
  # Which goes first alternates, so an order effect hits both alike.
  if [ $((round % 2)) -eq 1 ]; then
    echo "round $round/$ROUNDS: poll timing on, then off" >&2
    measure on "$round"
    measure off "$round" --no-poll-timing
  else
    echo "round $round/$ROUNDS: poll timing off, then on" >&2
    measure off "$round" --no-poll-timing
    measure on "$round"
  fi
done

# A round's answers per second (the first stream's, the only one).
throughput() { jq '.streams[0].ok_throughput' "$1"; }
# The server's CPU per answer in µs: its CPU seconds over the measured intervals
# ÷ the answers in them.
cpu_per_answer() {
  jq '([.server_telemetry.intervals[] | (.server_cpu // 0) * .length_s] | add) * 1e6
      / (.streams[0].ok_throughput * .config.duration_s)' "$1"
}
# The median and range of the numbers on stdin, one per line.
summarise() {
  sort -n | awk -v what="$1" '{ r[NR] = $1 } END {
    m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%s: median %.3f, range %.3f–%.3f over %d rounds.\n", what, m, r[1], r[NR], NR }'
}

{
  echo "# Poll timing cost: $ROUNDS rounds of ${SECONDS_PER_RUN} s, closed-loop GET /health on $VARIANT, 16 connections"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
  echo "Base: poll timing off (--no-poll-timing); current: on. Throughput ratio on ÷ off"
  echo "below 1, or a CPU-per-answer ratio above 1, is what timing every poll costs;"
  echo "loadgen and the server share the cores."
  echo
  echo "| round | off (answers/s) | on (answers/s) | on ÷ off | off (server µs CPU/answer) | on (server µs CPU/answer) | on ÷ off |"
  echo "|---|---|---|---|---|---|---|"
  # Each round's row; its two ratios also go to one file each, summarised below.
  : >"$out/throughput-ratios"
  : >"$out/cpu-ratios"
  for round in $(seq "$ROUNDS"); do
    awk -v r="$round" -v ratios="$out/throughput-ratios" -v cpu_ratios="$out/cpu-ratios" \
      -v off="$(throughput "$out/off/round-$round.json")" -v on="$(throughput "$out/on/round-$round.json")" \
      -v coff="$(cpu_per_answer "$out/off/round-$round.json")" -v con="$(cpu_per_answer "$out/on/round-$round.json")" \
      'BEGIN {
        printf "| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.3f |\n", r, off, on, on / off, coff, con, con / coff
        printf "%.4f\n", on / off >> ratios
        printf "%.4f\n", con / coff >> cpu_ratios
      }'
  done
  echo
  summarise "Throughput ratio on ÷ off" <"$out/throughput-ratios"
  echo
  summarise "Server CPU per answer, on ÷ off" <"$out/cpu-ratios"
  rm -f "$out/throughput-ratios" "$out/cpu-ratios"
  echo
  echo '```'
  "$loadgen" compare "$out/off" "$out/on" || true
  echo '```'
} >"$out/summary.md"
cat "$out/summary.md"
