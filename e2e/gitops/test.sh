#!/usr/bin/env bash
# Runs the GitOps health tests of this module (go test ./...): the Argo CD health.lua cases, the
# argocd-cm-patch.yaml copy check, the kstatus expectations and the kstatus command. Same Go
# settings as build.sh. Used by `make gitops-test` and `make unit`; extra arguments go to
# `go test` (e.g. -run TestHealthCases -v). UPDATE_ARGOCD_CM=1 first copies the health.lua files
# into config/gitops/argocd/argocd-cm-patch.yaml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

export GOTOOLCHAIN=local CGO_ENABLED=0
# Never 'direct': a fallback to git over the network can hang on a closed network.
export GOPROXY=${GOPROXY_OVERRIDE:-https://proxy.golang.org}
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"

command -v go >/dev/null || { echo "test.sh: the Go toolchain (go) is not on PATH; it is needed for the GitOps health tests" >&2; exit 1; }

cd "$here"
exec go test -p 2 ./... "$@"
