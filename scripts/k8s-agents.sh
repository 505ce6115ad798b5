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
  sed -n '2,12p' "$0" >&2
  exit 2
fi
agents=$1 image=$2 out=$3
manifest=${4:-$(dirname "$0")/../deploy/kubernetes/loadgen-agents.yaml}
loadgen=${LOADGEN:-loadgen}
lead=${LEAD_S:-60}
mkdir -p "$out"
rm -f "$out"/agent-*.json "$out/all.json"

kubectl delete job loadgen-agents --ignore-not-found --wait=true >/dev/null
# Rounded up to the next whole second, so the lead is at least LEAD_S (GNU date).
start_at=$(date -u -d "+$((lead + 1)) seconds" +%Y-%m-%dT%H:%M:%SZ)
sed -e "s|\${AGENTS}|${agents}|g" -e "s|\${IMAGE}|${image}|g" -e "s|\${START_AT}|${start_at}|g" \
  "$manifest" | kubectl apply -f -
echo "$agents agents start at $start_at" >&2
# Until every agent succeeded, or one failed (the Job then fails at once:
# backoffLimit 0), or the Job's deadline passed.
while :; do
  status=$(kubectl get job loadgen-agents -o jsonpath='{.status.succeeded}/{.status.failed}')
  succeeded=${status%/*} failed=${status#*/}
  [ "${succeeded:-0}" -ge "$agents" ] && break
  if [ "${failed:-0}" -gt 0 ] || kubectl get job loadgen-agents \
      -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}' | grep -q True; then
    echo "the Job failed; the agents' logs:" >&2
    kubectl logs -l job-name=loadgen-agents --tail=20 --prefix >&2 || true
    exit 1
  fi
  sleep 5
done

reports=()
for i in $(seq 0 $((agents - 1))); do
  kubectl logs -l "job-name=loadgen-agents,batch.kubernetes.io/job-completion-index=$i" \
    --tail=-1 >"$out/agent-$i.json"
  reports+=("$out/agent-$i.json")
done
"$loadgen" merge "${reports[@]}" --json "$out/all.json"
