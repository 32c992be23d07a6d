//! Every figure of `summary.json` on small hand-made folders, with expected values computed by
//! hand; thresholds, bad lines, rebuilds and comparisons; and the size and time of a report of
//! 10,000 pods.

use std::path::Path;

use rehearsal_crds::simulation::{LatencyCondition, LatencyMetric};
use serde_json::{Value, json};

use super::summary::VerdictStatus;
use super::*;

/// 2026-12-02T10:00:00Z plus `ms` milliseconds (T0 is on a 5 s boundary).
fn t(ms: i64) -> String {
    read::rfc3339(synthetic::T0_US + ms * 1000)
}

fn lines(dir: &Path, file: &str, records: &[Value]) {
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(dir.join(file), body).unwrap();
}

fn facts(kind: RunKind) -> RunFacts {
    RunFacts {
        kind,
        name: "test".into(),
        run: "0".into(),
        start: Some(t(0)),
        end: Some(t(20_000)),
        result: RunResult::Succeeded,
        ..RunFacts::default()
    }
}

fn pod(ms: i64, change: &str, i: usize, extra: Value) -> Value {
    let mut v =
        json!({"t": t(ms), "change": change, "namespace": "ns", "name": format!("p{i}"), "uid": format!("u{i}")});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Ten pods, pod i (1..=10) created at i s: scheduled i×100 ms later, Initialized i×10 ms later
/// (pod 1: 5 s before its creation, clamped to 0), ContainersReady for pods 1-8 only, Ready
/// i×1000 ms later for pods 1-9; each Pending for 2 s.
fn ten_pods(dir: &Path) {
    let mut records: Vec<(i64, u8, Value)> = vec![];
    for i in 1..=10i64 {
        let n = usize::try_from(i).unwrap();
        let c = i * 1000;
        records.push((c, 1, pod(c, "created", n, json!({"at": t(c)}))));
        records.push((c + i * 100, 1, pod(c + i * 100, "scheduled", n, json!({"at": t(c + i * 100), "node": "n"}))));
        let init = if i == 1 { c - 5000 } else { c + i * 10 };
        records.push((
            c + i * 10,
            1,
            pod(c + i * 10, "condition", n, json!({"condition": "Initialized", "at": t(init)})),
        ));
        if i <= 8 {
            records.push((
                c + 1,
                1,
                pod(c + 1, "condition", n, json!({"condition": "ContainersReady", "at": t(c + 1)})),
            ));
        }
        if i <= 9 {
            records.push((
                c + i * 1000,
                1,
                pod(c + i * 1000, "condition", n, json!({"condition": "Ready", "at": t(c + i * 1000)})),
            ));
        }
        // Running 2 s after creation; at equal times the phase change comes first.
        records.push((c + 2000, 0, pod(c + 2000, "phase", n, json!({"phase": "Running"}))));
    }
    records.sort_by_key(|r| (r.0, r.1));
    let values: Vec<Value> = records.into_iter().map(|r| r.2).collect();
    lines(dir, "pods.jsonl", &values);
}

fn latency<'a>(s: &'a Summary, condition: &str) -> &'a summary::ConditionLatency {
    s.pods.as_ref().unwrap().latency_ms.iter().find(|c| c.condition == condition).unwrap()
}

#[test]
fn pod_latencies_pending_and_throughput() {
    let tmp = tempfile::tempdir().unwrap();
    ten_pods(tmp.path());
    let s = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap().summary;
    let pods = s.pods.as_ref().unwrap();
    assert_eq!(pods.total, 10);
    let conditions: Vec<&str> = pods.latency_ms.iter().map(|c| c.condition.as_str()).collect();
    assert_eq!(conditions, ["PodScheduled", "Initialized", "ContainersReady", "Ready"], "no PodReadyToStartContainers");

    let q = latency(&s, "PodScheduled").quantiles.unwrap();
    assert_eq!((q.count, q.p50, q.p90, q.p99, q.max, q.avg), (10, 500.0, 900.0, 1000.0, 1000.0, 550.0));
    // 0 (clamped), 20, 30, ... 100.
    let q = latency(&s, "Initialized").quantiles.unwrap();
    assert_eq!((q.p50, q.p90, q.max, q.avg), (50.0, 90.0, 100.0, 54.0));
    // Nine of ten is exactly 10 % missing: still reported.
    let ready = latency(&s, "Ready");
    let q = ready.quantiles.unwrap();
    assert_eq!((ready.total, ready.measured), (10, 9));
    assert_eq!((q.p50, q.p90, q.p99, q.max, q.avg), (5000.0, 9000.0, 9000.0, 9000.0, 5000.0));
    // Eight of ten: 20 % missing, left out with a note.
    let cr = latency(&s, "ContainersReady");
    assert_eq!((cr.measured, cr.quantiles), (8, None));
    assert_eq!(
        cr.note.as_deref(),
        Some("2 of 10 pods (20.0 %) never reached ContainersReady: more than 10 %, figures left out")
    );
    assert!(s.notes.iter().any(|n| n.starts_with("pod latency ContainersReady: 2 of 10 pods")), "{:?}", s.notes);

    // Pending: 1 pod for [1 s, 2 s), 2 for [2 s, 11 s), 1 for [11 s, 12 s): 20 pod-seconds
    // over the 20 s window.
    assert_eq!((pods.pending.peak, pods.pending.peak_at.as_deref()), (2, Some(t(2000).as_str())));
    assert_eq!(pods.pending.mean, 1.0);
    assert_eq!(pods.phases_at_end.get("Running"), Some(&10));
    // Scheduled at 1.1, 2.2, ... 9.9, 11.0 s: windows [0,5) 4 pods, [5,10) 5, [10,15) 1.
    let tp = &pods.scheduling_throughput;
    assert_eq!((tp.window_seconds, tp.scheduled, tp.windows), (5, 10, 3));
    assert_eq!((tp.p50, tp.p90, tp.p99, tp.max), (0.8, 1.0, 1.0, 1.0));
    assert_eq!((s.window.start.as_deref(), s.window.seconds), (Some(t(0).as_str()), 20.0));
    assert_eq!(s.verdict.status, VerdictStatus::Passed);
}

/// Pods 2 and 3, seen by the watch: scheduled and Ready within their creation's second by the
/// API server's times (0 ms), 40 / 250 ms and 20 / 995 ms by when the collectors saw it.
fn two_pods_seen_by_the_watch() -> Vec<Value> {
    let cond = |c: &str, ms: i64| json!({"condition": c, "at": t(ms)});
    vec![
        pod(1100, "created", 2, json!({"at": t(1000)})),
        pod(1140, "scheduled", 2, json!({"at": t(1000), "node": "n"})),
        pod(1350, "condition", 2, cond("Ready", 1000)),
        pod(2010, "created", 3, json!({"at": t(2000)})),
        pod(2030, "scheduled", 3, json!({"at": t(2000), "node": "n"})),
        pod(3005, "condition", 3, cond("Ready", 3000)),
    ]
}

/// A pod whose creation a list found after a lost watch (4) is left out of the watch-time
/// latencies, and so is a condition a list found (5's Ready): their `t` is the list's. The API
/// server's figures keep them.
#[test]
fn latencies_by_watch_times_leave_out_what_a_list_after_a_lost_watch_found() {
    let tmp = tempfile::tempdir().unwrap();
    let listed = |ms: i64| json!({"at": t(ms), "relisted": true});
    let cond_listed = |c: &str, ms: i64| json!({"condition": c, "at": t(ms), "relisted": true});
    let mut records = two_pods_seen_by_the_watch();
    records.extend([
        // The watch was lost from 4 s to 9 s.
        pod(5010, "created", 5, json!({"at": t(5000)})),
        pod(5030, "scheduled", 5, json!({"at": t(5000), "node": "n"})),
        pod(9000, "created", 4, listed(6000)),
        pod(9000, "scheduled", 4, json!({"at": t(6000), "node": "n", "relisted": true})),
        pod(9000, "condition", 4, cond_listed("Ready", 7000)),
        pod(9000, "condition", 5, cond_listed("Ready", 6000)),
    ]);
    lines(tmp.path(), "pods.jsonl", &records);
    let out = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap();
    let pods = out.summary.pods.as_ref().unwrap();
    let by = |list: &[summary::ConditionLatency], c: &str| list.iter().find(|l| l.condition == c).cloned().unwrap();

    let q = by(&pods.latency_ms, "Ready").quantiles.unwrap();
    assert_eq!((q.count, q.max), (4, 1000.0), "the API server's times count every pod");
    let scheduled = by(&pods.observed_latency_ms, "PodScheduled");
    assert_eq!((scheduled.total, scheduled.measured), (3, 3), "pod 4's creation was found by a list");
    let q = scheduled.quantiles.unwrap();
    assert_eq!((q.p50, q.max), (20.0, 40.0), "40, 20 and 20 ms: none is the list's time");
    let ready = by(&pods.observed_latency_ms, "Ready");
    assert_eq!((ready.total, ready.measured, ready.quantiles), (3, 2, None), "pod 5's Ready was found by a list");
    assert!(ready.note.as_deref().is_some_and(|n| n.starts_with("1 of 3 pods")), "{:?}", ready.note);
    let plotted = out.plots.latencies.iter().find(|(c, _)| c == "Ready").map(|(_, v)| v.clone());
    assert_eq!(plotted, Some(vec![250.0, 995.0]), "no list's time in the plots either");
}

#[test]
fn latencies_by_watch_times_for_pods_created_while_watching() {
    let tmp = tempfile::tempdir().unwrap();
    // Pod 1 was there before the collectors: found created, scheduled and Ready at once.
    let mut records = vec![
        pod(100, "created", 1, json!({"at": t(-60_000)})),
        pod(100, "scheduled", 1, json!({"at": t(-59_000), "node": "n"})),
        pod(100, "condition", 1, json!({"condition": "Ready", "at": t(-58_000)})),
    ];
    records.extend(two_pods_seen_by_the_watch());
    lines(tmp.path(), "pods.jsonl", &records);
    let out = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap();
    let pods = out.summary.pods.as_ref().unwrap();
    let by = |list: &[summary::ConditionLatency], c: &str| list.iter().find(|l| l.condition == c).cloned().unwrap();

    let q = by(&pods.latency_ms, "PodScheduled").quantiles.unwrap();
    assert_eq!((q.count, q.p50, q.max), (3, 0.0, 1000.0), "API server times: whole seconds");
    let q = by(&pods.latency_ms, "Ready").quantiles.unwrap();
    assert_eq!((q.count, q.p50, q.max), (3, 1000.0, 2000.0));

    let scheduled = by(&pods.observed_latency_ms, "PodScheduled");
    assert_eq!((scheduled.total, scheduled.measured), (2, 2), "pod 1 was not seen created");
    let q = scheduled.quantiles.unwrap();
    assert_eq!((q.p50, q.max, q.avg), (20.0, 40.0, 30.0));
    let q = by(&pods.observed_latency_ms, "Ready").quantiles.unwrap();
    assert_eq!((q.count, q.p50, q.max, q.avg), (2, 250.0, 995.0, 622.5));

    let v = serde_json::to_value(&out.summary).unwrap();
    assert_eq!(v["pods"]["observed_latency_ms"][0]["quantiles"]["max"], json!(40.0));
    let plotted = out.plots.latencies.iter().find(|(c, _)| c == "Ready").map(|(_, v)| v.clone());
    assert_eq!(plotted, Some(vec![250.0, 995.0]), "the plots draw the watch times");
    let page = html::report(&out.summary, &out.plots);
    assert!(page.contains("as the collectors saw it"), "the report shows both tables");
    // A summary written before 1.1 (no such field) still reads.
    let mut old = v.clone();
    old["pods"].as_object_mut().unwrap().remove("observed_latency_ms");
    let read: Summary = serde_json::from_value(old).unwrap();
    assert!(read.pods.unwrap().observed_latency_ms.is_empty());
}

#[test]
fn throughput_counts_empty_windows_between() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 pods in [0,5), none in [5,10) and [10,15), 1 in [15,20): windows 0.6, 0, 0, 0.2 pods/s.
    let mut records = vec![];
    for (i, ms) in [(1, 100), (2, 200), (3, 300), (4, 15_000)] {
        records.push(pod(ms, "created", i, json!({"at": t(ms)})));
        records.push(pod(ms, "scheduled", i, json!({"at": t(ms)})));
    }
    lines(tmp.path(), "pods.jsonl", &records);
    let s = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap().summary;
    let tp = s.pods.unwrap().scheduling_throughput;
    assert_eq!((tp.windows, tp.scheduled), (4, 4));
    assert_eq!((tp.p50, tp.p90, tp.max), (0.0, 0.6, 0.6));
}

#[test]
fn deleted_pods_keep_their_latencies_and_leave_the_counts() {
    let tmp = tempfile::tempdir().unwrap();
    lines(
        tmp.path(),
        "pods.jsonl",
        &[
            pod(0, "created", 1, json!({"at": t(0)})),
            pod(300, "condition", 1, json!({"condition": "Ready", "at": t(300)})),
            pod(400, "phase", 1, json!({"phase": "Failed", "reason": "Evicted"})),
            pod(500, "deleted", 1, json!({})),
            pod(600, "created", 2, json!({"at": t(600)})),
            pod(
                700,
                "condition",
                2,
                json!({"condition": "DisruptionTarget", "reason": "EvictionByEvictionAPI", "at": t(700)}),
            ),
        ],
    );
    let s = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap().summary;
    let pods = s.pods.as_ref().unwrap();
    assert_eq!(pods.total, 2);
    assert_eq!(pods.phases_at_end.get("Pending"), Some(&1));
    assert_eq!(pods.phases_at_end.get("Failed"), None);
    let ready = latency(&s, "Ready");
    // Pod 2 never Ready: 50 % missing.
    assert_eq!((ready.total, ready.measured, ready.quantiles), (2, 1, None));
    assert_eq!(s.failures.pods_failed.get("Evicted"), Some(&1));
    assert_eq!(s.failures.evictions.pods, 2);
}

#[test]
fn nodes_count_readiness_and_instance_types() {
    let tmp = tempfile::tempdir().unwrap();
    let node = |ms: i64, change: &str, name: &str, at: Option<i64>, itype: &str| {
        let mut v = json!({"t": t(ms), "change": change, "name": name, "instance_type": itype});
        if let Some(a) = at {
            v["at"] = json!(t(a));
        }
        v
    };
    lines(
        tmp.path(),
        "nodes.jsonl",
        &[
            node(0, "added", "n0", Some(-86_400_000), "m5.large"),
            node(0, "added", "n1", Some(-86_400_000), "m5.large"),
            node(0, "ready", "n1", Some(-86_000_000), "m5.large"),
            node(5000, "added", "n2", Some(5000), "c5.xlarge"),
            node(6000, "added", "n3", Some(6000), "m5.large"),
            node(7000, "ready", "n2", Some(7000), "c5.xlarge"),
            node(10_000, "ready", "n3", Some(10_000), "m5.large"),
            node(11_000, "ready", "n3", Some(11_000), "m5.large"),
            json!({"t": t(11_500), "change": "changed", "name": "nc-1", "object": "NodeClaim", "conditions": ["Launched"]}),
            node(12_000, "deleted", "n0", None, "m5.large"),
            node(15_000, "deleted", "n3", None, "m5.large"),
        ],
    );
    let s = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap();
    let n = s.summary.nodes.as_ref().unwrap();
    assert_eq!((n.at_start, n.at_end, n.min, n.max, n.added, n.removed), (2, 2, 2, 4, 2, 2));
    assert_eq!(n.max_by_instance_type.get("m5.large"), Some(&3));
    assert_eq!(n.max_by_instance_type.get("c5.xlarge"), Some(&1));
    assert_eq!(n.karpenter_changes, 1);
    let r = n.readiness_latency_ms.quantiles.unwrap();
    assert_eq!(
        (n.readiness_latency_ms.total, r.count, r.p50, r.p90, r.max, r.avg),
        (2, 2, 2000.0, 4000.0, 4000.0, 3000.0)
    );
    let names = s.plots.nodes.names().to_vec();
    assert_eq!(names, ["all nodes", "m5.large", "c5.xlarge"]);
    assert_eq!(s.plots.nodes.current(), [2, 1, 1]);

    // The plot holds the last count to the run's end (20 s), where the last change was at 15 s:
    // the total's line (black, 3 px; its legend's sample comes after it) ends where the x axis does.
    let svg = plots::nodes(&[plots::Run { label: "", data: &s.plots }]).unwrap();
    let points = |line: &str| -> Vec<(f64, f64)> {
        let p = line.split("points=\"").nth(1).unwrap_or_default().split('"').next().unwrap_or_default();
        p.split_whitespace()
            .filter_map(|xy| xy.split_once(',').map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap())))
            .collect()
    };
    let polylines: Vec<&str> = svg.split("<polyline").skip(1).collect();
    let black = |width: &str| {
        let style = format!("stroke=\"#000000\" stroke-width=\"{width}\"");
        polylines.iter().filter(move |l| l.contains(&style)).map(|l| points(l))
    };
    // The x axis: the widest horizontal line of the axes (1 px).
    let axis_end = black("1").filter(|p| p.len() == 2 && p[0].1 == p[1].1).map(|p| p[1].0).fold(0.0, f64::max);
    let total = black("3").next().unwrap();
    let last = total.last().unwrap();
    assert!((last.0 - axis_end).abs() <= 1.0, "the total ends at x {} of {axis_end}", last.0);
}

#[test]
fn scenario_steps_scale_to_available_and_lateness() {
    let tmp = tempfile::tempdir().unwrap();
    let action = |step: u64, name: &str, n: u64, ty: &str, data: Value, ms: i64, late: f64, ok: bool| {
        let mut v = json!({"step": step, "step_index": step, "step_name": name, "action": n, "type": ty, "data": data,
            "due": t(ms), "started": t(ms), "lateness_ms": late, "duration_ms": 5.0, "result": if ok {"ok"} else {"error"}});
        if !ok {
            v["message"] = json!("not found");
        }
        v
    };
    lines(
        tmp.path(),
        "actions.jsonl",
        &[
            action(1, "up", 1, "K8S_SCALE", json!({"name": "web", "replicas": 3}), 1000, 2.0, true),
            action(1, "up", 2, "K8S_SCALE", json!({"name": "api", "replicas": 2}), 1010, 12.0, true),
            action(2, "more", 1, "K8S_SCALE", json!({"name": "web", "replicas": 5}), 4000, 1.0, true),
            action(
                3,
                "oops",
                1,
                "DELETE",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}),
                8000,
                3.0,
                false,
            ),
            action(4, "less", 1, "SCALE", json!({"name": "web", "desiredCount": 4}), 9000, 0.5, true),
        ],
    );
    let w = |ms: i64, kind: &str, name: &str, desired: i32, available: i32| json!({"t": t(ms), "kind": kind, "namespace": "karpenter-test", "name": name, "desired": desired, "ready": available, "available": available});
    lines(
        tmp.path(),
        "workloads.jsonl",
        &[
            w(500, "Deployment", "web", 1, 1),
            w(500, "Deployment", "api", 1, 1),
            w(600, "ReplicaSet", "web-abc", 1, 1),
            w(1200, "Deployment", "web", 3, 1),
            w(1300, "Deployment", "api", 2, 1),
            w(2000, "Deployment", "web", 3, 3),
            w(3000, "Deployment", "api", 2, 2),
            w(4200, "Deployment", "web", 5, 3),
            w(9200, "Deployment", "web", 4, 3),
            w(10_000, "Deployment", "web", 4, 4),
        ],
    );
    let a = analyse(tmp.path(), &facts(RunKind::Scenario)).unwrap();
    let sc = a.summary.scenario.as_ref().unwrap();
    assert_eq!((sc.actions, sc.failed_actions, sc.steps_played), (5, 1, 4));
    let avail: Vec<Option<f64>> = sc.steps.iter().map(|s| s.all_available_ms).collect();
    // Step 1: web available at 2.0 s, api at 3.0 s, from the first scale at 1.0 s. Step 4: 1 s.
    assert_eq!(avail, [Some(2000.0), None, None, Some(1000.0)]);
    assert_eq!(
        sc.steps[1].note.as_deref(),
        Some("web was scaled again by step 4 before all 5 replicas were available")
    );
    assert_eq!((sc.steps[2].scale_actions, sc.steps[2].failed_actions, sc.steps[2].note.as_deref()), (0, 1, None));
    let q = sc.scale_to_available_ms.unwrap();
    assert_eq!((q.count, q.p50, q.p90, q.max, q.avg), (2, 1000.0, 2000.0, 2000.0, 1500.0));
    // Step lateness: 2, 1, 3, 0.5; action lateness: 2, 12, 1, 3, 0.5.
    let run = a.summary.lateness_ms.run.unwrap();
    assert_eq!((run.count, run.p50, run.p90, run.max, run.avg), (4, 1.0, 3.0, 3.0, 1.625));
    let act = a.summary.lateness_ms.actions.unwrap();
    assert_eq!((act.count, act.p50, act.p90, act.max, act.avg), (5, 2.0, 12.0, 12.0, 3.7));
    assert_eq!(a.summary.failures.actions, [r#"step 3 ("oops"), action 1 (DELETE): not found"#]);
    let wl = a.summary.workloads.as_ref().unwrap();
    assert_eq!((wl.total, wl.plotted, wl.by_kind.get("ReplicaSet")), (3, 2, Some(&1)));
    assert_eq!(a.plots.workloads_left_out, 1);
    assert_eq!(a.plots.timeline.len(), 4);

    // Lateness the driver gives wins over actions.jsonl.
    let given = Quantiles { count: 1, p50: 7.0, p90: 7.0, p99: 7.0, max: 7.0, avg: 7.0 };
    let f = RunFacts { lateness_ms: Some(given), ..facts(RunKind::Scenario) };
    assert_eq!(analyse(tmp.path(), &f).unwrap().summary.lateness_ms.run, Some(given));
}

#[test]
fn scale_already_satisfied_counts_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    lines(
        tmp.path(),
        "actions.jsonl",
        &[
            json!({"step": 1, "step_name": "1", "action": 1, "type": "K8S_SCALE", "data": {"name": "web", "replicas": 2},
            "started": t(5000), "lateness_ms": 0.0, "result": "ok"}),
        ],
    );
    lines(
        tmp.path(),
        "workloads.jsonl",
        &[
            json!({"t": t(1000), "kind": "Deployment", "namespace": "x", "name": "web", "desired": 2, "ready": 2, "available": 2}),
        ],
    );
    let s = analyse(tmp.path(), &facts(RunKind::Scenario)).unwrap().summary;
    assert_eq!(s.scenario.unwrap().steps[0].all_available_ms, Some(0.0));
}

#[test]
fn failures_from_events_and_audit_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let ev = |ty: &str, reason: &str, msg: &str, object: &str| json!({"t": t(1), "type": ty, "reason": reason, "message": msg, "object": object, "namespace": "ns"});
    let two = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    lines(
        tmp.path(),
        "events.jsonl",
        &[
            ev("Warning", "FailedScheduling", two, "Pod ns/p1"),
            ev("Warning", "FailedScheduling", two, "Pod ns/p1"),
            ev("Warning", "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.", "Pod ns/p2"),
            ev("Warning", "Evicted", "The node was low on resource: memory.", "Pod ns/p5"),
            ev("Normal", "Scheduled", "Successfully assigned ns/p3 to n", "Pod ns/p3"),
        ],
    );
    let audit = |verb: &str, code: i32| {
        json!({"auditID": "a", "stage": "ResponseComplete", "verb": verb, "requestURI": "/api", "code": code,
            "requestReceivedTimestamp": t(0), "stageTimestamp": t(1)})
    };
    lines(tmp.path(), "audit.jsonl", &[audit("create", 201), audit("create", 409), audit("delete", 200)]);
    let s = analyse(tmp.path(), &facts(RunKind::Replay)).unwrap().summary;
    let fs: Vec<(&str, u64, u64)> =
        s.failures.failed_scheduling.iter().map(|r| (r.reason.as_str(), r.events, r.objects)).collect();
    assert_eq!(fs, [("Insufficient cpu", 3, 2), ("node(s) didn't match Pod's node affinity/selector", 2, 1)]);
    let warnings: Vec<(&str, u64, u64)> =
        s.failures.warnings.iter().map(|r| (r.reason.as_str(), r.events, r.objects)).collect();
    assert_eq!(warnings, [("FailedScheduling", 3, 2), ("Evicted", 1, 1)]);
    assert_eq!(s.failures.evictions.events, 1);
    let audit = s.audit.unwrap();
    assert_eq!((audit.events, audit.errors, audit.by_verb.get("create")), (3, 1, Some(&2)));
    // Files that are not there are said to be missing.
    assert!(s.notes.iter().any(|n| n == "pods.jsonl is missing: no pod figures"), "{:?}", s.notes);
    assert!(s.pods.is_none() && s.nodes.is_none());
}

#[test]
fn thresholds_fail_the_run_naming_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    ten_pods(tmp.path());
    let th = |condition, metric, max_ms| rehearsal_crds::simulation::Threshold { condition, metric, max_ms };
    let f = RunFacts {
        thresholds: vec![
            th(LatencyCondition::Ready, LatencyMetric::P99, 5000),
            th(LatencyCondition::PodScheduled, LatencyMetric::P50, 1000),
            th(LatencyCondition::PodScheduled, LatencyMetric::Avg, 550),
            th(LatencyCondition::ContainersReady, LatencyMetric::Max, 60_000),
        ],
        ..facts(RunKind::Replay)
    };
    let written = write(tmp.path(), &f).unwrap();
    assert_eq!(
        written.breaches(),
        [
            "Ready p99 9000 ms > 5000 ms",
            "ContainersReady max not measured (2 of 10 pods (20.0 %) never reached ContainersReady: more than 10 %, figures left out); limit 60000 ms"
        ]
    );
    let checks = &written.summary.thresholds;
    assert_eq!((checks[1].value_ms, checks[1].breached), (Some(500.0), false));
    assert_eq!((checks[2].message.as_str(), checks[2].breached), ("PodScheduled avg 550 ms <= 550 ms", false));
    assert_eq!(written.summary.verdict.status, VerdictStatus::Failed);
    assert_eq!(written.summary.verdict.reasons, written.breaches());
    let html = std::fs::read_to_string(&written.report_path).unwrap();
    assert!(html.contains("Ready p99 9000 ms &gt; 5000 ms"));

    // Without pods.jsonl a threshold cannot be met.
    let empty = tempfile::tempdir().unwrap();
    let w = write(
        empty.path(),
        &RunFacts { thresholds: vec![th(LatencyCondition::Ready, LatencyMetric::P50, 1)], ..facts(RunKind::Replay) },
    )
    .unwrap();
    assert_eq!(w.breaches(), ["Ready p50 not measured (no pods.jsonl); limit 1 ms"]);
}

#[test]
fn truncated_lines_are_reported_and_the_rest_renders() {
    let tmp = tempfile::tempdir().unwrap();
    ten_pods(tmp.path());
    let mut body = std::fs::read_to_string(tmp.path().join("pods.jsonl")).unwrap();
    let total = body.lines().count();
    body.insert_str(0, "not json\n");
    body.push_str(r#"{"t":"2026-12-02T10:00:30Z","change":"crea"#);
    std::fs::write(tmp.path().join("pods.jsonl"), body).unwrap();
    lines(tmp.path(), "nodes.jsonl", &[json!({"t": t(0), "change": "added", "name": "n0"})]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("nodes.jsonl"))
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, b"{\"t\": \"x\", \"change\": \"exploded\", \"name\": \"n1\"}\n")
        })
        .unwrap();
    let w = write(tmp.path(), &facts(RunKind::Replay)).unwrap();
    let s = &w.summary;
    assert_eq!(s.inputs.bad_lines_total, 3);
    let bad: Vec<(&str, u64)> = s.inputs.bad_lines.iter().map(|b| (b.file.as_str(), b.line)).collect();
    let last = u64::try_from(total).unwrap() + 2;
    assert_eq!(bad, [("pods.jsonl", 1), ("pods.jsonl", last), ("nodes.jsonl", 2)]);
    assert!(s.inputs.bad_lines[1].error.contains("EOF"), "{}", s.inputs.bad_lines[1].error);
    assert!(s.inputs.bad_lines[2].error.contains("unknown variant"), "{}", s.inputs.bad_lines[2].error);
    // Everything else is there.
    assert_eq!(s.pods.as_ref().unwrap().total, 10);
    assert_eq!(latency(s, "Ready").quantiles.unwrap().p50, 5000.0);
    let pods_file = s.inputs.files.iter().find(|f| f.file == "pods.jsonl").unwrap();
    assert_eq!((pods_file.bad_lines, pods_file.records), (2, u64::try_from(total).unwrap()));
    let html = std::fs::read_to_string(&w.report_path).unwrap();
    assert!(html.contains("3 lines could not be read"));
    assert!(html.contains(&format!("<td>pods.jsonl</td><td class=\"n\">{last}</td>")));
    assert!(html.contains("<svg"), "the plots are still drawn");
}

#[test]
fn strings_from_the_run_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    lines(
        tmp.path(),
        "events.jsonl",
        &[
            json!({"t": t(1), "type": "Warning", "reason": "<script>alert(1)</script>", "message": "m", "object": "Pod a/<b>"}),
        ],
    );
    let f = RunFacts {
        name: "<img src=x onerror=alert(1)>".into(),
        failures: vec!["\"quoted\" & <tagged>".into()],
        result: RunResult::Failed,
        ..facts(RunKind::Replay)
    };
    let w = write(tmp.path(), &f).unwrap();
    let html = std::fs::read_to_string(&w.report_path).unwrap();
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<tagged>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;quoted&quot; &amp; &lt;tagged&gt;"));
    assert_eq!(w.summary.verdict.status, VerdictStatus::Failed);
}

#[test]
fn rebuild_keeps_the_facts_and_refuses_newer_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    ten_pods(tmp.path());
    let f = RunFacts {
        thresholds: vec![rehearsal_crds::simulation::Threshold {
            condition: LatencyCondition::Ready,
            metric: LatencyMetric::Max,
            max_ms: 1,
        }],
        artifact_uri: Some("s3://b/sim/0/".into()),
        details: [("speed".to_string(), json!(15.0))].into_iter().collect(),
        ..facts(RunKind::Replay)
    };
    let first = write(tmp.path(), &f).unwrap();
    let again = rebuild(tmp.path()).unwrap();
    assert_eq!(again.summary.run, f);
    assert_eq!(again.summary.pods, first.summary.pods);
    assert_eq!(again.breaches(), first.breaches());
    let read_back: Summary = serde_json::from_slice(&std::fs::read(&first.summary_path).unwrap()).unwrap();
    assert_eq!(read_back.schema_version, crate::collect::records::SCHEMA_VERSION);

    let mut v: Value = serde_json::from_slice(&std::fs::read(&first.summary_path).unwrap()).unwrap();
    v["schema_version"] = json!("2.0");
    std::fs::write(&first.summary_path, v.to_string()).unwrap();
    let err = rebuild(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("schema version 2.0, newer than the {}", crate::collect::records::SCHEMA_VERSION)),
        "{err}"
    );

    // The scenario player's own summary.json gives its facts.
    let legacy = tempfile::tempdir().unwrap();
    std::fs::write(
        legacy.path().join("summary.json"),
        json!({"run_id": "k8s_1", "scenario": "scn", "start": t(0), "end": t(9000), "result": "failed",
            "failures": ["step 2: boom"], "cleanup": "deleted 3 objects", "s3_uri": "s3://b/k8s_1/x/", "speed": 15.0})
        .to_string(),
    )
    .unwrap();
    let f = facts_of(legacy.path()).unwrap();
    assert_eq!(
        (f.kind, f.name.as_str(), f.run.as_str(), f.result),
        (RunKind::Scenario, "scn", "k8s_1", RunResult::Failed)
    );
    assert_eq!((f.failures.len(), f.details.get("speed")), (1, Some(&json!(15.0))));
    // Nothing at all: the kind is guessed from the folder.
    let bare = tempfile::tempdir().unwrap();
    assert_eq!(facts_of(bare.path()).unwrap().kind, RunKind::Replay);
    std::fs::write(bare.path().join("actions.jsonl"), "").unwrap();
    assert_eq!(facts_of(bare.path()).unwrap().kind, RunKind::Scenario);
    assert!(matches!(facts_of(&bare.path().join("nope")), Err(ReportError::Folder { .. })));
}

#[test]
fn compare_two_runs_and_refuse_incompatible_ones() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    synthetic::write_run(a.path(), 300).and_then(|f| write(a.path(), &f).map_err(std::io::Error::other)).unwrap();
    let fb = synthetic::write_run(b.path(), 500).unwrap();
    write(b.path(), &fb).unwrap();
    let out = a.path().join("compare.html");
    let c = compare::compare(a.path(), b.path(), &out, Some(("run-a", "run-b"))).unwrap();
    assert!(c.figures > 50, "{}", c.figures);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("pods.total") && html.contains("run-a") && html.contains("run-b"));
    assert!(html.contains(
        "<td class=\"n\">300</td><td class=\"n\">500</td><td class=\"n\">+200</td><td class=\"n\">+66.7 %</td>"
    ));
    assert!(html.matches("<svg").count() >= 5, "overlaid plots");
    let rows = compare::rows(&c.a, &c.b);
    assert!(rows.iter().any(|(k, _, _)| k == "pods.latency_ms[Ready].quantiles.p99"));

    // A replay against a scenario.
    let r = tempfile::tempdir().unwrap();
    write(r.path(), &facts(RunKind::Replay)).unwrap();
    let err = compare::compare(a.path(), r.path(), &out, None).unwrap_err();
    assert!(matches!(err, ReportError::Incompatible { .. }));
    assert!(err.to_string().contains("A is a scenario run and B a replay run"), "{err}");
    // Different major versions.
    let fa = facts(RunKind::Replay);
    let err = compare::compatible(("a", &fa, Some("1.0")), ("b", &fa, Some("0.3"))).unwrap_err().to_string();
    assert!(err.contains("schema version 1.0 and B's 0.3; different major versions"), "{err}");
    assert!(compare::compatible(("a", &fa, Some("1.0")), ("b", &fa, Some("1.4"))).is_ok());
}

/// `<tag ... src="http...">`, `href='https:...'` and the like.
fn loads_from_the_network(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    for attr in ["src=", "href=", "url("] {
        for (i, _) in lower.match_indices(attr) {
            let rest = lower.get(i + attr.len()..).unwrap_or("").trim_start_matches(['"', '\'', ' ']);
            if rest.starts_with("http://") || rest.starts_with("https://") || rest.starts_with("//") {
                return Some(lower.get(i..i + 60).unwrap_or("").to_string());
            }
        }
    }
    None
}

#[test]
fn ten_thousand_pods_render_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let facts = synthetic::write_run(tmp.path(), 10_000).unwrap();
    let started = std::time::Instant::now();
    let w = write(tmp.path(), &facts).unwrap();
    let took = started.elapsed();
    let html = std::fs::read_to_string(&w.report_path).unwrap();
    println!(
        "report of 10,000 pods: {:.2} s (debug build), report.html {} KB, summary.json {} KB",
        took.as_secs_f64(),
        html.len() / 1024,
        std::fs::metadata(&w.summary_path).unwrap().len() / 1024
    );
    assert_eq!(loads_from_the_network(&html), None);
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(!html.contains("@font-face") && !html.contains("@import"));
    assert!(html.matches("<svg").count() >= 7, "every plot drawn");
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
    let s = &w.summary;
    assert_eq!(s.inputs.bad_lines_total, 0);
    let pods = s.pods.as_ref().unwrap();
    assert_eq!(pods.total, 10_000);
    // One pod in 50 is never scheduled: 2 %, so every condition is reported.
    let ready = latency(s, "Ready");
    assert_eq!((ready.total, ready.measured), (10_000, 9_800));
    let q = ready.quantiles.unwrap();
    // Created times are whole seconds (as creationTimestamp is): up to 1 s more than the 1.05-6 s.
    assert!(q.p50 >= 1000.0 && q.max <= 7000.0, "{q:?}");
    assert!(pods.latency_ms.iter().any(|c| c.condition == "PodReadyToStartContainers"));
    let sc = s.scenario.as_ref().unwrap();
    assert_eq!((sc.steps_played, sc.actions), (5, 25));
    assert!(sc.steps.iter().all(|st| st.all_available_ms.is_some()), "{:?}", sc.steps);
    let n = s.nodes.as_ref().unwrap();
    assert_eq!((n.at_start, n.added, n.removed, n.max, n.at_end), (10, 5, 2, 15, 13));
    assert_eq!(s.failures.failed_scheduling[0].reason, "Insufficient cpu");
    assert_eq!(s.failures.failed_scheduling[0].objects, 200);
    assert_eq!(s.audit.as_ref().unwrap().events, 10_000);
    assert_eq!(s.verdict.status, VerdictStatus::Passed);
}

#[test]
fn the_network_check_finds_what_it_should() {
    assert!(loads_from_the_network("<img SRC=\"https://x/y.png\">").is_some());
    assert!(loads_from_the_network("<a href='//cdn/x'>").is_some());
    assert!(loads_from_the_network("<svg xmlns=\"http://www.w3.org/2000/svg\">").is_none());
}
