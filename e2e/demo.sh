#!/usr/bin/env bash
# make demo: the main job end to end on the local control plane.
#
# Starts the sandbox (unless it is up), installs the CRDs, creates a Simulation for the example
# trace examples/traces/shop-burst.json and runs `rehearsal-driver replay` for it as a process,
# the way the operator's driver Job will. Everything printed comes from the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build -q -p rehearsal-driver -p rehearsal-runner -p rehearsal-operator
started=0
if ! e2e/cluster/sandbox.sh status >/dev/null 2>&1; then
  e2e/cluster/sandbox.sh up
  started=1
fi
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  if [ "$started" = 1 ]; then e2e/cluster/sandbox.sh down; fi
}
trap cleanup EXIT INT TERM
# shellcheck disable=SC1091
source .sandbox/env

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing the CRDs (kubectl apply -k config/default)"
kubectl apply --server-side -k config/default
kubectl wait --for=condition=Established crd/simulations.rehearsal.dev crd/scenarios.rehearsal.dev crd/simulationroots.rehearsal.dev --timeout=60s

say "The schema rejects what cannot run"
kubectl apply --dry-run=server -f - <<'YAML' || true
apiVersion: rehearsal.dev/v1alpha1
kind: Simulation
metadata: {name: no-source}
spec: {source: {}, speed: 0}
YAML

say "A Scenario and a Simulation from examples/"
kubectl apply --server-side -f examples/scenario.yaml
kubectl get scenarios

sim=shop-burst
trace="file://$root/examples/traces/shop-burst.json"
kubectl delete simulation "$sim" --ignore-not-found --wait=true >/dev/null
kubectl apply --server-side -f - <<YAML
apiVersion: rehearsal.dev/v1alpha1
kind: Simulation
metadata: {name: $sim}
spec:
  source: {trace: {uri: "$trace"}}
  speed: 2
  hooks:
    preRun:
      - command: kubectl
        args: [get, nodes, -l, type=virtual, --no-headers]
YAML

say "Replaying the trace at speed 2 (40 s recorded, 20 s played)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=rehearsal-driver" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/rehearsal-driver replay --sim-name "$sim" --controller-ns default --virtual-ns-prefix virtual \
  --cert-path "$work/tls.crt" --key-path "$work/tls.key" --trace-path "$trace" --speed 2 \
  --admission-webhook-port "$port" --listen-address 127.0.0.1 --webhook-url "https://127.0.0.1:$port/mutate" \
  >"$work/driver.log" 2>&1 &
driver=$!
while kill -0 "$driver" 2>/dev/null; do
  kubectl get simulation "$sim" --no-headers 2>/dev/null || true
  kubectl get pods -n virtual-shop -o wide --no-headers 2>/dev/null | awk '{print "   pod", $1, $3, $7}' | head -5 || true
  sleep 2
done
rc=0; wait "$driver" || rc=$?

say "Driver log (last lines)"
tail -n 15 "$work/driver.log"
say "Simulation status"
kubectl get simulation "$sim"
kubectl get simulation "$sim" -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
say "Left behind by the run (expect nothing)"
kubectl get ns virtual-shop 2>&1 | tail -n 1 || true
kubectl get simulationroots
if [ "$rc" != 0 ]; then echo "demo: the driver failed (exit $rc)"; exit "$rc"; fi
echo; echo "demo: done"
