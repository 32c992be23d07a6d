#!/usr/bin/env bash
# make bench (operator part): figures for the operator, printed, not asserted.
#   1. reconcile latency: from `kubectl create` of a Simulation to its driver Job existing
#      (5 times, median and max), the operator installed with `kubectl apply -k config/default`;
#   2. the leader's memory with 100 Simulations queued behind a running one.
# The figures also go to bench-results/operator.json (e2e/bench_results.py).
# Run through e2e/run-with-sandbox.sh (make bench-operator does), which provides the control plane.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The python snippet below imports bench_results from e2e/.
export PYTHONPATH=$root/e2e${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in e2e/
say() { printf '\n== %s\n' "$*"; }
record() { python3 e2e/bench_results.py record operator "$@"; }
: "${KUBECONFIG:?run through e2e/run-with-sandbox.sh}"
ns=rehearsal-system
python3 e2e/bench_results.py begin operator

cargo build -q -p rehearsal-operator -p rehearsal-driver
cleanup() {
  kubectl delete simulations -l rehearsal.dev/bench=operator --wait=false >/dev/null 2>&1 || true
  kubectl wait --for=delete simulations -l rehearsal.dev/bench=operator --timeout=300s >/dev/null 2>&1 || true
  kubectl delete configmap bench-trace -n default --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete deployment rehearsal-operator -n "$ns" --ignore-not-found --wait=true >/dev/null 2>&1 || true
}
trap cleanup EXIT
kubectl apply --server-side --force-conflicts -k config/default >/dev/null
kubectl -n "$ns" rollout status deployment/rehearsal-operator --timeout=120s >/dev/null
kubectl create configmap bench-trace -n default --from-file=examples/traces/shop-burst.json \
  --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null

sim() { # NAME SPEED
  cat <<YAML
apiVersion: rehearsal.dev/v1alpha1
kind: Simulation
metadata: {name: $1, labels: {rehearsal.dev/bench: operator}}
spec:
  source: {trace: {configMapRef: {namespace: default, name: bench-trace, key: shop-burst.json}}}
  speed: $2
YAML
}

say "reconcile latency: kubectl create Simulation -> driver Job created (5 runs)"
times=()
for i in 1 2 3 4 5; do
  start=$(date +%s.%N)
  sim "latency-$i" 4 | kubectl create -f - >/dev/null
  kubectl wait --for=create "job/latency-$i-run-0" -n "$ns" --timeout=60s >/dev/null
  end=$(date +%s.%N)
  times+=("$(python3 -c "print(f'{($end - $start) * 1000:.0f}')")")
  kubectl delete simulation "latency-$i" --wait=true --timeout=120s >/dev/null
done
python3 - "${times[@]}" <<'PY'
import statistics, sys
from bench_results import record
t = sorted(int(x) for x in sys.argv[1:])
print(f"apply -> Job: median {statistics.median(t):.0f} ms, max {max(t)} ms (all: {t}; includes kubectl's own start, ~100 ms)")
note = f"kubectl create of a Simulation to its driver Job, {len(t)} runs; includes kubectl's own start"
record("operator", "reconcile.apply_to_job_median_ms", statistics.median(t), "ms", "lower", note=note)
record("operator", "reconcile.apply_to_job_max_ms", max(t), "ms", "lower", note=note)
PY

say "operator memory with 100 Simulations queued behind a running one"
leader=$(kubectl -n "$ns" get lease rehearsal-operator -o jsonpath='{.spec.holderIdentity}')
pid=$(kubectl -n "$ns" get pod "$leader" -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|rehearsal-runner://||')
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$pid")
sim running 0.5 | kubectl create -f - >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Running simulation/running --timeout=60s >/dev/null
start=$(date +%s)
for i in $(seq 1 100); do sim "queued-$i" 1; echo "---"; done | kubectl create -f - >/dev/null
for _ in $(seq 1 120); do
  queued=$(kubectl get simulations -l rehearsal.dev/bench=operator -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Queued$' || true)
  [ "$queued" -ge 100 ] && break
  sleep 1
done
after=$(rss "$pid")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
took=$(( $(date +%s) - start ))
echo "100 Simulations Queued after $took s ($queued seen); leader RSS $((before / 1024)) MiB before, $((after / 1024)) MiB with the queue, peak $((hwm / 1024)) MiB"
record queue100.seconds_to_queued "$took" s lower --note "100 Simulations created behind a running one, until all are Queued"
record queue100.queued_seen "$queued" simulations higher --goal '>=100'
# /proc gives KiB; MiB to a tenth here where the line above rounds down.
record queue100.leader_rss_before_mib "$(awk -v k="$before" 'BEGIN {printf "%.1f", k / 1024}')" MiB lower
record queue100.leader_rss_mib "$(awk -v k="$after" 'BEGIN {printf "%.1f", k / 1024}')" MiB lower --note "with 100 Simulations queued"
record queue100.leader_rss_peak_mib "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')" MiB lower --note "VmHWM of the leader"
kubectl get simulation queued-100 -o jsonpath='queued-100: {.status.conditions[?(@.type=="Reconciling")].message}{"\n"}'
