#!/usr/bin/env bash
# Compares the load generators themselves: closed-loop throughput and client CPU
# time per request of loadgen, oha and wrk against the same server endpoint
# (/health of a reference server), at the same connection count, alternating tools
# round by round so drift on a shared machine hits all of them alike.
#
#   scripts/bench-loadgen.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Installs what it needs (wrk from Debian, oha with cargo install), builds loadgen
# and servers in release mode, and writes raw output plus summary.md under
# results/bench-loadgen/<UTC timestamp>/. All traffic goes to 127.0.0.1.
# This is a benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-16}
VARIANT=${VARIANT:-blocking-in-async}

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  need_root apt-get install -y wrk || { need_root apt-get update && need_root apt-get install -y wrk; }
fi
if ! command -v oha >/dev/null; then
  cargo install oha --locked
fi
cargo build --release -p loadgen -p servers

out="results/bench-loadgen/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

server_log="$out/server.log"
target/release/servers --variant "$VARIANT" >"$out/server.stdout" 2>"$server_log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
base=$(announced_url "$out/server.stdout" 5) || exit 1
url="$base/health"
echo "server: $VARIANT at $base; $ROUNDS rounds of $SECONDS_PER_RUN s at $CONNECTIONS connections"

# CPU seconds (user + system) used by finished child processes so far.
child_cpu() { python3 -c 'import os; t=os.times(); print(t.children_user + t.children_system)'; }

run_tool() {
  local tool=$1 round=$2 raw="$out/$1.$2"
  local before after
  # `times`-style accounting only sees waited-for children, so each tool runs in a
  # python wrapper that reports its own child's CPU time.
  case $tool in
    loadgen) cmd=(target/release/loadgen bench --url "$url" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" -w 0s --json "$raw.json") ;;
    oha) cmd=(oha -z "${SECONDS_PER_RUN}s" -c "$CONNECTIONS" --no-tui --output-format json "$url") ;;
    wrk) cmd=(wrk -t2 -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" "$url") ;;
  esac
  python3 - "$raw" "${cmd[@]}" <<'PY'
import os, subprocess, sys, json
raw, cmd = sys.argv[1], sys.argv[2:]
before = os.times()
with open(raw + ".out", "w") as f:
    subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
after = os.times()
cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
json.dump({"cpu_s": cpu}, open(raw + ".cpu.json", "w"))
PY
}

for round in $(seq "$ROUNDS"); do
  for tool in loadgen oha wrk; do
    echo "round $round: $tool"
    run_tool "$tool" "$round"
  done
done

python3 - "$out" "$ROUNDS" "$CONNECTIONS" "$SECONDS_PER_RUN" "$VARIANT" <<'PY'
import json, re, statistics, sys, platform, os, subprocess
out, rounds, conns, secs, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def requests_per_s(tool, raw):
    text = open(raw + ".out").read()
    if tool == "loadgen":
        return json.load(open(raw + ".json"))["streams"][0]["throughput"]
    if tool == "oha":
        return json.loads(text)["summary"]["requestsPerSec"]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

rows = {}
for tool in ("loadgen", "oha", "wrk"):
    rps, cpu_per_req = [], []
    for r in range(1, rounds + 1):
        raw = f"{out}/{tool}.{r}"
        rate = requests_per_s(tool, raw)
        cpu = json.load(open(raw + ".cpu.json"))["cpu_s"]
        rps.append(rate)
        cpu_per_req.append(cpu / (rate * float(secs)) * 1e6)
    rows[tool] = (rps, cpu_per_req)

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
versions = {
    "oha": subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip(),
    "wrk": (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or ["wrk"])[0],
}
med = {t: (statistics.median(v[0]), statistics.median(v[1])) for t, v in rows.items()}
lines = [
    f"# loadgen vs oha vs wrk: closed loop, {conns} connections, {secs} s per run, {rounds} rounds alternating",
    "",
    f"Server: `servers --variant {variant}` (release), endpoint `/health`, on the same machine.",
    f"Environment: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}; "
    f"client and server share the cores. Tools: loadgen (release), {versions['oha']}, {versions['wrk']}.",
    "",
    "| tool | requests/s (median) | range | client CPU µs/request (median) | range | throughput vs oha | CPU/request vs wrk |",
    "|---|---|---|---|---|---|---|",
]
for t, (rps, cpu) in rows.items():
    lines.append(
        f"| {t} | {med[t][0]:.0f} | {min(rps):.0f}–{max(rps):.0f} | {med[t][1]:.2f} | {min(cpu):.2f}–{max(cpu):.2f} "
        f"| {med[t][0] / med['oha'][0]:.2f} | {med[t][1] / med['wrk'][1]:.2f} |"
    )
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "raw output and summary.md in $out"
