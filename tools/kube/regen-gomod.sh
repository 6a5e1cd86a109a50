#!/usr/bin/env bash
# Regenerates tools/kube/go.mod + go.sum (run by hand on a version bump; kube-build.sh only builds).
# Replace list is GENERATED from k8s.io/kubernetes' own go.mod: every requirement at v0.0.0 -> published v0.<minor>.<patch>.
# etcd server is pinned to the go.etcd.io/etcd/server/v3 version that k8s.io/kubernetes itself requires.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=v0.${K8S_VERSION#v1.}          # v1.37.2 -> v0.37.2
export GOTOOLCHAIN=local GOFLAGS=-mod=mod      # fail loudly if a Go version bump is needed
cd "$(dirname "$0")"
rm -f go.mod go.sum
go mod init polyglot/tools/kube >/dev/null 2>&1
go mod edit -go=1.26.0                         # same floor as k8s.io/kubernetes, not the local patch
GOMOD=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
go mod edit -json "$GOMOD" | python3 -c '
import json, sys
v = sys.argv[1]
for r in json.load(sys.stdin)["Require"]:
    if r["Version"] == "v0.0.0":
        print("-replace=%s=%s@%s" % (r["Path"], r["Path"], v))' "$STAGING_VERSION" | xargs go mod edit
ETCD_VERSION=$(go mod edit -json "$GOMOD" | python3 -c '
import json, sys
print([r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == "go.etcd.io/etcd/server/v3"][0])')
echo "k8s $K8S_VERSION, staging $STAGING_VERSION, etcd server $ETCD_VERSION (from k8s go.mod)" >&2
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
  "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
go mod tidy
# MVS must not have moved the pins
go list -m k8s.io/kubernetes go.etcd.io/etcd/server/v3
