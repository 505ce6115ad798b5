#!/usr/bin/env bash
# The rq recipe: a throw-away Redis on a Unix socket, WORKERS RQ worker processes,
# and the FastAPI app, all in one process group (loadgen's guard stops them all).
# Usage: queue.sh PORT WORKERS
set -euo pipefail
port=$1 workers=$2
here=$(cd "$(dirname "$0")" && pwd)
python=$here/../../target/fastapi-venv/bin/python
command -v redis-server >/dev/null || { echo "queue.sh: redis-server not found (Debian package redis-server)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
redis-server --port 0 --unixsocket "$dir/redis.sock" --save '' --appendonly no \
  --dir "$dir" --loglevel warning &
for _ in $(seq 100); do [ -S "$dir/redis.sock" ] && break; sleep 0.05; done
[ -S "$dir/redis.sock" ] || { echo "queue.sh: Redis did not start" >&2; exit 1; }
export REDIS_URL="unix://$dir/redis.sock" RECIPE=rq
# SimpleWorker runs jobs in the worker process itself, as Celery's prefork pool
# does, instead of forking a new process per job.
for _ in $(seq "$workers"); do
  "$python" -m rq.cli worker --url "$REDIS_URL" --worker-class rq.worker.SimpleWorker --quiet &
done
"$python" -m uvicorn app:app --host 127.0.0.1 --port "$port" --no-access-log &
wait -n
