#!/usr/bin/env bash
# What the server telemetry costs: the quick responsiveness run with telemetry on
# (lag probe running, /metrics.json scraped once a second) and off (`--no-telemetry`:
# no probe, no scrapes), alternating on/off round by round so drift on a shared
# machine hits both alike, then `loadgen compare off on` over the repeated runs
# (medians and ranges of probe latency and heavy throughput per variant).
#
#   scripts/telemetry-cost.sh [ROUNDS] [VARIANTS]
#
# Writes every run's report.json and summary.md, and the comparison, under results/telemetry-cost/<UTC timestamp>/.
# All traffic goes to 127.0.0.1. A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
VARIANTS=${2:-rayon,sequential-queue,cooperative,spawn-blocking}

cargo build -p loadgen
loadgen=target/debug/loadgen   # the dev profile is optimised (opt-level 3)

out="results/telemetry-cost/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/on" "$out/off"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: telemetry on" >&2
  "$loadgen" run --quick --variant "$VARIANTS" --out "$out/on" >/dev/null
  echo "round $round/$ROUNDS: telemetry off" >&2
  "$loadgen" run --quick --variant "$VARIANTS" --no-telemetry --out "$out/off" >/dev/null
done
# `latest` links are conveniences of single runs; compare reads the run folders,
# and of those only report.json and summary.md are kept (charts, logs and
# histogram files of twelve runs are megabytes nobody reads here).
rm -f "$out/on/latest" "$out/off/latest"
find "$out/on" "$out/off" -mindepth 2 \( -name charts -o -name report.html -o -name '*.hlog' \
  -o -name '*.hgrm' -o -name '*.server.log' \) -exec rm -rf {} +

{
  echo "# Telemetry cost: $ROUNDS rounds, variants $VARIANTS"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
  echo "Base: telemetry off; current: telemetry on. Ratios are on ÷ off (medians);"
  echo "above 1 means slower with telemetry for latencies, faster for throughput."
  echo
  echo '```'
  "$loadgen" compare "$out/off" "$out/on" || true
  echo '```'
} >"$out/summary.md"
cat "$out/summary.md"
