#!/usr/bin/env bash
# Runs one loadgen agent per host over ssh, all starting their schedule at one
# instant, copies each one's JSON report back, and merges them with `loadgen merge`.
#
#   scripts/ssh-agents.sh OUT_DIR HOST... -- BENCH_ARGS...
#
# Every agent runs `loadgen bench BENCH_ARGS`: give each its share of the rate.
# A host named twice runs two agents. LEAD_S (default 15) is how far ahead the
# start is (enough for ssh to connect everywhere); REMOTE_LOADGEN (default:
# loadgen) is the binary on the hosts, LOADGEN (default: loadgen) the one here.
# The hosts' clocks must agree (NTP): each report records its own clock's state.
#
#   scripts/ssh-agents.sh results/multi load1 load2 -- \
#       --url http://10.0.0.5:8080/health --rate 5000 -c 64 -d 60s
set -euo pipefail

usage() { sed -n '2,14p' "$0" >&2; exit 2; }
[ $# -ge 3 ] || usage
out=$1
shift
hosts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  hosts+=("$1")
  shift
done
[ "${1:-}" = "--" ] && [ ${#hosts[@]} -ge 1 ] || usage
shift
remote_loadgen=${REMOTE_LOADGEN:-loadgen}
loadgen=${LOADGEN:-loadgen}
# Rounded up to the next whole second, so the lead is at least LEAD_S (GNU date).
start_at=$(date -u -d "+$((${LEAD_S:-15} + 1)) seconds" +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$out"
rm -f "$out"/agent-*.json "$out"/agent-*.txt "$out/all.json"
# Names the agents' files on the hosts apart from any other run's.
run_id=$$-$(date +%s)

# ssh joins its arguments into one command line for the remote shell: quote each.
quoted=$(printf '%q ' "$@")
pids=()
# Ctrl-C stops the local ssh clients; each remote agent still ends by itself at
# the end of its --duration.
trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
for i in "${!hosts[@]}"; do
  ssh "${hosts[$i]}" "$remote_loadgen bench $quoted --start-at $start_at --json /tmp/loadgen-agent-$run_id-$i.json" \
    >"$out/agent-$i.txt" 2>&1 &
  pids+=($!)
done
echo "${#hosts[@]} agents start at $start_at" >&2
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "agent $i on ${hosts[$i]} failed: see $out/agent-$i.txt" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
reports=()
for i in "${!hosts[@]}"; do
  scp -q "${hosts[$i]}:/tmp/loadgen-agent-$run_id-$i.json" "$out/agent-$i.json"
  reports+=("$out/agent-$i.json")
done
"$loadgen" merge "${reports[@]}" --json "$out/all.json"
