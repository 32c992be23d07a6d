#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules, once per version.
#
# Each component goes to $REHEARSAL_CACHE/<component>/<version>-<wrapper hash>/bin and is
# marked complete with a stamp file only after every binary of it built, so an interrupted
# build is redone next time. Prints the bin folder of each component.
#
# usage: build.sh [k8s|etcd|kwok|minio]...   (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${REHEARSAL_CACHE:-$HOME/.cache/rehearsal}

export GOTOOLCHAIN=local CGO_ENABLED=0
# Never 'direct': a fallback to git over the network can hang on a closed network.
export GOPROXY=${GOPROXY_OVERRIDE:-https://proxy.golang.org}
export GOFLAGS="-mod=readonly -trimpath"

log() { printf '[build] %s\n' "$*" >&2; }

command -v go >/dev/null || { echo "build.sh: the Go toolchain (go) is not on PATH; it is needed to build the control plane" >&2; exit 1; }

# dir_for COMPONENT VERSION: cache folder keyed by version and by the wrapper module's content.
dir_for() {
  local h
  h=$(cat "$here/$1/go.mod" "$here/$1/go.sum" "$here/build.sh" | sha256sum | cut -c1-12)
  echo "$cache/$1/$2-$h"
}

build_k8s() {
  local out=$1 commit v="" p
  commit=$(cd "$here/k8s" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1)
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v="$v -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitCommit=${commit:-unknown} -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/k8s" && go build -p 2 -tags=selinux,notest -ldflags="-s -w $v" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}
build_etcd() { (cd "$here/etcd" && go build -p 2 -ldflags='-s -w' -o "$1/etcd" .); }
build_kwok() { (cd "$here/kwok" && go build -p 2 -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$1/kwok" sigs.k8s.io/kwok/cmd/kwok); }
build_minio() { (cd "$here/minio" && go build -p 2 -ldflags='-s -w' -o "$1/minio" github.com/minio/minio); }

version_of() {
  case $1 in k8s) echo "$K8S_VERSION" ;; etcd) echo "$ETCD_VERSION" ;; kwok) echo "$KWOK_VERSION" ;; minio) echo "$MINIO_VERSION" ;;
    *) echo "build.sh: unknown component '$1' (expected k8s, etcd, kwok or minio)" >&2; return 1 ;; esac
}

ensure() {
  local c=$1 ver dir start
  ver=$(version_of "$c")
  dir=$(dir_for "$c" "$ver")
  if [ -f "$dir/.complete" ]; then echo "$dir/bin"; return; fi
  log "building $c $ver into $dir (not cached yet)"
  rm -rf "$dir"; mkdir -p "$dir/bin"
  start=$(date +%s)
  if ! "build_$c" "$dir/bin" >&2; then
    rm -rf "$dir"
    echo "build.sh: building $c $ver failed (see the go output above)" >&2
    return 1
  fi
  echo "$(( $(date +%s) - start ))" > "$dir/.build-seconds"
  touch "$dir/.complete"
  log "built $c $ver in $(cat "$dir/.build-seconds") s"
  echo "$dir/bin"
}

comps=("$@"); [ ${#comps[@]} -gt 0 ] || comps=(k8s etcd kwok minio)
for c in "${comps[@]}"; do ensure "$c"; done
