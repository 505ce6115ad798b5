#!/usr/bin/env bash
# Starts a throw-away Redis for tests and loadgen runs: loopback only, a free port,
# no persistence, its files in a temporary folder removed at exit. Prints
# `redis://127.0.0.1:PORT` as its first line, then runs in the foreground until
# killed (SIGTERM/SIGINT), so the caller owns its lifetime.
#
#   scripts/redis-throwaway.sh            # needs redis-server (Debian: redis-server;
#                                         # .ci/run installs it)
#   scripts/redis-throwaway.sh --durable DIR [PORT]
#
# --durable: an append-only file in DIR (kept at exit, reloaded by the next start
# on it), fsync'd every second: a killed redis-server loses nothing it
# acknowledged (each change reaches the file before the reply), a machine or
# kernel crash at most the last second's. PORT fixes the port, so a restart on
# the same DIR serves the same URL.
set -euo pipefail

durable_dir=""
fixed_port=""
if [ "${1:-}" = "--durable" ]; then
  durable_dir=${2:?"--durable needs a folder"}
  fixed_port=${3:-}
  mkdir -p "$durable_dir"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: install Debian's redis-server package (.ci/run does)" >&2
  exit 127
fi

if [ -n "$durable_dir" ]; then
  dir=$(cd "$durable_dir" && pwd)
  persistence=(--appendonly yes --appendfsync everysec)
  cleanup=""
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/redis-throwaway.XXXXXX")
  persistence=(--appendonly no)
  cleanup="rm -rf '$dir'"
fi
if [ -n "$fixed_port" ]; then
  port=$fixed_port
else
  # A port nobody answers on; the kernel's ephemeral range is avoided so a client
  # socket cannot take it in between.
  for _ in $(seq 50); do
    port=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break
    fi
  done
fi

redis-server --port "$port" --bind 127.0.0.1 --save '' "${persistence[@]}" \
  --dir "$dir" --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; eval "$cleanup"' EXIT
trap 'exit 0' TERM INT
for _ in $(seq 100); do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "redis://127.0.0.1:$port"
    wait "$pid"
    exit $?
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "redis-server did not start:" >&2
    cat "$dir/redis.log" >&2
    exit 1
  fi
  sleep 0.05
done
echo "redis-server did not answer on port $port" >&2
exit 1
