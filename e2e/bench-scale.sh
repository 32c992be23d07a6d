#!/usr/bin/env bash
# make bench-scale: 10,000 pods onto 1,000 virtual nodes (issue 11, points 1 and 2).
#   1. the control plane at idle with the sandbox's virtual nodes: CPU (% of one core) and RSS of
#      each component over REHEARSAL_SCALE_IDLE_SECONDS (30);
#   2. a generated trace of 500 Deployments of 20 replicas (10,000 pods; 50 of them with pods
#      that complete after 20 s and are replaced) replayed at speed 10 with the collectors on:
#      replay lateness, time until every pod was Running, pods scheduled per second, CPU and
#      peak memory of every component and of the driver, cleanup time, and what was left;
#   3. `rehearsal-driver report` of that run's folder (issue 10): its time and peak memory.
# Needs a sandbox with 1,000 virtual nodes: `make bench-scale` starts one
# (REHEARSAL_VIRTUAL_NODES=1000) when none is up; a sandbox already up with fewer nodes is
# refused. REHEARSAL_SCALE_DEPLOYMENTS / _REPLICAS / _SPEED shrink it (e.g. a smoke run).
# Figures go to bench-results/scale.json (e2e/bench_results.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONDONTWRITEBYTECODE=1
results=(python3 "$root/e2e/bench_results.py")
work=$(mktemp -d)
# REHEARSAL_BENCH_KEEP=1 keeps the work folder (the driver's log and run folder) for study.
if [ -n "${REHEARSAL_BENCH_KEEP:-}" ]; then
  trap 'echo "work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
export LOG_DIR=$work/runs
say() { printf '\n== %s\n' "$*"; }
: "${KUBECONFIG:?run through e2e/run-with-sandbox.sh}"
: "${REHEARSAL_SANDBOX_DIR:?run through e2e/run-with-sandbox.sh}"

deployments=${REHEARSAL_SCALE_DEPLOYMENTS:-500}
replicas=${REHEARSAL_SCALE_REPLICAS:-20}
speed=${REHEARSAL_SCALE_SPEED:-10}
want_nodes=${REHEARSAL_SCALE_NODES:-1000}
idle_seconds=${REHEARSAL_SCALE_IDLE_SECONDS:-30}
"${results[@]}" begin scale deployments="$deployments" replicas="$replicas" speed="$speed" nodes="$want_nodes"

nodes=$(kubectl get nodes -l type=virtual --no-headers 2>/dev/null | wc -l)
if [ "$nodes" -lt "$want_nodes" ]; then
  echo "bench-scale: the sandbox has $nodes virtual nodes, $want_nodes needed: make sandbox-down, then" >&2
  echo "  REHEARSAL_VIRTUAL_NODES=$want_nodes make bench-scale (or REHEARSAL_SCALE_NODES=$nodes to use these)" >&2
  exit 1
fi

# REHEARSAL_BENCH_DRIVER runs another build (e.g. the previous commit's) for a side-by-side figure;
# this checkout's driver is built only when none is named.
if [ -z "${REHEARSAL_BENCH_DRIVER:-}" ]; then
  cargo build -q --release -p rehearsal-driver
fi
driver=${REHEARSAL_BENCH_DRIVER:-$root/target/release/rehearsal-driver}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pid_of() { cat "$REHEARSAL_SANDBOX_DIR/pids/$1.pid"; }
# "name ticks" per component, now.
sample() { for c in "${components[@]}"; do echo "$c $(ticks "$(pid_of "$c")")"; done; }
# "name peak_kb" per component: VmHWM, the peak RSS since the component started.
peaks() { for c in "${components[@]}"; do echo "$c $(awk '/VmHWM/ {print $2}' "/proc/$(pid_of "$c")/status")"; done; }

say "the control plane at idle with $nodes virtual nodes ($idle_seconds s)"
sample >"$work/idle-before"
sleep "$idle_seconds" # a measuring window, not a wait for a condition
sample >"$work/idle-after"
for c in "${components[@]}"; do echo "$c $(awk '/VmRSS/ {print $2}' "/proc/$(pid_of "$c")/status")"; done >"$work/idle-rss"
python3 - "$work" "$idle_seconds" "$hz" "$nodes" <<'PY'
import sys
sys.path.insert(0, "e2e")
from bench_results import record
work, secs, hz, nodes = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
read = lambda f: {l.split()[0]: float(l.split()[1]) for l in open(f"{work}/{f}")}
before, after, rss = read("idle-before"), read("idle-after"), read("idle-rss")
parts = []
total = 0.0
for c in before:
    cpu = 100 * (after[c] - before[c]) / hz / secs
    total += cpu
    parts.append(f"{c} {cpu:.1f} % ({rss[c] / 1024:.0f} MB)")
    record("scale", f"idle.{c}.cpu_percent", round(cpu, 2), "%", "lower", note=f"of one core, {nodes} virtual nodes")
    record("scale", f"idle.{c}.rss_mib", round(rss[c] / 1024, 1), "MiB", "lower")
record("scale", "idle.total.cpu_percent", round(total, 2), "%", "lower", note=f"of one core, {nodes} virtual nodes")
print(f"idle with {nodes} virtual nodes: {total:.1f} % of one core in all; " + ", ".join(parts))
PY

say "$deployments Deployments x $replicas replicas at speed $speed onto $nodes virtual nodes"
# The trace: the Deployments arrive in 50 events over 300 s of trace time (30 s at speed 10); one
# in ten has pods that complete after 20 s (kwok's pod-complete stage) and are replaced. A last
# ConfigMap 3000 s in keeps the replay going (300 s at speed 10) while the pods start: on 2 cores
# the controller manager (100 requests/s) and the scheduler (50 bindings/s, its default) need
# minutes for 10,000 pods (a first run held 90 s: 6,247 created, 5,132 Running).
python3 - "$work/scale.json" "$deployments" "$replicas" <<'PY'
import json, sys
path, deployments, replicas = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = 1700000000
events = []
batches = 50
for b in range(batches):
    objs = []
    for i in range(b, deployments, batches):
        annotations = {"simkube.io/lifetime-seconds": "20"} if i % 10 == 0 else {}
        objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": f"app-{i}", "namespace": f"team-{i % 20}", "labels": {"app": f"app-{i}"}},
                     "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": f"app-{i}"}},
                              "template": {"metadata": {"labels": {"app": f"app-{i}"}, "annotations": annotations},
                                           "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}})
    if objs:
        events.append({"ts": start + b * 300 // batches, "applied_objs": objs, "deleted_objs": []})
events.append({"ts": start + 3000, "applied_objs": [{"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "end-of-trace", "namespace": "team-0"}, "data": {"k": "v"}}], "deleted_objs": []})
json.dump({"version": 2, "config": {"trackedObjects": {}}, "events": events, "index": {}, "pod_lifecycles": {}}, open(path, "w"))
PY
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=bench" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
kubectl apply --server-side -f config/crd/rehearsal.dev_simulations.yaml -f config/crd/rehearsal.dev_simulationroots.yaml >/dev/null
kubectl wait --for=condition=Established crd/simulations.rehearsal.dev crd/simulationroots.rehearsal.dev --timeout=60s >/dev/null
sim=bench-scale
kubectl delete simulation "$sim" --ignore-not-found --wait=true >/dev/null
kubectl apply --server-side -f - >/dev/null <<YAML
apiVersion: rehearsal.dev/v1alpha1
kind: Simulation
metadata: {name: $sim}
spec: {source: {trace: {uri: "file://$work/scale.json"}}, speed: $speed, virtualNamespacePrefix: scale}
YAML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sample >"$work/run-before"
ok=1
/usr/bin/time -f '%U %S %e %M' -o "$work/time" "$driver" replay --sim-name "$sim" --controller-ns default \
  --virtual-ns-prefix scale --cert-path "$work/tls.crt" --key-path "$work/tls.key" \
  --trace-path "file://$work/scale.json" --speed "$speed" --admission-webhook-port "$port" \
  --listen-address 127.0.0.1 --webhook-url "https://127.0.0.1:$port/mutate" --cleanup-timeout 900 \
  --stats-file "$work/stats.json" -v info >"$work/driver.log" 2>&1 || { ok=0; echo "driver failed:"; tail -5 "$work/driver.log"; }
sample >"$work/run-after"
peaks >"$work/run-peaks"
# What is left: the run's namespaces, its pods, its SimulationRoot.
left_ns=$(kubectl get namespaces --no-headers -o custom-columns=N:.metadata.name | grep -c '^scale-' || true)
left_pods=$(kubectl get pods -A -l "simkube.io/simulation=$sim" --no-headers 2>/dev/null | wc -l)
left_roots=$(kubectl get simulationroots --no-headers 2>/dev/null | grep -c "$sim" || true)
kubectl delete simulation "$sim" --wait=true >/dev/null
# The replay's end and the cleanup's end, from the driver's log (RFC 3339 timestamps).
python3 - "$work" "$hz" "$ok" "$left_ns" "$left_pods" "$left_roots" "$deployments" "$replicas" "$LOG_DIR/$sim/0" <<'PY'
import datetime, json, os, re, sys
sys.path.insert(0, "e2e")
from bench_results import record
work, hz, ok = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
left_ns, left_pods, left_roots, deployments, replicas = map(int, sys.argv[4:9])
folder = sys.argv[9]
read = lambda f: {l.split()[0]: float(l.split()[1]) for l in open(f"{work}/{f}")}
before, after, peaks = read("run-before"), read("run-after"), read("run-peaks")
user, sys_, wall, rss_kb = (float(x) for x in open(f"{work}/time").read().split("\n")[-2].split())
if not ok:
    sys.exit(1)
s = json.load(open(f"{work}/stats.json"))
l = s["lateness_ms"]
print(f"replay: {s['applied'] + s['deleted']} objects in {s['elapsed_seconds']:.1f} s, failed {s['failed']}; "
      f"lateness p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms, max {l['max']:.1f} ms (goal p99 < 50 ms)")
record("scale", "replay.lateness_p50_ms", l["p50"], "ms", "lower")
record("scale", "replay.lateness_p99_ms", l["p99"], "ms", "lower", goal="<50")
record("scale", "replay.lateness_max_ms", l["max"], "ms", "lower")
record("scale", "replay.failed", s["failed"], "objects", "lower", goal="<=0")
# The same lateness as the API server received the requests (its audit log; issue 11.6).
if s.get("clock"):
    from audit_lateness import lateness
    api = lateness(os.environ["REHEARSAL_AUDIT_LOG"], f"{work}/scale.json", f"{work}/stats.json", "scale")
    print(f"        as the API server received them ({api['count']} requests, {api['unmatched']} unmatched): "
          f"p50 {api['p50']:.2f} ms, p99 {api['p99']:.2f} ms, max {api['max']:.1f} ms (goal p99 < 50 ms)")
    note = "requestReceivedTimestamp in the API server's audit log minus the deadline"
    record("scale", "replay.lateness_api_p50_ms", round(api["p50"], 3), "ms", "lower", note=note)
    record("scale", "replay.lateness_api_p99_ms", round(api["p99"], 3), "ms", "lower", goal="<50", note=note)
    record("scale", "replay.lateness_api_max_ms", round(api["max"], 3), "ms", "lower", note=note)
# Pods: from the collectors' pods.jsonl, by the driver's clock (t): the first pod created, the
# moment the last pod of the replay's first generation was Running, and scheduling throughput.
def ts(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
created, running, scheduled = {}, {}, []
with open(os.path.join(folder, "pods.jsonl")) as f:
    for line in f:
        r = json.loads(line)
        if r["change"] == "created":
            created[r["uid"]] = ts(r["t"])
        elif r["change"] == "scheduled":
            scheduled.append(ts(r["t"]))
        elif r["change"] == "phase" and r.get("phase") == "Running":
            running.setdefault(r["uid"], ts(r["t"]))
want = deployments * replicas
first = min(created.values()) if created else 0
times = sorted(running.values())
all_running = times[want - 1] - first if len(times) >= want else float("nan")
print(f"pods: {len(created)} created ({want} wanted at once), {len(running)} reached Running; "
      + (f"{want} Running {all_running:.1f} s after the first pod was created" if all_running == all_running
         else f"fewer than {want} were ever Running"))
record("scale", "pods.created", len(created), "pods", "none")
if all_running == all_running:  # not NaN: every pod got there
    record("scale", "pods.until_all_running_s", round(all_running, 2), "s", "lower", note=f"until {want} pods had been Running")
record("scale", "pods.reached_running", len(running), "pods", "higher", goal=f">={want}")
summary = json.load(open(os.path.join(folder, "summary.json")))
tp = summary.get("pods", {}).get("scheduling_throughput", {})
if scheduled:
    span = max(scheduled) - min(scheduled)
    mean = len(scheduled) / span if span > 0 else float("nan")
    print(f"scheduling: {len(scheduled)} pods bound in {span:.1f} s ({mean:.0f} pods/s on average)")
    record("scale", "scheduling.mean_pods_per_second", round(mean, 1), "pods/s", "higher")
for key in ("p50", "p99", "max"):
    if isinstance(tp, dict) and key in tp:
        record("scale", f"scheduling.{key}_pods_per_second", tp[key], "pods/s", "higher", note="5 s windows (summary.json)")
# CPU and peak memory of each component over the whole run (replay and cleanup).
parts = []
for c in before:
    cpu = (after[c] - before[c]) / hz
    parts.append(f"{c} {cpu:.0f} s CPU ({100 * cpu / wall:.0f} %), peak {peaks[c] / 1024:.0f} MB")
    record("scale", f"run.{c}.cpu_s", round(cpu, 1), "s", "lower")
    record("scale", f"run.{c}.peak_rss_mib", round(peaks[c] / 1024, 1), "MiB", "lower", note="VmHWM: peak since the component started")
print("components over the run (" + f"{wall:.0f} s): " + "; ".join(parts))
print(f"driver: {user + sys_:.1f} s CPU, peak RSS {rss_kb / 1024:.0f} MB (goal < 200 MB)")
record("scale", "driver.cpu_s", round(user + sys_, 1), "s", "lower")
record("scale", "driver.peak_rss_mib", round(rss_kb / 1024, 1), "MiB", "lower", goal="<200")
record("scale", "run.wall_s", round(wall, 1), "s", "lower")
# Cleanup: the driver times it ("everything the run created is gone (12.3 s)", in summary.json).
m = re.search(r"gone \((\d+(?:\.\d+)?) s\)", json.dumps(summary))
if m:
    print(f"cleanup: {float(m.group(1)):.1f} s (goal < 60 s)")
    record("scale", "cleanup_s", float(m.group(1)), "s", "lower", goal="<60")
else:
    print("cleanup: not timed (no 'gone (N s)' in summary.json)")
# Who deleted what during the cleanup, from the audit log: the deletes the time went to.
if s.get("clock") and os.environ.get("REHEARSAL_AUDIT_LOG"):
    from cleanup_audit import deletes, lines
    begin = s["clock"]["started_unix_seconds"] + s["elapsed_seconds"]
    found, gone = deletes(os.environ["REHEARSAL_AUDIT_LOG"], "scale-", begin)
    print("cleanup's deletes (audit log, seconds after the replay's end):")
    print("\n".join("    " + line for line in lines(found)))
    if gone is not None:
        print(f"    the last namespace deleted {gone:.1f} s after the replay's end")
    by_who = {}
    for (who, _, _), g in found.items():
        total = by_who.setdefault(who.split(":")[-1], {"count": 0, "refused": 0})
        total["count"] += g["count"]
        total["refused"] += g["refused"]
    for who, total in by_who.items():
        record("scale", f"cleanup.deletes.{who}", total["count"], "requests", "lower", note="delete and deletecollection, audit log")
        record("scale", f"cleanup.refused.{who}", total["refused"], "requests", "lower", note="answered 404 or 409")
print(f"left behind: {left_ns} namespaces, {left_pods} pods, {left_roots} SimulationRoots")
record("scale", "left.objects", left_ns + left_pods + left_roots, "objects", "lower", goal="<=0")
PY

# `rehearsal-driver report` of this run's folder (issue 10's benchmark: the report of a run of
# 10,000 pods): summary.json and report.html rebuilt from its JSON lines, three times, medians.
folder=$LOG_DIR/$sim/0
for i in 1 2 3; do
  /usr/bin/time -f '%e %M' -o "$work/time-report-$i" "$driver" report "$folder" >/dev/null
done
python3 - "$work" "$folder" <<'PY'
import json, os, statistics, sys
sys.path.insert(0, "e2e")
from bench_results import record
work, folder = sys.argv[1], sys.argv[2]
runs = [[float(x) for x in open(f"{work}/time-report-{i}").read().split("\n")[-2].split()] for i in (1, 2, 3)]
secs, rss = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs) / 1024
pods = json.load(open(os.path.join(folder, "summary.json")))["pods"]["total"]
lines = sum(1 for _ in open(os.path.join(folder, "pods.jsonl")))
size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".jsonl"))
print(f"report of the run ({pods} pods, {lines} lines in pods.jsonl, {size / 2**20:.0f} MiB of JSON lines): "
      f"{secs:.2f} s, peak RSS {rss:.0f} MiB (medians of 3: {', '.join(f'{r[0]:.2f}' for r in runs)} s)")
note = f"rehearsal-driver report of the run's folder, median of 3; {lines} pod lines, {size / 2**20:.0f} MiB of JSON lines"
record("scale", "report.pods", pods, "pods", "none")
record("scale", "report.seconds", round(secs, 2), "s", "lower", note=note)
record("scale", "report.peak_rss_mib", round(rss, 1), "MiB", "lower", note=note)
PY
