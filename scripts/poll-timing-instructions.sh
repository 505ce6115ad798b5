#!/usr/bin/env bash
# What timing every poll costs, in instructions: the server's own user-space
# instructions per answered GET /health with poll timing on and off, each side
# run under `valgrind --tool=callgrind` (which counts instructions, not seconds,
# so the figure repeats whatever else the shared machine is doing) and loaded
# open loop at a rate low enough for the slowed server to keep up. The server's
# idle work (lag probe, timers) is the same on both sides and counts in both;
# the kernel's start-up calibration is left out.
#
#   scripts/poll-timing-instructions.sh [REQUESTS_PER_SECOND] [SECONDS] [VARIANT]
#
# Prints the two totals and the difference per answer; writes nothing under
# results/ (copy the output there). All traffic goes to 127.0.0.1. Needs
# valgrind and jq. A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh
for tool in valgrind jq; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
done

RATE=${1:-200}
SECONDS_PER_RUN=${2:-10}
VARIANT=${3:-rayon}

cargo build -p loadgen -p servers
loadgen=target/debug/loadgen
servers=target/debug/servers
# KEEP=DIR keeps the callgrind files there (for callgrind_annotate).
if [ -n "${KEEP:-}" ]; then
  work=$KEEP
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# One side: the server under callgrind, loaded, stopped; prints
# "instructions answers".
measure() {
  local side=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$work/$side.out" \
    "$servers" --variant "$VARIANT" --port 0 "$@" >"$work/$side.announce" 2>"$work/$side.log" &
  local pid=$!
  local url
  url=$(announced_url "$work/$side.announce" 30) || exit 1
  "$loadgen" bench --url "$url/health" --rate "$RATE" --connections 4 \
    --duration "${SECONDS_PER_RUN}s" --warmup 2s --json "$work/$side.json" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  local instructions answers
  # Everything but the kernel's start-up calibration, which runs for a fixed
  # wall time and so for however many instructions valgrind's speed allows.
  instructions=$(callgrind_annotate --threshold=100 --auto=no "$work/$side.out" 2>/dev/null |
    awk '/file:function/ { f = 1; next }
         f && /^--/ && n > 0 { exit }
         f && /^ *[0-9,]+ \(/ { n++; v = $1; gsub(",", "", v); if ($0 !~ /run_units|calibrate/) t += v }
         END { printf "%d\n", t }')
  answers=$(jq '.streams[0].ok_throughput * (.config.duration_s + .config.warmup_s)' "$work/$side.json")
  echo "$instructions $answers"
}

read -r off_i off_n < <(measure off --no-poll-timing)
read -r on_i on_n < <(measure on)
echo "Poll timing cost in instructions: $VARIANT, GET /health open loop at $RATE/s for ${SECONDS_PER_RUN} s (+2 s warm-up), server under callgrind, start-up calibration left out"
echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(valgrind --version)."
awk -v oi="$off_i" -v on="$off_n" -v ni="$on_i" -v nn="$on_n" 'BEGIN {
  printf "off: %d instructions, ~%.0f answers, %.0f per answer\n", oi, on, oi / on
  printf "on:  %d instructions, ~%.0f answers, %.0f per answer\n", ni, nn, ni / nn
  printf "on ÷ off per answer: %.4f\n", (ni / nn) / (oi / on)
}'
