#!/usr/bin/env bash
# Smoke test of the local control plane (docs/local-stack.md, "Kubernetes control plane"):
# up, nodes, a 1-GPU Job completes via kwok's pod-complete
# stage, a 16-GPU Job stays Pending (Unschedulable: Insufficient nvidia.com/gpu), down. Exit 0 = all passed.
# KUBE_SMOKE_KEEP=1 leaves the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s%N); ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
[ "${KUBE_SMOKE_KEEP:-0}" = 1 ] || trap 'scripts/kube-down.sh' EXIT
scripts/kube-up.sh
echo "[kube-smoke] up after $(ms) ms"
. scripts/kube-env.sh
K=$KUBECTL; NS=kube-smoke-$$
$K get nodes
$K create namespace "$NS" >/dev/null
for _ in $(seq 1 60); do $K -n "$NS" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.5; done
job() { cat <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1, namespace: $NS}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: train
        image: example.invalid/train:never-pulled
        resources:
          requests: {cpu: "1", memory: 1Gi}
          limits: {nvidia.com/gpu: "$2"}
EOF
}
job gpu-1 1 | $K create -f - >/dev/null
job gpu-16 16 | $K create -f - >/dev/null
t1=$(date +%s%N)
$K -n "$NS" wait --for=condition=Complete job/gpu-1 --timeout=60s >/dev/null
echo "[kube-smoke] gpu-1 Complete in $(( ($(date +%s%N) - t1) / 1000000 )) ms on node $($K -n "$NS" get pod -l job-name=gpu-1 -o jsonpath='{.items[0].spec.nodeName}')"
$K -n "$NS" wait --for=jsonpath='{.status.conditions[?(@.type=="PodScheduled")].reason}'=Unschedulable \
  pod -l job-name=gpu-16 --timeout=30s >/dev/null
sleep 2   # must still be pending and the Job not finished
[ "$($K -n "$NS" get pod -l job-name=gpu-16 -o jsonpath='{.items[0].status.phase}')" = Pending ]
[ -z "$($K -n "$NS" get job gpu-16 -o jsonpath='{.status.conditions[?(@.status=="True")].type}')" ]
echo "[kube-smoke] gpu-16 Pending: $($K -n "$NS" get pod -l job-name=gpu-16 -o jsonpath='{.items[0].status.conditions[0].message}')"
$K delete namespace "$NS" --wait=false >/dev/null
echo "[kube-smoke] PASS after $(ms) ms"
