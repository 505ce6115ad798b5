#!/usr/bin/env bash
# Compares the load generators themselves: closed-loop throughput and client CPU
# time per request of loadgen, oha and wrk against the same server endpoint, at
# the same connection count, alternating tools round by round so drift on a
# shared machine hits all of them alike.
#
#   scripts/bench-loadgen.sh [ROUNDS] [SECONDS] [CONNECTIONS] [PROTOCOL]
#
# PROTOCOL is one of
#   http1  (default) plaintext HTTP/1.1, /health of a reference server; loadgen, oha, wrk
#   tls    HTTP/1.1 over TLS, /health of examples/bench-target --tls (a
#          self-signed certificate: loadgen and oha with --insecure); loadgen, oha, wrk
#   http2  h2c (HTTP/2 by prior knowledge), /health of examples/bench-target, each
#          connection carrying H2_STREAMS (default 4) requests at once
#          (loadgen --h2-streams, oha -p); loadgen, oha (wrk has no HTTP/2)
#
# BASELINE_LOADGEN=PATH adds that loadgen binary (another commit's release build)
# to the rotation as "baseline", with the same flags: a change's cost measured
# in the same run as the change. PEERS="" leaves oha and wrk out (loadgen against
# the baseline only, more rounds in the same time).
#
# Installs what it needs (wrk from Debian, oha with cargo install), builds loadgen
# and the server in release mode, and writes raw output plus summary.md under
# results/bench-loadgen/<UTC timestamp>/. All traffic goes to 127.0.0.1.
# This is a benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/announced-url.sh

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-16}
PROTOCOL=${4:-http1}
VARIANT=${VARIANT:-blocking-in-async}
H2_STREAMS=${H2_STREAMS:-4}
case $PROTOCOL in
  http1 | tls) TOOLS=(loadgen oha wrk) ;;
  http2) TOOLS=(loadgen oha) ;;
  *) echo "unknown protocol $PROTOCOL: choose http1, tls or http2" >&2; exit 2 ;;
esac
if [ -n "${PEERS+set}" ]; then
  read -r -a peers <<<"$PEERS"
  TOOLS=(loadgen "${peers[@]}")
fi
if [ -n "${BASELINE_LOADGEN:-}" ]; then
  [ -x "$BASELINE_LOADGEN" ] || { echo "BASELINE_LOADGEN=$BASELINE_LOADGEN is not an executable" >&2; exit 2; }
  TOOLS=(loadgen baseline "${TOOLS[@]:1}")
fi

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  need_root apt-get install -y wrk || { need_root apt-get update && need_root apt-get install -y wrk; }
fi
if ! command -v oha >/dev/null; then
  cargo install oha --locked
fi
cargo build --release -p loadgen -p servers -p bench-target

out="results/bench-loadgen/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

server_log="$out/server.log"
case $PROTOCOL in
  http1) server=(target/release/servers --variant "$VARIANT") ;;
  tls) server=(target/release/bench-target --tls) ;;
  http2) server=(target/release/bench-target) ;;
esac
"${server[@]}" >"$out/server.stdout" 2>"$server_log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
base=$(announced_url "$out/server.stdout" 5) || exit 1
url="$base/health"
echo "server: ${server[*]} at $base ($PROTOCOL); $ROUNDS rounds of $SECONDS_PER_RUN s at $CONNECTIONS connections"
case $PROTOCOL in
  http1) loadgen_extra=() oha_extra=() ;;
  tls) loadgen_extra=(--insecure) oha_extra=(--insecure) ;;
  http2) loadgen_extra=(--http2 --h2-streams "$H2_STREAMS") oha_extra=(--http2 -p "$H2_STREAMS") ;;
esac

# CPU seconds (user + system) used by finished child processes so far.
child_cpu() { python3 -c 'import os; t=os.times(); print(t.children_user + t.children_system)'; }

run_tool() {
  local tool=$1 round=$2 raw="$out/$1.$2"
  local before after
  # `times`-style accounting only sees waited-for children, so each tool runs in a
  # python wrapper that reports its own child's CPU time.
  case $tool in
    baseline) cmd=("$BASELINE_LOADGEN" bench --url "$url" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" -w 0s "${loadgen_extra[@]}" --json "$raw.json") ;;
    loadgen) cmd=(target/release/loadgen bench --url "$url" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" -w 0s "${loadgen_extra[@]}" --json "$raw.json") ;;
    oha) cmd=(oha -z "${SECONDS_PER_RUN}s" -c "$CONNECTIONS" "${oha_extra[@]}" --no-tui --output-format json "$url") ;;
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
  for tool in "${TOOLS[@]}"; do
    echo "round $round: $tool"
    run_tool "$tool" "$round"
  done
done

python3 - "$out" "$ROUNDS" "$CONNECTIONS" "$SECONDS_PER_RUN" "${server[*]}" "$PROTOCOL" "$H2_STREAMS" "${BASELINE_LOADGEN:-}" "${TOOLS[@]}" <<'PY'
import json, re, statistics, sys, platform, os, subprocess
out, rounds, conns, secs, server, protocol, h2_streams = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
baseline, tools = sys.argv[8], sys.argv[9:]

def requests_per_s(tool, raw):
    text = open(raw + ".out").read()
    if tool in ("loadgen", "baseline"):
        return json.load(open(raw + ".json"))["streams"][0]["throughput"]
    if tool == "oha":
        return json.loads(text)["summary"]["requestsPerSec"]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

rows = {}
for tool in tools:
    rps, cpu_per_req = [], []
    for r in range(1, rounds + 1):
        raw = f"{out}/{tool}.{r}"
        rate = requests_per_s(tool, raw)
        cpu = json.load(open(raw + ".cpu.json"))["cpu_s"]
        rps.append(rate)
        cpu_per_req.append(cpu / (rate * float(secs)) * 1e6)
    rows[tool] = (rps, cpu_per_req)

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
versions = {"loadgen": "loadgen (release)", "baseline": f"baseline loadgen `{baseline}`"}
if "oha" in tools:
    versions["oha"] = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
if "wrk" in tools:
    versions["wrk"] = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or ["wrk"])[0]
# Throughput is compared with oha, CPU per request with wrk (the cheapest peer),
# each where it ran; else with the baseline, or loadgen itself.
rate_base = next(t for t in ("oha", "baseline", "loadgen") if t in tools)
cpu_base = next(t for t in ("wrk", "oha", "baseline", "loadgen") if t in tools)
med = {t: (statistics.median(v[0]), statistics.median(v[1])) for t, v in rows.items()}
how = {
    "http1": "plaintext HTTP/1.1",
    "tls": "HTTP/1.1 over TLS (self-signed certificate, session set up once per connection)",
    "http2": f"h2c (HTTP/2 by prior knowledge), {h2_streams} concurrent streams per connection",
}[protocol]
lines = [
    f"# {' vs '.join(tools)}: closed loop, {how}, {conns} connections, {secs} s per run, {rounds} rounds alternating",
    "",
    f"Server: `{server}` (release), endpoint `/health`, on the same machine.",
    f"Environment: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}; "
    f"client and server share the cores. Tools: {', '.join(versions[t] for t in tools)}.",
    "",
    f"| tool | requests/s (median) | range | client CPU µs/request (median) | range | throughput vs {rate_base} | CPU/request vs {cpu_base} |",
    "|---|---|---|---|---|---|---|",
]
for t, (rps, cpu) in rows.items():
    lines.append(
        f"| {t} | {med[t][0]:.0f} | {min(rps):.0f}–{max(rps):.0f} | {med[t][1]:.2f} | {min(cpu):.2f}–{max(cpu):.2f} "
        f"| {med[t][0] / med[rate_base][0]:.2f} | {med[t][1] / med[cpu_base][1]:.2f} |"
    )
if "baseline" in med:
    lines += [
        "",
        f"loadgen against the baseline: throughput {med['loadgen'][0] / med['baseline'][0]:.3f}x, "
        f"CPU per request {med['loadgen'][1] / med['baseline'][1]:.3f}x (medians).",
    ]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "raw output and summary.md in $out"
