//! What a run records while it runs: watch-based collectors streaming JSON lines to the run's
//! folder ([`records`] holds their formats). Both run kinds use them, so a trace replay and a
//! scenario play leave the same evidence, written as things happen (a crashed driver still
//! leaves everything up to its last second) and read later by the report.
//!
//! # Use
//!
//! ```no_run
//! # async fn run(client: kube::Client, dir: std::path::PathBuf) -> Result<(), Box<dyn std::error::Error>> {
//! use rehearsal_driver::collect::{CollectSettings, Collectors, Scope};
//! let settings = CollectSettings::new(dir, Scope::Namespace("play-ns".into()), rehearsal_crds::Collect::default());
//! // Returns once every watch has listed what exists: nothing the run does after this is missed.
//! let collectors = Collectors::start(client, settings).await?;
//! // ... the run's actions, then its cleanup ...
//! let report = collectors.stop().await;
//! tracing::info!(%report, "collectors stopped");
//! # Ok(()) }
//! ```
//!
//! Start before the first action and stop after the cleanup, so the cleanup's deletions are
//! recorded too. Dropping [`Collectors`] without `stop` also ends the watches and closes the
//! files, without the report.
//!
//! # What is watched
//!
//! Watchers (list, then watch; never polling): pods, nodes, Deployments, ReplicaSets,
//! StatefulSets, Jobs and core/v1 Events in protobuf ([`proto_watch`]: kube-runtime's watcher's
//! steps, a third of JSON's bytes, and decoding that skips what the views do not read), and
//! Karpenter's NodePools and NodeClaims in JSON through kube-runtime's watcher when discovery
//! finds `karpenter.sh/v1` (otherwise one info line and a note in the report). Which
//! files exist follows the Simulation's `spec.collect` (`deployments` covers all four workload
//! kinds; `audit` is not handled here). Nodes, NodePools and NodeClaims are cluster-wide; the
//! rest follows the [`Scope`]:
//! - [`Scope::Namespace`] (scenario plays): namespaced watches of the one namespace, plus
//!   cluster-wide Event watches selected by `involvedObject.kind` for Events about nodes.
//! - [`Scope::Prefix`] (trace replays): the virtual namespaces `<prefix>-<original ns>` are
//!   created as the replay goes and cannot be named up front, so the watches are cluster-wide
//!   and objects are kept by namespace prefix in the driver. The trade-off: the API server sends
//!   every object of the kind in the cluster (more bytes decoded, and a cluster-wide list at
//!   each re-list) in exchange for one watch per kind that cannot miss a namespace created
//!   mid-run. Pods, the largest set, are also selected by the webhook's label
//!   `simkube.io/simulation=<name>` when the simulation is given, so the server filters them.
//!
//! # Memory and restarts
//!
//! Records go to disk through a bounded channel and a buffered writer flushed every second; the
//! only state held is a few fields per live object in scope (removed when it is deleted). A lost
//! watch is retried with kube-runtime's backoff: it resumes from its resourceVersion when it can
//! (no gap), and when the API server answers 410 Gone it lists everything again; each listed
//! object is diffed with what was known, so only what changed meanwhile is written, and objects
//! missing from the list get `deleted`. A lost watch not heard from again when the run ends
//! (still backing off, or resumed with nothing to deliver) is brought up to date the same way by
//! the list made at stop. One warning when a watch is lost, one info line when it is back; the
//! report counts restarts, re-lists and errors per file. An object created and
//! deleted entirely while a watch was down cannot be seen by anyone and is not recorded.
//!
//! # Testing against a cluster
//!
//! Everything but [`Collectors::start`] is tested without an API server. End to end: start the
//! collectors on a fresh namespace into a temporary folder, create a Deployment of N replicas on
//! virtual nodes, scale it, delete it, wait for its pods to go, stop. Then `pods.jsonl` holds N
//! `created`, `scheduled`, `condition` Ready and `deleted` records (one per pod UID, none
//! repeated), `workloads.jsonl` the Deployment's and its ReplicaSet's counts rising to N and
//! `deleted`, `nodes.jsonl` one `added` per node, `events.jsonl` the `Scheduled` Events; and the
//! report counts what the files hold. Restarting the API server mid-run must leave `pods.jsonl`
//! with as many distinct pod UIDs as the API server created, and the report with a restart.

pub mod records;

mod events;
mod karpenter;
mod nodes;
mod pods;
pub mod proto;
pub mod proto_watch;
mod time;
pub mod view;
mod watch;
mod workloads;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use rehearsal_crds::keys::SIMULATION_LABEL;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch as signal};
use tokio::task::JoinHandle;

use self::proto_watch::ProtoApi;
use self::records::files;
use self::view::{EventView, NodeView, PodView, WorkloadView};
use self::watch::{Diff, Readiness, Tracker, WatchStats};
use self::writer::FileStats;

/// Objects per page of the list a watch makes at stop (as the watcher's own lists).
const FINAL_LIST_PAGE: u32 = 500;

/// How long [`Collectors::start`] waits, by default, for every watch's first list.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which namespaces a run's collectors look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (a scenario play).
    Namespace(String),
    /// Every namespace named `<prefix>-...` (a trace replay's virtual namespaces).
    Prefix {
        /// The virtual namespace prefix, without the `-`.
        prefix: String,
        /// The Simulation's name: its pods carry `simkube.io/simulation=<name>`, used as a label
        /// selector on the pod watch when given.
        simulation: Option<String>,
    },
}

impl Scope {
    /// Whether objects of `namespace` belong to the run.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Namespace(ns) => ns == namespace,
            Scope::Prefix { prefix, .. } => has_prefix(prefix, namespace),
        }
    }
}

/// Whether `namespace` is one of prefix `prefix`'s virtual namespaces: `<prefix>-<something>`.
pub fn has_prefix(prefix: &str, namespace: &str) -> bool {
    namespace.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('-')).is_some_and(|r| !r.is_empty())
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Namespace(ns) => write!(f, "namespace {ns}"),
            Scope::Prefix { prefix, .. } => write!(f, "namespaces {prefix}-*"),
        }
    }
}

/// What the collectors of a run record, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectSettings {
    /// The run's folder; created if missing. Files are appended to, never truncated.
    pub dir: PathBuf,
    /// Which namespaces.
    pub scope: Scope,
    /// Which files (the Simulation's `spec.collect`; `audit` is ignored here).
    pub what: rehearsal_crds::Collect,
    /// Longest wait for every watch's first list before [`Collectors::start`] gives up.
    pub start_timeout: Duration,
}

impl CollectSettings {
    /// Settings with the default start timeout.
    pub fn new(dir: PathBuf, scope: Scope, what: rehearsal_crds::Collect) -> Self {
        CollectSettings { dir, scope, what, start_timeout: START_TIMEOUT }
    }
}

/// Why the collectors could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The run's folder could not be created.
    #[error("cannot create the run folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A record file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Discovery failed (a kind that is simply not served is not an error).
    #[error("cannot find out whether the cluster serves {what}: {source}")]
    Discovery {
        /// The kind looked for.
        what: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// Some watches did not finish their first list in time.
    #[error("watches not listed within {} s: {}", timeout.as_secs(), pending.join("; "))]
    NotListed {
        /// The time given.
        timeout: Duration,
        /// Each watch still listing, with its last error when it had one.
        pending: Vec<String>,
    },
}

/// How one file's collection went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// File name (`pods.jsonl`, ...).
    pub file: String,
    /// Where it is.
    pub path: PathBuf,
    /// Records written.
    pub records: u64,
    /// Times a watch feeding it was lost and came back.
    pub restarts: u32,
    /// Times a watch feeding it listed everything again (after a 410 Gone).
    pub relists: u32,
    /// Watch errors and failed writes.
    pub errors: u64,
    /// The first few error messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
}

/// What the collectors of a run did, per file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CollectReport {
    /// One entry per file written.
    pub files: Vec<FileReport>,
    /// What was not collected and why (e.g. Karpenter's kinds not served).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CollectReport {
    /// Errors over every file.
    pub fn errors(&self) -> u64 {
        self.files.iter().fold(0u64, |n, f| n.saturating_add(f.errors))
    }

    /// The entry of file `name` (`pods.jsonl`, ...).
    pub fn file(&self, name: &str) -> Option<&FileReport> {
        self.files.iter().find(|f| f.file == name)
    }
}

impl fmt::Display for CollectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .files
            .iter()
            .map(|r| {
                let mut s = format!("{}: {} records", r.file, r.records);
                if r.restarts > 0 || r.relists > 0 {
                    s.push_str(&format!(", {} restarts ({} re-lists)", r.restarts, r.relists));
                }
                if r.errors > 0 {
                    s.push_str(&format!(", {} errors", r.errors));
                }
                s
            })
            .collect();
        write!(f, "{}", if parts.is_empty() { "nothing collected".to_string() } else { parts.join("; ") })
    }
}

/// One file being written.
struct FileSlot {
    name: &'static str,
    path: PathBuf,
    /// Kept while watches are being added, then dropped so the writer ends with its watches.
    lines: Option<mpsc::Sender<String>>,
    task: JoinHandle<FileStats>,
}

/// One watch running.
struct WatchSlot {
    name: String,
    file: usize,
    ready: signal::Receiver<Readiness>,
    task: JoinHandle<WatchStats>,
}

/// The running collectors of one run.
pub struct Collectors {
    stop: signal::Sender<bool>,
    files: Vec<FileSlot>,
    watches: Vec<WatchSlot>,
    notes: Vec<String>,
}

impl Collectors {
    /// Starts every watch `settings` asks for; returns once each has done its first list.
    pub async fn start(client: kube::Client, settings: CollectSettings) -> Result<Collectors, CollectError> {
        let CollectSettings { dir, scope, what, start_timeout } = settings;
        tokio::fs::create_dir_all(&dir).await.map_err(|source| CollectError::Folder { path: dir.clone(), source })?;

        // Discovery first, so a failure leaves no watch behind.
        let mut karpenter = Vec::new();
        let mut missing = Vec::new();
        if what.nodes || what.events {
            for kind in karpenter::KINDS {
                match karpenter::discover(&client, kind).await {
                    Ok(Some(resource)) => karpenter.push((kind, resource)),
                    Ok(None) => missing.push(kind),
                    Err(source) => {
                        return Err(CollectError::Discovery {
                            what: format!("{}/{} {kind}", karpenter::GROUP, karpenter::VERSION),
                            source,
                        });
                    }
                }
            }
        }

        let mut notes = Vec::new();
        if !missing.is_empty() {
            let note = format!(
                "this cluster does not serve {}/{} {}: not collected",
                karpenter::GROUP,
                karpenter::VERSION,
                missing.join(", ")
            );
            tracing::info!("{note}");
            notes.push(note);
        }

        let (stop, stop_rx) = signal::channel(false);
        let mut c = Collectors { stop, files: Vec::new(), watches: Vec::new(), notes };
        if what.pods {
            let file = c.open(&dir, files::PODS).await?;
            let (api, config) = match &scope {
                Scope::Namespace(ns) => {
                    (ProtoApi::<PodView>::namespaced(client.clone(), ns), watcher::Config::default())
                }
                // The virtual namespaces appear as the replay goes: one cluster-wide watch, kept
                // to them by prefix in `in_scope` (the server sends other namespaces' pods too,
                // unless the simulation's label selects them), rather than a watch per namespace
                // started late and missing its first pods.
                Scope::Prefix { simulation, .. } => {
                    let config = match simulation {
                        Some(sim) => watcher::Config::default().labels(&format!("{SIMULATION_LABEL}={sim}")),
                        None => watcher::Config::default(),
                    };
                    (ProtoApi::<PodView>::all(client.clone()), config)
                }
            };
            c.watch_pb(file, "pods", api, config, pods::Pods, &stop_rx, in_scope(&scope));
        }

        if what.deployments {
            let file = c.open(&dir, files::WORKLOADS).await?;
            c.workload::<Deployment>(file, "deployments", &client, &scope, &stop_rx);
            c.workload::<ReplicaSet>(file, "replicasets", &client, &scope, &stop_rx);
            c.workload::<StatefulSet>(file, "statefulsets", &client, &scope, &stop_rx);
            c.workload::<Job>(file, "jobs", &client, &scope, &stop_rx);
        }

        if what.nodes {
            let file = c.open(&dir, files::NODES).await?;
            let config = watcher::Config::default();
            c.watch_pb(
                file,
                "nodes",
                ProtoApi::<NodeView>::all(client.clone()),
                config,
                nodes::Nodes,
                &stop_rx,
                |_: &NodeView| true,
            );
            for (kind, resource) in &karpenter {
                let api = Api::<DynamicObject>::all_with(client.clone(), resource);
                let diff = karpenter::Karpenter { kind };
                let name = format!("{}s", kind.to_lowercase());
                c.watch(file, &name, api, watcher::Config::default(), diff, &stop_rx, |_: &DynamicObject| true);
            }
        }

        if what.events {
            let file = c.open(&dir, files::EVENTS).await?;
            match &scope {
                Scope::Namespace(ns) => {
                    let api = ProtoApi::<EventView>::namespaced(client.clone(), ns);
                    // Events about nodes come from their own watches below, even in this namespace.
                    let keep = |e: &EventView| !events::about_nodes(e);
                    c.watch_pb(file, "events", api, watcher::Config::default(), events::Events, &stop_rx, keep);
                    let served = karpenter.iter().map(|(kind, _)| *kind);
                    for kind in std::iter::once("Node").chain(served) {
                        let config = watcher::Config::default().fields(&format!("involvedObject.kind={kind}"));
                        let name = format!("events about {kind}s");
                        let api = ProtoApi::<EventView>::all(client.clone());
                        c.watch_pb(file, &name, api, config, events::Events, &stop_rx, |_: &EventView| true);
                    }
                }
                Scope::Prefix { .. } => {
                    let in_scope = in_scope(&scope);
                    let keep = move |e: &EventView| in_scope(e) || events::about_nodes(e);
                    let api = ProtoApi::<EventView>::all(client.clone());
                    c.watch_pb(file, "events", api, watcher::Config::default(), events::Events, &stop_rx, keep);
                }
            }
        }

        // Writers end when their watches do.
        for f in &mut c.files {
            f.lines = None;
        }
        c.wait_listed(start_timeout).await?;
        tracing::info!(
            dir = %dir.display(), %scope, watches = c.watches.len(),
            files = ?c.files.iter().map(|f| f.name).collect::<Vec<_>>(),
            "collectors started"
        );
        Ok(c)
    }

    /// Stops every watch (after writing what is still arriving, at most a couple of seconds),
    /// flushes and closes the files, and says how each went.
    pub async fn stop(self) -> CollectReport {
        let Collectors { stop, files, watches, notes } = self;
        stop.send_replace(true);
        let mut report = CollectReport {
            files: files
                .iter()
                .map(|f| FileReport {
                    file: f.name.to_string(),
                    path: f.path.clone(),
                    records: 0,
                    restarts: 0,
                    relists: 0,
                    errors: 0,
                    error_samples: Vec::new(),
                })
                .collect(),
            notes,
        };
        for w in watches {
            let stats = w.task.await.unwrap_or_else(|e| WatchStats {
                errors: 1,
                error_samples: vec![format!("{}: the watch task failed: {e}", w.name)],
                ..Default::default()
            });
            if let Some(r) = report.files.get_mut(w.file) {
                r.restarts = r.restarts.saturating_add(stats.restarts);
                r.relists = r.relists.saturating_add(stats.relists);
                add_errors(r, stats.errors, stats.error_samples);
            }
        }
        drop(stop);
        for (f, r) in files.into_iter().zip(report.files.iter_mut()) {
            let stats = f.task.await.unwrap_or_else(|e| FileStats {
                errors: 1,
                error_samples: vec![format!("{}: the writer task failed: {e}", f.path.display())],
                ..Default::default()
            });
            r.records = stats.records;
            add_errors(r, stats.errors, stats.error_samples);
        }
        if report.errors() > 0 {
            tracing::warn!(%report, "collectors stopped with errors");
        } else {
            tracing::info!(%report, "collectors stopped");
        }
        report
    }

    /// Opens `name` in `dir` and starts its writer; its index.
    async fn open(&mut self, dir: &std::path::Path, name: &'static str) -> Result<usize, CollectError> {
        let path = dir.join(name);
        let file = writer::open(&path).await.map_err(|source| CollectError::File { path: path.clone(), source })?;
        let (lines, rx) = mpsc::channel(writer::CHANNEL_LINES);
        let task = tokio::spawn(writer::run(path.clone(), file, rx, writer::FLUSH_EVERY));
        self.files.push(FileSlot { name, path, lines: Some(lines), task });
        Ok(self.files.len().saturating_sub(1))
    }

    /// Starts a JSON watch of `api` (kube-runtime's watcher) writing to file `file`, keeping the
    /// objects `keep` accepts: for the kinds without protobuf (custom resources).
    #[allow(clippy::too_many_arguments)]
    fn watch<K, D>(
        &mut self,
        file: usize,
        name: &str,
        api: Api<K>,
        config: watcher::Config,
        diff: D,
        stop: &signal::Receiver<bool>,
        keep: impl Fn(&K) -> bool + Send + Sync + 'static,
    ) where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        D: Diff<Object = K> + Send + 'static,
        D::State: Send,
        D::Record: Send,
    {
        let final_list = final_list(api.clone(), &config);
        let stream = watcher(api, config).default_backoff();
        self.spawn(file, name, stream, final_list, Tracker::new(diff, keep), stop);
    }

    /// Starts a protobuf watch of a built-in kind (see [`proto`]), as [`Collectors::watch`].
    #[allow(clippy::too_many_arguments)]
    fn watch_pb<K, D>(
        &mut self,
        file: usize,
        name: &str,
        api: ProtoApi<K>,
        config: watcher::Config,
        diff: D,
        stop: &signal::Receiver<bool>,
        keep: impl Fn(&K) -> bool + Send + Sync + 'static,
    ) where
        K: Resource<DynamicType = ()> + proto::Protobuf + Send + 'static,
        D: Diff<Object = K> + Send + 'static,
        D::State: Send,
        D::Record: Send,
    {
        let final_list = proto_final_list(api.clone(), &config);
        let stream = proto_watch::watcher(api, config).default_backoff();
        self.spawn(file, name, stream, final_list, Tracker::new(diff, keep), stop);
    }

    /// Runs one watch's `stream` through its tracker into file `file`.
    fn spawn<D, S>(
        &mut self,
        file: usize,
        name: &str,
        stream: S,
        final_list: watch::FinalList<D::Object>,
        tracker: Tracker<D>,
        stop: &signal::Receiver<bool>,
    ) where
        D: Diff + Send + 'static,
        D::Object: Resource + Send + 'static,
        D::State: Send,
        D::Record: Send,
        S: futures::Stream<Item = Result<watcher::Event<D::Object>, watcher::Error>> + Send + 'static,
    {
        let Some(lines) = self.files.get(file).and_then(|f| f.lines.clone()) else { return };
        let (ready_tx, ready) = signal::channel(Readiness::Listing(None));
        let task = tokio::spawn(watch::run(
            name.to_string(),
            stream,
            tracker,
            Some(final_list),
            lines,
            ready_tx,
            stop.clone(),
        ));
        self.watches.push(WatchSlot { name: name.to_string(), file, ready, task });
    }

    /// Starts the watch of one workload kind.
    fn workload<K>(
        &mut self,
        file: usize,
        name: &str,
        client: &kube::Client,
        scope: &Scope,
        stop: &signal::Receiver<bool>,
    ) where
        K: workloads::Workload<Scope = k8s_openapi::NamespaceResourceScope> + proto::WorkloadTags + 'static,
    {
        // As for pods: cluster-wide for a prefix, kept to its namespaces here (no label selects a
        // run's ReplicaSets: they carry their pod template's labels, not the Deployment's).
        let api = match scope {
            Scope::Namespace(ns) => ProtoApi::<WorkloadView<K>>::namespaced(client.clone(), ns),
            Scope::Prefix { .. } => ProtoApi::<WorkloadView<K>>::all(client.clone()),
        };
        self.watch_pb(
            file,
            name,
            api,
            watcher::Config::default(),
            workloads::Workloads::<K>::default(),
            stop,
            in_scope(scope),
        );
    }

    /// Waits until every watch has listed, or `timeout`.
    async fn wait_listed(&mut self, timeout: Duration) -> Result<(), CollectError> {
        let all = futures::future::join_all(
            self.watches.iter_mut().map(|w| async { w.ready.wait_for(|r| *r == Readiness::Listed).await.is_ok() }),
        );
        let ended = match tokio::time::timeout(timeout, all).await {
            Ok(results) => results.iter().any(|ok| !ok),
            Err(_) => true,
        };
        if !ended {
            return Ok(());
        }
        let pending: Vec<String> = self
            .watches
            .iter()
            .filter_map(|w| match &*w.ready.borrow() {
                Readiness::Listed => None,
                Readiness::Listing(Some(e)) => Some(format!("{} (last error: {e})", w.name)),
                Readiness::Listing(None) => Some(w.name.clone()),
            })
            .collect();
        Err(CollectError::NotListed { timeout, pending })
    }
}

/// Whether an object is in `scope`, by its namespace.
fn in_scope<K: Resource>(scope: &Scope) -> impl Fn(&K) -> bool + Send + Sync + 'static {
    let scope = scope.clone();
    move |obj: &K| scope.contains(obj.meta().namespace.as_deref().unwrap_or_default())
}

fn add_errors(r: &mut FileReport, errors: u64, samples: Vec<String>) {
    r.errors = r.errors.saturating_add(errors);
    let room = watch::ERROR_SAMPLES.saturating_sub(r.error_samples.len());
    r.error_samples.extend(samples.into_iter().take(room));
}

/// Pages of `api` with the watch's selectors, in protobuf, for the list a watch makes at stop.
fn proto_final_list<K>(api: ProtoApi<K>, config: &watcher::Config) -> watch::FinalList<K>
where
    K: Resource<DynamicType = ()> + proto::Protobuf + Send + 'static,
{
    let config = config.clone();
    Box::new(move |token: Option<String>| {
        let api = api.clone();
        let mut params = proto_watch::list_params(&config, token);
        params.limit = Some(FINAL_LIST_PAGE);
        Box::pin(async move {
            let (items, meta) = api.list(&params).await.map_err(|e| e.to_string())?;
            Ok((items, meta.continue_))
        })
    })
}

/// Pages of `api` with the watch's selectors, for the list a watch makes at stop.
fn final_list<K>(api: Api<K>, config: &watcher::Config) -> watch::FinalList<K>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
{
    let mut params = ListParams::default().limit(FINAL_LIST_PAGE);
    params.label_selector = config.label_selector.clone();
    params.field_selector = config.field_selector.clone();
    Box::new(move |token: Option<String>| {
        let (api, mut params) = (api.clone(), params.clone());
        params.continue_token = token;
        Box::pin(async move {
            let list = api.list(&params).await.map_err(|e| e.to_string())?;
            Ok((list.items, list.metadata.continue_))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_scope_takes_only_its_virtual_namespaces() {
        let scope = Scope::Prefix { prefix: "virtual".into(), simulation: Some("sim".into()) };
        assert!(scope.contains("virtual-default"));
        assert!(scope.contains("virtual-kube-system"));
        assert!(!scope.contains("virtual"));
        assert!(!scope.contains("virtual-"));
        assert!(!scope.contains("virtualx-default"));
        assert!(!scope.contains("default"));
        assert!(!scope.contains(""));
        let one = Scope::Namespace("play".into());
        assert!(one.contains("play") && !one.contains("play-2"));
        assert_eq!(scope.to_string(), "namespaces virtual-*");
    }

    #[test]
    fn the_report_sums_up_each_file() {
        let mut report = CollectReport::default();
        assert_eq!(report.to_string(), "nothing collected");
        let mut pods = FileReport {
            file: files::PODS.into(),
            path: PathBuf::from("/run/pods.jsonl"),
            records: 12,
            restarts: 1,
            relists: 1,
            errors: 0,
            error_samples: vec![],
        };
        add_errors(&mut pods, 7, (0..7).map(|i| format!("e{i}")).collect());
        report.files.push(pods);
        report.files.push(FileReport {
            file: files::NODES.into(),
            path: PathBuf::from("/run/nodes.jsonl"),
            records: 3,
            restarts: 0,
            relists: 0,
            errors: 0,
            error_samples: vec![],
        });
        assert_eq!(
            report.to_string(),
            "pods.jsonl: 12 records, 1 restarts (1 re-lists), 7 errors; nodes.jsonl: 3 records"
        );
        assert_eq!(report.errors(), 7);
        assert_eq!(report.file(files::PODS).map(|f| f.error_samples.len()), Some(watch::ERROR_SAMPLES));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["files"][1],
            serde_json::json!({"file": "nodes.jsonl", "path": "/run/nodes.jsonl", "records": 3, "restarts": 0, "relists": 0, "errors": 0})
        );
    }

    #[tokio::test]
    async fn a_watch_streams_whole_records_to_its_file_across_a_lost_watch() {
        use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        use kube::runtime::watcher::Event as Ev;
        use records::{PodChange, PodRecord};

        let pod = |name: &str, ns: &str, phase: &str| -> PodView {
            view::of(&Pod {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    uid: Some(format!("uid-{name}")),
                    ..Default::default()
                },
                spec: Some(PodSpec::default()),
                status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            Collectors { stop: signal::channel(false).0, files: Vec::new(), watches: Vec::new(), notes: Vec::new() };
        let file = c.open(dir.path(), files::PODS).await.unwrap();
        let lines = c.files[file].lines.take().unwrap();
        let scope = Scope::Prefix { prefix: "virtual".into(), simulation: None };
        let events = vec![
            Ok(Ev::Init),
            Ok(Ev::InitApply(pod("a", "virtual-default", "Pending"))),
            Ok(Ev::InitApply(pod("x", "kube-system", "Running"))),
            Ok(Ev::InitDone),
            Ok(Ev::Apply(pod("b", "virtual-web", "Pending"))),
            Ok(Ev::Apply(pod("a", "virtual-default", "Running"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Ev::Init),
            Ok(Ev::InitApply(pod("b", "virtual-web", "Running"))),
            Ok(Ev::InitDone),
        ];
        let (ready_tx, _ready) = signal::channel(Readiness::Listing(None));
        let tracker = Tracker::new(pods::Pods, in_scope(&scope));
        let stats = watch::run(
            "pods".into(),
            futures::stream::iter(events),
            tracker,
            None,
            lines,
            ready_tx,
            c.stop.subscribe(),
        )
        .await;
        assert_eq!((stats.restarts, stats.relists, stats.errors), (1, 1, 1));
        let report = c.stop().await;
        assert_eq!(report.files[0].records, 7);
        let text = std::fs::read_to_string(dir.path().join(files::PODS)).unwrap();
        let written: Vec<(String, PodChange, Option<String>)> = text
            .lines()
            .map(|l| serde_json::from_str::<PodRecord>(l).unwrap())
            .map(|r| (r.name, r.change, r.phase))
            .collect();
        let phase = |p: &str| Some(p.to_string());
        assert_eq!(
            written,
            [
                ("a".into(), PodChange::Created, None),
                ("a".into(), PodChange::Phase, phase("Pending")),
                ("b".into(), PodChange::Created, None),
                ("b".into(), PodChange::Phase, phase("Pending")),
                ("a".into(), PodChange::Phase, phase("Running")),
                ("b".into(), PodChange::Phase, phase("Running")),
                ("a".into(), PodChange::Deleted, None),
            ]
        );
    }

    #[tokio::test]
    async fn collectors_with_nothing_to_collect_stop_with_an_empty_report() {
        let (stop, _) = signal::channel(false);
        let c = Collectors { stop, files: Vec::new(), watches: Vec::new(), notes: vec!["n".into()] };
        let report = c.stop().await;
        assert_eq!(report, CollectReport { files: vec![], notes: vec!["n".into()] });
    }
}
