#!/usr/bin/env bash
# Stops and deletes the local control plane started by scripts/kube-up.sh (all processes, etcd data, PKI).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/kube-env.sh
if [ -d "$KWOK_WORKDIR/clusters/$KUBE_CLUSTER_NAME" ]; then
  "$KWOKCTL" delete cluster --name "$KUBE_CLUSTER_NAME" >>"$KUBE_DATA/kwokctl.log" 2>&1
  echo "[kube-down] deleted cluster $KUBE_CLUSTER_NAME" >&2
else
  echo "[kube-down] no cluster $KUBE_CLUSTER_NAME" >&2
fi
rm -f "$KUBECONFIG"
