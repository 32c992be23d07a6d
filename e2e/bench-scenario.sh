#!/usr/bin/env bash
# make bench: figures for the scenario player, printed, not asserted.
#   Step start lateness (actual start minus due) over 600 steps 100 ms apart, each step scaling
#   one Deployment (1 and 2 replicas in turn), on the local control plane: p50, p99, max; and
#   drift: the median lateness of the first 60 steps against the last 60. Goal: p99 under
#   10 ms and no drift.
# The figures also go to bench-results/scenario.json (e2e/bench_results.py).
# Run through e2e/run-with-sandbox.sh (make bench-scenario does), which provides the control plane.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The python snippet below imports bench_results from e2e/.
export PYTHONPATH=$root/e2e${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in e2e/
say() { printf '\n== %s\n' "$*"; }
: "${KUBECONFIG:?run through e2e/run-with-sandbox.sh}"

steps=${REHEARSAL_BENCH_SCENARIO_STEPS:-600}
python3 e2e/bench_results.py begin scenario "steps=$steps"
cargo build -q --release -p rehearsal-driver
driver=$root/target/release/rehearsal-driver

# The scenario: one small Deployment, one scale per step, timestep 0.1 s.
scn=$work/scenario
mkdir -p "$scn/deployments"
cat >"$scn/config.yml" <<YAML
simulator:
  run_id: bench_scenario
  run_description: one Deployment scaled every 100 ms
  timestep: 0.1
  start_step: 1
  limit: $steps
  deployments_directory: deployments
  deployments:
  - bench
YAML
cat >"$scn/deployments/bench.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: 1
  selector:
    matchLabels: {app: bench}
  template:
    metadata:
      labels: {app: bench}
    spec:
      containers:
      - name: c
        image: nginx:latest
        resources: {requests: {cpu: 100m, memory: 64Mi}}
YAML
{
  echo "scenario:"
  for ((i = 1; i <= steps; i++)); do
    printf -- '- step:\n    name: %d\n    actions:\n    - action:\n        action_type: K8S_SCALE\n        action_data: name=bench,replicas=%d\n' \
      "$i" $((i % 2 + 1))
  done
} >"$scn/steps.yml"

say "scenario step lateness ($steps steps 100 ms apart, one scale each, on the local control plane)"
ns=bench-scenario-$$
/usr/bin/time -f '%U %S %e' -o "$work/time" "$driver" scenario --scenario "$scn" --namespace "$ns" \
  --log-dir "$work/logs" -v warn >"$work/driver.out" 2>&1 || {
  echo "the driver failed:"
  tail -20 "$work/driver.out"
  exit 1
}
read -r user sys wall <"$work/time"
folder=$(find "$work/logs/bench_scenario" -mindepth 1 -maxdepth 1 -type d | head -1)
python3 - "$folder" "$user" "$sys" "$wall" "$steps" <<'PY'
import glob, json, math, os, statistics, sys
from bench_results import record
folder, user, sys_, wall = sys.argv[1], *map(float, sys.argv[2:5])
planned = int(sys.argv[5])
steps = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "steps", "*.json")))]
late = [s["lateness_ms"] for s in steps]
actions = [json.loads(l) for l in open(os.path.join(folder, "actions.jsonl"))]
summary = json.load(open(os.path.join(folder, "summary.json")))["run"]["details"]

def q(values, p):  # nearest rank, as the driver computes it
    v = sorted(values)
    return v[max(1, min(len(v), math.ceil(p * len(v)))) - 1] if v else 0.0

n = len(late)
window = min(60, n // 2)
first, last = statistics.median(late[:window]), statistics.median(late[-window:])
durations = [a["duration_ms"] for a in actions]
failed = sum(1 for a in actions if a["result"] != "ok")
print(f"{n} steps played, {len(actions)} scale actions ({failed} failed), steps from "
      f"{summary.get('steps_start', '?')} to {summary.get('steps_end', '?')}")
print(f"step start lateness: p50 {q(late, 0.5):.3f} ms, p99 {q(late, 0.99):.3f} ms, max {max(late):.3f} ms")
print(f"drift: median lateness of the first {window} steps {first:.3f} ms, of the last {window} {last:.3f} ms "
      f"(difference {last - first:+.3f} ms)")
print(f"scale request duration: p50 {q(durations, 0.5):.1f} ms, p99 {q(durations, 0.99):.1f} ms")
print(f"whole run {wall:.1f} s (setup, {n} steps, cleanup): driver CPU {user + sys_:.1f} s "
      f"({100 * (user + sys_) / wall:.0f}% of one core)")
# The planned step count is in the ids: figures over another count are not compared with these.
at = f"steps{planned}"
def fig(figure, value, unit, better, **kw):
    record("scenario", f"{at}.{figure}", value, unit, better, **kw)
fig("steps_played", n, "steps", "higher", goal=(">=", planned))
fig("actions", len(actions), "actions", "none")
fig("actions_failed", failed, "actions", "lower", goal=("<=", 0))
lateness = "each step's start minus its due time"
fig("lateness_p50_ms", q(late, 0.5), "ms", "lower", note=lateness)
fig("lateness_p99_ms", q(late, 0.99), "ms", "lower", goal=("<", 10), note=lateness)
fig("lateness_max_ms", max(late), "ms", "lower", note=lateness)
fig("drift.first_median_ms", first, "ms", "lower", note=f"median lateness of the first {window} steps")
fig("drift.last_median_ms", last, "ms", "lower", note=f"median lateness of the last {window} steps")
fig("drift.difference_ms", round(last - first, 3), "ms", "none", note="last minus first")
# The goal is no drift either way, so the size of the difference is what improves.
fig("drift.abs_difference_ms", round(abs(last - first), 3), "ms", "lower", note="goal: no drift")
fig("scale_duration_p50_ms", q(durations, 0.5), "ms", "lower")
fig("scale_duration_p99_ms", q(durations, 0.99), "ms", "lower")
fig("run_seconds", wall, "s", "lower", note="setup, steps and cleanup")
fig("driver_cpu_seconds", round(user + sys_, 2), "s", "lower")
fig("driver_cpu_pct", round(100 * (user + sys_) / wall, 1), "%", "lower", note="of one core, over the whole run")
PY
