#!/usr/bin/env bash
# The README's picture of the live dashboard: the default run (`loadgen run
# --live`, release build) watched by the test browser (headless Chromium over
# WebDriver), photographed once AFTER variants have finished and the next is ten
# seconds into its heaviest steps, with the sections of blocking-in-async, rayon
# and the running variant shown. The run is then interrupted.
#
#   scripts/live-screenshot.sh [AFTER]        # default 5
#
# Writes results/live-dashboard/<UTC timestamp>/live.png, the interrupted run's
# folder beside it (run/), and environment.txt. Needs chromium and
# chromium-driver (.ci/run installs them). All traffic goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

AFTER=${1:-5}
cargo test --release -p loadgen --test browser --no-run
out="results/live-dashboard/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
{
  echo "command: scripts/live-screenshot.sh $AFTER"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') × $(nproc)"
  echo "kernel: $(uname -sr)"
  chromium --version 2>/dev/null || true
} >"$out/environment.txt"
LIVE_SCREENSHOT="$PWD/$out/live.png" LIVE_SCREENSHOT_AFTER="$AFTER" \
  cargo test --release -p loadgen --test browser -- --ignored --exact \
  screenshot_of_the_live_page_during_the_default_run --nocapture
echo "wrote $out/live.png"
