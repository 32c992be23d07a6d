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
# The local control plane writes an audit log the driver pods can read: the operator hands it on.
kubectl -n rehearsal-system set env deployment/rehearsal-operator "REHEARSAL_DRIVER_AUDIT_LOG=$REHEARSAL_AUDIT_LOG" >/dev/null
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
# The runs' evidence goes to the sandbox's MinIO: the examples plus spec.artifacts.
kubectl create secret generic demo-s3 -n rehearsal-system --from-literal="AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
  --from-literal="AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" --dry-run=client -o yaml | kubectl apply --server-side -f -
with_artifacts() {
  python3 - "$1" "$REHEARSAL_S3_BUCKET" "$AWS_ENDPOINT_URL" <<'PY'
import sys
path, bucket, endpoint = sys.argv[1:]
text = open(path).read().rstrip("\n")
print(text)
print(f"  artifacts: {{bucket: {bucket}, prefix: demo, region: us-east-1, endpoint: \"{endpoint}\", credentialsSecret: {{name: demo-s3}}}}")
PY
}
echo "(both Simulations get: spec.artifacts: {bucket: $REHEARSAL_S3_BUCKET, prefix: demo, endpoint: $AWS_ENDPOINT_URL, ...})"
with_artifacts examples/simulation-trace.yaml | kubectl apply --server-side -f -
kubectl apply --server-side -f examples/scenario.yaml
with_artifacts examples/simulation-scenario.yaml | kubectl apply --server-side -f -

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
kubectl get simulation shop-burst -o jsonpath='{range .status.runs[*]}run {.index}: {.phase}, Job {.jobName}, {.startTime} → {.completionTime}: {.summary}{"\n"}  evidence: {.artifactUri}{"\n"}{end}'
echo
report=$(kubectl get simulation shop-burst -o jsonpath='{.status.runs[-1:].artifactUri}')
scenario_report=$(kubectl get simulation web-burst-fast -o jsonpath='{.status.runs[-1:].artifactUri}')
echo "web-burst-fast evidence: $scenario_report"
kubectl get simulation shop-burst -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
say "kubectl describe simulation shop-burst (events)"
kubectl describe simulation shop-burst | sed -n '/^Events:/,$p'

say "Deleting the Simulations; the finalizer removes everything of their runs"
kubectl delete simulation shop-burst web-burst-fast --wait=true --timeout=120s
kubectl delete scenario web-burst --ignore-not-found
kubectl delete configmap shop-burst-trace -n default --ignore-not-found
kubectl delete secret demo-s3 -n rehearsal-system --ignore-not-found

say "Left behind (expect nothing)"
echo "SimulationRoots:      $(kubectl get simulationroots --no-headers 2>/dev/null | wc -l)"
echo "virtual namespaces:   $(kubectl get ns -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"
echo "webhook configs:      $(kubectl get mutatingwebhookconfigurations -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"
echo "driver Jobs:          $(kubectl get jobs -n rehearsal-system --no-headers 2>/dev/null | wc -l)"
echo "Scenarios:            $(kubectl get scenarios --no-headers 2>/dev/null | wc -l)"
echo "Services, Secrets:    $(kubectl get services,secrets -n rehearsal-system -l rehearsal.dev/simulation --no-headers 2>/dev/null | wc -l)"

say "The evidence of the last runs, from MinIO"
rm -rf demo-evidence
target/debug/rehearsal-driver download "$report" demo-evidence/shop-burst
target/debug/rehearsal-driver download "$scenario_report" demo-evidence/web-burst-fast
python3 - demo-evidence/shop-burst/summary.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
def ready(key):
    entry = next((e for e in s["pods"].get(key, []) if e["condition"] == "Ready"), {})
    q = entry.get("quantiles") or {}
    return f"p50 {q.get('p50', '?')} ms, p99 {q.get('p99', '?')} ms"
# The API server's times are whole seconds (kube-burner's figure); the collectors' are not.
print(f"verdict {s['verdict']['status']}; {s['pods']['total']} pods; Ready latency {ready('latency_ms')} "
      f"(API server times, whole seconds), {ready('observed_latency_ms')} (as the collectors saw it); "
      f"nodes {s['nodes']['min']}..{s['nodes']['max']}; audit events {s.get('audit', {}).get('events', 0)}")
PY

phase=$(kubectl get simulations -o name 2>/dev/null | wc -l)
echo; echo "demo: done ($phase Simulations left)"
echo "demo: open the report: $root/demo-evidence/shop-burst/report.html (uploaded to ${report}report.html; the scenario's: demo-evidence/web-burst-fast/report.html)"
