#!/usr/bin/env bash
# make bench-scenario-scale: the scenario player at scale (issue 11, point 5).
#   A generated scenario directory: 500 Deployments of pause pods (requests 10m CPU, 16Mi) and
#   120 steps, each scaling 100 of them (step k, from 0, the 100 from k x 100, modulo 500), every
#   Deployment going from 2 to 6 replicas and back from one scale to its next, so each step
#   creates or deletes pods (400 at the default sizes). Timestep 30 s: at speed 15 a step is due
#   every 2 s, the 120 steps take 4 minutes.
#   Figures, printed and written to bench-results/scenario-scale.json (e2e/bench_results.py):
#   - step lateness p50/p99/max (goal p99 < 10 ms) and action lateness;
#   - how concurrently a step's scale requests went out: the spread of their starts, how many
#     were in flight at once, how long the step's requests took in all; and, with the sandbox's
#     audit log (REHEARSAL_AUDIT_LOG), the spread of their arrival at the API server and their
#     lateness there;
#   - per step, the time from its first scale action to every replica it asked for available
#     (summary.json, scenario.steps[].all_available_ms), and how many steps never got there;
#   - driver CPU and peak RSS, failed actions (goal 0), cleanup time, what is left afterwards.
# Needs a sandbox with 1,000 virtual nodes: `make bench-scenario-scale` starts one
# (REHEARSAL_VIRTUAL_NODES=1000) when none is up; a sandbox already up with fewer is refused.
# Knobs: REHEARSAL_SCENARIO_SCALE_DEPLOYMENTS (500), _STEPS (120), _PER_STEP (100), _SPEED (15),
# _LOW and _HIGH (2 and 6 replicas), _NODES (1000). A smoke run on the default 10-node sandbox
# (110 pods a node):
#   REHEARSAL_SCENARIO_SCALE_NODES=10 REHEARSAL_SCENARIO_SCALE_DEPLOYMENTS=50 \
#   REHEARSAL_SCENARIO_SCALE_STEPS=10 REHEARSAL_SCENARIO_SCALE_PER_STEP=10 make bench-scenario-scale
# `e2e/bench-scenario-scale.sh --generate DIR` only writes the scenario directory (no cluster),
# e.g. to check it with `rehearsal-driver scenario convert DIR`.
# Run through e2e/run-with-sandbox.sh (make bench-scenario-scale does), which provides the
# control plane.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The python snippets below import bench_results (and audit_lateness) from e2e/.
export PYTHONPATH=$root/e2e${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in e2e/
say() { printf '\n== %s\n' "$*"; }

deployments=${REHEARSAL_SCENARIO_SCALE_DEPLOYMENTS:-500}
steps=${REHEARSAL_SCENARIO_SCALE_STEPS:-120}
per_step=${REHEARSAL_SCENARIO_SCALE_PER_STEP:-100}
speed=${REHEARSAL_SCENARIO_SCALE_SPEED:-15}
low=${REHEARSAL_SCENARIO_SCALE_LOW:-2}
high=${REHEARSAL_SCENARIO_SCALE_HIGH:-6}
want_nodes=${REHEARSAL_SCENARIO_SCALE_NODES:-1000}
# Scenario seconds between two steps; the player waits timestep / speed (2 s at speed 15).
timestep=30

knob() { # NAME VALUE REGEX WHAT
  [[ $2 =~ $3 ]] || { echo "bench-scenario-scale: REHEARSAL_SCENARIO_SCALE_$1=$2: expected $4" >&2; exit 2; }
}
knob DEPLOYMENTS "$deployments" '^[1-9][0-9]*$' "a positive integer"
knob STEPS "$steps" '^[1-9][0-9]*$' "a positive integer"
knob PER_STEP "$per_step" '^[1-9][0-9]*$' "a positive integer"
knob SPEED "$speed" '^[0-9]+(\.[0-9]+)?$' "a number (the driver takes 0.001 to 10000)"
knob LOW "$low" '^[0-9]+$' "a replica count"
knob HIGH "$high" '^[0-9]+$' "a replica count"
knob NODES "$want_nodes" '^[0-9]+$' "a node count"
if [ "$per_step" -gt "$deployments" ]; then
  # A step naming a Deployment twice would cut its scale actions into batches played one after
  # the other (driver/src/scenario/execute.rs): not what this bench measures.
  echo "bench-scenario-scale: _PER_STEP ($per_step) is more than _DEPLOYMENTS ($deployments)" >&2
  exit 2
fi
if [ "$low" -eq "$high" ]; then
  echo "bench-scenario-scale: _LOW and _HIGH are both $low: the steps would create and delete no pod" >&2
  exit 2
fi

# The scenario directory, in the Karpenter scenario format (driver/src/scenario/directory.rs):
# config.yml, steps.yml and deployments/<name>.yaml, one Deployment each, no namespace (the
# play's --namespace). Every Deployment starts at $low replicas; step k scales the $per_step
# Deployments from k x $per_step (modulo $deployments), each to $high at its 1st, 3rd, ... scale
# and back to $low at its 2nd, 4th, ..., whatever the sizes (so every scale changes the count).
generate() {
  python3 - "$1" "$deployments" "$steps" "$per_step" "$low" "$high" "$timestep" <<'PY'
import os, sys
out = sys.argv[1]
deployments, steps, per_step, low, high, timestep = map(int, sys.argv[2:8])
width = max(3, len(str(deployments - 1)))
names = [f"app-{i:0{width}d}" for i in range(deployments)]
os.makedirs(os.path.join(out, "deployments"), exist_ok=True)
with open(os.path.join(out, "config.yml"), "w") as f:
    f.write("simulator:\n"
            "  run_id: bench_scenario_scale\n"
            f"  run_description: {deployments} Deployments and {steps} steps each scaling {per_step} of them\n"
            f"  timestep: {timestep}\n"
            "  start_step: 1\n"
            f"  limit: {steps}\n"
            "  deployments_directory: deployments\n"
            "  deployments:\n")
    f.writelines(f"  - {name}\n" for name in names)
# Small pause pods, as bench-scale.sh's; the player puts them on the virtual nodes (placement).
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"""
for name in names:
    with open(os.path.join(out, "deployments", f"{name}.yaml"), "w") as f:
        f.write(DEPLOYMENT.format(name=name, replicas=low))
scaled = [0] * deployments  # scales of each Deployment so far
with open(os.path.join(out, "steps.yml"), "w") as f:
    f.write("scenario:\n")
    for k in range(steps):
        f.write(f"- step:\n    name: {k + 1}\n    actions:\n")
        for j in range(per_step):
            i = (k * per_step + j) % deployments
            replicas = high if scaled[i] % 2 == 0 else low
            scaled[i] += 1
            f.write("    - action:\n"
                    f"        comment: Scales deployment {names[i]} to {replicas} replicas\n"
                    "        action_type: K8S_SCALE\n"
                    f"        action_data: name={names[i]},replicas={replicas}\n")
print(f"{out}: {deployments} Deployments at {low} replicas, {steps} steps of {per_step} scales "
      f"({steps * per_step} actions), timestep {timestep} s")
PY
}

if [ "${1:-}" = --generate ]; then
  [ $# -eq 2 ] || { echo "usage: $0 [--generate DIR]" >&2; exit 2; }
  generate "$2"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [--generate DIR]" >&2; exit 2; }
: "${KUBECONFIG:?run through e2e/run-with-sandbox.sh}"

work=$(mktemp -d)
# REHEARSAL_BENCH_KEEP=1 keeps the work folder (the driver's log and run folder) for study.
if [ -n "${REHEARSAL_BENCH_KEEP:-}" ]; then
  trap 'echo "work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
interval=$(python3 -c "print(f'{$timestep / $speed:g}')")
python3 e2e/bench_results.py begin scenario-scale deployments="$deployments" steps="$steps" \
  per_step="$per_step" speed="$speed" replicas="$low:$high" timestep="$timestep" nodes="$want_nodes"

nodes=$(kubectl get nodes -l type=virtual --no-headers 2>/dev/null | wc -l)
if [ "$nodes" -lt "$want_nodes" ]; then
  echo "bench-scenario-scale: the sandbox has $nodes virtual nodes, $want_nodes needed: make sandbox-down, then" >&2
  echo "  REHEARSAL_VIRTUAL_NODES=$want_nodes make bench-scenario-scale (or REHEARSAL_SCENARIO_SCALE_NODES=$nodes to use these)" >&2
  exit 1
fi

# REHEARSAL_BENCH_DRIVER runs another build (e.g. the previous commit's) for a side-by-side figure;
# this checkout's driver is built only when none is named.
if [ -z "${REHEARSAL_BENCH_DRIVER:-}" ]; then
  cargo build -q --release -p rehearsal-driver
fi
driver=${REHEARSAL_BENCH_DRIVER:-$root/target/release/rehearsal-driver}

scn=$work/scenario
generate "$scn"
ns=bench-scenario-scale-$$
say "$deployments Deployments, $steps steps of $per_step scales ($low <-> $high replicas), one every $interval s (speed $speed), onto $nodes virtual nodes"
# Setup waits for $deployments x $low pods to be available; the cleanup deletes up to
# $deployments x $high: both get 15 minutes on this 2-core control plane.
rc=0
/usr/bin/time -f '%U %S %e %M' -o "$work/time" "$driver" scenario --scenario "$scn" --namespace "$ns" \
  --speed "$speed" --log-dir "$work/logs" --ready-timeout 900 --cleanup-timeout 900 -v info \
  >"$work/driver.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "the driver exited $rc; the end of its output:"
  tail -20 "$work/driver.log"
fi
# What is left of the play: its namespace, and the Deployments and pods in it.
left_ns=$(kubectl get namespace "$ns" --ignore-not-found --no-headers 2>/dev/null | wc -l)
left_deployments=$(kubectl get deployments -n "$ns" --no-headers 2>/dev/null | wc -l)
left_pods=$(kubectl get pods -n "$ns" --no-headers 2>/dev/null | wc -l)
if [ "$left_ns" -gt 0 ]; then
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
fi
folder=$(find "$work/logs/bench_scenario_scale" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1 || true)
if [ -z "$folder" ] || [ ! -f "$folder/summary.json" ]; then
  echo "bench-scenario-scale: the play left no summary.json (run folder: ${folder:-none})" >&2
  [ "$rc" -ne 0 ] || tail -20 "$work/driver.log"
  exit 1
fi
python3 - "$folder" "$work/time" "$deployments" "$steps" "$per_step" "$low" "$high" "$speed" "$timestep" \
  "$ns" "$left_ns" "$left_deployments" "$left_pods" "${REHEARSAL_AUDIT_LOG:-}" <<'PY'
import datetime, glob, json, math, os, re, sys
from collections import defaultdict
from bench_results import record

folder, time_file = sys.argv[1], sys.argv[2]
deployments, planned, per_step, low, high = map(int, sys.argv[3:8])
speed, timestep, namespace = float(sys.argv[8]), float(sys.argv[9]), sys.argv[10]
left_ns, left_deployments, left_pods = map(int, sys.argv[11:14])
audit_log = sys.argv[14]
interval_ms = 1000 * timestep / speed

# /usr/bin/time's last line (a failed command adds a line before it).
user, sys_, wall, rss_kb = map(float, open(time_file).read().split("\n")[-2].split())
summary = json.load(open(os.path.join(folder, "summary.json")))
run = summary.get("run") or {}
details = run.get("details") or {}
actions = [json.loads(l) for l in open(os.path.join(folder, "actions.jsonl")) if l.strip()] \
    if os.path.exists(os.path.join(folder, "actions.jsonl")) else []

def q(values, p):  # nearest rank, as the driver computes it
    v = sorted(values)
    return v[max(1, min(len(v), math.ceil(p * len(v)))) - 1] if v else 0.0

def quantiles(values):
    return {"p50": q(values, 0.5), "p99": q(values, 0.99), "max": max(values) if values else 0.0, "count": len(values)}

def given(x):  # a quantiles object of summary.json, if it is one
    return x if isinstance(x, dict) and all(isinstance(x.get(k), (int, float)) for k in ("p50", "p99", "max")) else None

def ts(text):  # RFC 3339 to unix seconds
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def show(values, unit="ms", digits=3):
    return f"p50 {values['p50']:.{digits}f} {unit}, p99 {values['p99']:.{digits}f} {unit}, max {values['max']:.{digits}f} {unit}"

# Figures measured with other sizes are not compared with these: the sizes are in the ids.
at = f"d{deployments}-s{planned}-p{per_step}-r{low}-{high}-speed{sys.argv[8].replace('.', '_')}"
def fig(figure, value, unit, better, **kw):
    record("scenario-scale", f"{at}.{figure}", round(value, 3), unit, better, **kw)

# Steps and actions.
played = (details.get("steps") or {}).get("played")
if played is None:
    played = len({a["step"] for a in actions})
failed = sum(1 for a in actions if a.get("result") != "ok")
reported_failed = (details.get("actions") or {}).get("failed")
print(f"{played} of {planned} steps played, {len(actions)} actions ({failed} failed"
      + (f"; summary.json says {reported_failed}" if reported_failed not in (None, failed) else "") + ")")
fig("steps_played", played, "steps", "higher", goal=(">=", planned))
fig("actions", len(actions), "actions", "none")
fig("actions_failed", failed, "actions", "lower", goal=("<=", 0))

# Step lateness: the driver's (each step's start minus its due time), from summary.json, else
# from the step snapshots.
lateness = summary.get("lateness_ms") or {}
step_late = given(lateness.get("run")) or given(run.get("lateness_ms")) or given(details.get("lateness_ms"))
source = "summary.json"
if step_late is None:
    snaps = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "steps", "*.json")))]
    step_late, source = quantiles([s["lateness_ms"] for s in snaps]), "steps/*.json"
print(f"step lateness ({source}): {show(step_late)} (goal p99 < 10 ms)")
note = "each step's start minus its due time"
fig("lateness_p50_ms", step_late["p50"], "ms", "lower", note=note)
fig("lateness_p99_ms", step_late["p99"], "ms", "lower", goal=("<", 10), note=note)
fig("lateness_max_ms", step_late["max"], "ms", "lower", note=note)
action_late = given(lateness.get("actions")) or given(run.get("action_lateness_ms")) \
    or quantiles([a["lateness_ms"] for a in actions])
print(f"action lateness: {show(action_late)}")
note = "each action's start minus its step's due time"
fig("action_lateness_p50_ms", action_late["p50"], "ms", "lower", note=note)
fig("action_lateness_p99_ms", action_late["p99"], "ms", "lower", note=note)
fig("action_lateness_max_ms", action_late["max"], "ms", "lower", note=note)

# Concurrency within a step, from actions.jsonl. A step's actions share its due time, so the
# spread of their starts is the spread of their lateness_ms (the `started` times are rounded
# to the millisecond); [lateness_ms, lateness_ms + duration_ms] is each request in flight.
by_step = defaultdict(list)
for a in actions:
    if a.get("type") in ("K8S_SCALE", "SCALE"):
        by_step[a["step"]].append(a)
spreads, in_flight, spans = [], [], []
for group in by_step.values():
    starts = [a["lateness_ms"] for a in group]
    ends = [a["lateness_ms"] + a["duration_ms"] for a in group]
    spreads.append(max(starts) - min(starts))
    spans.append(max(ends) - min(starts))
    # Most requests in flight at once: a sweep, ends before starts at the same instant.
    now = most = 0
    for _, d in sorted([(s, 1) for s in starts] + [(e, -1) for e in ends]):
        now += d
        most = max(most, now)
    in_flight.append(most)
if by_step:
    spread, span = quantiles(spreads), quantiles(spans)
    print(f"a step's scale requests: starts spread {show(spread)}; in flight at once: "
          f"median {q(in_flight, 0.5)}, fewest {min(in_flight)} of {per_step}")
    print(f"    all of a step's requests done after {show(span, digits=1)} (a step lasts {interval_ms:.0f} ms: "
          f"beyond it the next step starts late)")
    note = "last minus first start of a step's scale actions (actions.jsonl)"
    fig("concurrency.start_spread_p50_ms", spread["p50"], "ms", "lower", note=note)
    fig("concurrency.start_spread_p99_ms", spread["p99"], "ms", "lower", note=note)
    fig("concurrency.start_spread_max_ms", spread["max"], "ms", "lower", note=note)
    note = f"most of a step's {per_step} scale requests in flight at once"
    fig("concurrency.in_flight_p50", q(in_flight, 0.5), "requests", "higher", note=note)
    fig("concurrency.in_flight_min", min(in_flight), "requests", "higher", note=note + ", the step with fewest")
    note = f"first start to last end of a step's scale requests; a step lasts {interval_ms:.0f} ms"
    fig("concurrency.step_requests_p50_ms", span["p50"], "ms", "lower", note=note)
    fig("concurrency.step_requests_p99_ms", span["p99"], "ms", "lower", note=note)
    fig("concurrency.step_requests_max_ms", span["max"], "ms", "lower", note=note)

# The same requests as the API server received them (its audit log, rotated files too): the
# patches of deployments/scale in the play's namespace during the steps, matched to the actions
# by Deployment name, in order.
def api_side():
    from audit_lateness import events
    starts = [ts(a["started"]) for a in actions]
    begin = ts(details["steps_start"]) if details.get("steps_start") else min(starts)
    end = ts(details["steps_end"]) if details.get("steps_end") else max(starts)
    received = defaultdict(list)
    for e, t in events(audit_log, f'"namespace":"{namespace}"'.encode(), (begin - 1, end + 5)):
        ref = e.get("objectRef") or {}
        if (e.get("verb") != "patch" or ref.get("resource") != "deployments"
                or ref.get("subresource") != "scale" or ref.get("namespace") != namespace):
            continue
        received[ref.get("name")].append(t)
    sent = defaultdict(list)
    for group in by_step.values():
        for a in group:
            sent[a["data"]["name"]].append(a)
    arrivals, unmatched = defaultdict(list), 0
    for name, mine in sent.items():
        got = sorted(received.get(name, []))
        unmatched += abs(len(mine) - len(got))
        for a, t in zip(sorted(mine, key=lambda a: a["started"]), got):
            arrivals[a["step"]].append((t, max(t - ts(a["due"]), 0.0) * 1000))
    return arrivals, unmatched

if audit_log and os.path.exists(audit_log) and by_step:
    arrivals, unmatched = api_side()
    matched = sum(len(v) for v in arrivals.values())
    if matched:
        spread = quantiles([1000 * (max(t for t, _ in v) - min(t for t, _ in v)) for v in arrivals.values()])
        late = quantiles([l for v in arrivals.values() for _, l in v])
        print(f"    at the API server ({matched} requests, {unmatched} unmatched): arrivals spread {show(spread)}; "
              f"lateness {show(late, digits=1)}")
        note = "last minus first requestReceivedTimestamp of a step's scale requests (audit log)"
        fig("api.start_spread_p50_ms", spread["p50"], "ms", "lower", note=note)
        fig("api.start_spread_p99_ms", spread["p99"], "ms", "lower", note=note)
        fig("api.start_spread_max_ms", spread["max"], "ms", "lower", note=note)
        note = "requestReceivedTimestamp minus the step's due time (audit log)"
        fig("api.lateness_p50_ms", late["p50"], "ms", "lower", note=note)
        fig("api.lateness_p99_ms", late["p99"], "ms", "lower", note=note)
        fig("api.lateness_max_ms", late["max"], "ms", "lower", note=note)
        fig("api.unmatched", unmatched, "requests", "lower", note="scale actions and audited patches not paired")
    else:
        print(f"    at the API server: no scale request of namespace {namespace} found in {audit_log}")
else:
    print("    at the API server: not measured (no REHEARSAL_AUDIT_LOG)")

# Per step: its first scale action to every Deployment it scaled having exactly the replicas
# asked for, all available (summary.json, from workloads.jsonl).
scenario = summary.get("scenario") or {}
scaling = [s for s in scenario.get("steps", []) if s.get("scale_actions", 0) > 0]
reached = [s["all_available_ms"] for s in scaling if s.get("all_available_ms") is not None]
missed = [s for s in scaling if s.get("all_available_ms") is None]
superseded = sum(1 for s in missed if "scaled again" in (s.get("note") or ""))
if scaling:
    avail = given(scenario.get("scale_to_available_ms")) or quantiles(reached)
    print(f"scale to all replicas available: {len(reached)} of {len(scaling)} steps got there"
          + (f", {show(avail, digits=1)}" if reached else "")
          + (f"; {len(missed)} did not ({superseded} scaled again first)" if missed else ""))
    for s in missed[:3]:
        note = s.get("note") or "?"
        print(f"    step {s['step']}: {note[:200]}{' ...' if len(note) > 200 else ''}")
    note = "a step's first scale action to every replica it asked for available (summary.json)"
    if reached:
        fig("available.p50_ms", avail["p50"], "ms", "lower", note=note)
        fig("available.p99_ms", avail["p99"], "ms", "lower", note=note)
        fig("available.max_ms", avail["max"], "ms", "lower", note=note)
    fig("available.steps_reached", len(reached), "steps", "higher", goal=(">=", len(scaling)))
    fig("available.steps_not_reached", len(missed), "steps", "lower",
        note=f"{superseded} of them scaled again before all their replicas were available")
else:
    print("scale to all replicas available: not in summary.json (no scenario.steps with scale actions)")

# The driver and the cleanup.
cpu = user + sys_
print(f"driver: {cpu:.1f} s CPU over {wall:.0f} s ({100 * cpu / wall:.0f}% of one core), peak RSS {rss_kb / 1024:.0f} MiB")
fig("driver.cpu_s", cpu, "s", "lower", note="setup, steps and cleanup")
fig("driver.cpu_pct", 100 * cpu / wall, "%", "lower", note="of one core, over the whole run")
fig("driver.peak_rss_mib", rss_kb / 1024, "MiB", "lower")
fig("run_seconds", wall, "s", "lower", note="setup, steps and cleanup")
# "deleted namespace ... and 2 objects in 41.2 s" (driver/src/scenario/player.rs).
m = re.search(r" in (\d+(?:\.\d+)?) s$", run.get("cleanup") or details.get("cleanup") or "")
print(f"cleanup: {run.get('cleanup') or details.get('cleanup') or '?'}")
if m:
    fig("cleanup_s", float(m.group(1)), "s", "lower")
# Who deleted what from the steps' end on (the cleanup), from the audit log.
if audit_log and os.path.exists(audit_log) and details.get("steps_end"):
    from cleanup_audit import deletes, lines
    found, gone = deletes(audit_log, namespace, ts(details["steps_end"]))
    print("deletes after the steps (audit log, seconds after the last step):")
    print("\n".join("    " + line for line in lines(found)))
    if gone is not None:
        print(f"    namespace deleted {gone:.1f} s after the last step")
print(f"left behind: {left_ns} namespaces, {left_deployments} Deployments, {left_pods} pods")
fig("left.objects", left_ns + left_deployments + left_pods, "objects", "lower", goal=("<=", 0),
    note=f"namespace {namespace}, its Deployments and pods, after the play")
PY
exit "$rc"
