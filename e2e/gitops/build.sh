#!/usr/bin/env bash
# Builds the kstatus command (cmd/kstatus) once per content of this module.
#
# The binary goes to $REHEARSAL_CACHE/gitops/<hash>/kstatus, where <hash> is 12 hex digits of
# the sha256 of go.mod, go.sum, the non-test Go sources and this script. It is built in a
# temporary folder, the .complete stamp is written last, and the folder is renamed into place,
# so an interrupted or concurrent build never leaves a half-built binary behind. Prints the
# binary's path on stdout; logs go to stderr.
#
# usage: build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REHEARSAL_CACHE:-$HOME/.cache/rehearsal}

export GOTOOLCHAIN=local CGO_ENABLED=0
# Never 'direct': a fallback to git over the network can hang on a closed network.
export GOPROXY=${GOPROXY_OVERRIDE:-https://proxy.golang.org}
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"

log() { printf '[gitops-build] %s\n' "$*" >&2; }

command -v go >/dev/null || { echo "build.sh: the Go toolchain (go) is not on PATH; it is needed to build e2e/gitops/cmd/kstatus" >&2; exit 1; }

# The hash covers file names and contents: renaming a source file rebuilds too.
hash=$(cd "$here" && { printf '%s\n' go.mod go.sum build.sh; find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort; } \
  | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-12)
dir="$cache/gitops/$hash"

if [ -f "$dir/.complete" ]; then echo "$dir/kstatus"; exit 0; fi

log "building kstatus into $dir (not cached yet)"
mkdir -p "$cache/gitops"
tmp=$(mktemp -d "$cache/gitops/.building-$hash-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
if ! (cd "$here" && go build -p 2 -ldflags='-s -w' -o "$tmp/kstatus" ./cmd/kstatus) >&2; then
  echo "build.sh: building e2e/gitops/cmd/kstatus failed (see the go output above)" >&2
  exit 1
fi
echo "$(( $(date +%s) - start ))" > "$tmp/.build-seconds"
chmod 755 "$tmp"
touch "$tmp/.complete"
# A leftover without a stamp is garbage; a folder with one was finished by a concurrent build.
if [ -d "$dir" ] && [ ! -f "$dir/.complete" ]; then rm -rf "$dir"; fi
if mv -T "$tmp" "$dir" 2>/dev/null; then
  log "built kstatus in $(cat "$dir/.build-seconds") s"
elif [ ! -f "$dir/.complete" ]; then
  echo "build.sh: could not move the build into $dir" >&2
  exit 1
fi
echo "$dir/kstatus"
