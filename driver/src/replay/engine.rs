//! Replaying a trace's events onto the cluster: each event at its absolute deadline, its
//! objects applied (server-side, one field manager) or deleted with bounded concurrency.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use std::sync::Arc;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use rehearsal_crds::keys::{DRIVER_MANAGER, OWNED_BY_SIMULATION_LABEL};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::signals::Signals;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::clock::{Clock, lateness, offset};
use super::objects::{ObjectKey, RootRef, key_of, virtual_namespace, virtualize};
use crate::status::Reporter;
use crate::trace::{Trace, TraceError};

/// Why a replay could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A kind in the trace is not served by this cluster.
    #[error("the trace holds {kind} objects ({api_version}), which this cluster does not serve: {source}")]
    UnknownKind {
        /// apiVersion.
        api_version: String,
        /// Kind.
        kind: String,
        /// Discovery's answer.
        #[source]
        source: kube::Error,
    },
    /// An event could not be decoded.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// How a kind of the trace is reached.
#[derive(Clone, Debug)]
pub struct Target {
    resource: ApiResource,
    namespaced: bool,
}

impl Target {
    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(&self) -> bool {
        self.namespaced
    }
}

/// Every kind of the trace, resolved through discovery.
pub type Kinds = HashMap<(String, String), Target>;

/// Resolves every (apiVersion, kind) before anything is applied, so a trace for kinds the
/// cluster lacks fails up front.
pub async fn resolve_kinds(client: &kube::Client, kinds: &BTreeSet<(String, String)>) -> Result<Kinds, ReplayError> {
    let mut out = HashMap::new();
    for (api_version, kind) in kinds {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
        let (resource, caps) =
            pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await.map_err(|source| {
                ReplayError::UnknownKind { api_version: api_version.clone(), kind: kind.clone(), source }
            })?;
        out.insert(
            (api_version.clone(), kind.clone()),
            Target { resource, namespaced: caps.scope == Scope::Namespaced },
        );
    }
    Ok(out)
}

/// Settings of one replay.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Simulation name (labels).
    pub simulation: String,
    /// Virtual namespace prefix.
    pub prefix: String,
    /// Speed factor (> 0).
    pub speed: f64,
    /// Trace time after which events are not replayed.
    pub duration: Option<Duration>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Stop requests: the replay ends between batches at the first.
    pub signals: Signals,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events replayed.
    pub events: usize,
    /// A stop signal ended the replay early.
    pub interrupted: bool,
    /// Events left out because of `duration`.
    pub events_cut: usize,
    /// Objects applied.
    pub applied: usize,
    /// Objects deleted (including ones already gone).
    pub deleted: usize,
    /// Objects skipped deliberately (cluster-scoped), with the reason.
    pub skipped: Vec<String>,
    /// Objects that failed, with the reason.
    pub failed: Vec<String>,
    /// For every request: how late it started relative to its deadline.
    pub lateness: Vec<Duration>,
}

impl Stats {
    /// Lateness at quantile `q` (0.0..=1.0), nearest-rank; zero when nothing was sent.
    pub fn lateness_quantile(&self, q: f64) -> Duration {
        let mut sorted = self.lateness.clone();
        sorted.sort_unstable();
        quantile(&sorted, q)
    }

    /// A JSON summary for `--stats-file` and the benchmarks.
    pub fn to_json(&self, elapsed: Duration) -> Value {
        let mut sorted = self.lateness.clone();
        sorted.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let objects = self.applied + self.deleted;
        json!({
            "events": self.events, "events_cut": self.events_cut, "interrupted": self.interrupted, "applied": self.applied, "deleted": self.deleted,
            "skipped": self.skipped.len(), "failed": self.failed.len(), "elapsed_seconds": elapsed.as_secs_f64(),
            "objects_per_second": if elapsed.is_zero() { 0.0 } else { objects as f64 / elapsed.as_secs_f64() },
            "lateness_ms": {"p50": ms(quantile(&sorted, 0.5)), "p99": ms(quantile(&sorted, 0.99)), "max": ms(sorted.last().copied().unwrap_or_default()), "count": sorted.len()}
        })
    }
}

/// Nearest-rank quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

enum Op {
    Apply(Value),
    Delete(Value),
}

#[derive(Default)]
struct Outcome {
    late: Vec<Duration>,
    applied: usize,
    deleted: usize,
    failed: Vec<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.late.extend(other.late);
        self.applied += other.applied;
        self.deleted += other.deleted;
        self.failed.extend(other.failed);
    }

    /// A task that panicked or was cancelled: its operations count as failed.
    fn lost(e: &tokio::task::JoinError) -> Outcome {
        Outcome { failed: vec![format!("an operation task ended abnormally: {e}")], ..Outcome::default() }
    }
}

impl Stats {
    fn add(&mut self, o: Outcome) {
        self.lateness.extend(o.late);
        self.applied += o.applied;
        self.deleted += o.deleted;
        self.failed.extend(o.failed);
    }
}

/// Replays `trace` from now. Per-object failures are recorded in the stats, not fatal.
pub async fn replay<C: Clock + Clone + 'static>(
    client: &kube::Client,
    trace: &Trace,
    kinds: &Kinds,
    root: &RootRef,
    settings: &Settings,
    clock: &C,
    reporter: &Reporter,
) -> Result<Stats, ReplayError> {
    let signals = &settings.signals;
    let mut stats = Stats::default();
    let Some(first_ts) = trace.first_ts() else { return Ok(stats) };
    let timestamps: Vec<i64> = trace.event_timestamps().collect();
    let total = timestamps.len();
    let start = clock.now();
    let mut namespaces: HashSet<String> = HashSet::new();
    let shared = Arc::new(Shared { client: client.clone(), root: root.clone(), settings: settings.clone() });
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut inflight: HashMap<ObjectKey, JoinHandle<Outcome>> = HashMap::new();
    let mut i = 0;
    while i < total {
        let ts = timestamps[i];
        // `duration` is trace time: compare at speed 1, to the sub-second.
        if settings.duration.is_some_and(|d| offset(first_ts, ts, 1.0) >= d) {
            stats.events_cut = total - i;
            break;
        }
        // Events recorded at the same second are due together.
        let mut j = i;
        while j < total && timestamps[j] == ts {
            j += 1;
        }
        let mut groups: Vec<(ObjectKey, Vec<Op>)> = vec![];
        let mut index: HashMap<ObjectKey, usize> = HashMap::new();
        for e in i..j {
            let event = trace.event(e)?;
            let ops = event.applied.into_iter().map(Op::Apply).chain(event.deleted.into_iter().map(Op::Delete));
            for op in ops {
                let obj = match &op {
                    Op::Apply(o) | Op::Delete(o) => o,
                };
                let key = match key_of(obj) {
                    Ok(k) => k,
                    Err(err) => {
                        stats.failed.push(format!("event at {ts}: {err}"));
                        continue;
                    }
                };
                // Same object twice in one batch: keep its operations in recorded order.
                let slot = *index.entry(key.clone()).or_insert_with(|| {
                    groups.push((key.clone(), vec![]));
                    groups.len() - 1
                });
                groups[slot].1.push(op);
            }
        }

        let mut runnable = vec![];
        for (key, ops) in groups {
            let (api_version, kind, ns, name) = &key;
            let Some(target) = kinds.get(&(api_version.clone(), kind.clone())) else {
                stats.failed.push(format!("{kind} {ns}/{name}: kind was not resolved"));
                continue;
            };
            if !target.namespaced {
                let why = format!(
                    "{kind} {name} ({api_version}) is cluster-scoped: skipped, only namespaced objects are replayed into virtual namespaces"
                );
                tracing::warn!("{why}");
                stats.skipped.push(why);
                continue;
            }
            let vns = match virtual_namespace(&settings.prefix, ns) {
                Ok(v) => v,
                Err(e) => {
                    stats.failed.push(format!("{kind} {ns}/{name}: {e}"));
                    continue;
                }
            };
            if !namespaces.contains(&vns) {
                match ensure_namespace(client, &vns, root, &settings.simulation, TERMINATING_NAMESPACE_WAIT).await {
                    Ok(()) => {
                        namespaces.insert(vns.clone());
                    }
                    Err(e) => {
                        stats.failed.push(format!("namespace {vns}: {e}"));
                        continue;
                    }
                }
            }
            runnable.push((key, target.clone(), vns, ops));
        }

        let deadline = start + offset(first_ts, ts, settings.speed);
        // A stop signal ends the replay between batches; what was dispatched finishes below.
        tokio::select! {
            _ = clock.sleep_until(deadline) => {}
            _ = signals.stopped() => {
                stats.interrupted = true;
                break;
            }
        }
        // Dispatch without waiting for earlier batches: a slow request delays only later
        // operations on the same object (chained below) and what the concurrency bound holds back.
        for (key, target, vns, ops) in runnable {
            let previous = inflight.remove(&key);
            let (shared, permits, clock, task_key) = (shared.clone(), permits.clone(), clock.clone(), key.clone());
            let task = tokio::spawn(async move {
                let mut before = match previous {
                    Some(p) => p.await.unwrap_or_else(|e| Outcome::lost(&e)),
                    None => Outcome::default(),
                };
                let mine = match permits.acquire_owned().await {
                    Ok(_permit) => run_ops(&shared, task_key, target, vns, ops, deadline, &clock).await,
                    Err(_) => Outcome::default(),
                };
                before.merge(mine);
                before
            });
            inflight.insert(key, task);
        }
        stats.events += j - i;
        if inflight.len() > 4096 {
            collect_finished(&mut inflight, &mut stats).await;
        }
        reporter.progress(stats.events as i64, total as i64, "events", false).await;
        i = j;
    }
    for (_, task) in inflight.drain() {
        stats.add(task.await.unwrap_or_else(|e| Outcome::lost(&e)));
    }
    // With a duration, the run ends at start + duration / speed, as SimKube's does, even when the
    // trace's last kept event comes earlier.
    if let Some(end) = settings
        .duration
        .and_then(|d| Duration::try_from_secs_f64(d.as_secs_f64() / settings.speed).ok())
        .and_then(|d| start.checked_add(d))
        && !stats.interrupted
    {
        tokio::select! {
            _ = clock.sleep_until(end) => {}
            _ = signals.stopped() => stats.interrupted = true,
        }
    }
    reporter.progress(stats.events as i64, total as i64, "events", true).await;
    Ok(stats)
}

/// Moves the outcomes of finished operations into the stats, keeping the in-flight map small.
async fn collect_finished(inflight: &mut HashMap<ObjectKey, JoinHandle<Outcome>>, stats: &mut Stats) {
    let done: Vec<ObjectKey> = inflight.iter().filter(|(_, t)| t.is_finished()).map(|(k, _)| k.clone()).collect();
    for key in done {
        if let Some(task) = inflight.remove(&key) {
            stats.add(task.await.unwrap_or_else(|e| Outcome::lost(&e)));
        }
    }
}

/// What every operation task needs.
struct Shared {
    client: kube::Client,
    root: RootRef,
    settings: Settings,
}

async fn run_ops<C: Clock>(
    shared: &Shared,
    key: ObjectKey,
    target: Target,
    vns: String,
    ops: Vec<Op>,
    deadline: Instant,
    clock: &C,
) -> Outcome {
    let (client, root, settings) = (&shared.client, &shared.root, &shared.settings);
    let (_, kind, ns, name) = &key;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &vns, &target.resource);
    let mut out = Outcome { late: vec![], applied: 0, deleted: 0, failed: vec![] };
    for op in ops {
        out.late.push(lateness(deadline, clock.now()));
        match op {
            Op::Apply(obj) => {
                let body = match virtualize(&obj, &vns, &settings.simulation, root) {
                    Ok(b) => b,
                    Err(e) => {
                        out.failed.push(format!("apply {kind} {ns}/{name}: {e}"));
                        continue;
                    }
                };
                match api.patch(name, &PatchParams::apply(DRIVER_MANAGER).force(), &Patch::Apply(&body)).await {
                    Ok(_) => out.applied += 1,
                    Err(e) => out.failed.push(format!("apply {kind} {ns}/{name} into {vns}: {e}")),
                }
            }
            Op::Delete(_) => match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => out.deleted += 1,
                // Already gone (deleted by its owner, or never applied): the goal is met.
                Err(kube::Error::Api(s)) if s.code == 404 => out.deleted += 1,
                Err(e) => out.failed.push(format!("delete {kind} {ns}/{name} in {vns}: {e}")),
            },
        }
    }
    out
}

/// How long [`ensure_namespace`] waits for a namespace of an earlier run of the same Simulation
/// to finish terminating.
pub const TERMINATING_NAMESPACE_WAIT: Duration = Duration::from_secs(120);

/// Creates a virtual namespace owned by the root and labelled for the webhook's namespace
/// selector. It is created, never applied over: a namespace that exists and is not this run's
/// (another team's, another Simulation's) is refused, naming it; one of an earlier run of the
/// same Simulation that is still terminating is waited for, up to `wait`.
pub async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    root: &RootRef,
    simulation: &str,
    wait: Duration,
) -> Result<(), String> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {OWNED_BY_SIMULATION_LABEL: simulation},
            "ownerReferences": [root.owner_reference()]
        }
    }))
    .map_err(|e| format!("namespace {name}: {e}"))?;
    let started = std::time::Instant::now();
    loop {
        let existing = match api.create(&kube::api::PostParams::default(), &ns).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                api.get_opt(name).await.map_err(|e| format!("namespace {name}: {e}"))?
            }
            Err(e) => return Err(format!("cannot create namespace {name}: {e}")),
        };
        // Deleted between the create and the read: try again.
        let Some(existing) = existing else { continue };
        match namespace_owner(&existing, root, simulation) {
            NamespaceOwner::ThisRun => return Ok(()),
            NamespaceOwner::EarlierRunTerminating => {
                let left = wait.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(format!(
                        "namespace {name} of an earlier run of simulation {simulation} was still terminating after {} s (check its finalizers)",
                        wait.as_secs()
                    ));
                }
                let uid = existing.metadata.uid.clone().unwrap_or_default();
                tracing::info!(namespace = %name, "waiting for the namespace of an earlier run to be deleted");
                let gone = kube::runtime::wait::await_condition(
                    api.clone(),
                    name,
                    kube::runtime::wait::conditions::is_deleted(&uid),
                );
                let _ = tokio::time::timeout(left, gone).await;
            }
            NamespaceOwner::Other(why) => {
                return Err(format!(
                    "namespace {name} exists and was not created by this run ({why}); refusing to replay into it: delete it, or choose another virtualNamespacePrefix"
                ));
            }
        }
    }
}

/// Whose an existing virtual namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceOwner {
    /// Created by this run (owned by its root).
    ThisRun,
    /// Left by an earlier run of the same Simulation, being deleted.
    EarlierRunTerminating,
    /// Anyone else's; why, in words.
    Other(String),
}

/// Decides whose `ns` is, from its owner references, labels and deletion state.
pub fn namespace_owner(ns: &k8s_openapi::api::core::v1::Namespace, root: &RootRef, simulation: &str) -> NamespaceOwner {
    let owned = ns.metadata.owner_references.iter().flatten().any(|o| o.uid == root.uid);
    let label = ns.metadata.labels.as_ref().and_then(|l| l.get(OWNED_BY_SIMULATION_LABEL)).cloned();
    let terminating = ns.metadata.deletion_timestamp.is_some();
    match (owned, label.as_deref(), terminating) {
        (true, _, false) => NamespaceOwner::ThisRun,
        (_, Some(l), true) if l == simulation => NamespaceOwner::EarlierRunTerminating,
        (_, Some(l), _) if l == simulation => NamespaceOwner::Other(format!(
            "labelled for simulation {l} but owned by another run's root: is another driver running it?"
        )),
        (_, Some(l), _) => NamespaceOwner::Other(format!("it belongs to simulation {l}")),
        (_, None, _) => NamespaceOwner::Other("it has no rehearsal.dev/simulation label".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(value: serde_json::Value) -> k8s_openapi::api::core::v1::Namespace {
        serde_json::from_value(value).expect("namespace literal")
    }

    #[test]
    fn only_this_runs_namespaces_are_used() {
        let root = RootRef { name: "s-run-0".into(), uid: "root-uid".into() };
        let ours = ns(json!({"metadata": {"name": "virtual-a", "labels": {OWNED_BY_SIMULATION_LABEL: "s"},
            "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "s-run-0", "uid": "root-uid"}]}}));
        assert_eq!(namespace_owner(&ours, &root, "s"), NamespaceOwner::ThisRun);
        let earlier = ns(json!({"metadata": {"name": "virtual-a", "labels": {OWNED_BY_SIMULATION_LABEL: "s"},
            "deletionTimestamp": "2026-12-01T00:00:00Z"}}));
        assert_eq!(namespace_owner(&earlier, &root, "s"), NamespaceOwner::EarlierRunTerminating);
        let live_other_run = ns(json!({"metadata": {"name": "virtual-a", "labels": {OWNED_BY_SIMULATION_LABEL: "s"}}}));
        assert!(
            matches!(namespace_owner(&live_other_run, &root, "s"), NamespaceOwner::Other(w) if w.contains("another driver"))
        );
        let other_sim = ns(json!({"metadata": {"name": "virtual-a", "labels": {OWNED_BY_SIMULATION_LABEL: "t"}}}));
        assert_eq!(namespace_owner(&other_sim, &root, "s"), NamespaceOwner::Other("it belongs to simulation t".into()));
        let teams = ns(json!({"metadata": {"name": "virtual-a", "labels": {"team": "payments"}}}));
        assert!(
            matches!(namespace_owner(&teams, &root, "s"), NamespaceOwner::Other(w) if w.contains("no rehearsal.dev/simulation label"))
        );
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&d, 0.0), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn summary_has_the_figures() {
        let stats = Stats {
            applied: 8,
            deleted: 2,
            lateness: vec![Duration::from_millis(2), Duration::from_millis(1)],
            ..Stats::default()
        };
        let j = stats.to_json(Duration::from_secs(2));
        assert_eq!(j["objects_per_second"], 5.0);
        assert_eq!(j["lateness_ms"]["max"], 2.0);
        assert_eq!(j["lateness_ms"]["p50"], 1.0);
        assert_eq!(stats.lateness_quantile(1.0), Duration::from_millis(2));
    }
}
