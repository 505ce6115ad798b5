#!/usr/bin/env bash
# Open-loop cost of the load generators: client CPU per request, achieved rate and
# corrected p50/p99 of loadgen (each request at its due time, and with a 1 ms
# release tick) against `oha -q RATE --latency-correction`, at several rates, tools
# alternating round by round so drift on a shared machine hits them alike. Where the
# workspace has ../shared/tools/floor-open.c (the least an open-loop client can do
# here), it runs too, as the reference the ratios mean something against.
# Then the highest rate each tool sustains: a ladder of rates (LADDER, default
# "20000 30000 40000 50000 60000 80000"), one run each, a tool leaving the ladder at
# its first rate answered below 99 % of target. Last, with client and server on
# disjoint cores (taskset), loadgen's send lateness at 10,000/s with no tick, and
# the pacer's own part of it.
#
#   scripts/bench-open-loop.sh [ROUNDS] [SECONDS] [CONNECTIONS] [RATES]
#
# RATES is a space-separated list (default "1000 10000 50000"). Builds loadgen and
# servers in release mode, installs oha with cargo when missing, and writes raw
# output plus summary.md under results/bench-open-loop/<UTC timestamp>/. All
# traffic goes to 127.0.0.1. A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-8}
CONNECTIONS=${3:-64}
RATES=${4:-"1000 10000 50000"}
VARIANT=${VARIANT:-rayon}
LADDER=${LADDER:-"20000 30000 40000 50000 60000 80000"}

command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p loadgen -p servers
floor=""
if [ -f ../shared/tools/floor-open.c ]; then
  mkdir -p target/floors
  cc -O2 -o target/floors/floor-open ../shared/tools/floor-open.c
  floor=target/floors/floor-open
fi

out="results/bench-open-loop/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

start_server() { # CPU list for taskset, or "" for none
  local pin=$1
  if [ -n "$pin" ]; then
    taskset -c "$pin" target/release/servers --variant "$VARIANT" >"$out/server.stdout" 2>>"$out/server.log" &
  else
    target/release/servers --variant "$VARIANT" >"$out/server.stdout" 2>>"$out/server.log" &
  fi
  server_pid=$!
  base=$(announced_url "$out/server.stdout" 5) || exit 1
  port=${base##*:}
}
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

# Runs a command, saving its output and its CPU time (user + system, from the
# kernel's accounting of the waited-for child) as RAW.out and RAW.cpu.json.
measured() {
  local raw=$1; shift
  python3 - "$raw" "$@" <<'PY'
import json, resource, subprocess, sys
raw, cmd = sys.argv[1], sys.argv[2:]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(raw + ".out", "w") as f:
    subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
after = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
           "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw}, open(raw + ".cpu.json", "w"))
PY
}

start_server ""
url="$base/health"
echo "server: $VARIANT at $base; $ROUNDS rounds of $SECONDS_PER_RUN s at $CONNECTIONS connections; rates $RATES"
tools="loadgen loadgen-tick1ms oha${floor:+ floor}"
# One run of TOOL at RATE, saved as RAW.*
run_tool() {
  local tool=$1 rate=$2 raw=$3
  case $tool in
    loadgen) measured "$raw" target/release/loadgen bench --url "$url" --rate "$rate" -c "$CONNECTIONS" \
      -d "${SECONDS_PER_RUN}s" -w 0s --json "$raw.json" ;;
    loadgen-tick1ms) measured "$raw" target/release/loadgen bench --url "$url" --rate "$rate" -c "$CONNECTIONS" \
      -d "${SECONDS_PER_RUN}s" -w 0s --release-tick 1ms --json "$raw.json" ;;
    oha) measured "$raw" oha -z "${SECONDS_PER_RUN}s" -c "$CONNECTIONS" -q "$rate" --latency-correction \
      --no-tui --output-format json "$url" ;;
    floor) measured "$raw" "$floor" "$port" "$CONNECTIONS" "$rate" "$SECONDS_PER_RUN" 0 ;;
  esac
}
# Responses per second of a finished run, from its saved output.
achieved() {
  local tool=$1 raw=$2
  case $tool in
    loadgen*) python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["streams"][0]["throughput"])' "$raw.json" ;;
    oha) python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"])' "$raw.out" ;;
    floor) python3 -c 'import re,sys; print(int(re.search(r"(\d+) requests", open(sys.argv[1]).read()).group(1)) / float(sys.argv[2]))' "$raw.out" "$SECONDS_PER_RUN" ;;
  esac
}
for round in $(seq "$ROUNDS"); do
  for rate in $RATES; do
    for tool in $tools; do
      echo "round $round: $tool at $rate/s"
      run_tool "$tool" "$rate" "$out/$tool.$rate.$round"
    done
  done
done
# The ladder: each rung runs the tools still on it, alternating.
on_ladder="$tools"
for rate in $LADDER; do
  still=""
  for tool in $on_ladder; do
    raw="$out/ladder.$tool.$rate"
    echo "ladder: $tool at $rate/s"
    run_tool "$tool" "$rate" "$raw"
    got=$(achieved "$tool" "$raw")
    echo "$got" >"$raw.achieved"
    if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 0.99 * float(sys.argv[2]) else 1)' "$got" "$rate"; then
      still="$still $tool"
    fi
  done
  on_ladder=$still
  [ -n "$on_ladder" ] || break
done
stop_server

# Disjoint cores: server on CPU 1, client on CPU 0.
start_server 1
for round in $(seq "$ROUNDS"); do
  raw="$out/pinned-loadgen.10000.$round"
  echo "round $round: loadgen pinned at 10000/s"
  measured "$raw" taskset -c 0 target/release/loadgen bench --url "$base/health" --rate 10000 \
    -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" -w 0s --json "$raw.json"
  if [ -n "$floor" ]; then
    echo "round $round: floor pinned at 10000/s"
    measured "$out/pinned-floor.10000.$round" taskset -c 0 "$floor" "$port" "$CONNECTIONS" 10000 "$SECONDS_PER_RUN" 0
  fi
done
stop_server

python3 - "$out" "$ROUNDS" "$CONNECTIONS" "$SECONDS_PER_RUN" "$VARIANT" "$RATES" "$tools" "$LADDER" <<'PY'
import json, os, platform, re, statistics, subprocess, sys
out, rounds, conns, secs, variant, rates, tools, ladder = sys.argv[1:9]
ladder = [int(r) for r in ladder.split()]
rounds, secs = int(rounds), float(secs)
rates, tools = [int(r) for r in rates.split()], tools.split()

def figures(tool, raw):
    """(achieved requests/s, corrected p50 ms, p99 ms, send lateness p99 ms or None)"""
    if tool.startswith("loadgen") or tool == "pinned-loadgen":
        s = json.load(open(raw + ".json"))["streams"][0]
        c = s["latency"]["corrected"]
        return s["throughput"], c["p50_us"] / 1e3, c["p99_us"] / 1e3, s["lateness"]["p99_us"] / 1e3
    text = open(raw + ".out").read()
    if tool == "oha":
        j = json.loads(text)
        p = j["latencyPercentiles"]
        return j["summary"]["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, None
    m = re.search(r"(\d+) requests, CPU .*send lateness p50 ([\d.]+) us, p99 ([\d.]+) us", text)
    return int(m.group(1)) / secs, None, None, float(m.group(3)) / 1e3

def row(tool, rate):
    cpu, rps, p50, p99, late = [], [], [], [], []
    for r in range(1, rounds + 1):
        raw = f"{out}/{tool}.{rate}.{r}"
        a, b, c, d = figures(tool, raw)
        done = a * secs
        cpu.append(json.load(open(raw + ".cpu.json"))["cpu_s"] / done * 1e6)
        rps.append(a); p50.append(b); p99.append(c); late.append(d)
    med = lambda v: statistics.median(v) if None not in v else None
    return {"cpu": cpu, "rps": rps, "p50": med(p50), "p99": med(p99), "late": med(late)}

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
oha_version = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
fmt = lambda v, f="{:.2f}": "–" if v is None else f.format(v)
lines = [
    f"# Open loop: client CPU per request, {conns} connections, {secs:.0f} s per run, {rounds} rounds alternating",
    "",
    f"Server: `servers --variant {variant}` (release), `/health`, same machine, cores shared with the client.",
    f"Environment: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}; {oha_version}.",
    "`loadgen`: each request released at its due time (one runtime worker, the default for an open loop);",
    "`loadgen-tick1ms`: `--release-tick 1ms`; `oha`: `-q RATE --latency-correction`; `floor`: the C open-loop floor, tick 0.",
    "CPU per request is CPU time over responses; medians over rounds, range in brackets.",
    "",
    "| rate | tool | CPU µs/request | vs oha | achieved/s | corrected p50 | p99 | send lateness p99 |",
    "|---|---|---|---|---|---|---|---|",
]
for rate in rates:
    rows = {t: row(t, rate) for t in tools}
    oha = statistics.median(rows["oha"]["cpu"])
    for t, r in rows.items():
        c = statistics.median(r["cpu"])
        lines.append(
            f"| {rate} | {t} | {c:.1f} [{min(r['cpu']):.1f}–{max(r['cpu']):.1f}] | {c / oha:.2f} "
            f"| {statistics.median(r['rps']):.0f} | {fmt(r['p50'])} ms | {fmt(r['p99'])} ms | {fmt(r['late'], '{:.3f}')} ms |"
        )
lines += [
    "",
    f"Highest rate sustained (answered at least 99 % of target) on the ladder {', '.join(map(str, ladder))}/s,",
    f"one {secs:.0f} s run per rung; each cell is responses/s achieved:",
    "",
    "| tool | highest sustained | " + " | ".join(f"{r}/s" for r in ladder) + " |",
    "|---|---|" + "---|" * len(ladder),
]
for tool in tools:
    cells, best = [], None
    for r in ladder:
        path = f"{out}/ladder.{tool}.{r}.achieved"
        if not os.path.exists(path):
            cells.append("–")
            continue
        got = float(open(path).read())
        cells.append(f"{got:.0f}")
        if got >= 0.99 * r:
            best = r
    lines.append(f"| {tool} | {best if best else f'< {ladder[0]}'}/s | " + " | ".join(cells) + " |")
pinned = []
for r in range(1, rounds + 1):
    raw = f"{out}/pinned-loadgen.10000.{r}"
    s = json.load(open(raw + ".json"))["streams"][0]
    pacer = (s.get("pacer_lateness") or {}).get("p99_us")
    floor_raw = f"{out}/pinned-floor.10000.{r}"
    floor_late = figures("floor", floor_raw)[3] if os.path.exists(floor_raw + ".out") else None
    pinned.append(figures("pinned-loadgen", raw) + (None if pacer is None else pacer / 1e3, floor_late))
lines += [
    "",
    "Client on CPU 0, server on CPU 1 (taskset), loadgen at 10,000/s, no tick, per round",
    "(send lateness: due time to write, which includes waiting for a free connection;",
    "pacer lateness: due time to release, the client's own part; the floor, pinned alike, as the reference):",
    "",
    "| round | achieved/s | send lateness p99 | pacer lateness p99 | floor send lateness p99 |",
    "|---|---|---|---|---|",
] + [f"| {i + 1} | {p[0]:.1f} | {fmt(p[3], '{:.3f}')} ms | {fmt(p[4], '{:.3f}')} ms | {fmt(p[5], '{:.3f}')} ms |" for i, p in enumerate(pinned)]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "raw output and summary.md in $out"
