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
. scripts/health-ab.sh

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
VARIANT=${3:-rayon}

cargo build -p loadgen -p servers
loadgen=target/debug/loadgen   # the dev profile is optimised (opt-level 3)
servers=target/debug/servers

out="results/poll-timing-cost/$(date -u +%Y%m%dT%H%M%SZ)"

for round in $(seq "$ROUNDS"); do
  # Which goes first alternates, so an order effect hits both alike.
  if [ $((round % 2)) -eq 1 ]; then
    echo "round $round/$ROUNDS: poll timing on, then off" >&2
    ab_measure on "$round" "$servers"
    ab_measure off "$round" "$servers" --no-poll-timing
  else
    echo "round $round/$ROUNDS: poll timing off, then on" >&2
    ab_measure off "$round" "$servers" --no-poll-timing
    ab_measure on "$round" "$servers"
  fi
done

{
  echo "# Poll timing cost: $ROUNDS rounds of ${SECONDS_PER_RUN} s, closed-loop GET /health on $VARIANT, 16 connections"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
  echo "Base: poll timing off (--no-poll-timing); current: on. Throughput ratio on ÷ off"
  echo "below 1, or a CPU-per-answer ratio above 1, is what timing every poll costs;"
  echo "loadgen and the server share the cores."
  echo
  ab_table off on
} >"$out/summary.md"
cat "$out/summary.md"
