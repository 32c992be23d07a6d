#!/usr/bin/env bash
# make demo: the main job end to end on the local control plane, the way a user works.
#
# Builds the binaries, starts the sandbox (unless it is up), installs rehearsal with
# `kubectl apply -k config/default` (the operator runs as two pods on the process runner node),
# applies the example trace Simulation (two runs) and the example Scenario with its Simulation,
# follows them as `kubectl get simulations -w` would, shows the final status and events, deletes
# them and shows that nothing is left. Everything printed comes from the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building rehearsal (operator, driver, process runner)"
if [ ! -x target/debug/rehearsal-operator ] || [ ! -x target/debug/rehearsal-driver ] || [ ! -x target/debug/rehearsal-runner ]; then
  echo "First build: about 12 minutes on 2 cores (Rust, ~400 crates); later builds take seconds."
fi
# cargo's own progress lines, not -q: a first build must never look frozen.
cargo build -p rehearsal-driver -p rehearsal-runner -p rehearsal-operator 2>&1 |
  grep --line-buffered -E '^ *(Compiling|Finished|error|warning: unused)' | awk '{ n++; if ($1 != "Compiling" || n % 25 == 1) print; fflush() }'
[ "${PIPESTATUS[0]}" = 0 ] || { echo "demo: the build failed"; exit 1; }

say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok, MinIO, runner)"
echo "A fresh machine first builds Kubernetes, etcd, kwok and MinIO from their Go modules (~14 minutes, once)."
started=0
if ! e2e/cluster/sandbox.sh status >/dev/null 2>&1; then
  e2e/cluster/sandbox.sh up
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then e2e/cluster/sandbox.sh down; fi
}
trap cleanup EXIT INT TERM
# shellcheck disable=SC1091
source .sandbox/env

say "kubectl apply -k config/default"
kubectl apply --server-side --force-conflicts -k config/default
kubectl wait --for=condition=Established crd/simulations.rehearsal.dev crd/scenarios.rehearsal.dev --timeout=60s >/dev/null
kubectl -n rehearsal-system rollout status deployment/rehearsal-operator --timeout=120s
kubectl -n rehearsal-system get pods -o wide
echo "leader: $(kubectl -n rehearsal-system get lease rehearsal-operator -o jsonpath='{.spec.holderIdentity}')"

say "The schema rejects what cannot run"
kubectl apply --dry-run=server -f - <<'YAML' || true
apiVersion: rehearsal.dev/v1alpha1
kind: Simulation
metadata: {name: no-source}
spec: {source: {}, speed: 0}
YAML

say "The example trace (examples/traces/shop-burst.json) as a ConfigMap, and the Simulations"
kubectl create configmap shop-burst-trace -n default --from-file=examples/traces/shop-burst.json \
  --dry-run=client -o yaml | kubectl apply --server-side -f -
kubectl apply --server-side -f examples/simulation-trace.yaml
kubectl apply --server-side -f examples/scenario.yaml
kubectl apply --server-side -f examples/simulation-scenario.yaml

say "kubectl get simulations, until both are done (the second waits in the queue)"
last=""
for _ in $(seq 1 300); do
  now=$(kubectl get simulations 2>/dev/null || true)
  if [ "$now" != "$last" ]; then echo "$now" | sed "s/^/$(date +%T)  /"; echo; last=$now; fi
  phases=$(kubectl get simulations -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}')
  case "$phases" in *Succeeded*Succeeded* | *Failed*) [ "$(echo "$phases" | wc -w)" -ge 2 ] && break ;; esac
  pods=$(kubectl get pods -n virtual-shop --no-headers 2>/dev/null | wc -l)
  [ "$pods" -gt 0 ] && echo "$(date +%T)  virtual-shop: $pods pods on $(kubectl get pods -n virtual-shop -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l) virtual nodes"
  sleep 2
done

say "Final status of shop-burst (two runs)"
kubectl get scenarios
kubectl get simulations
kubectl get simulation shop-burst -o jsonpath='{range .status.runs[*]}run {.index}: {.phase}, Job {.jobName}, {.startTime} → {.completionTime}: {.summary}{"\n"}{end}'
echo
kubectl get simulation shop-burst -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
say "kubectl describe simulation shop-burst (events)"
kubectl describe simulation shop-burst | sed -n '/^Events:/,$p'

say "Deleting the Simulations; the finalizer removes everything of their runs"
kubectl delete simulation shop-burst web-burst-fast --wait=true --timeout=120s
kubectl delete configmap shop-burst-trace -n default --ignore-not-found

say "Left behind (expect nothing)"
echo "SimulationRoots:      $(kubectl get simulationroots --no-headers 2>/dev/null | wc -l)"
echo "virtual namespaces:   $(kubectl get ns -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"
echo "webhook configs:      $(kubectl get mutatingwebhookconfigurations -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"
echo "driver Jobs:          $(kubectl get jobs -n rehearsal-system --no-headers 2>/dev/null | wc -l)"
echo "Services, Secrets:    $(kubectl get services,secrets -n rehearsal-system -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"

phase=$(kubectl get simulations -o name 2>/dev/null | wc -l)
echo; echo "demo: done ($phase Simulations left)"
