# Sourced by the benchmark scripts that compare two builds or settings of a
# reference server: closed-loop GET /health on one server per round and side,
# the sides alternating which goes first round by round, so drift and order on a
# shared machine hit both alike.
#
#   . scripts/health-ab.sh
#   ab_measure SIDE ROUND SERVERS_BINARY [SERVER FLAGS...]   # one round of one side
#   ab_table BASE CURRENT                                    # rows, summaries, compare
#
# Uses $loadgen, $VARIANT, $SECONDS_PER_RUN and $out (SIDE's reports go to
# $out/SIDE/round-N.json). Per round: throughput, and the server's CPU per answer
# (sampled from /proc by `bench --server-pid`), which moves less with the
# client's share of the cores. Needs jq. All traffic goes to 127.0.0.1.
. "$(dirname "${BASH_SOURCE[0]}")/announced-url.sh"
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 1; }

ab_server_pid=""
ab_stop_server() {
  if [ -n "$ab_server_pid" ]; then
    kill "$ab_server_pid" 2>/dev/null || true
    wait "$ab_server_pid" 2>/dev/null || true
    ab_server_pid=""
  fi
}
trap ab_stop_server EXIT

ab_measure() {
  local side=$1 round=$2 binary=$3
  shift 3
  mkdir -p "$out/$side"
  local announce
  announce=$(mktemp)
  "$binary" --variant "$VARIANT" --port 0 "$@" >"$announce" 2>/dev/null &
  ab_server_pid=$!
  local url
  url=$(announced_url "$announce" 10) || exit 1
  rm -f "$announce"
  "$loadgen" bench --url "$url/health" --connections 16 \
    --duration "${SECONDS_PER_RUN}s" --warmup 2s --server-pid "$ab_server_pid" \
    --json "$out/$side/round-$round.json" >/dev/null
  ab_stop_server
}

# A round's answers per second (the first stream's, the only one).
ab_throughput() { jq '.streams[0].ok_throughput' "$1"; }
# The server's CPU per answer in µs: its CPU seconds over the measured intervals
# ÷ the answers in them.
ab_cpu_per_answer() {
  jq '([.server_telemetry.intervals[] | (.server_cpu // 0) * .length_s] | add) * 1e6
      / (.streams[0].ok_throughput * .config.duration_s)' "$1"
}
# The median and range of the numbers on stdin, one per line.
ab_summarise() {
  sort -n | awk -v what="$1" '{ r[NR] = $1 } END {
    m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%s: median %.3f, range %.3f–%.3f over %d rounds.\n", what, m, r[1], r[NR], NR }'
}

# The table of every round (BASE and CURRENT are side names), the medians and
# ranges of the two ratios, and `loadgen compare BASE CURRENT`.
ab_table() {
  local base=$1 current=$2 rounds
  rounds=$(ls "$out/$base"/round-*.json | wc -l)
  echo "| round | $base (answers/s) | $current (answers/s) | $current ÷ $base | $base (server µs CPU/answer) | $current (server µs CPU/answer) | $current ÷ $base |"
  echo "|---|---|---|---|---|---|---|"
  # Each round's row; its two ratios also go to one file each, summarised below.
  : >"$out/throughput-ratios"
  : >"$out/cpu-ratios"
  for round in $(seq "$rounds"); do
    awk -v r="$round" -v ratios="$out/throughput-ratios" -v cpu_ratios="$out/cpu-ratios" \
      -v off="$(ab_throughput "$out/$base/round-$round.json")" -v on="$(ab_throughput "$out/$current/round-$round.json")" \
      -v coff="$(ab_cpu_per_answer "$out/$base/round-$round.json")" -v con="$(ab_cpu_per_answer "$out/$current/round-$round.json")" \
      'BEGIN {
        printf "| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.3f |\n", r, off, on, on / off, coff, con, con / coff
        printf "%.4f\n", on / off >> ratios
        printf "%.4f\n", con / coff >> cpu_ratios
      }'
  done
  echo
  ab_summarise "Throughput ratio $current ÷ $base" <"$out/throughput-ratios"
  echo
  ab_summarise "Server CPU per answer, $current ÷ $base" <"$out/cpu-ratios"
  rm -f "$out/throughput-ratios" "$out/cpu-ratios"
  echo
  echo '```'
  "$loadgen" compare "$out/$base" "$out/$current" || true
  echo '```'
}
