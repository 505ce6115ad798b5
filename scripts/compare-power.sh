#!/usr/bin/env bash
# How well `loadgen compare` tells a real regression from noise on this machine.
#
#   scripts/compare-power.sh [PAIRS] [VARIANTS] [TARGET]
#   EVALUATE=target/compare-power/STAMP scripts/compare-power.sh [PAIRS] ...
#
# Runs PAIRS+1 quick "A" runs of VARIANTS and PAIRS quick "B" runs in which every
# server's /health waits an injected delay (`loadgen run --inject-delay`) equal to
# TARGET's median probe p99 under load in the A runs, so TARGET's probe p99 about
# doubles. A and B runs alternate, so drift of the shared machine hits both alike.
# Then, at several noise factors:
#   - false alarms: of the PAIRS A/A comparisons (A_i against A_{i+1}), how many
#     report any regression (`compare` exits 99);
#   - detections: of the PAIRS A/B comparisons (A_i against B_i), how many report
#     TARGET's probe loaded p99 as a regression;
# and the same with three runs a side (what `run --repeat 3` gives): every pair of
# disjoint A triples (A/A) and every A triple against every B triple (A/B).
# Writes summary.md and comparisons.tsv under results/compare-power/<UTC timestamp>/;
# the runs themselves stay under target/compare-power/ (not committed). With
# EVALUATE set, no runs are made: the comparisons are made again over those runs
# (e.g. after a change to `compare` itself).
# All traffic goes to 127.0.0.1. A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${1:-20}
VARIANTS=${2:-rayon,sequential-queue}
TARGET=${3:-rayon}
# Extra flags of every run, e.g. RUN_FLAGS="--loaded 3s" for longer steps.
RUN_FLAGS=${RUN_FLAGS:-}
NOISES=${NOISES:-"1.1 1.25 1.5 2 3 6"}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }
if ! command -v jq >/dev/null 2>&1; then
  as_root apt-get install -y -q jq >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null 2>&1 && as_root apt-get install -y -q jq >/dev/null 2>&1; }
fi

cargo build -q -p loadgen --locked
stamp=$(date -u +%Y%m%dT%H%M%SZ)
runs=${EVALUATE:-target/compare-power/$stamp}
out="results/compare-power/$stamp"
mkdir -p "$runs" "$out"
# A copy: a rebuild while the runs go on must not pull the binary from under them.
loadgen="$runs/loadgen"
cp target/debug/loadgen "$loadgen"   # the dev profile is optimised (opt-level 3)

run() { # NAME [FLAGS...]: one quick run into $runs/NAME
  local name=$1
  shift
  # shellcheck disable=SC2086 # RUN_FLAGS is a list of flags
  "$loadgen" run --quick --variant "$VARIANTS" $RUN_FLAGS --out "$runs/tmp" "$@" >/dev/null 2>"$runs/$name.log" || true
  mv "$(readlink -f "$runs/tmp/latest")" "$runs/$name"
  rm -rf "$runs/tmp"
}
p99_us() { # RUN: TARGET's probe p99 under load in µs
  jq -r --arg v "$TARGET" '.variants[] | select(.name == $v) | .figures.probe_loaded.p99_us' "$runs/$1/report.json"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

if [ -z "${EVALUATE:-}" ]; then
  echo "A run 0" >&2
  run a0
  for i in $(seq 1 "$PAIRS"); do
    # The delay: the median of TARGET's p99 over the A runs so far.
    delay_us=$(for r in "$runs"/a*/report.json; do p99_us "$(basename "$(dirname "$r")")"; done | median)
    delay_ms=$(awk -v us="$delay_us" 'BEGIN {printf "%.3f", us / 1000}')
    echo "pair $i/$PAIRS: B (inject ${delay_ms}ms), A" >&2
    run "b$i" --inject-delay "${delay_ms}ms"
    run "a$i"
  done
fi

# Sides of three runs: folders of links to the runs, which `compare` reads as one
# side each.
triples=$runs/triples
rm -rf "$triples"
group() { # PREFIX FIRST COUNT: triples of runs PREFIX<FIRST>… as folders PREFIX-t<k>
  local prefix=$1 first=$2 count=$3 k=0
  for start in $(seq "$first" 3 $((first + count - 3))); do
    mkdir -p "$triples/$prefix-t$k"
    for j in 0 1 2; do ln -s "$(readlink -f "$runs/$prefix$((start + j))")" "$triples/$prefix-t$k/run$j"; done
    k=$((k + 1))
  done
  echo "$k"
}
a_groups=$(group a 0 $((PAIRS + 1)))
b_groups=$(group b 1 "$PAIRS")

compare_one() { # NOISE KIND BASE CURRENT: one comparison, one line of the table
  local status=0 text flagged
  text=$("$loadgen" compare "$3" "$4" --noise "$1" 2>&1) || status=$?
  flagged=$(grep -c "^$TARGET  *probe loaded p99  .*REGRESSION" <<<"$text" || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "${3#"$runs"/}" "${4#"$runs"/}" "$status" "$flagged" >>"$out/comparisons.tsv"
}
printf 'noise\tcomparison\tbase\tcurrent\texit\ttarget_flagged\n' >"$out/comparisons.tsv"
for noise in $NOISES; do
  for i in $(seq 1 "$PAIRS"); do
    compare_one "$noise" aa "$runs/a$((i - 1))" "$runs/a$i"
    compare_one "$noise" ab "$runs/a$i" "$runs/b$i"
  done
  for i in $(seq 0 $((a_groups - 1))); do
    for j in $(seq $((i + 1)) $((a_groups - 1))); do
      compare_one "$noise" aa3 "$triples/a-t$i" "$triples/a-t$j"
    done
    for j in $(seq 0 $((b_groups - 1))); do
      compare_one "$noise" ab3 "$triples/a-t$i" "$triples/b-t$j"
    done
  done
done

a_p99=$(for i in $(seq 0 "$PAIRS"); do p99_us "a$i"; done | median)
b_p99=$(for i in $(seq 1 "$PAIRS"); do p99_us "b$i"; done | median)
ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us / 1000}'; }
rates() { # KIND_AA KIND_AB: one table row per noise factor
  for noise in $NOISES; do
    awk -F'\t' -v n="$noise" -v aa="$1" -v ab="$2" '
      $1 == n && $2 == aa { comparisons_aa++; if ($5 == 99) alarms++ }
      $1 == n && $2 == ab { comparisons_ab++; if ($6 > 0) found++ }
      END { printf "| %s | %d of %d | %d of %d |\n", n, alarms, comparisons_aa, found, comparisons_ab }' "$out/comparisons.tsv"
  done
}
{
  echo "# Power of \`loadgen compare\` on this machine"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); dev profile (opt-level 3)."
  echo "Runs: $((PAIRS + 1)) A and $PAIRS B runs of \`loadgen run --quick --variant $VARIANTS $RUN_FLAGS\`, A and B alternating (in \`${runs}\`, not committed)."
  echo "Injected regression (B): every /health waits $TARGET's median A-run probe p99 under load ($(ms "$a_p99") ms)."
  echo "Achieved: $TARGET probe p99 under load, median over runs: A $(ms "$a_p99") ms, B $(ms "$b_p99") ms ($(awk -v a="$a_p99" -v b="$b_p99" 'BEGIN {printf "%.2f", b / a}')×)."
  echo "False alarm: \`compare\` exits 99 (any figure of any variant); detection: it reports $TARGET's probe loaded p99 as a regression. --noise-throughput stays at its default."
  echo
  echo "One run a side ($PAIRS A/A pairs A_i-1, A_i; $PAIRS A/B pairs A_i, B_i):"
  echo
  echo "| --noise | false alarms (A/A) | detections (A/B) |"
  echo "|---|---|---|"
  rates aa ab
  echo
  echo "Three runs a side ($a_groups disjoint A triples, $b_groups B triples; every pair of A triples, every A triple against every B triple):"
  echo
  echo "| --noise | false alarms (A/A) | detections (A/B) |"
  echo "|---|---|---|"
  rates aa3 ab3
} >"$out/summary.md"
cat "$out/summary.md"
