#!/usr/bin/env bash
# How well `loadgen compare` tells a real regression from noise on this machine.
#
#   scripts/compare-power.sh [PAIRS] [VARIANTS] [TARGET]
#
# Runs PAIRS+1 quick "A" runs of VARIANTS and PAIRS quick "B" runs in which every
# server's /health waits an injected delay (`loadgen run --inject-delay`) equal to
# TARGET's median probe p99 under load in the A runs, so TARGET's probe p99 about
# doubles. A and B runs alternate, so drift of the shared machine hits both alike.
# Then, at several noise factors:
#   - false alarms: of the PAIRS A/A comparisons (A_i against A_{i+1}), how many
#     report any regression (`compare` exits 99);
#   - detections: of the PAIRS A/B comparisons (A_i against B_i), how many report
#     TARGET's probe loaded p99 as a regression.
# Writes summary.md and comparisons.tsv under results/compare-power/<UTC timestamp>/;
# the runs themselves stay under target/compare-power/ (not committed).
# All traffic goes to 127.0.0.1. A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${1:-20}
VARIANTS=${2:-rayon,sequential-queue}
TARGET=${3:-rayon}
NOISES="1.25 1.5 2 3 6"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }
if ! command -v jq >/dev/null 2>&1; then
  as_root apt-get install -y -q jq >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null 2>&1 && as_root apt-get install -y -q jq >/dev/null 2>&1; }
fi

cargo build -q -p loadgen --locked
stamp=$(date -u +%Y%m%dT%H%M%SZ)
runs="target/compare-power/$stamp"
out="results/compare-power/$stamp"
mkdir -p "$runs" "$out"
# A copy: a rebuild while the runs go on must not pull the binary from under them.
loadgen="$runs/loadgen"
cp target/debug/loadgen "$loadgen"   # the dev profile is optimised (opt-level 3)

run() { # NAME [FLAGS...]: one quick run into $runs/NAME
  local name=$1
  shift
  "$loadgen" run --quick --variant "$VARIANTS" --out "$runs/tmp" "$@" >/dev/null 2>"$runs/$name.log" || true
  mv "$(readlink -f "$runs/tmp/latest")" "$runs/$name"
  rm -rf "$runs/tmp"
}
p99_us() { # RUN: TARGET's probe p99 under load in µs
  jq -r --arg v "$TARGET" '.variants[] | select(.name == $v) | .figures.probe_loaded.p99_us' "$runs/$1/report.json"
}

echo "A run 0" >&2
run a0
delay_us=$(p99_us a0)
for i in $(seq 1 "$PAIRS"); do
  # The delay: the median of TARGET's p99 over the A runs so far.
  delay_us=$(for r in "$runs"/a*/report.json; do p99_us "$(basename "$(dirname "$r")")"; done \
    | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  delay_ms=$(awk -v us="$delay_us" 'BEGIN {printf "%.3f", us / 1000}')
  echo "pair $i/$PAIRS: B (inject ${delay_ms}ms), A" >&2
  run "b$i" --inject-delay "${delay_ms}ms"
  run "a$i"
done

printf 'noise\tcomparison\tbase\tcurrent\texit\ttarget_flagged\n' >"$out/comparisons.tsv"
for noise in $NOISES; do
  for i in $(seq 1 "$PAIRS"); do
    prev=$((i - 1))
    for pair in "a$prev a$i aa" "a$i b$i ab"; do
      set -- $pair
      status=0
      text=$("$loadgen" compare "$runs/$1" "$runs/$2" --noise "$noise" 2>&1) || status=$?
      flagged=$(grep -c "^$TARGET  *probe loaded p99  .*REGRESSION" <<<"$text" || true)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$noise" "$3" "$1" "$2" "$status" "$flagged" >>"$out/comparisons.tsv"
    done
  done
done

a_p99=$(for i in $(seq 0 "$PAIRS"); do p99_us "a$i"; done | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
b_p99=$(for i in $(seq 1 "$PAIRS"); do p99_us "b$i"; done | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
{
  echo "# Power of \`loadgen compare\`: $PAIRS A/A and $PAIRS A/B comparisons"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); dev profile (opt-level 3)."
  echo "Runs: \`loadgen run --quick --variant $VARIANTS\`, one run per side (no repeats), A and B alternating."
  echo "Injected regression: every /health waits TARGET's median A-run probe p99 ($TARGET: $(awk -v us="$a_p99" 'BEGIN {printf "%.2f", us / 1000}') ms)."
  echo "Achieved: $TARGET probe p99 under load, median over runs: A $(awk -v us="$a_p99" 'BEGIN {printf "%.2f", us / 1000}') ms, B $(awk -v us="$b_p99" 'BEGIN {printf "%.2f", us / 1000}') ms ($(awk -v a="$a_p99" -v b="$b_p99" 'BEGIN {printf "%.2f", b / a}')×)."
  echo
  echo "| --noise | false alarms (A/A, any figure) | detections (A/B, $TARGET probe loaded p99) |"
  echo "|---|---|---|"
  for noise in $NOISES; do
    awk -F'\t' -v n="$noise" -v pairs="$PAIRS" '
      $1 == n && $2 == "aa" && $5 == 99 { alarms++ }
      $1 == n && $2 == "ab" && $6 > 0 { found++ }
      END { printf "| %s | %d of %d | %d of %d |\n", n, alarms, pairs, found, pairs }' "$out/comparisons.tsv"
  done
} >"$out/summary.md"
cat "$out/summary.md"
