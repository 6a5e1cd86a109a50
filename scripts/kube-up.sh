#!/usr/bin/env bash
# Starts a local Kubernetes control plane for tests (docs/local-stack.md, "Kubernetes control plane"),
# all on 127.0.0.1, downloading nothing:
#   kwokctl --runtime binary with the binaries from scripts/kube-build.sh (.tools/kube/bin):
#   real etcd, kube-apiserver, kube-controller-manager (Job controller), kube-scheduler; fake kubelets (kwok).
# Creates $KUBE_FAKE_NODES fake GPU nodes (nvidia.com/gpu: $KUBE_NODE_GPUS each) and writes .data/kube/kubeconfig.
# Idempotent: a healthy running cluster is reused; a broken/stopped one is deleted and recreated.
# Env: KUBE_CLUSTER_NAME (polyglot), KUBE_FAKE_NODES (2), KUBE_NODE_GPUS (8), KUBE_UP_TIMEOUT (60s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
t0=$(date +%s%N)
say() { printf '[kube-up %5.1fs] %s\n' "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" "$*" >&2; }

scripts/kube-build.sh            # seconds when up to date
. scripts/kube-env.sh            # KWOK_* env, KUBECONFIG, $KWOKCTL, $KUBECTL, $KUBE_DATA, $KUBE_CLUSTER_NAME

NODES=${KUBE_FAKE_NODES:-2}
GPUS=${KUBE_NODE_GPUS:-8}
TIMEOUT=${KUBE_UP_TIMEOUT:-60s}

healthy() { [ -s "$KUBECONFIG" ] && "$KUBECTL" get --raw /readyz >/dev/null 2>&1; }

if healthy && [ "$("$KUBECTL" get nodes -l type=kwok -o name 2>/dev/null | wc -l)" -ge "$NODES" ]; then
  say "already running: $KUBECONFIG"; exit 0
fi
if [ -d "$KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME" ]; then
  say "removing stale cluster $KUBE_CLUSTER_NAME"
  "$KWOKCTL" delete cluster --name "$KUBE_CLUSTER_NAME" >>"$KUBE_DATA/kwokctl.log" 2>&1 || true
fi
rm -f "$KUBECONFIG"

say "kwokctl create cluster --runtime binary ($KWOK_KUBE_VERSION)"
# --kubeconfig '' : never touch ~/.kube/config; we write our own below.
if ! "$KWOKCTL" create cluster --name "$KUBE_CLUSTER_NAME" --runtime binary --kubeconfig '' \
     --quiet-pull --timeout "$TIMEOUT" --wait "$TIMEOUT" >"$KUBE_DATA/kwokctl-create.log" 2>&1; then
  tail -30 "$KUBE_DATA/kwokctl-create.log" >&2
  echo "[kube-up] kwokctl create failed; component logs: $KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME/logs/" >&2
  exit 1
fi
if grep -q '"msg":"Download"' "$KUBE_DATA/kwokctl-create.log"; then   # kwokctl logs each fetch of an http(s) source
  echo "[kube-up] kwokctl tried to download something (see $KUBE_DATA/kwokctl-create.log)" >&2; exit 1
fi
"$KWOKCTL" get kubeconfig --name "$KUBE_CLUSTER_NAME" > "$KUBECONFIG.tmp" && mv "$KUBECONFIG.tmp" "$KUBECONFIG"
if ! healthy; then   # kwokctl's --wait can time out and still exit 0
  tail -5 "$KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME/logs/kube-apiserver.log" >&2
  echo "[kube-up] kube-apiserver not ready; logs: $KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME/logs/" >&2
  exit 1
fi
say "control plane ready; creating $NODES fake nodes with nvidia.com/gpu=$GPUS"

for i in $(seq 0 $((NODES - 1))); do cat <<EOF; done | "$KUBECTL" apply -f - >/dev/null
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-gpu-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-gpu-$i
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
    nvidia.com/gpu.count: "$GPUS"
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS", ephemeral-storage: 1Ti}
  capacity:    {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS", ephemeral-storage: 1Ti}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake}
EOF
"$KUBECTL" wait --for=condition=Ready node -l type=kwok --timeout="$TIMEOUT" >/dev/null
# Pods need the default ServiceAccount (created asynchronously by kube-controller-manager).
for _ in $(seq 1 120); do "$KUBECTL" -n default get serviceaccount default >/dev/null 2>&1 && break; sleep 0.5; done
"$KUBECTL" -n default get serviceaccount default >/dev/null
say "up: export KUBECONFIG=$KUBECONFIG  ($("$KUBECTL" get nodes -o name | wc -l) nodes; logs in $KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME/logs)"
