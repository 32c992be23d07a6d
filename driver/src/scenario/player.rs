//! One play of a scenario, stage by stage:
//!
//! 1. read and validate the scenario (a directory before any request; a Scenario object right
//!    after reading it) and resolve every kind it names: nothing is applied if this fails;
//! 2. create the log folder, write `scenario.yaml`;
//! 3. make the namespace (refused while another play that made it runs), take the play's Lease,
//!    look up every object to apply (one that exists and is not this play's is refused, all of
//!    them named, before anything is applied; `--adopt` takes them over), create the optional
//!    manifests the cluster serves (one warning per kind it does not) and the manifests, wait
//!    (watch) until the Deployments are available;
//! 4. play the steps at their absolute deadlines, logging each action and a snapshot per step;
//! 5. clean up exactly what the play created or adopted, by UID (unless `--keep`), write
//!    `summary.json`, upload the folder to S3.
//!
//! A failure in 3 or 4 still cleans up and uploads; failures are collected, not fatal, and the
//! run exits non-zero if there is any. SIGINT/SIGTERM stop the play and go on to the cleanup; a
//! second one exits at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use rehearsal_crds::conditions::{self, Status};
use rehearsal_crds::{Scenario, Simulation};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use super::actions::{ActionKind, PlannedAction};
use super::apply::{self, Kind, KindKey, Kinds, PlayNamespace, install_hint};
use super::available::wait_available;
use super::cleanup::cleanup;
use super::convert::render_manifest;
use super::error::ScenarioError;
use super::execute::{Target, batches, perform};
use super::logs::{ActionLog, ActionRecord, LogLayout, Outcome, millis, rfc3339, write_json};
use super::objects::deployment_name;
use super::ownership::{self, Identity, LeaseGuard, Ledger};
use super::plan::{step_offset, step_sequence};
use super::settings::{Settings, Source};
use super::snapshot::{self, StepSnapshot};
use super::source::{self, Playable};
use super::summary::{ActionCounts, Quantiles, StepCounts, Summary};
use super::upload;
use crate::artifacts::evidence::{Evidence, EvidenceSettings, S3Target};
use crate::artifacts::layout::RunFolder;
use crate::audit::AuditScope;
use crate::collect::Scope as CollectScope;
use crate::own_thread;
use crate::replay::clock::{Clock, PreciseClock, lateness};
use crate::report::{Quantiles as ReportQuantiles, RunFacts, RunKind, RunResult};
use crate::status::Reporter;
use rehearsal_crds::Collect;

/// Failures kept in the summary and the Replay condition; the rest are counted.
const MAX_FAILURES_LISTED: usize = 20;

/// Step snapshots being read at once, at most.
const SNAPSHOTS_IN_FLIGHT: usize = 8;

/// Why a play did not start. Nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The scenario cannot be read, or breaks the format's rules.
    #[error("{}", invalid_message(.origin, .source))]
    Invalid {
        /// The directory or Scenario.
        origin: String,
        /// Every problem.
        #[source]
        source: ScenarioError,
    },
    /// The cluster, the Scenario object or the log folder could not be used.
    #[error("{0}; nothing was applied")]
    Setup(String),
}

/// Problems one per line under a heading; a file-level error (which names its file) on one line.
fn invalid_message(origin: &str, e: &ScenarioError) -> String {
    match e {
        ScenarioError::Invalid(_) => format!("{origin} is invalid; nothing was applied:\n{e}"),
        _ => format!("{e}; nothing was applied"),
    }
}

impl PlayError {
    /// Exit code: 2 for a scenario that cannot be played anywhere, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            PlayError::Invalid { .. } => 2,
            PlayError::Setup(_) => 1,
        }
    }
}

/// What a play did.
#[derive(Debug, Clone)]
pub struct PlayReport {
    /// The log folder.
    pub log_dir: PathBuf,
    /// The summary, as written.
    pub summary: Summary,
}

impl PlayReport {
    /// Whether everything went well (no action or stage failed).
    pub fn succeeded(&self) -> bool {
        self.summary.failures.is_empty()
    }
}

/// Builds a client from a ':'-separated kubeconfig list, or in-cluster / ~/.kube/config.
pub async fn build_client(kubeconfig: Option<&str>) -> Result<kube::Client, String> {
    crate::client::build(kubeconfig).await
}

/// A stop request (first SIGINT/SIGTERM); a second one exits at once.
fn stop_on_signal() -> watch::Receiver<bool> {
    let signals = crate::signals::Signals::listen("play");
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        signals.stopped().await;
        let _ = tx.send(true);
        signals.skipped().await;
        std::process::exit(130);
    });
    rx
}

/// Lists the cluster for one step's snapshot and writes its file.
async fn take_snapshot(
    client: kube::Client,
    namespace: String,
    mut snap: StepSnapshot,
    path: PathBuf,
    slots: Arc<Semaphore>,
    stream: Option<(tokio::sync::mpsc::Sender<PathBuf>, PathBuf)>,
) -> Result<(), String> {
    // The slot is awaited here, in the snapshot's own task: the play never waits for one.
    let _slot = slots.acquire_owned().await.ok();
    snap.collected = rfc3339(Timestamp::now());
    let lists = snapshot::collect(&client, &namespace).await;
    snap.deployments = lists.deployments;
    snap.pdbs = lists.pdbs;
    snap.pods = lists.pods;
    snap.nodes = lists.nodes;
    snap.errors = lists.errors;
    // Serialising thousands of pods and writing the file: a blocking thread's work.
    let path = tokio::task::spawn_blocking(move || {
        write_json(&path, &snap).map(|()| path.clone()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    })
    .await
    .map_err(|e| format!("writing a step snapshot failed: {e}"))??;
    if let Some((tx, dir)) = stream {
        upload::stream(Some(&tx), &dir, &path);
    }
    Ok(())
}

/// The name of the thread the steps are played on.
const STEPS_THREAD: &str = "rehearsal-steps";

/// Resolves when a stop was requested.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        // The signal task is gone: no stop can come any more.
        std::future::pending::<()>().await;
    }
}

/// Plays the scenario of `settings`. Returns the report (check [`PlayReport::succeeded`]), or
/// why it could not start.
pub async fn play(settings: &Settings) -> Result<PlayReport, PlayError> {
    let run_start = Timestamp::now();
    let (playable, client, origin) = match &settings.source {
        Source::Directory(dir) => {
            let origin = format!("scenario directory {}", dir.display());
            let loaded = source::from_directory(dir, settings.namespace.as_deref());
            let client = build_client(settings.kubeconfig.as_deref()).await;
            match loaded {
                Ok(p) => {
                    // Logged here, once per play, before anything else can fail.
                    for warning in &p.warnings {
                        tracing::warn!("{warning}");
                    }
                    (p, client.map_err(PlayError::Setup)?, origin)
                }
                Err(e) => {
                    if let Ok(client) = &client {
                        report_invalid(client, settings, &e).await;
                    }
                    return Err(PlayError::Invalid { origin, source: e });
                }
            }
        }
        Source::Reference(name) => {
            let client = build_client(settings.kubeconfig.as_deref()).await.map_err(PlayError::Setup)?;
            let api: Api<Scenario> = Api::all(client.clone());
            let object = match api.get_opt(name).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(PlayError::Setup(format!("Scenario {name:?} not found"))),
                Err(e) => return Err(PlayError::Setup(format!("cannot read Scenario {name:?}: {e}"))),
            };
            let origin = format!("Scenario {name}");
            match source::from_object(object, settings.namespace.as_deref()) {
                Ok(p) => (p, client, origin),
                Err(e) => {
                    report_invalid(&client, settings, &e).await;
                    return Err(PlayError::Invalid { origin, source: e });
                }
            }
        }
    };
    let (reporter, collect) = reporter(&client, settings).await?;

    // Every kind the scenario names, before anything is applied.
    let resolved = match resolve_kinds(&client, &playable).await {
        Ok(r) => r,
        Err((reason, message)) => {
            reporter.stage(conditions::REPLAY, Status::False, reason, message.clone()).await;
            return Err(PlayError::Setup(message));
        }
    };
    for warning in &resolved.skipped {
        tracing::warn!("{warning}");
    }

    // The Karpenter driver's <run id>/<start time>/, or <simulation>/<index>/ for a
    // Simulation's run.
    let layout = match (&settings.sim_name, settings.run_index) {
        (Some(sim), Some(index)) => {
            LogLayout::for_simulation(&settings.log_dir, settings.s3_prefix.as_deref(), sim, index)
        }
        _ => LogLayout::create(&settings.log_dir, &playable.run_id, run_start),
    };
    let layout = layout.map_err(|e| {
        PlayError::Setup(format!("cannot create the log folder under {}: {e}", settings.log_dir.display()))
    })?;
    tracing::info!(dir = %layout.dir.display(), "logs");
    let namespace = playable.scenario.spec.namespace.clone();
    let evidence_settings = EvidenceSettings {
        folder: RunFolder { dir: layout.dir.clone(), key_prefix: layout.relative.clone() },
        s3: settings.s3.as_ref().map(|t| S3Target { bucket: t.bucket.clone(), region: Some(t.region.clone()) }),
        collect: collect.clone(),
        scope: CollectScope::Namespace(namespace.clone()),
        audit_scope: AuditScope {
            namespaces: vec![namespace],
            namespace_prefix: None,
            simulation: settings.sim_name.clone(),
        },
        audit_log: settings.audit_log.clone(),
        audit_webhook_listen: settings.audit_webhook_listen,
    };
    // S3 before anything is applied: a run whose evidence cannot be kept is not started.
    let mut evidence = match Evidence::prepare(evidence_settings).await {
        Ok(e) => e,
        Err(e) => {
            reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::False, "NotWritable", e.to_string()).await;
            return Err(PlayError::Setup(e.to_string()));
        }
    };
    let missing = evidence.start(&client).await;
    if missing.is_empty() {
        reporter.stage(conditions::EVIDENCE, Status::True, "Recording", "collectors and audit events recording").await;
    } else {
        reporter.stage(conditions::EVIDENCE, Status::True, "Partial", missing.join("; ")).await;
    }
    let identity = Identity {
        run_id: playable.run_id.clone(),
        play_id: settings.play_id.clone().unwrap_or_else(ownership::new_play_id),
        simulation: settings.sim_name.clone(),
    };
    tracing::info!(play = %identity.play_id, run = %identity.run_id, "play identity (label {})", rehearsal_crds::keys::PLAY_LABEL);
    let mut play = Play::new(&client, settings, &playable, &resolved, &layout, &reporter, origin, run_start, identity);
    play.evidence = Some(evidence);
    play.thresholds = collect.thresholds;
    let mut stop = stop_on_signal();
    play.run(&mut stop).await;
    Ok(PlayReport { log_dir: layout.dir.clone(), summary: play.finish().await })
}

/// The Reporter of `--sim-name` (logging only without it), and what the Simulation asks to
/// collect (everything without one).
async fn reporter(client: &kube::Client, settings: &Settings) -> Result<(Reporter, Collect), PlayError> {
    let Some(name) = &settings.sim_name else { return Ok((Reporter::new(None, "", None), Collect::default())) };
    let api: Api<Simulation> = Api::all(client.clone());
    match api.get_opt(name).await {
        Ok(Some(sim)) => {
            let collect = sim.spec.collect.clone().unwrap_or_default();
            Ok((Reporter::new(Some(api), name, sim.metadata.generation), collect))
        }
        Ok(None) => Err(PlayError::Setup(format!("Simulation {name:?} (--sim-name) not found"))),
        Err(e) => Err(PlayError::Setup(format!("cannot read Simulation {name:?} (--sim-name): {e}"))),
    }
}

/// Tells the Simulation, if any, that its scenario is invalid.
async fn report_invalid(client: &kube::Client, settings: &Settings, e: &ScenarioError) {
    if settings.sim_name.is_none() {
        return;
    }
    if let Ok((reporter, _)) = reporter(client, settings).await {
        reporter.stage(conditions::REPLAY, Status::False, "InvalidScenario", e.to_string()).await;
    }
}

/// The kinds of a play.
struct Resolved {
    kinds: Kinds,
    /// Optional manifests the cluster serves, by index.
    optional: Vec<usize>,
    /// One warning per kind of optional manifest the cluster does not serve.
    skipped: Vec<String>,
}

/// Resolves every kind: the manifests' and APPLY'd objects' must be served (else the message
/// lists each missing one); optional manifests of kinds not served are left out with one
/// warning per kind; DELETE's kinds may be missing (that action then fails).
async fn resolve_kinds(client: &kube::Client, p: &Playable) -> Result<Resolved, (&'static str, String)> {
    let discovery_failed = |e: apply::ApplyError| ("DiscoveryFailed", e.to_string());
    let spec = &p.scenario.spec;
    let mut required: BTreeMap<KindKey, String> = BTreeMap::new();
    for (i, m) in spec.manifests.iter().enumerate() {
        if let Some(key) = apply::kind_key(&m.0) {
            required.entry(key).or_insert_with(|| format!("manifests[{i}] ({})", apply::what(&m.0)));
        }
    }
    let mut deletes: BTreeSet<KindKey> = BTreeSet::new();
    for step in p.plan.iter().flatten() {
        match &step.kind {
            ActionKind::Apply { manifest } => {
                if let Some(key) = apply::kind_key(manifest) {
                    required.entry(key).or_insert_with(|| {
                        format!(
                            "step {} ({:?}), action {} (APPLY)",
                            step.step_index + 1,
                            step.step_name,
                            step.action_index + 1
                        )
                    });
                }
            }
            ActionKind::Delete { api_version, kind, .. } => {
                deletes.insert((api_version.clone(), kind.clone()));
            }
            _ => {}
        }
    }
    let mut kinds = Kinds::new();
    let mut missing = Vec::new();
    for (key, user) in &required {
        match apply::discover(client, key).await.map_err(discovery_failed)? {
            Some(kind) => {
                kinds.insert(key.clone(), kind);
            }
            None => missing.push(format!("{} ({}) is not served by this cluster (needed by {user})", key.1, key.0)),
        }
    }
    if !missing.is_empty() {
        return Err(("KindNotServed", missing.join("; ")));
    }
    let mut optional = Vec::new();
    // Per kind not served: the sources skipped, in order, each once.
    let mut not_served: BTreeMap<KindKey, Vec<String>> = BTreeMap::new();
    for (i, m) in spec.optional_manifests.iter().enumerate() {
        let Some(key) = apply::kind_key(&m.0) else { continue };
        if !kinds.contains_key(&key) && !not_served.contains_key(&key) {
            match apply::discover(client, &key).await.map_err(discovery_failed)? {
                Some(kind) => {
                    kinds.insert(key.clone(), kind);
                }
                None => {
                    not_served.insert(key.clone(), Vec::new());
                }
            }
        }
        match not_served.get_mut(&key) {
            Some(sources) => {
                let source =
                    p.optional_sources.get(i).cloned().unwrap_or_else(|| format!("optional manifest {}", i + 1));
                if !sources.contains(&source) {
                    sources.push(source);
                }
            }
            None => optional.push(i),
        }
    }
    let skipped = not_served
        .iter()
        .map(|((api_version, kind), sources)| {
            format!(
                "{kind} ({api_version}) is not served by this cluster: skipped {}; {}",
                sources.join(", "),
                install_hint(api_version)
            )
        })
        .collect();
    for key in deletes {
        if !kinds.contains_key(&key)
            && let Some(kind) = apply::discover(client, &key).await.map_err(discovery_failed)?
        {
            kinds.insert(key, kind);
        }
    }
    Ok(Resolved { kinds, optional, skipped })
}

/// The state of one play, from the log folder on.
struct Play<'a> {
    client: &'a kube::Client,
    settings: &'a Settings,
    playable: &'a Playable,
    resolved: &'a Resolved,
    layout: &'a LogLayout,
    reporter: &'a Reporter,
    origin: String,
    run_start: Timestamp,
    namespace: Option<PlayNamespace>,
    failures: Vec<String>,
    failures_unlisted: usize,
    steps_played: usize,
    actions: ActionCounts,
    step_lateness: Vec<Duration>,
    action_lateness: Vec<Duration>,
    steps_start: Option<Timestamp>,
    steps_end: Option<Timestamp>,
    cleanup: String,
    identity: Identity,
    /// What the play created or took over: what the cleanup deletes.
    ledger: Arc<Ledger>,
    /// Renews the play's Lease while the play runs.
    lease: Option<LeaseGuard>,
    /// The run's evidence: collectors, audit, uploads as the play goes, summary and report.
    evidence: Option<Evidence>,
    /// `spec.collect.thresholds` of the Simulation.
    thresholds: Vec<rehearsal_crds::simulation::Threshold>,
    /// A signal stopped the play.
    steps_interrupted: bool,
}

impl<'a> Play<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        client: &'a kube::Client,
        settings: &'a Settings,
        playable: &'a Playable,
        resolved: &'a Resolved,
        layout: &'a LogLayout,
        reporter: &'a Reporter,
        origin: String,
        run_start: Timestamp,
        identity: Identity,
    ) -> Self {
        Play {
            client,
            settings,
            playable,
            resolved,
            layout,
            reporter,
            origin,
            run_start,
            namespace: None,
            failures: Vec::new(),
            failures_unlisted: 0,
            steps_played: 0,
            actions: ActionCounts::default(),
            step_lateness: Vec::new(),
            action_lateness: Vec::new(),
            steps_start: None,
            steps_end: None,
            cleanup: "not needed: nothing was created".to_string(),
            identity,
            ledger: Arc::new(Ledger::default()),
            lease: None,
            evidence: None,
            thresholds: Vec::new(),
            steps_interrupted: false,
        }
    }

    fn namespace_name(&self) -> &str {
        &self.playable.scenario.spec.namespace
    }

    fn fail(&mut self, message: String) {
        tracing::warn!("{message}");
        if self.failures.len() < MAX_FAILURES_LISTED {
            self.failures.push(message);
        } else {
            self.failures_unlisted += 1;
        }
    }

    /// Stages 2 to 4; failures are recorded, never returned.
    async fn run(&mut self, stop: &mut watch::Receiver<bool>) {
        match render_manifest(&self.playable.scenario) {
            Ok(yaml) => {
                if let Err(e) = std::fs::write(self.layout.scenario_file(), yaml) {
                    self.fail(format!("cannot write {}: {e}", self.layout.scenario_file().display()));
                } else {
                    let tx = self.evidence.as_ref().and_then(Evidence::stream_sender);
                    upload::stream(tx.as_ref(), &self.layout.dir, &self.layout.scenario_file());
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
        let set_up = tokio::select! {
            r = self.set_up() => r,
            _ = stopped(stop) => Err(("Interrupted", "interrupted before the first step".to_string())),
        };
        match set_up {
            Ok(()) => self.play_steps_apart(stop).await,
            Err((reason, message)) => {
                self.steps_interrupted = reason == "Interrupted";
                self.reporter.stage(conditions::REPLAY, Status::False, reason, message.clone()).await;
                self.fail(format!("{} failed: {message}", conditions::REPLAY));
            }
        }
    }

    /// The namespace, the manifests, and the wait for the Deployments.
    async fn set_up(&mut self) -> Result<(), (&'static str, String)> {
        let spec = &self.playable.scenario.spec;
        let ns = self.namespace_name().to_string();
        let n = self.resolved.optional.len() + spec.manifests.len();
        self.reporter
            .stage(
                conditions::REPLAY,
                Status::Unknown,
                "Applying",
                format!("applying {n} manifests into namespace {ns}"),
            )
            .await;
        let adopt = self.settings.adopt;
        let namespace = apply::ensure_namespace(self.client, &ns, &self.identity, adopt, self.settings.ready_timeout)
            .await
            .map_err(|e| ("NamespaceFailed", e.to_string()))?;
        self.cleanup = "pending".to_string();
        self.namespace = Some(namespace);
        self.refuse_live_plays(&ns).await?;
        let lease = ownership::hold_lease(self.client, &ns, &self.identity, &self.ledger)
            .await
            .map_err(|e| ("NamespaceFailed", e.to_string()))?;
        self.lease = Some(lease);

        // Every object looked up first: one that is not this play's refuses the play, before
        // anything is created, naming all of them.
        let labels = self.identity.labels();
        let optional = self.resolved.optional.iter().map(|&i| &spec.optional_manifests[i]);
        let mut prepared = Vec::new();
        let mut refused = Vec::new();
        for object in optional.chain(spec.manifests.iter()) {
            let Some(kind) = apply::kind_key(&object.0).and_then(|k| self.resolved.kinds.get(&k)) else {
                return Err(("ApplyFailed", format!("{}: kind not resolved", apply::what(&object.0))));
            };
            let (object, changes) = apply::prepare(&object.0, kind, &ns, &labels, self.settings.placement);
            let (standing, _) = ownership::standing(self.client, kind, &ns, &object, &self.identity)
                .await
                .map_err(|e| ("ApplyFailed", e.to_string()))?;
            if let Some(reason) = ownership::refusal(&standing, adopt) {
                refused.push(format!("{} ({reason})", apply::what(&object)));
            }
            prepared.push((kind, object, changes));
        }
        if !refused.is_empty() {
            let message = format!(
                "{} already exist{} and {} not this play's: {}; nothing was applied (delete them, play in another namespace, or pass --adopt to take them over: the play then changes them and deletes them at the end)",
                refused.len(),
                if refused.len() == 1 { "s" } else { "" },
                if refused.len() == 1 { "is" } else { "are" },
                refused.join(", ")
            );
            return Err(("ObjectsExist", message));
        }
        for (kind, object, changes) in prepared {
            if !changes.is_empty() {
                tracing::info!(object = %apply::what(&object), "placement: {}", changes.join("; "));
            }
            ownership::claim(self.client, kind, &ns, &object, &self.identity, adopt, &self.ledger)
                .await
                .map_err(|e| ("ApplyFailed", e.to_string()))?;
            tracing::info!(object = %apply::what(&object), namespace = %ns, "applied");
        }

        let deployments: Vec<&str> = spec.manifests.iter().filter_map(|m| deployment_name(&m.0)).collect();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let timeout = self.settings.ready_timeout;
        let waits = deployments.iter().map(|name| wait_available(&api, name, timeout));
        let errors: Vec<String> =
            futures::future::join_all(waits).await.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
        if !errors.is_empty() {
            return Err(("NotAvailable", errors.join("; ")));
        }
        tracing::info!(deployments = deployments.len(), "available");
        Ok(())
    }

    /// Refuses a namespace holding objects of another play that is still running (two CI jobs
    /// playing the same scenario into one namespace).
    async fn refuse_live_plays(&self, ns: &str) -> Result<(), (&'static str, String)> {
        let kinds: Vec<Kind> = self.resolved.kinds.values().cloned().collect();
        let found = ownership::other_plays_objects(self.client, &kinds, ns, &self.identity)
            .await
            .map_err(|e| ("NamespaceFailed", e.to_string()))?;
        let mut checked: BTreeMap<String, bool> = BTreeMap::new();
        for (what, play) in &found {
            let live = match checked.get(play) {
                Some(live) => *live,
                None => {
                    let live = ownership::live_play(self.client, play)
                        .await
                        .map_err(|e| ("NamespaceFailed", format!("cannot read the Leases of play {play}: {e}")))?
                        .is_some();
                    checked.insert(play.clone(), live);
                    live
                }
            };
            if live {
                return Err((
                    "NamespaceInUse",
                    format!(
                        "namespace {ns}: {what} belongs to play {play}, which is still running; wait for it to end or play in another namespace"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stage 4 on a thread of its own ([`crate::own_thread`]), with a client of its own
    /// connected before the first step; the snapshots' lists and the status updates stay on the
    /// process's runtime.
    async fn play_steps_apart(&mut self, stop: &mut watch::Receiver<bool>) {
        let main = tokio::runtime::Handle::current();
        let kubeconfig = self.settings.kubeconfig.clone();
        let play = &mut *self;
        let played = own_thread::run(STEPS_THREAD, |apart| async move {
            let client =
                if apart { own_thread::client(kubeconfig.as_deref(), play.client).await } else { play.client.clone() };
            play.play_steps(&PreciseClock, stop, &client, &main).await;
        })
        .await;
        if played.is_none() {
            self.fail("the steps' thread ended without playing them".to_string());
        }
    }

    /// Stage 4: every step at its deadline; the actions go through `client`, the snapshots run
    /// on `background`.
    async fn play_steps<C: Clock>(
        &mut self,
        clock: &C,
        stop: &mut watch::Receiver<bool>,
        client: &kube::Client,
        background: &tokio::runtime::Handle,
    ) {
        let playable = self.playable;
        let spec = &playable.scenario.spec;
        // A directory's step count has no bound of its own; the list fits an i32 in practice.
        let limit = spec.limit.unwrap_or_else(|| i32::try_from(spec.steps.len()).unwrap_or(i32::MAX));
        let sequence = step_sequence(
            u32::try_from(spec.start_step).unwrap_or(1),
            u32::try_from(limit).unwrap_or(0),
            spec.steps.len(),
        );
        let total = sequence.len();
        let interval = spec.timestep / self.settings.speed;
        self.reporter
            .stage(
                conditions::REPLAY,
                Status::Unknown,
                "Playing",
                format!("playing {total} steps from step {}, one every {interval} s", spec.start_step),
            )
            .await;
        self.reporter.progress(0, total as i64, "steps", true).await;
        let mut log = match ActionLog::create(&self.layout.actions_file()) {
            Ok(log) => Some(log),
            Err(e) => {
                self.fail(format!("cannot write {}: {e}", self.layout.actions_file().display()));
                None
            }
        };
        let (identity, ledger) = (self.identity.clone(), self.ledger.clone());
        let target = Target {
            client,
            namespace: &spec.namespace,
            kinds: &self.resolved.kinds,
            identity: &identity,
            ledger: &ledger,
            adopt: self.settings.adopt,
            placement: self.settings.placement,
        };
        let snapshot_slots = Arc::new(Semaphore::new(SNAPSHOTS_IN_FLIGHT));
        let mut snapshots = Vec::new();
        let t0 = clock.now();
        let wall0 = Timestamp::now();
        let wall = |at: tokio::time::Instant| wall0.checked_add(at.saturating_duration_since(t0)).unwrap_or(wall0);
        self.steps_start = Some(wall0);
        let mut interrupted = false;
        for (k, &index) in sequence.iter().enumerate() {
            let due = t0 + step_offset(k as u64, spec.timestep, self.settings.speed);
            tokio::select! {
                _ = clock.sleep_until(due) => {}
                _ = stopped(stop) => interrupted = true,
            }
            if interrupted {
                break;
            }
            let started = clock.now();
            let step_late = lateness(due, started);
            self.step_lateness.push(step_late);
            let step = &spec.steps[index];
            let planned: &[PlannedAction] = playable.plan.get(index).map(Vec::as_slice).unwrap_or_default();
            let mut failed_here = 0;
            for batch in batches(planned) {
                let actions = &planned[batch];
                let run_all = futures::future::join_all(actions.iter().map(|action| async {
                    let begun = clock.now();
                    let result = perform(&target, &action.kind).await;
                    (begun, result, clock.now())
                }));
                let results = tokio::select! {
                    r = run_all => r,
                    _ = stopped(stop) => {
                        interrupted = true;
                        let now = clock.now();
                        actions.iter().map(|_| (now, Err("interrupted".to_string()), now)).collect()
                    }
                };
                for (action, (begun, result, ended)) in actions.iter().zip(results) {
                    let late = lateness(due, begun);
                    self.action_lateness.push(late);
                    self.actions.total += 1;
                    let (outcome, message) = match result {
                        Ok(note) => {
                            self.actions.ok += 1;
                            (Outcome::Ok, note)
                        }
                        Err(message) => {
                            self.actions.failed += 1;
                            failed_here += 1;
                            self.fail(format!(
                                "step {} ({:?}), action {} ({}): {message}",
                                k + 1,
                                step.name,
                                action.action_index + 1,
                                action.action_type.as_str()
                            ));
                            (Outcome::Error, Some(message))
                        }
                    };
                    let data = step
                        .actions
                        .get(action.action_index)
                        .and_then(|a| serde_json::to_value(&a.data).ok())
                        .unwrap_or(Value::Null);
                    let record = ActionRecord {
                        step: k + 1,
                        step_index: index + 1,
                        step_name: step.name.clone(),
                        action: action.action_index + 1,
                        type_: action.action_type.as_str().to_string(),
                        data,
                        comment: action.comment.clone(),
                        due: rfc3339(wall(due)),
                        started: rfc3339(wall(begun)),
                        lateness_ms: millis(late),
                        duration_ms: millis(ended.saturating_duration_since(begun)),
                        result: outcome,
                        message,
                    };
                    if let Some(writer) = &mut log
                        && let Err(e) = writer.write(&record)
                    {
                        log = None;
                        self.fail(format!("cannot write {}: {e}", self.layout.actions_file().display()));
                    }
                }
                if interrupted {
                    break;
                }
            }
            // The lists are requested once the step's actions finished, and read in the
            // background: a slow answer must not delay the next step. At most
            // SNAPSHOTS_IN_FLIGHT are read at once; the others wait in their own tasks (each
            // records when its lists were collected), never the play.
            let snap = StepSnapshot {
                step: k + 1,
                step_index: index + 1,
                step_name: step.name.clone(),
                due: rfc3339(wall(due)),
                started: rfc3339(wall(started)),
                lateness_ms: millis(step_late),
                actions: planned.len(),
                actions_failed: failed_here,
                collected: rfc3339(Timestamp::now()),
                deployments: Vec::new(),
                pdbs: Vec::new(),
                pods: Vec::new(),
                nodes: Vec::new(),
                errors: Vec::new(),
            };
            let path = self.layout.step_file(k + 1, total, &step.name);
            let stream =
                self.evidence.as_ref().and_then(Evidence::stream_sender).map(|tx| (tx, self.layout.dir.clone()));
            snapshots.push(background.spawn(take_snapshot(
                self.client.clone(),
                spec.namespace.clone(),
                snap,
                path,
                snapshot_slots.clone(),
                stream,
            )));
            self.steps_played = k + 1;
            tracing::info!(
                step = k + 1,
                of = total,
                name = %step.name,
                actions = planned.len(),
                failed = failed_here,
                late_ms = millis(step_late),
                "step played"
            );
            self.reporter.progress((k + 1) as i64, total as i64, "steps", false).await;
            if interrupted {
                break;
            }
        }
        self.steps_end = Some(Timestamp::now());
        for handle in snapshots {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => self.fail(message),
                Err(e) => self.fail(format!("a step snapshot was lost: {e}")),
            }
        }
        self.reporter.progress(self.steps_played as i64, total as i64, "steps", true).await;
        let lateness = Quantiles::of(&self.step_lateness);
        let summary = format!(
            "played {} of {total} steps: {} actions, {} failed; step lateness p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.steps_played, self.actions.total, self.actions.failed, lateness.p50, lateness.p99, lateness.max
        );
        if interrupted {
            self.reporter.stage(conditions::REPLAY, Status::False, "Interrupted", summary.clone()).await;
            self.fail(format!("interrupted after step {} of {total}", self.steps_played));
            self.steps_interrupted = true;
        } else if self.actions.failed > 0 {
            self.reporter.stage(conditions::REPLAY, Status::False, "ActionsFailed", summary).await;
        } else {
            self.reporter.stage(conditions::REPLAY, Status::True, "Completed", summary).await;
        }
    }

    /// Stage 5: summary and upload, cleanup, then the collectors stopped, `summary.json`,
    /// `report.html`, `manifest.json` and the upload again with the cleanup's result: a driver
    /// killed during a long cleanup has already left its evidence.
    async fn finish(mut self) -> Summary {
        let mut evidence = self.evidence.take();
        if let Some(e) = evidence.as_mut()
            && self.namespace.is_some()
            && !self.settings.keep
        {
            e.checkpoint(&self.facts(&self.summary(None))).await;
        }
        if let Some(namespace) = self.namespace.clone() {
            if self.settings.keep {
                self.cleanup = format!("kept (--keep): namespace {}, label {}", namespace.name, self.label());
                // Not running any more: a later play may take over what this one kept.
                self.release_lease(&namespace.name).await;
                self.reporter.stage(conditions::CLEANUP, Status::True, "Kept", self.cleanup.clone()).await;
            } else {
                self.clean_up(&namespace).await;
            }
        }
        let Some(evidence) = evidence else { return self.summary(None) };
        let uri = evidence.uri();
        let facts = self.facts(&self.summary(uri.clone()));
        let finished = evidence.finish(&facts).await;
        for note in &finished.notes {
            tracing::warn!("{note}");
        }
        let mut rewrite = false;
        if let Some(written) = &finished.written {
            let breaches = written.breaches().to_vec();
            if !breaches.is_empty() {
                let msg = breaches.join("; ");
                self.reporter.stage(conditions::THRESHOLDS_MET, Status::False, "Breached", msg.clone()).await;
                self.fail(format!("{} failed: {msg}", conditions::THRESHOLDS_MET));
            } else if !self.thresholds.is_empty() {
                self.reporter.stage(conditions::THRESHOLDS_MET, Status::True, "Met", "every threshold met").await;
            }
            tracing::info!(report = %written.report_path.display(), "report written");
        }
        match (&finished.uri, &finished.upload_error) {
            (Some(uri), _) => {
                self.reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::True, "Uploaded", uri.clone()).await;
            }
            (None, Some(e)) => {
                self.reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::False, "UploadFailed", e.clone()).await;
                self.fail(format!("{} failed: {e}", conditions::ARTIFACTS_UPLOADED));
                rewrite = true;
            }
            (None, None) => {}
        }
        let summary = self.summary(finished.uri.clone());
        if rewrite {
            // The local summary says the upload failed too.
            if let Err(e) = crate::report::write(&self.layout.dir, &self.facts(&summary)) {
                tracing::warn!(error = %e, "summary after the failed upload");
            }
        }
        summary
    }

    /// The facts of the play for `summary.json` (the player's own figures under `details`).
    fn facts(&self, summary: &Summary) -> RunFacts {
        let mut details = std::collections::BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(summary) {
            for (k, v) in map {
                details.insert(k, v);
            }
        }
        let result = if self.steps_interrupted {
            RunResult::Interrupted
        } else if summary.failures.is_empty() {
            RunResult::Succeeded
        } else {
            RunResult::Failed
        };
        RunFacts {
            kind: RunKind::Scenario,
            name: summary.scenario.clone(),
            simulation: self.settings.sim_name.clone(),
            run: match self.settings.run_index {
                Some(i) if self.settings.sim_name.is_some() => i.to_string(),
                _ => self.layout.relative.clone(),
            },
            start: Some(summary.start.clone()),
            end: Some(summary.end.clone()),
            result,
            failures: summary.failures.clone(),
            cleanup: Some(summary.cleanup.clone()),
            lateness_ms: ReportQuantiles::of_durations(&self.step_lateness),
            action_lateness_ms: ReportQuantiles::of_durations(&self.action_lateness),
            artifact_uri: summary.s3_uri.clone(),
            thresholds: self.thresholds.clone(),
            details,
            notes: summary.skipped.clone(),
        }
    }

    fn label(&self) -> String {
        format!("{}={}", rehearsal_crds::keys::PLAY_LABEL, self.identity.play_id)
    }

    /// Stops renewing the play's Lease and deletes it (by UID).
    async fn release_lease(&mut self, namespace: &str) {
        self.lease = None;
        let name = self.identity.lease_name();
        let Some(owned) = self.ledger.entries().into_iter().find(|o| o.name == name) else { return };
        let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(self.client.clone(), namespace);
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions { uid: Some(owned.uid), resource_version: None }),
            ..Default::default()
        };
        if let Err(e) = api.delete(&name, &params).await {
            tracing::warn!(lease = %name, error = %e, "cannot delete the play's Lease; it expires in {} s", ownership::LEASE_SECONDS);
        }
    }

    async fn clean_up(&mut self, namespace: &PlayNamespace) {
        let owned = self.ledger.entries();
        let outside = owned.iter().filter(|o| !(namespace.owned() && o.namespace.as_deref() == Some(&namespace.name)));
        let n = outside.count();
        let deleting = if namespace.owned() {
            format!(
                "deleting namespace {} and {n} objects of play {} outside it, by UID",
                namespace.name, self.identity.play_id
            )
        } else {
            format!(
                "deleting the {n} objects play {} created, by UID (namespace {} was there before: kept)",
                self.identity.play_id, namespace.name
            )
        };
        self.reporter.stage(conditions::CLEANUP, Status::Unknown, "Deleting", deleting).await;
        match cleanup(self.client, &owned, namespace, self.settings.cleanup_timeout).await {
            Ok(done) => {
                self.cleanup = format!(
                    "deleted {}{} in {:.1} s",
                    if done.namespace { format!("namespace {} and ", namespace.name) } else { String::new() },
                    match done.objects.len() {
                        1 => "1 object".to_string(),
                        n => format!("{n} objects"),
                    },
                    done.elapsed.as_secs_f64()
                );
                self.reporter.stage(conditions::CLEANUP, Status::True, "Deleted", self.cleanup.clone()).await;
            }
            Err(e) => {
                self.cleanup = format!("failed: {e}");
                self.reporter.stage(conditions::CLEANUP, Status::False, "CleanupTimedOut", e.to_string()).await;
                self.fail(format!("{} failed: {e}", conditions::CLEANUP));
            }
        }
        self.lease = None;
    }

    fn summary(&self, s3_uri: Option<String>) -> Summary {
        let spec = &self.playable.scenario.spec;
        let planned = spec.limit.map_or(spec.steps.len(), |l| usize::try_from(l).unwrap_or(0));
        let mut failures = self.failures.clone();
        if self.failures_unlisted > 0 {
            failures.push(format!("... and {} more (see actions.jsonl)", self.failures_unlisted));
        }
        Summary {
            run_id: self.playable.run_id.clone(),
            play_id: self.identity.play_id.clone(),
            scenario: self.playable.scenario.metadata.name.clone().unwrap_or_default(),
            source: self.origin.clone(),
            namespace: spec.namespace.clone(),
            placement: self.settings.placement.as_str().to_string(),
            speed: self.settings.speed,
            timestep_seconds: spec.timestep,
            step_interval_seconds: spec.timestep / self.settings.speed,
            start: rfc3339(self.run_start),
            steps_start: self.steps_start.map(rfc3339),
            steps_end: self.steps_end.map(rfc3339),
            end: rfc3339(Timestamp::now()),
            steps: StepCounts { planned, played: self.steps_played },
            actions: self.actions,
            lateness_ms: Quantiles::of(&self.step_lateness),
            action_lateness_ms: Quantiles::of(&self.action_lateness),
            skipped: self.resolved.skipped.clone(),
            result: if failures.is_empty() { "succeeded" } else { "failed" }.to_string(),
            failures,
            cleanup: self.cleanup.clone(),
            s3_uri,
        }
    }
}
