# Sourced by scripts/kube-up.sh and scripts/kube-down.sh (and usable by tests: `. scripts/kube-env.sh`).
# Points kwokctl at the locally built binaries (no downloads) and keeps all state under .data/kube.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
KUBE_BIN=$ROOT/.tools/kube/bin
KUBE_DATA=$ROOT/.data/kube
KUBE_CLUSTER_NAME=${KUBE_CLUSTER_NAME:-polyglot}
KWOKCTL=$KUBE_BIN/kwokctl
KUBECTL=$ROOT/.tools/venv/bin/kubectl
mkdir -p "$KUBE_DATA/kwok"
export KUBECONFIG=$KUBE_DATA/kubeconfig
export KUBECACHEDIR=$KUBE_DATA/kubectl-cache   # kubectl discovery cache, not ~/.kube/cache
export KWOK_WORKDIR=$KUBE_DATA/kwok          # clusters/, cache/, kwok.yaml: per clone, never ~/.kwok
export KWOK_RUNTIME=binary
export KWOK_KUBE_VERSION=$(sed -n 's/^k8s=\([^ ]*\).*/\1/p' "$KUBE_BIN/VERSION" 2>/dev/null)
export KWOK_KUBE_APISERVER_BINARY=$KUBE_BIN/kube-apiserver
export KWOK_KUBE_CONTROLLER_MANAGER_BINARY=$KUBE_BIN/kube-controller-manager
export KWOK_KUBE_SCHEDULER_BINARY=$KUBE_BIN/kube-scheduler
export KWOK_ETCD_BINARY=$KUBE_BIN/etcd
export KWOK_CONTROLLER_BINARY=$KUBE_BIN/kwok
export KWOK_KUBECTL_BINARY=$KUBECTL
# Every listener on 127.0.0.1 (kwokctl's default bindAddress is 0.0.0.0; there is no flag, only config).
cat > "$KWOK_WORKDIR/kwok.yaml" <<'EOF'
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverCertSANs: [127.0.0.1, localhost]
componentsPatches:
# Without advertise-address kube-apiserver derives it from the default route and exits ("no default routes
# found") where there is only loopback; 127.0.0.1 in turn needs the endpoint reconciler off (no real pods anyway).
- name: kube-apiserver
  extraArgs:
  - {key: advertise-address, value: 127.0.0.1}
  - {key: endpoint-reconciler-type, value: none}
EOF
# kwok's default Stages plus a container-failure stage selected by a pod label (see the file).
{ echo '---'; cat "$ROOT/scripts/kwok-stages.yaml"; } >> "$KWOK_WORKDIR/kwok.yaml"
