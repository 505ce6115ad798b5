#!/usr/bin/env bash
# Runs AGENTS loadgen agents as a Kubernetes Indexed Job (one per node, all
# starting at one instant), collects each one's JSON report from its log, and
# merges them with `loadgen merge`.
#
#   scripts/k8s-agents.sh AGENTS IMAGE OUT_DIR [MANIFEST]
#
# MANIFEST defaults to deploy/kubernetes/loadgen-agents.yaml (edit its bench
# arguments first). LEAD_S (default 60) is how far ahead the start is: enough for
# the pods to be scheduled and pull the image; an agent that starts later than
# that fails ("in the past") rather than load out of step. Needs kubectl pointed
# at the cluster, and loadgen here (LOADGEN, default: loadgen on PATH) to merge.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
agents=$1 image=$2 out=$3
manifest=${4:-$(dirname "$0")/../deploy/kubernetes/loadgen-agents.yaml}
loadgen=${LOADGEN:-loadgen}
lead=${LEAD_S:-60}
start_at=$(date -u -d "+${lead} seconds" +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$out"

kubectl delete job loadgen-agents --ignore-not-found --wait=true >/dev/null
sed -e "s|\${AGENTS}|${agents}|g" -e "s|\${IMAGE}|${image}|g" -e "s|\${START_AT}|${start_at}|g" \
  "$manifest" | kubectl apply -f -
echo "$agents agents start at $start_at" >&2
kubectl wait --for=condition=complete job/loadgen-agents --timeout=2h

for i in $(seq 0 $((agents - 1))); do
  kubectl logs -l "job-name=loadgen-agents,batch.kubernetes.io/job-completion-index=$i" \
    --tail=-1 >"$out/agent-$i.json"
done
"$loadgen" merge "$out"/agent-*.json --json "$out/all.json"
