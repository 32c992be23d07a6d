//! A synthetic scenario run folder of any size (pods, nodes, workloads, events, audit and
//! actions JSON lines, as the collectors and the player write them), for the report's tests
//! and benchmarks: deterministic, so figures and timings compare between runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde_json::json;

use crate::collect::records::{
    AuditRecord, EventRecord, NodeChange, NodeRecord, PodChange, PodRecord, WorkloadRecord, files,
};

use super::read::rfc3339;
use super::{RunFacts, RunKind, RunResult};

/// Start of the synthetic run: 2026-12-02T10:00:00Z, in µs.
pub const T0_US: i64 = 1_796_205_600_000_000;
/// Steps of the synthetic scenario.
pub const STEPS: usize = 5;
/// Deployments it scales.
pub const DEPLOYMENTS: usize = 5;
const STEP_US: i64 = 12_000_000;
const END_US: i64 = 90_000_000;

/// A small deterministic generator (64-bit LCG).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

fn at(us: i64) -> String {
    rfc3339(us)
}

fn pod(t: i64, change: PodChange, k: usize) -> PodRecord {
    PodRecord {
        t: at(t),
        change,
        namespace: "karpenter-test".into(),
        name: format!("web-{}-{k}", k % DEPLOYMENTS),
        uid: format!("uid-{k}"),
        owner: None,
        at: None,
        node: None,
        condition: None,
        phase: None,
        reason: None,
        exit_code: None,
        relisted: false,
    }
}

fn write_sorted(dir: &Path, file: &str, mut lines: Vec<(i64, String)>) -> std::io::Result<()> {
    lines.sort_by_key(|(t, _)| *t);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(file))?);
    for (_, line) in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn line(t: i64, record: &impl serde::Serialize) -> (i64, String) {
    (t, serde_json::to_string(record).unwrap_or_default())
}

/// Writes a scenario run of `pods` pods into `dir` and returns its facts. One pod in 50
/// is never scheduled (FailedScheduling); the others are Ready 1 to 7 s after creation. Each step
/// scales five Deployments and creates its pods within 3 s.
pub fn write_run(dir: &Path, pods: usize) -> std::io::Result<RunFacts> {
    let mut rng = Rng(42);
    let per_step = pods.div_ceil(STEPS).max(1);
    let mut pod_lines = Vec::with_capacity(pods.saturating_mul(7));
    let mut event_lines = vec![];
    let mut audit_lines = Vec::with_capacity(pods);
    let mut ready_times: Vec<Vec<i64>> = vec![vec![]; DEPLOYMENTS];
    // Replicas of each Deployment after each step: its pods that become Ready.
    let mut targets = [[0i32; DEPLOYMENTS]; STEPS];
    for k in 0..pods {
        let step = i64::try_from(k / per_step).unwrap_or(0);
        let within = i64::try_from(k % per_step).unwrap_or(0);
        let created = T0_US + step * STEP_US + within * (3_000_000 / i64::try_from(per_step).unwrap_or(1).max(1));
        let mut r = pod(created, PodChange::Created, k);
        r.at = Some(at(created / 1_000_000 * 1_000_000));
        r.owner = Some(format!("ReplicaSet/web-{}-5d8f", k % DEPLOYMENTS));
        pod_lines.push(line(created, &r));
        audit_lines.push(line(
            created,
            &AuditRecord {
                audit_id: format!("a-{k}"),
                stage: "ResponseComplete".into(),
                verb: "create".into(),
                request_uri: "/api/v1/namespaces/karpenter-test/pods".into(),
                user: "system:serviceaccount:kube-system:replicaset-controller".into(),
                user_agent: String::new(),
                object_ref: [("resource".to_string(), "pods".to_string())].into_iter().collect(),
                code: Some(201),
                request_received_timestamp: at(created),
                stage_timestamp: at(created + 900),
            },
        ));
        if k % 50 == 49 {
            let mut e = EventRecord {
                t: at(created + 10_000),
                at: Some(at(created + 10_000)),
                type_: "Warning".into(),
                reason: "FailedScheduling".into(),
                message: "0/15 nodes are available: 10 Insufficient cpu, 5 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/15 nodes are available: 15 Preemption is not helpful for scheduling.".into(),
                object: format!("Pod karpenter-test/web-{}-{k}", k % DEPLOYMENTS),
                namespace: "karpenter-test".into(),
                count: 1,
                source: "default-scheduler".into(),
            };
            event_lines.push(line(created + 10_000, &e));
            e.count = 2;
            e.t = at(created + 5_000_000);
            event_lines.push(line(created + 5_000_000, &e));
        } else {
            let scheduled = created + i64::try_from(50_000 + rng.next(1_450_000)).unwrap_or(0);
            let mut s = pod(scheduled, PodChange::Scheduled, k);
            s.at = Some(at(scheduled));
            s.node = Some(format!("kwok-node-{}", k % 10));
            pod_lines.push(line(scheduled, &s));
            let ready = scheduled + i64::try_from(1_000_000 + rng.next(3_500_000)).unwrap_or(0);
            for (condition, when) in [
                ("PodScheduled", scheduled),
                ("Initialized", scheduled + 100_000),
                ("PodReadyToStartContainers", scheduled + 200_000),
                ("ContainersReady", ready),
                ("Ready", ready),
            ] {
                let mut c = pod(when, PodChange::Condition, k);
                c.condition = Some(condition.into());
                c.at = Some(at(when));
                pod_lines.push(line(when, &c));
            }
            let mut p = pod(ready, PodChange::Phase, k);
            p.phase = Some("Running".into());
            pod_lines.push(line(ready, &p));
            if let Some(list) = ready_times.get_mut(k % DEPLOYMENTS) {
                list.push(ready);
            }
            for t in targets.iter_mut().skip(usize::try_from(step).unwrap_or(0)) {
                if let Some(n) = t.get_mut(k % DEPLOYMENTS) {
                    *n = n.saturating_add(1);
                }
            }
        }
        let deleting = T0_US + 75_000_000 + i64::try_from(rng.next(5_000_000)).unwrap_or(0);
        let mut d = pod(deleting, PodChange::Deleting, k);
        d.at = Some(at(deleting));
        pod_lines.push(line(deleting, &d));
        pod_lines.push(line(deleting + 500_000, &pod(deleting + 500_000, PodChange::Deleted, k)));
    }
    write_sorted(dir, files::PODS, pod_lines)?;
    write_sorted(dir, files::EVENTS, event_lines)?;
    write_sorted(dir, files::AUDIT, audit_lines)?;

    // Nodes: ten that were there, five added during the run, two of them deleted.
    let mut node_lines = vec![];
    for n in 0..15i64 {
        let added = if n < 10 { T0_US - 1_000_000 } else { T0_US + (n - 9) * 5_000_000 };
        let created = if n < 10 { T0_US - 86_400_000_000 } else { added };
        let node = NodeRecord {
            t: at(added.max(T0_US - 1_000_000)),
            change: NodeChange::Added,
            name: format!("kwok-node-{n}"),
            object: None,
            at: Some(at(created)),
            instance_type: Some(if n % 3 == 0 { "c5.xlarge" } else { "m5.large" }.into()),
            zone: Some("us-west-2a".into()),
            capacity_type: Some("on-demand".into()),
            nodepool: Some("default".into()),
            virtual_node: Some(true),
            allocatable: [("cpu".to_string(), "32".to_string()), ("pods".to_string(), "110".to_string())]
                .into_iter()
                .collect(),
            conditions: vec![],
        };
        node_lines.push(line(added, &node));
        let ready_at = if n < 10 { created + 1_000_000 } else { added + 2_000_000 + n * 200_000 };
        let ready = NodeRecord {
            t: at(ready_at.max(added)),
            change: NodeChange::Ready,
            at: Some(at(ready_at)),
            allocatable: Default::default(),
            ..node.clone()
        };
        node_lines.push(line(ready_at.max(added), &ready));
        if n >= 13 {
            let gone = T0_US + 82_000_000 + n * 100_000;
            node_lines.push(line(gone, &NodeRecord { t: at(gone), change: NodeChange::Deleted, at: None, ..ready }));
        }
    }
    write_sorted(dir, files::NODES, node_lines)?;

    // Workloads every 2 s, and the scenario's scale actions at each step.
    let target = |step: i64, d: usize| -> i32 {
        usize::try_from(step).ok().and_then(|s| targets.get(s)).and_then(|t| t.get(d)).copied().unwrap_or(0)
    };
    let mut workload_lines = vec![];
    for list in &mut ready_times {
        list.sort_unstable();
    }
    let mut tick = T0_US - 1_000_000;
    while tick <= T0_US + END_US {
        for (d, ready) in ready_times.iter().enumerate() {
            let step = (tick - T0_US).div_euclid(STEP_US).clamp(-1, i64::try_from(STEPS).unwrap_or(5) - 1);
            let desired = target(step, d);
            let deleting = tick >= T0_US + 75_000_000;
            let ready_now = i32::try_from(ready.partition_point(|r| *r <= tick)).unwrap_or(0);
            let (desired, ready_now) = if deleting { (0, 0) } else { (desired, ready_now.min(desired)) };
            workload_lines.push(line(
                tick,
                &WorkloadRecord {
                    t: at(tick),
                    kind: "Deployment".into(),
                    namespace: "karpenter-test".into(),
                    name: format!("web-{d}"),
                    desired,
                    ready: ready_now,
                    available: ready_now,
                    deleted: false,
                },
            ));
        }
        tick += 2_000_000;
    }
    write_sorted(dir, files::WORKLOADS, workload_lines)?;

    let mut actions = String::new();
    for s in 0..STEPS {
        let due = T0_US + i64::try_from(s).unwrap_or(0) * STEP_US;
        for d in 0..DEPLOYMENTS {
            let started = due + 1_000 + i64::try_from(d).unwrap_or(0) * 3_000;
            let replicas = target(i64::try_from(s).unwrap_or(0), d);
            let record = json!({
                "step": s + 1, "step_index": s + 1, "step_name": format!("scale-{}", s + 1), "action": d + 1,
                "type": "K8S_SCALE", "data": {"name": format!("web-{d}"), "replicas": replicas},
                "due": at(due), "started": at(started), "lateness_ms": (started - due) as f64 / 1000.0,
                "duration_ms": 2.5, "result": "ok"
            });
            let _ = writeln!(actions, "{record}");
        }
    }
    std::fs::write(dir.join(files::ACTIONS), actions)?;

    Ok(RunFacts {
        kind: RunKind::Scenario,
        name: "synthetic".into(),
        simulation: None,
        run: "synthetic-run".into(),
        start: Some(at(T0_US - 2_000_000)),
        end: Some(at(T0_US + END_US)),
        result: RunResult::Succeeded,
        cleanup: Some("deleted everything the run created".into()),
        ..RunFacts::default()
    })
}
