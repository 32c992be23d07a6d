//! The Simulation reconciler: queue, per-run driver Jobs, the webhook of trace runs, status, and
//! cleanup through a finalizer.
//!
//! Everything the reconcile decides comes from the cluster (the Simulation's status, its Jobs,
//! the other Simulations), never from memory, so a restarted operator (or a new leader) picks up
//! where the last one was: a Job is created under a fixed name per run, so a retry or a restart
//! finds it instead of making a second one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rehearsal_crds::keys::OPERATOR_MANAGER;
use rehearsal_crds::{Phase, Scenario, Simulation};
use serde_json::json;

use crate::cleanup;
use crate::error::{Context as _, Error, Result, is_conflict};
use crate::jobs::{self, Outcome, Source};
use crate::metrics::Metrics;
use crate::names;
use crate::queue::{self, Decision};
use crate::scenarios;
use crate::settings::Settings;
use crate::status::{self, OperatorStatus, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED};
use crate::trace_files;
use crate::webhook;

/// What every reconcile shares.
pub struct Context {
    /// Client of the API server.
    pub client: kube::Client,
    /// The operator's settings.
    pub settings: Settings,
    /// Publishes Kubernetes Events about Simulations.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The controller's cache of Simulations (for waking the queue and the gauges).
    pub store: Store<Simulation>,
    /// Serialises queue decisions, so two reconciles never take the last slot together.
    queue_lock: tokio::sync::Mutex<()>,
    /// Consecutive failures per Simulation, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// When each running trace Simulation's certificates were last checked (a cache: a restart
    /// just checks again).
    cert_checks: Mutex<HashMap<String, Instant>>,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        store: Store<Simulation>,
    ) -> Self {
        Context {
            client,
            settings,
            recorder,
            metrics,
            store,
            queue_lock: tokio::sync::Mutex::new(()),
            failures: Mutex::new(HashMap::new()),
            cert_checks: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event; `action` tells repeats apart (the recorder folds events with the same
    /// reason and action into one series, keeping the first note), e.g. "Run2".
    /// True when the certificates of `sim` were not checked for [`CERT_CHECK_INTERVAL`].
    fn cert_check_due(&self, sim: &str) -> bool {
        let Ok(mut checks) = self.cert_checks.lock() else { return true };
        let due = checks.get(sim).is_none_or(|t| t.elapsed() >= CERT_CHECK_INTERVAL);
        if due {
            checks.insert(sim.to_string(), Instant::now());
        }
        due
    }

    async fn event(&self, sim: &Simulation, type_: EventType, reason: &str, action: &str, note: String) {
        let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &sim.object_ref(&())).await {
            tracing::warn!(simulation = %sim.name_any(), reason, error = %e, "cannot publish an event");
        }
    }
}

/// How often a running trace run's CA bundle and serving certificate are checked for rotation.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// Reconciles one Simulation (wrapped in the finalizer).
pub async fn reconcile(sim: Arc<Simulation>, ctx: Arc<Context>) -> Result<Action, finalizer::Error<Error>> {
    let _timer = ctx.metrics.reconcile_timer("simulation");
    let api: Api<Simulation> = Api::all(ctx.client.clone());
    // The cached object can be older than the status this operator wrote a moment ago (a Job
    // event may arrive before the Simulation's own): decide on a fresh read, or a stale copy
    // would undo the last step.
    let name = sim.name_any();
    let sim = match api.get_opt(&name).await {
        Ok(Some(fresh)) => Arc::new(fresh),
        Ok(None) => return Ok(Action::await_change()),
        Err(e) => return Err(finalizer::Error::ApplyFailed(Error::kube(format!("read Simulation {name}"), e))),
    };
    let result = finalizer(&api, names::FINALIZER, sim, |event| async {
        match event {
            finalizer::Event::Apply(sim) => apply(sim, &ctx).await,
            finalizer::Event::Cleanup(sim) => delete(sim, &ctx).await,
        }
    })
    .await;
    if result.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.clear();
    }
    result
}

/// Requeues after a failed reconcile: slowly for permanent errors, with backoff for the rest.
pub fn error_policy(sim: Arc<Simulation>, err: &finalizer::Error<Error>, ctx: Arc<Context>) -> Action {
    let name = sim.name_any();
    let failures = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(name.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let (label, after) = match err {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
            (e.metric_label(), e.retry_after(failures))
        }
        _ => ("kube", crate::error::backoff(failures)),
    };
    if label == "waiting" {
        tracing::debug!(simulation = %name, "{err}");
    } else {
        ctx.metrics.reconcile_error("simulation", label);
        tracing::warn!(simulation = %name, retry_in = ?after, "{err}");
    }
    Action::requeue(after)
}

fn run_label(index: u32, total: u32) -> String {
    format!("run {}/{total}", index.saturating_add(1))
}

async fn apply(sim: Arc<Simulation>, ctx: &Context) -> Result<Action> {
    let api: Api<Simulation> = Api::all(ctx.client.clone());
    let mut st = OperatorStatus::of(&sim);
    st.suspended = false;
    let total = u32::try_from(sim.spec.repetitions.max(1)).unwrap_or(1);

    match st.phase {
        Phase::Succeeded | Phase::Failed => return Ok(Action::await_change()),
        Phase::Pending | Phase::Queued => return queue(&sim, st, ctx).await,
        Phase::Initializing | Phase::Running => {}
    }

    // A failed run ends the Simulation, once what it left is gone.
    if let Some(failed) = st.runs.iter().find(|r| r.phase.as_deref() == Some(RUN_FAILED)).cloned() {
        return finish_failed(&sim, st, failed.index, ctx).await;
    }
    let index = u32::try_from(st.completed_runs.max(0)).unwrap_or(0);
    if index >= total {
        return finish_succeeded(&sim, st, ctx).await;
    }
    let job_name = names::job(&sim.name_any(), index);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let job =
        jobs_api.get_opt(&job_name).await.context(|| format!("read Job {}/{job_name}", ctx.settings.namespace))?;
    let recorded = st.run(index).and_then(|r| r.job_name.clone()).is_some();
    let Some(job) = job else {
        if recorded {
            let why = format!("driver Job {}/{job_name} was deleted before it finished", ctx.settings.namespace);
            return fail_run(&api, &sim, st, index, why, ctx).await;
        }
        return start_run(&api, &sim, st, index, total, ctx).await;
    };
    let owned = job.owner_references().iter().any(|o| Some(&o.uid) == sim.meta().uid.as_ref());
    if !owned {
        return Err(Error::Waiting(format!(
            "Job {job_name} belongs to an earlier Simulation of this name and is being deleted"
        )));
    }

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let pods = pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await
        .context(|| format!("list the pods of Job {job_name}"))?
        .items;
    let label = run_label(index, total);
    let outcome = jobs::outcome(&job, &pods);
    match outcome {
        Outcome::Pending | Outcome::Running => {
            let running = outcome == Outcome::Running;
            let run = st.run_mut(index);
            run.job_name = Some(job_name.clone());
            run.phase = Some(RUN_RUNNING.into());
            if run.start_time.is_none() {
                run.start_time = job.status.as_ref().and_then(|s| s.start_time.clone()).or_else(|| Some(status::now()));
            }
            st.phase = if running { Phase::Running } else { Phase::Initializing };
            st.message = if running {
                format!("{label}: driver Job {job_name} running")
            } else {
                format!("{label}: waiting for the driver pod of Job {job_name}")
            };
            if sim.spec.suspend {
                st.message.push_str("; suspended: no further run starts after this one");
            }
            // A long replay outlives a certificate's renewal point: rotate without stopping it
            // (the old CA stays in the bundle, the driver's key pair stays until renewed).
            if sim.spec.source.trace.is_some() && ctx.cert_check_due(&sim.name_any()) {
                webhook::ensure_all(&ctx.client, &ctx.settings, &sim, index).await?;
            }
            st.apply(&api, &sim).await?;
            Ok(Action::requeue(Duration::from_secs(300)))
        }
        Outcome::Succeeded => {
            let summary = jobs::bounded(&jobs::driver_summary(&sim).unwrap_or_else(|| "the driver finished".into()));
            let artifact = jobs::driver_artifact_uri(&sim);
            let run = st.run_mut(index);
            run.job_name = Some(job_name.clone());
            run.phase = Some(RUN_SUCCEEDED.into());
            run.completion_time =
                job.status.as_ref().and_then(|s| s.completion_time.clone()).or_else(|| Some(status::now()));
            run.summary = Some(summary.clone());
            run.artifact_uri = artifact;
            st.completed_runs = st.completed_runs.saturating_add(1);
            st.message = format!("{label} succeeded: {summary}");
            st.apply(&api, &sim).await?;
            ctx.metrics.run_finished(true);
            ctx.event(
                &sim,
                EventType::Normal,
                "RunSucceeded",
                &format!("Run{}", index.saturating_add(1)),
                format!("{label} succeeded: {summary}"),
            )
            .await;
            // The watch event of this status write brings the next step; the requeue is a net.
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Outcome::Failed(why) => fail_run(&api, &sim, st, index, why, ctx).await,
    }
}

/// Records run `index` as failed; the next reconcile cleans up and ends the Simulation.
async fn fail_run(
    api: &Api<Simulation>,
    sim: &Simulation,
    mut st: OperatorStatus,
    index: u32,
    why: String,
    ctx: &Context,
) -> Result<Action> {
    let total = u32::try_from(sim.spec.repetitions.max(1)).unwrap_or(1);
    let label = run_label(index, total);
    // The driver's own account of a failed stage says more than an exit code.
    let summary = jobs::bounded(&match jobs::driver_summary(sim) {
        Some(driver) if driver.contains("failed (") => format!("{why}; {driver}"),
        _ => why,
    });
    let run = st.run_mut(index);
    run.job_name = Some(names::job(&sim.name_any(), index));
    run.phase = Some(RUN_FAILED.into());
    run.completion_time = Some(status::now());
    run.summary = Some(summary.clone());
    run.artifact_uri = jobs::driver_artifact_uri(sim);
    st.completed_runs = st.completed_runs.saturating_add(1);
    st.message = format!("{label} failed: {summary}; deleting what it left");
    st.apply(api, sim).await?;
    ctx.metrics.run_finished(false);
    ctx.event(
        sim,
        EventType::Warning,
        "RunFailed",
        &format!("Run{}", index.saturating_add(1)),
        format!("{label} failed: {summary}"),
    )
    .await;
    Ok(Action::requeue(Duration::from_secs(5)))
}

async fn finish_failed(sim: &Simulation, mut st: OperatorStatus, failed_index: i32, ctx: &Context) -> Result<Action> {
    let api: Api<Simulation> = Api::all(ctx.client.clone());
    let left = cleanup::runs(&ctx.client, &ctx.settings, sim).await?;
    let summary = st.runs.iter().find(|r| r.index == failed_index).and_then(|r| r.summary.clone()).unwrap_or_default();
    let total = sim.spec.repetitions.max(1);
    let label = format!("run {}/{total}", failed_index.saturating_add(1));
    if !left.is_empty() {
        st.message = format!("{label} failed: {summary}; deleting what it left: {}", left.0.join(", "));
        st.apply(&api, sim).await?;
        return left.into_result().map(|()| Action::await_change());
    }
    st.phase = Phase::Failed;
    st.stalled = Some("RunFailed");
    st.completion_time = Some(status::now());
    st.message = format!("{label} failed: {summary}");
    st.apply(&api, sim).await?;
    ctx.event(sim, EventType::Normal, "CleanedUp", "Cleanup", "everything the runs created is gone".into()).await;
    Ok(Action::await_change())
}

async fn finish_succeeded(sim: &Simulation, mut st: OperatorStatus, ctx: &Context) -> Result<Action> {
    let api: Api<Simulation> = Api::all(ctx.client.clone());
    cleanup::runs(&ctx.client, &ctx.settings, sim).await?.into_result()?;
    st.phase = Phase::Succeeded;
    st.completion_time = Some(status::now());
    st.message = String::new();
    st.apply(&api, sim).await?;
    let total = sim.spec.repetitions.max(1);
    ctx.event(
        sim,
        EventType::Normal,
        "Succeeded",
        "Finish",
        format!("{total}/{total} runs succeeded; nothing of them is left"),
    )
    .await;
    Ok(Action::await_change())
}

/// Starts run `index`: checks that the previous run left nothing, prepares the source and the
/// webhook, and creates the driver Job.
async fn start_run(
    api: &Api<Simulation>,
    sim: &Simulation,
    mut st: OperatorStatus,
    index: u32,
    total: u32,
    ctx: &Context,
) -> Result<Action> {
    let label = run_label(index, total);
    let left = cleanup::run_objects(&ctx.client, sim).await?;
    let left = if left.is_empty() { cleanup::webhook_configurations(&ctx.client, sim).await? } else { left };
    if !left.is_empty() {
        st.message = format!("{label} waits until the previous run's objects are gone: {}", left.0.join(", "));
        st.apply(api, sim).await?;
        return left.into_result().map(|()| Action::await_change());
    }
    if sim.spec.suspend {
        // Between runs a suspended Simulation gives its slot back.
        st.phase = Phase::Queued;
        st.suspended = true;
        st.message = format!("suspended before {label} (spec.suspend is true); set it to false to go on");
        st.apply(api, sim).await?;
        return Ok(Action::await_change());
    }
    let source = match check_and_prepare(sim, ctx).await {
        Ok(source) => source,
        // A problem that needs the user: stall, and give the slot back meanwhile.
        Err(Error::Permanent { reason, message }) => return Err(stall(api, sim, st, reason, message, ctx).await),
        Err(e) => return Err(e),
    };
    if source.is_trace() {
        webhook::ensure_all(&ctx.client, &ctx.settings, sim, index).await?;
    }
    let job = jobs::driver_job(sim, index, &source, &ctx.settings)?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let job_name = names::job(&sim.name_any(), index);
    match jobs_api.create(&PostParams { dry_run: false, field_manager: Some(OPERATOR_MANAGER.into()) }, &job).await {
        Ok(_) => {}
        // Made by an earlier attempt whose status write was lost: follow that one.
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(Error::kube(format!("create Job {}/{job_name}", ctx.settings.namespace), e)),
    }
    let now = status::now();
    let run = st.run_mut(index);
    run.job_name = Some(job_name.clone());
    run.phase = Some(RUN_RUNNING.into());
    run.start_time = Some(now.clone());
    st.start_time.get_or_insert(now);
    st.phase = Phase::Initializing;
    st.stalled = None;
    st.message = format!("{label}: driver Job {job_name} created");
    st.apply(api, sim).await?;
    ctx.event(
        sim,
        EventType::Normal,
        "RunStarted",
        &format!("Run{}", index.saturating_add(1)),
        format!("{label}: driver Job {}/{job_name} created", ctx.settings.namespace),
    )
    .await;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// A Simulation that holds no slot: stall on a permanent problem, wait in the queue, or take a
/// slot.
async fn queue(sim: &Simulation, mut st: OperatorStatus, ctx: &Context) -> Result<Action> {
    let api: Api<Simulation> = Api::all(ctx.client.clone());
    if sim.spec.suspend {
        st.suspended = true;
        st.stalled = None;
        st.message = "suspended (spec.suspend is true): no run starts until it is false".into();
        st.apply(&api, sim).await?;
        return Ok(Action::await_change());
    }
    match check(sim, ctx).await {
        Ok(()) => {}
        Err(Error::Permanent { reason, message }) => return Err(stall(&api, sim, st, reason, message, ctx).await),
        // Not known whether it can run: retry rather than take a slot.
        Err(e) => return Err(e),
    }
    st.stalled = None;

    let _guard = ctx.queue_lock.lock().await;
    // Read fresh from the API server, not the cache: a slot taken a moment ago must count.
    let all = api.list(&ListParams::default()).await.context(|| "list Simulations".to_string())?;
    let entries: Vec<queue::Entry> = all.items.iter().map(queue::Entry::of).collect();
    ctx.metrics.set_queue_length(i64::try_from(queue::length(&entries)).unwrap_or(i64::MAX));
    let name = sim.name_any();
    match queue::decide(&name, &entries, ctx.settings.max_active) {
        Decision::Start => {
            st.phase = Phase::Initializing;
            st.message = "taking a slot: starting run 1".into();
            st.apply(&api, sim).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Decision::Wait { position, ahead } => {
            let first = st.phase != Phase::Queued;
            st.phase = Phase::Queued;
            st.message = format!("waiting for Simulation {ahead} (position {position} in the queue)");
            st.apply(&api, sim).await?;
            if first {
                ctx.event(sim, EventType::Normal, "Queued", "Queue", st.message.clone()).await;
            }
            // Woken when a slot frees; the requeue is a safety net.
            Ok(Action::requeue(Duration::from_secs(60)))
        }
    }
}

/// Stalls a Simulation that cannot run as written (phase Pending, `Stalled=True` with the reason;
/// an Event when that is news) and returns the error for the requeue.
async fn stall(
    api: &Api<Simulation>,
    sim: &Simulation,
    mut st: OperatorStatus,
    reason: &'static str,
    message: String,
    ctx: &Context,
) -> Error {
    let news = st.stalled != Some(reason) || st.message != message;
    st.phase = Phase::Pending;
    st.stalled = Some(reason);
    st.message = message.clone();
    if let Err(e) = st.apply(api, sim).await {
        return e;
    }
    if news {
        ctx.event(sim, EventType::Warning, reason, "Check", message.clone()).await;
    }
    Error::Permanent { reason, message }
}

/// The finalizer's cleanup: everything of every run, then the Simulation may go.
async fn delete(sim: Arc<Simulation>, ctx: &Context) -> Result<Action> {
    let left = cleanup::everything(&ctx.client, &ctx.settings, &sim).await?;
    if !left.is_empty() {
        tracing::info!(simulation = %sim.name_any(), "deleting: {}", left.0.join(", "));
        return left.into_result().map(|()| Action::await_change());
    }
    ctx.event(
        &sim,
        EventType::Normal,
        "CleanedUp",
        "Delete",
        "the Simulation was deleted; nothing of its runs is left".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Checks what the Simulation refers to; a permanent error names the object and field.
async fn check(sim: &Simulation, ctx: &Context) -> Result<()> {
    let spec = &sim.spec;
    hooks_allowed(spec, ctx.settings.allow_hooks)?;
    if let Some(uri) = spec.source.trace.as_ref().and_then(|t| t.uri.as_ref()) {
        trace_files::allowed_file(&sim.name_any(), uri, &ctx.settings)?;
    }
    if let Some(d) = &spec.duration {
        rehearsal_driver::replay::run::parse_duration(d)
            .map_err(|e| Error::permanent("InvalidSpec", format!("spec.duration: {e}")))?;
    }
    if let Some(scenario_ref) = &spec.source.scenario_ref {
        let scenarios: Api<Scenario> = Api::all(ctx.client.clone());
        let name = &scenario_ref.name;
        let Some(scenario) = scenarios.get_opt(name).await.context(|| format!("read Scenario {name}"))? else {
            return Err(Error::permanent(
                "ScenarioNotFound",
                format!(
                    "spec.source.scenarioRef.name: Scenario {name:?} not found; the Simulation starts when it is created"
                ),
            ));
        };
        if let Some(problem) = scenarios::verdict(&scenario).problem {
            return Err(Error::permanent(
                "ScenarioInvalid",
                format!("spec.source.scenarioRef.name: Scenario {name:?} is invalid: {problem}"),
            ));
        }
    }
    if let Some(cm) = spec.source.trace.as_ref().and_then(|t| t.config_map_ref.as_ref()) {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &cm.namespace);
        let found = api.get_opt(&cm.name).await.context(|| format!("read ConfigMap {}/{}", cm.namespace, cm.name))?;
        let Some(found) = found else {
            return Err(Error::permanent(
                "ConfigMapNotFound",
                format!("spec.source.trace.configMapRef: ConfigMap {}/{} not found", cm.namespace, cm.name),
            ));
        };
        let has_key = found.data.as_ref().is_some_and(|d| d.contains_key(&cm.key))
            || found.binary_data.as_ref().is_some_and(|d| d.contains_key(&cm.key));
        if !has_key {
            return Err(Error::permanent(
                "InvalidSpec",
                format!(
                    "spec.source.trace.configMapRef.key: ConfigMap {}/{} has no key {:?}",
                    cm.namespace, cm.name, cm.key
                ),
            ));
        }
    }
    let ns = &ctx.settings.namespace;
    if let Some(secret) = spec.artifacts.as_ref().and_then(|a| a.credentials_secret.as_ref()) {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        if api.get_metadata_opt(&secret.name).await.context(|| format!("read Secret {ns}/{}", secret.name))?.is_none() {
            return Err(Error::permanent(
                "SecretNotFound",
                format!(
                    "spec.artifacts.credentialsSecret.name: Secret {ns}/{} not found (it must be in the operator's namespace)",
                    secret.name
                ),
            ));
        }
    }
    let account = spec
        .driver
        .as_ref()
        .and_then(|d| d.service_account_name.clone())
        .unwrap_or_else(|| ctx.settings.driver_service_account.clone());
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    if api.get_metadata_opt(&account).await.context(|| format!("read ServiceAccount {ns}/{account}"))?.is_none() {
        return Err(Error::permanent(
            "ServiceAccountNotFound",
            format!("spec.driver.serviceAccountName: ServiceAccount {ns}/{account} not found"),
        ));
    }
    Ok(())
}

/// Hooks run commands in the driver pod as the driver's service account: an operator started
/// with `--allow-hooks=false` refuses Simulations that have any.
pub fn hooks_allowed(spec: &rehearsal_crds::SimulationSpec, allow: bool) -> Result<()> {
    let hooks = spec.hooks.as_ref().map_or(0, |h| h.pre_run.len().saturating_add(h.post_run.len()));
    if hooks > 0 && !allow {
        return Err(Error::permanent(
            "HooksNotAllowed",
            format!(
                "spec.hooks: this operator runs no hooks (--allow-hooks=false); remove the {hooks} hooks or ask its administrators"
            ),
        ));
    }
    Ok(())
}

/// [`check`], then what the run plays: a ConfigMap trace is copied into the operator's
/// namespace (a pod mounts only its own namespace's ConfigMaps).
async fn check_and_prepare(sim: &Simulation, ctx: &Context) -> Result<Source> {
    check(sim, ctx).await?;
    let name = sim.name_any();
    if let Some(s) = &sim.spec.source.scenario_ref {
        return Ok(Source::Scenario(s.name.clone()));
    }
    let trace = sim.spec.source.trace.as_ref().ok_or_else(|| {
        Error::permanent("InvalidSpec", "spec.source: exactly one of trace or scenarioRef must be set")
    })?;
    if let Some(uri) = &trace.uri {
        return Ok(Source::TraceUri(uri.clone()));
    }
    let cm = trace.config_map_ref.as_ref().ok_or_else(|| {
        Error::permanent("InvalidSpec", "spec.source.trace: exactly one of uri or configMapRef must be set")
    })?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &cm.namespace);
    let original = api.get(&cm.name).await.context(|| format!("read ConfigMap {}/{}", cm.namespace, cm.name))?;
    let copy_name = names::trace_config_map(&name);
    let mut body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": copy_name, "namespace": ctx.settings.namespace,
            "labels": names::labels(&name),
            "ownerReferences": sim.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
    });
    if let Some(v) = original.data.as_ref().and_then(|d| d.get(&cm.key)) {
        body["data"] = json!({ &cm.key: v });
    } else if let Some(v) = original.binary_data.as_ref().and_then(|d| d.get(&cm.key)) {
        body["binaryData"] = json!({ &cm.key: v });
    }
    let copies: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    copies
        .patch(&copy_name, &PatchParams::apply(OPERATOR_MANAGER).force(), &Patch::Apply(&body))
        .await
        .context(|| format!("copy the trace into ConfigMap {}/{copy_name}", ctx.settings.namespace))?;
    Ok(Source::TraceConfigMap { config_map: copy_name, key: cm.key.clone() })
}

/// The Simulation owning a driver Job (cluster-scoped: no namespace in the reference).
pub fn owner_of(job: &Job) -> Option<ObjectRef<Simulation>> {
    job.owner_references()
        .iter()
        .find(|o| o.kind == "Simulation" && o.api_version == "rehearsal.dev/v1alpha1")
        .map(|o| ObjectRef::new(&o.name))
}

/// The Simulations that refer to a Scenario (for the Scenario watch).
pub fn simulations_of(store: &Store<Simulation>, scenario: &Scenario) -> Vec<ObjectRef<Simulation>> {
    let name = scenario.name_any();
    store
        .state()
        .iter()
        .filter(|s| s.spec.source.scenario_ref.as_ref().is_some_and(|r| r.name == name))
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// The Simulations waiting in the queue, when `changed` may have freed a slot: it finished, is
/// being deleted, or was suspended or stalled. Other changes wake nobody, so a long queue does
/// not reconcile itself over and over.
pub fn queue_wakeups(store: &Store<Simulation>, changed: &Simulation) -> Vec<ObjectRef<Simulation>> {
    let phase = changed.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    let stalled = changed
        .status
        .as_ref()
        .and_then(|s| rehearsal_crds::conditions::find(&s.conditions, rehearsal_crds::conditions::STALLED))
        .is_some_and(|c| c.status == "True");
    let frees = matches!(phase, Phase::Succeeded | Phase::Failed)
        || changed.meta().deletion_timestamp.is_some()
        || changed.spec.suspend
        || stalled;
    if !frees {
        return vec![];
    }
    store
        .state()
        .iter()
        .filter(|s| s.name_any() != changed.name_any() && queue::Entry::of(s).waiting)
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// Sets the per-phase gauges from the cache.
pub fn update_gauges(store: &Store<Simulation>, metrics: &Metrics) {
    let all = store.state();
    let mut counts: Vec<(&'static str, i64)> =
        [Phase::Pending, Phase::Queued, Phase::Initializing, Phase::Running, Phase::Succeeded, Phase::Failed]
            .iter()
            .map(|p| (status::phase_name(*p), 0))
            .collect();
    for sim in &all {
        let phase = status::phase_name(sim.status.as_ref().and_then(|s| s.phase).unwrap_or_default());
        if let Some(c) = counts.iter_mut().find(|(n, _)| *n == phase) {
            c.1 = c.1.saturating_add(1);
        }
    }
    metrics.set_phases(&counts);
    let entries: Vec<queue::Entry> = all.iter().map(|s| queue::Entry::of(s)).collect();
    metrics.set_queue_length(i64::try_from(queue::length(&entries)).unwrap_or(i64::MAX));
}

/// Reconciles one Scenario: its validation status.
pub async fn reconcile_scenario(scenario: Arc<Scenario>, ctx: Arc<ScenarioContext>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_timer("scenario");
    let api: Api<Scenario> = Api::all(ctx.client.clone());
    scenarios::reconcile(&api, &scenario).await?;
    Ok(Action::await_change())
}

/// Requeue policy of the Scenario controller.
pub fn scenario_error_policy(scenario: Arc<Scenario>, err: &Error, ctx: Arc<ScenarioContext>) -> Action {
    ctx.metrics.reconcile_error("scenario", err.metric_label());
    tracing::warn!(scenario = %scenario.name_any(), "{err}");
    Action::requeue(Duration::from_secs(10))
}

/// What the Scenario reconciler shares.
pub struct ScenarioContext {
    /// Client of the API server.
    pub client: kube::Client,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_maps_to_its_simulation_without_a_namespace() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "s-run-0", "namespace": "rehearsal-system",
            "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "name": "s", "uid": "u"}]}}))
        .expect("job literal");
        let owner = owner_of(&job).expect("owner");
        assert_eq!(owner, ObjectRef::<Simulation>::new("s"));
        assert_eq!(owner.namespace, None);
        let orphan: Job = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("job literal");
        assert_eq!(owner_of(&orphan), None);
    }

    #[test]
    fn hooks_are_refused_when_not_allowed() {
        let spec: rehearsal_crds::SimulationSpec =
            serde_json::from_value(json!({"source": {"trace": {"uri": "s3://b/t"}},
            "hooks": {"preRun": [{"command": "true"}], "postRun": [{"command": "true"}]}}))
            .expect("spec literal");
        assert!(hooks_allowed(&spec, true).is_ok());
        let err = hooks_allowed(&spec, false).expect_err("refused").to_string();
        assert_eq!(
            err,
            "HooksNotAllowed: spec.hooks: this operator runs no hooks (--allow-hooks=false); remove the 2 hooks or ask its administrators"
        );
        let none: rehearsal_crds::SimulationSpec =
            serde_json::from_value(json!({"source": {"trace": {"uri": "s3://b/t"}}})).expect("spec literal");
        assert!(hooks_allowed(&none, false).is_ok());
    }
}
