#!/usr/bin/env bash
# What a change to the servers costs per request: closed-loop GET /health on the
# servers binary of an earlier commit (base) and of the working tree (current),
# one of each per round, which goes first alternating round by round (see
# scripts/health-ab.sh). The base is built from a git worktree of BASE under
# target/servers-base/ (its own target folder, so the first run builds it whole).
#
#   scripts/servers-change-cost.sh BASE [ROUNDS] [SECONDS] [VARIANT]
#
# Writes each round's bench report and the comparison under
# results/servers-change-cost/<UTC timestamp>/. All traffic goes to 127.0.0.1.
# A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/health-ab.sh

BASE=${1:?usage: scripts/servers-change-cost.sh BASE [ROUNDS] [SECONDS] [VARIANT]}
ROUNDS=${2:-5}
SECONDS_PER_RUN=${3:-10}
VARIANT=${4:-rayon}

base_rev=$(git rev-parse --short "$BASE")
base_tree=target/servers-base/src
if [ -d "$base_tree" ]; then
  git -C "$base_tree" checkout -q --detach "$base_rev"
else
  git worktree add -f --detach "$base_tree" "$base_rev" >/dev/null
fi
CARGO_TARGET_DIR="$PWD/target/servers-base/target" cargo build --manifest-path "$base_tree/Cargo.toml" -p servers
cargo build -p loadgen -p servers
loadgen=target/debug/loadgen   # the dev profile is optimised (opt-level 3)
base=target/servers-base/target/debug/servers
current=target/debug/servers

out="results/servers-change-cost/$(date -u +%Y%m%dT%H%M%SZ)"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    echo "round $round/$ROUNDS: current, then base" >&2
    ab_measure current "$round" "$current"
    ab_measure base "$round" "$base"
  else
    echo "round $round/$ROUNDS: base, then current" >&2
    ab_measure base "$round" "$base"
    ab_measure current "$round" "$current"
  fi
done

{
  echo "# Servers change cost: $ROUNDS rounds of ${SECONDS_PER_RUN} s, closed-loop GET /health on $VARIANT, 16 connections"
  echo
  echo "Environment: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
  echo "Base: the servers of $base_rev ($(git log -1 --format=%s "$base_rev" | cut -c1-100)...);"
  echo "current: the working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- servers pollwatch || echo ' with uncommitted changes')."
  echo "A throughput ratio below 1, or a CPU-per-answer ratio above 1, is what the change"
  echo "costs; loadgen and the server share the cores."
  echo
  ab_table base current
} >"$out/summary.md"
cat "$out/summary.md"
