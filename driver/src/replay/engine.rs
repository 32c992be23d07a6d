//! Replaying a trace's events onto the cluster: each event at its absolute deadline, its
//! objects applied (server-side, one field manager) or deleted with bounded concurrency.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use rehearsal_crds::conditions::{self, Status};
use rehearsal_crds::keys::{DRIVER_MANAGER, OWNED_BY_SIMULATION_LABEL};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::signals::Signals;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::behind::LateMeter;
use super::clock::{Clock, lateness, offset};
use super::objects::{ObjectError, ObjectKey, RootRef, key_of, virtual_namespace, virtualize};
use crate::status::Reporter;
use crate::trace::{Trace, TraceError, TraceEvent};

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
    /// Stop requests: the replay ends at the first, between events or while it waits for a
    /// concurrency slot.
    pub signals: Signals,
    /// Lateness so far, for the `Replay` condition while the replay runs.
    pub late: Arc<LateMeter>,
}

/// How often the `Replay` condition is rewritten while the replay is behind its trace.
const BEHIND_EVERY: Duration = Duration::from_secs(10);

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
    /// When the replay's clock started (the first event's deadline), by the wall clock, and that
    /// event's trace time: with the speed, every request's deadline, so a benchmark can set the
    /// API server's audit log (when it received each request) against them.
    pub started: Option<(std::time::SystemTime, i64, f64)>,
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
        let clock = self.started.map(|(at, first_ts, speed)| {
            let unix = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
            json!({"started_unix_seconds": unix, "first_ts": first_ts, "speed": speed})
        });
        json!({
            "clock": clock,
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
    let sink = Arc::new(Cluster {
        client: client.clone(),
        root: root.clone(),
        settings: settings.clone(),
        kinds: kinds.clone(),
        clock: clock.clone(),
    });
    dispatch(trace, sink, settings, clock, reporter).await
}

/// Why an object's operations are not sent.
enum Refused {
    /// Deliberately left out (cluster-scoped kinds), with the reason.
    Skipped(String),
    /// Cannot be sent, with the reason.
    Failed(String),
}

/// Where the operations of one object go: the cluster in a replay, a fake in the tests, so the
/// dispatch loop (deadlines, ordering, backpressure) is tested without a cluster.
trait Sink: Send + Sync + 'static {
    /// An object's operations made ready to send: where they go and their bodies, built before
    /// the deadline.
    type Ready: Send + 'static;

    /// Makes `key`'s operations ready (creating its virtual namespace, remembered in
    /// `namespaces`, and building the request bodies).
    fn place(
        &self,
        key: &ObjectKey,
        ops: Vec<Op>,
        namespaces: &mut HashSet<String>,
    ) -> impl Future<Output = Result<Self::Ready, Refused>> + Send;

    /// Sends the operations, in order, for `deadline`.
    fn run(&self, key: ObjectKey, ready: Self::Ready, deadline: Instant) -> impl Future<Output = Outcome> + Send;
}

/// Takes a concurrency slot, or None when a stop signal comes first.
async fn slot(permits: &Arc<Semaphore>, signals: &Signals) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        // A stop is honoured before a free slot, so a stopped run dispatches nothing more.
        biased;
        _ = signals.stopped() => None,
        // The semaphore is never closed, so an error cannot happen; it would end the run like a stop.
        p = permits.clone().acquire_owned() => p.ok(),
    }
}

/// Splits a decoded event into per-object operation lists, in recorded order.
fn group(event: TraceEvent, failed: &mut Vec<String>) -> Vec<(ObjectKey, Vec<Op>)> {
    let ts = event.ts;
    let mut groups: Vec<(ObjectKey, Vec<Op>)> = vec![];
    let mut index: HashMap<ObjectKey, usize> = HashMap::new();
    let ops = event.applied.into_iter().map(Op::Apply).chain(event.deleted.into_iter().map(Op::Delete));
    for op in ops {
        let obj = match &op {
            Op::Apply(o) | Op::Delete(o) => o,
        };
        let key = match key_of(obj) {
            Ok(k) => k,
            Err(err) => {
                failed.push(format!("event at {ts}: {err}"));
                continue;
            }
        };
        // Same object twice in one event: keep its operations in recorded order.
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key.clone(), vec![]));
            groups.len() - 1
        });
        groups[slot].1.push(op);
    }
    groups
}

/// The dispatch loop. Backpressure: a concurrency slot is taken before an event is decoded and
/// one per spawned task, and a task holds its slot until its operations are done, so with
/// concurrency N at most N objects' operations (plus the one event being dispatched) are ever
/// decoded and pending, however far behind the API server is. The loop then waits for a slot,
/// and lateness (measured when a request starts) shows the backlog.
async fn dispatch<S: Sink, C: Clock>(
    trace: &Trace,
    sink: Arc<S>,
    settings: &Settings,
    clock: &C,
    reporter: &Reporter,
) -> Result<Stats, ReplayError> {
    let signals = &settings.signals;
    let mut stats = Stats::default();
    let Some(first_ts) = trace.first_ts() else { return Ok(stats) };
    let timestamps: Vec<i64> = trace.event_timestamps().collect();
    let total = timestamps.len();
    // The replay's clock starts once the first batch is ready (its namespaces made, its bodies
    // built), so the first objects are not late by that work.
    let mut start: Option<Instant> = None;
    let mut namespaces: HashSet<String> = HashSet::new();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut inflight: HashMap<ObjectKey, JoinHandle<Outcome>> = HashMap::new();
    let mut last_behind: Option<Instant> = None;
    let mut i = 0;
    'batches: while i < total {
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
        // Before the deadline: the batch's events are decoded and made ready (namespaces
        // created, bodies built, slots taken) while slots are free, so a burst within the
        // concurrency starts all at once at its deadline. The first event waits for its slot,
        // as the decode always did; the next ones go ahead only with a slot free at once.
        let mut ready: Vec<Prepared<S::Ready>> = vec![];
        let mut e = i;
        let mut made_ready = 0;
        while e < j {
            let first = if e == i {
                match slot(&permits, signals).await {
                    Some(p) => p,
                    None => {
                        stats.interrupted = true;
                        break 'batches;
                    }
                }
            } else {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            let short =
                prepare(trace.event(e)?, first, &permits, sink.as_ref(), &mut namespaces, &mut stats, &mut ready).await;
            made_ready += 1;
            e += 1;
            if short {
                break;
            }
        }
        let started = *start.get_or_insert_with(|| {
            stats.started = Some((std::time::SystemTime::now(), first_ts, settings.speed));
            clock.now()
        });
        let deadline = started + offset(first_ts, ts, settings.speed);
        // A stop signal ends the replay here (or while it waits for a slot); what was
        // dispatched finishes below.
        tokio::select! {
            _ = clock.sleep_until(deadline) => {}
            _ = signals.stopped() => {
                stats.interrupted = true;
                break 'batches;
            }
        }
        if !send(ready, &sink, &permits, signals, deadline, &mut inflight).await {
            stats.interrupted = true;
            break 'batches;
        }
        stats.events += made_ready;
        // The rest of a batch larger than the free slots: each event decoded once a slot frees,
        // and sent at once (its deadline has passed).
        while e < j {
            let Some(first) = slot(&permits, signals).await else {
                stats.interrupted = true;
                break 'batches;
            };
            let mut ready = vec![];
            prepare(trace.event(e)?, first, &permits, sink.as_ref(), &mut namespaces, &mut stats, &mut ready).await;
            e += 1;
            if !send(ready, &sink, &permits, signals, deadline, &mut inflight).await {
                stats.interrupted = true;
                break 'batches;
            }
            stats.events += 1;
        }
        if inflight.len() > 4096 {
            collect_finished(&mut inflight, &mut stats).await;
        }
        reporter.progress(stats.events as i64, total as i64, "events", false).await;
        // Falling behind is said in the Replay condition, at most every BEHIND_EVERY.
        if last_behind.is_none_or(|t: Instant| clock.now().saturating_duration_since(t) >= BEHIND_EVERY)
            && let Some(behind) = settings.late.behind()
        {
            last_behind = Some(clock.now());
            let msg = format!("replaying {total} events at speed {}: {behind}", settings.speed);
            reporter.stage(conditions::REPLAY, Status::Unknown, "FallingBehind", msg).await;
        }
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
        .and_then(|d| start.unwrap_or_else(|| clock.now()).checked_add(d))
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

/// One object's operations, ready, with its concurrency slot when one was free.
struct Prepared<R> {
    key: ObjectKey,
    ready: R,
    permit: Option<OwnedSemaphorePermit>,
}

/// Decodes `event`'s objects into `out`, made ready by the sink. The first object takes `first`;
/// the others a slot free at once, or none (they wait for one when sent). Returns whether some
/// object got no slot: the caller then decodes no more before sending.
async fn prepare<S: Sink>(
    event: TraceEvent,
    first: OwnedSemaphorePermit,
    permits: &Arc<Semaphore>,
    sink: &S,
    namespaces: &mut HashSet<String>,
    stats: &mut Stats,
    out: &mut Vec<Prepared<S::Ready>>,
) -> bool {
    let mut first = Some(first);
    let mut short = false;
    for (key, ops) in group(event, &mut stats.failed) {
        // Kinds and namespaces are settled before the deadline, so they add no lateness.
        let ready = match sink.place(&key, ops, namespaces).await {
            Ok(r) => r,
            Err(Refused::Skipped(why)) => {
                tracing::warn!("{why}");
                stats.skipped.push(why);
                continue;
            }
            Err(Refused::Failed(why)) => {
                stats.failed.push(why);
                continue;
            }
        };
        let permit = first.take().or_else(|| permits.clone().try_acquire_owned().ok());
        short |= permit.is_none();
        out.push(Prepared { key, ready, permit });
    }
    short
}

/// Starts a task per prepared object, without waiting for earlier ones: a slow request delays
/// only later operations on the same object (chained here) and what the concurrency bound holds
/// back. Returns false when a stop signal came while waiting for a slot.
async fn send<S: Sink>(
    ready: Vec<Prepared<S::Ready>>,
    sink: &Arc<S>,
    permits: &Arc<Semaphore>,
    signals: &Signals,
    deadline: Instant,
    inflight: &mut HashMap<ObjectKey, JoinHandle<Outcome>>,
) -> bool {
    for Prepared { key, ready, permit } in ready {
        let permit = match permit {
            Some(p) => p,
            None => match slot(permits, signals).await {
                Some(p) => p,
                None => return false,
            },
        };
        let previous = inflight.remove(&key);
        let (sink, task_key) = (sink.clone(), key.clone());
        let task = tokio::spawn(async move {
            // Held while waiting for the previous task on this object too: the previous one
            // already holds its own slot, so the chain always moves, and its length counts
            // against the bound.
            let _permit = permit;
            let mut before = match previous {
                Some(p) => p.await.unwrap_or_else(|e| Outcome::lost(&e)),
                None => Outcome::default(),
            };
            before.merge(sink.run(task_key, ready, deadline).await);
            before
        });
        inflight.insert(key, task);
    }
    true
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

/// The cluster as a [`Sink`]: what every operation task needs.
struct Cluster<C> {
    client: kube::Client,
    root: RootRef,
    settings: Settings,
    kinds: Kinds,
    clock: C,
}

impl<C: Clock + Clone + 'static> Sink for Cluster<C> {
    type Ready = Ready;

    async fn place(&self, key: &ObjectKey, ops: Vec<Op>, namespaces: &mut HashSet<String>) -> Result<Ready, Refused> {
        let (api_version, kind, ns, name) = key;
        let Some(target) = self.kinds.get(&(api_version.clone(), kind.clone())) else {
            return Err(Refused::Failed(format!("{kind} {ns}/{name}: kind was not resolved")));
        };
        if !target.namespaced {
            return Err(Refused::Skipped(format!(
                "{kind} {name} ({api_version}) is cluster-scoped: skipped, only namespaced objects are replayed into virtual namespaces"
            )));
        }
        let vns = virtual_namespace(&self.settings.prefix, ns)
            .map_err(|e| Refused::Failed(format!("{kind} {ns}/{name}: {e}")))?;
        if !namespaces.contains(&vns) {
            ensure_namespace(&self.client, &vns, &self.root, &self.settings.simulation, TERMINATING_NAMESPACE_WAIT)
                .await
                .map_err(|e| Refused::Failed(format!("namespace {vns}: {e}")))?;
            namespaces.insert(vns.clone());
        }
        // The bodies are built now, before the deadline: at the deadline only the request is made.
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Apply(obj) => match virtualize(&obj, &vns, &self.settings.simulation, &self.root)
                    .and_then(|b| serde_json::value::to_raw_value(&b).map_err(|e| ObjectError::Body(e.to_string())))
                {
                    Ok(body) => ReadyOp::Apply(body),
                    Err(e) => ReadyOp::Invalid(format!("apply {kind} {ns}/{name}: {e}")),
                },
                Op::Delete(_) => ReadyOp::Delete,
            })
            .collect();
        Ok(Ready { target: target.clone(), vns, ops })
    }

    async fn run(&self, key: ObjectKey, ready: Ready, deadline: Instant) -> Outcome {
        run_ops(self, key, ready, deadline).await
    }
}

/// An object's operations as the cluster sink sends them.
struct Ready {
    target: Target,
    vns: String,
    ops: Vec<ReadyOp>,
}

/// One operation with its request body built.
enum ReadyOp {
    /// Server-side apply of this body.
    Apply(Box<serde_json::value::RawValue>),
    /// Delete (background propagation).
    Delete,
    /// The object cannot be sent, with the reason (counted as failed at its deadline).
    Invalid(String),
}

async fn run_ops<C: Clock>(shared: &Cluster<C>, key: ObjectKey, ready: Ready, deadline: Instant) -> Outcome {
    let (client, settings, clock) = (&shared.client, &shared.settings, &shared.clock);
    let (_, kind, ns, name) = &key;
    let Ready { target, vns, ops } = ready;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &vns, &target.resource);
    let mut out = Outcome { late: vec![], applied: 0, deleted: 0, failed: vec![] };
    for op in ops {
        let late = lateness(deadline, clock.now());
        settings.late.record(late);
        out.late.push(late);
        match op {
            ReadyOp::Invalid(why) => out.failed.push(why),
            ReadyOp::Apply(body) => {
                match api.patch(name, &PatchParams::apply(DRIVER_MANAGER).force(), &Patch::Apply(&body)).await {
                    Ok(_) => out.applied += 1,
                    Err(e) => out.failed.push(format!("apply {kind} {ns}/{name} into {vns}: {e}")),
                }
            }
            ReadyOp::Delete => match api.delete(name, &DeleteParams::background()).await {
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

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::replay::clock::PreciseClock;

    /// A slow API server: every operation takes `delay`; counts what is decoded and not yet done.
    #[derive(Default)]
    struct Slow {
        delay: Duration,
        pending: AtomicUsize,
        peak: AtomicUsize,
        log: Mutex<Vec<String>>,
    }

    impl Sink for Slow {
        type Ready = Vec<Op>;

        async fn place(&self, _: &ObjectKey, ops: Vec<Op>, _: &mut HashSet<String>) -> Result<Vec<Op>, Refused> {
            // Called right after the decode: from here the operations are held in memory.
            let now = self.pending.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            Ok(ops)
        }

        async fn run(&self, key: ObjectKey, ops: Vec<Op>, _: Instant) -> Outcome {
            let mut out = Outcome::default();
            for op in ops {
                tokio::time::sleep(self.delay).await;
                let what = match op {
                    Op::Apply(_) => "apply",
                    Op::Delete(_) => "delete",
                };
                self.log.lock().expect("log").push(format!("{what} {}", key.3));
                match what {
                    "apply" => out.applied += 1,
                    _ => out.deleted += 1,
                }
            }
            self.pending.fetch_sub(1, Ordering::SeqCst);
            out
        }
    }

    fn cm(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}})
    }

    /// A JSON trace of `events` (ts, applied, deleted).
    fn trace_of(events: Vec<(i64, Vec<serde_json::Value>, Vec<serde_json::Value>)>) -> Trace {
        let events: Vec<_> =
            events.into_iter().map(|(ts, a, d)| json!({"ts": ts, "applied_objs": a, "deleted_objs": d})).collect();
        let doc = json!({"version": 2, "config": {"trackedObjects": {}}, "events": events, "index": {}, "pod_lifecycles": {}});
        Trace::parse(serde_json::to_vec(&doc).expect("json"), "test").expect("trace")
    }

    fn settings(concurrency: usize, signals: Signals) -> Settings {
        Settings {
            simulation: "s".into(),
            prefix: "v".into(),
            speed: 1000.0,
            duration: None,
            concurrency,
            signals,
            late: Arc::default(),
        }
    }

    /// Records when each object was made ready and when its operations started.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<(String, &'static str, Instant)>>,
    }

    impl Sink for Recorder {
        type Ready = ();

        async fn place(&self, key: &ObjectKey, _: Vec<Op>, _: &mut HashSet<String>) -> Result<(), Refused> {
            self.log.lock().expect("log").push((key.3.clone(), "ready", Instant::now()));
            Ok(())
        }

        async fn run(&self, key: ObjectKey, _: (), _: Instant) -> Outcome {
            self.log.lock().expect("log").push((key.3, "sent", Instant::now()));
            // Slow enough that a slot frees only after the burst's deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Outcome { applied: 1, ..Outcome::default() }
        }
    }

    /// A burst: one object at 0 s, then 12 due together at 1 s (three events of four).
    fn burst() -> Trace {
        let mut events = vec![(1_000, vec![cm("first")], vec![])];
        for e in 0..3 {
            events.push((1_001, (0..4).map(|k| cm(&format!("b{e}-{k}"))).collect(), vec![]));
        }
        trace_of(events)
    }

    #[tokio::test]
    async fn a_burst_within_the_concurrency_is_made_ready_before_its_deadline() {
        let mut wide = settings(16, Signals::never());
        wide.speed = 10.0; // the burst is due 100 ms after the start
        let sink = Arc::new(Recorder::default());
        let start = Instant::now();
        let stats = dispatch(&burst(), sink.clone(), &wide, &PreciseClock, &Reporter::new(None, "s", None))
            .await
            .expect("replay");
        assert_eq!((stats.events, stats.applied), (4, 13));
        let deadline = start + Duration::from_millis(100);
        let log = sink.log.lock().expect("log");
        for (name, what, at) in log.iter().filter(|(n, _, _)| n.starts_with('b')) {
            match *what {
                "ready" => assert!(*at < deadline, "{name} made ready after its deadline"),
                _ => assert!(*at >= deadline, "{name} sent before its deadline"),
            }
        }
        // Every object of the burst was ready before the first of them was sent.
        let last_ready = log.iter().filter(|(n, w, _)| n.starts_with('b') && *w == "ready").map(|e| e.2).max();
        let first_sent = log.iter().filter(|(n, w, _)| n.starts_with('b') && *w == "sent").map(|e| e.2).min();
        assert!(last_ready < first_sent, "{log:?}");
    }

    #[tokio::test]
    async fn a_burst_beyond_the_concurrency_sends_what_it_can_and_the_rest_as_slots_free() {
        let mut narrow = settings(6, Signals::never());
        narrow.speed = 10.0;
        let sink = Arc::new(Recorder::default());
        let stats = dispatch(&burst(), sink.clone(), &narrow, &PreciseClock, &Reporter::new(None, "s", None))
            .await
            .expect("replay");
        assert_eq!((stats.events, stats.applied, stats.failed.len()), (4, 13, 0));
        let log = sink.log.lock().expect("log");
        let sent: Vec<&str> = log.iter().filter(|(_, w, _)| *w == "sent").map(|(n, _, _)| n.as_str()).collect();
        // In recorded order, each object once.
        let mut want = vec!["first".to_string()];
        want.extend((0..3).flat_map(|e| (0..4).map(move |k| format!("b{e}-{k}"))));
        assert_eq!(sent, want.iter().map(String::as_str).collect::<Vec<_>>());
        // Never more than the concurrency decoded and not yet done: the third event of the
        // burst waited for slots, so it was made ready after the first ones were sent.
        let ready_b2 = log.iter().find(|(n, w, _)| n == "b2-0" && *w == "ready").map(|e| e.2);
        let sent_b0 = log.iter().find(|(n, w, _)| n == "b0-0" && *w == "sent").map(|e| e.2);
        assert!(ready_b2 > sent_b0, "{log:?}");
    }

    #[tokio::test]
    async fn a_replay_behind_its_trace_says_so_in_the_replay_condition() {
        let trace = trace_of((0..3).map(|k| (1_000 + k, vec![cm(&format!("c{k}"))], vec![])).collect());
        let reporter = Reporter::new(None, "s", None);
        let keeping_up = settings(4, Signals::never());
        keeping_up.late.record(Duration::from_micros(200));
        dispatch(&trace, Arc::new(Slow::default()), &keeping_up, &PreciseClock, &reporter).await.expect("replay");
        assert_eq!(reporter.condition(conditions::REPLAY), None, "nothing said while it keeps up");

        let behind = settings(4, Signals::never());
        for _ in 0..100 {
            behind.late.record(Duration::from_millis(1500));
        }
        dispatch(&trace, Arc::new(Slow::default()), &behind, &PreciseClock, &reporter).await.expect("replay");
        let c = reporter.condition(conditions::REPLAY).expect("a Replay condition");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("Unknown", "FallingBehind"));
        assert!(
            c.message.starts_with("replaying 3 events at speed 1000: behind the trace: requests start up to 1."),
            "{}",
            c.message
        );
        assert!(c.message.contains("(p99 so far, 100 requests)"), "{}", c.message);
    }

    #[tokio::test]
    async fn a_slow_server_holds_back_the_decoding() {
        // 200 objects due at once, 2 at a time against a server taking 2 ms per request.
        let trace = trace_of((0..200).map(|k| (1_000, vec![cm(&format!("c{k}"))], vec![])).collect());
        let sink = Arc::new(Slow { delay: Duration::from_millis(2), ..Slow::default() });
        let reporter = Reporter::new(None, "s", None);
        let stats = dispatch(&trace, sink.clone(), &settings(2, Signals::never()), &PreciseClock, &reporter)
            .await
            .expect("replay");
        assert_eq!((stats.events, stats.applied, stats.failed.len()), (200, 200, 0));
        assert_eq!(sink.peak.load(Ordering::SeqCst), 2, "never more decoded and pending than the concurrency");
    }

    #[tokio::test]
    async fn operations_on_one_object_keep_their_order() {
        // The same object applied and deleted in successive events of one second, with slots to
        // spare: the delete is chained after the apply.
        let trace = trace_of(vec![
            (1_000, vec![cm("x")], vec![]),
            (1_000, vec![], vec![cm("x")]),
            (1_001, vec![cm("x")], vec![]),
        ]);
        let sink = Arc::new(Slow { delay: Duration::from_millis(5), ..Slow::default() });
        let reporter = Reporter::new(None, "s", None);
        let stats = dispatch(&trace, sink.clone(), &settings(4, Signals::never()), &PreciseClock, &reporter)
            .await
            .expect("replay");
        assert_eq!((stats.applied, stats.deleted), (2, 1));
        assert_eq!(*sink.log.lock().expect("log"), vec!["apply x", "delete x", "apply x"]);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_slot() {
        let trace = trace_of((0..50).map(|k| (1_000, vec![cm(&format!("c{k}"))], vec![])).collect());
        let sink = Arc::new(Slow { delay: Duration::from_millis(50), ..Slow::default() });
        let reporter = Reporter::new(None, "s", None);
        let (tx, signals) = Signals::manual();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(1);
            // Keep the sender until the replay has seen the stop.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let started = std::time::Instant::now();
        let stats =
            dispatch(&trace, sink.clone(), &settings(1, signals), &PreciseClock, &reporter).await.expect("replay");
        stopper.abort();
        assert!(stats.interrupted);
        assert!(stats.events < 5, "stopped while waiting for a slot, after {} events", stats.events);
        assert_eq!(stats.applied, stats.events, "what was dispatched finished");
        assert!(started.elapsed() < Duration::from_secs(2));
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
