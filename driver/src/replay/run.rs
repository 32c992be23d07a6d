//! One run of `rehearsal-driver replay`, stage by stage: preRun hooks, webhook listener,
//! SimulationRoot, trace, replay, cleanup, webhook shutdown, postRun hooks. A failure in any
//! stage still cleans up, and the error names the stage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::{Resource, ResourceExt};
use rehearsal_crds::conditions::{self, Status};
use rehearsal_crds::{Simulation, SimulationRoot};

use super::clock::PreciseClock;
use super::engine::{self, Settings, Stats};
use super::objects::RootRef;
use super::{probe, root};
use crate::artifacts::evidence::{Evidence, EvidenceError, EvidenceSettings, S3Target, fresh_folder};
use crate::artifacts::layout;
use crate::audit::AuditScope;
use crate::cli::ReplayArgs;
use crate::collect::Scope;
use crate::hooks;
use crate::own_thread;
use crate::report::{Quantiles, RunFacts, RunKind, RunResult};
use crate::signals::Signals;
use crate::status::Reporter;
use crate::trace::Trace;
use crate::webhook::owners::ApiLookup;
use crate::webhook::server::{self, Listener};
use crate::webhook::{RunInfo, State, TraceLifetimes, register};

/// The name of the thread the replay's dispatch runs on.
const REPLAY_THREAD: &str = "rehearsal-replay";

/// A failed run: which stage, and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage} failed: {message}")]
pub struct RunError {
    /// The stage, as in the Simulation's conditions.
    pub stage: &'static str,
    /// Why.
    pub message: String,
}

fn fail(stage: &'static str, message: impl ToString) -> RunError {
    RunError { stage, message: message.to_string() }
}

/// Runs the whole replay for `args`. Returns what the replay did.
pub async fn run(client: kube::Client, args: &ReplayArgs) -> Result<Stats, RunError> {
    let sims: Api<Simulation> = Api::all(client.clone());
    let sim = match sims.get_opt(&args.sim_name).await {
        Ok(Some(sim)) => sim,
        Ok(None) => return Err(fail("Setup", format!("Simulation {:?} not found", args.sim_name))),
        Err(e) => return Err(fail("Setup", format!("cannot read Simulation {:?}: {e}", args.sim_name))),
    };
    let reporter = Reporter::new(Some(sims.clone()), &args.sim_name, sim.metadata.generation);
    let resolved = match resolve(args, &sim) {
        Ok(r) => r,
        Err(e) => {
            reporter.stage(conditions::REPLAY, Status::False, "InvalidSpec", e.clone()).await;
            return Err(fail("Setup", e));
        }
    };
    let args = &resolved;
    let run_start = Timestamp::now();
    // The run folder and the bucket before anything is applied: a run whose evidence cannot be
    // kept does not start.
    let settings = evidence_settings(args, &sim);
    let prepared = match fresh_folder(&settings.folder.dir) {
        Ok(()) => Evidence::prepare(settings).await,
        Err(e) => Err(e),
    };
    let mut evidence = match prepared {
        Ok(e) => e,
        Err(e) => {
            let reason = if matches!(e, EvidenceError::NotWritable(_)) { "NotWritable" } else { "FolderFailed" };
            reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::False, reason, e.to_string()).await;
            return Err(fail(conditions::ARTIFACTS_UPLOADED, e));
        }
    };
    tracing::info!(dir = %evidence.dir().display(), "run folder");
    let missing = evidence.start(&client).await;
    if missing.is_empty() {
        reporter.stage(conditions::EVIDENCE, Status::True, "Recording", "collectors and audit events recording").await;
    } else {
        reporter.stage(conditions::EVIDENCE, Status::True, "Partial", missing.join("; ")).await;
    }
    let signals = Signals::listen("replay");
    let sim_json = serde_json::to_vec(&sim).unwrap_or_default();
    let hooks = sim.spec.hooks.clone().unwrap_or_default();

    // 1. preRun hooks.
    let mut result = pre_run(&reporter, &hooks.pre_run, &sim_json).await;

    // 2-5 only when the hooks passed; their resources are released below in any case.
    let mut listener = None;
    let mut run_root = None;
    let roots: Api<SimulationRoot> = Api::all(client.clone());
    let cleanup_timeout = Duration::from_secs(args.cleanup_timeout);
    if result.is_ok() {
        // A stop signal ends the replay between batches (in-flight requests finish); what was
        // made is cleaned up below.
        let mut made = Made::default();
        result = replay_stages(&client, args, &sim, &reporter, &roots, &mut made, &signals).await;
        listener = made.listener;
        run_root = made.root;
    }

    // The evidence so far, before a possibly long cleanup.
    let mut facts = run_facts(args, &sim, run_start, &result, signals.stop_requested());
    if run_root.is_some() {
        evidence.checkpoint(&facts).await;
    }

    // 6. Cleanup, whenever a root was made; a second signal skips it (the status says so).
    let mut cleaned = true;
    if let Some(root) = &run_root {
        reporter
            .stage(
                conditions::CLEANUP,
                Status::Unknown,
                "Deleting",
                format!("deleting SimulationRoot {} and everything it owns", root.name),
            )
            .await;
        let started = Instant::now();
        let deleted = tokio::select! {
            r = root::delete(&roots, root, &args.sim_name, cleanup_timeout, args.prefix()) => Some(r),
            _ = signals.skipped() => None,
        };
        let Some(deleted) = deleted else {
            let msg = format!(
                "skipped after a second signal: SimulationRoot {} and the namespaces {}-* may remain; delete the root to clean up",
                root.name,
                args.prefix()
            );
            reporter.stage(conditions::CLEANUP, Status::False, "CleanupSkipped", msg.clone()).await;
            // The evidence is still written and uploaded: only the cleanup is skipped.
            facts.cleanup = Some(msg.clone());
            facts.result = RunResult::Interrupted;
            let _ = finish_evidence(evidence, &reporter, facts, &mut result).await;
            return Err(fail(conditions::CLEANUP, msg));
        };
        match deleted {
            Ok(()) => {
                let msg = format!("everything the run created is gone ({:.1} s)", started.elapsed().as_secs_f64());
                facts.cleanup = Some(msg.clone());
                reporter.stage(conditions::CLEANUP, Status::True, "Deleted", msg).await;
            }
            Err(e) => {
                facts.cleanup = Some(format!("failed: {e}"));
                let reason =
                    if matches!(e, root::RootError::Timeout { .. }) { "CleanupTimedOut" } else { "CleanupFailed" };
                reporter.stage(conditions::CLEANUP, Status::False, reason, e.to_string()).await;
                cleaned = false;
                if result.is_ok() {
                    result = Err(fail(conditions::CLEANUP, e));
                }
            }
        }
    }

    // 7. Stop the webhook once nothing of the run can create pods any more. While anything of
    // the run may survive (a failed or timed-out cleanup), its configuration stays, so pods made
    // there still never reach a real node.
    let configuration = register::configuration_name(&args.sim_name, args.run_index);
    if args.webhook_url.is_some() && run_root.is_some() && !cleaned {
        tracing::warn!(%configuration, "the cleanup did not finish: the webhook configuration stays registered; delete it once the run's namespaces are gone (deleting the Simulation removes it)");
    }
    if args.webhook_url.is_some()
        && run_root.is_some()
        && cleaned
        && let Err(e) = register::unregister(&client, &configuration).await
    {
        tracing::warn!(error = %e, "cannot delete the webhook configuration; deleting the Simulation removes it");
    }
    if let Some(l) = listener
        && let Err(e) = l.shutdown(Duration::from_secs(5)).await
    {
        tracing::warn!(error = %e, "the webhook listener did not stop cleanly");
    }

    // 8. postRun hooks, after success or failure.
    if !hooks.post_run.is_empty() {
        reporter
            .stage(
                conditions::POST_RUN_HOOKS,
                Status::Unknown,
                "Running",
                format!("running {} postRun hooks", hooks.post_run.len()),
            )
            .await;
        match hooks::run("postRun", &hooks.post_run, &sim_json).await {
            Ok(n) => {
                reporter
                    .stage(conditions::POST_RUN_HOOKS, Status::True, "Succeeded", format!("{n} postRun hooks ran"))
                    .await
            }
            Err(e) => {
                reporter.stage(conditions::POST_RUN_HOOKS, Status::False, "HookFailed", e.to_string()).await;
                if result.is_ok() {
                    result = Err(fail(conditions::POST_RUN_HOOKS, e));
                }
            }
        }
    }

    // 9. Summary, report, manifest and the upload: after everything, so they hold it all.
    let interrupted = signals.stop_requested();
    let mut facts_end = run_facts(args, &sim, run_start, &result, interrupted);
    facts_end.cleanup = facts.cleanup.take();
    facts_end.lateness_ms = result.as_ref().ok().and_then(|s| Quantiles::of_durations(&s.lateness));
    if let Ok(stats) = &result {
        facts_end.details.insert("events".into(), serde_json::json!(stats.events));
        facts_end.details.insert("applied".into(), serde_json::json!(stats.applied));
        facts_end.details.insert("deleted".into(), serde_json::json!(stats.deleted));
        facts_end.details.insert("skipped".into(), serde_json::json!(stats.skipped.len()));
        facts_end.details.insert("failed".into(), serde_json::json!(stats.failed.len()));
    }
    finish_evidence(evidence, &reporter, facts_end, &mut result).await;
    result
}

/// Where the run's evidence goes: flags first, then the Simulation's `spec.artifacts` and
/// `spec.collect`.
fn evidence_settings(args: &ReplayArgs, sim: &Simulation) -> EvidenceSettings {
    let artifacts = sim.spec.artifacts.as_ref();
    let prefix = args.s3_prefix.clone().or_else(|| artifacts.and_then(|a| a.prefix.clone()));
    let bucket = args.s3_bucket.clone().filter(|b| !b.is_empty()).or_else(|| artifacts.map(|a| a.bucket.clone()));
    let region = args.s3_region.clone().filter(|r| !r.is_empty()).or_else(|| artifacts.and_then(|a| a.region.clone()));
    EvidenceSettings {
        folder: layout::simulation_run(&args.log_dir, prefix.as_deref(), &args.sim_name, args.run_index),
        s3: bucket.map(|bucket| S3Target { bucket, region }),
        collect: sim.spec.collect.clone().unwrap_or_default(),
        scope: Scope::Prefix { prefix: args.prefix().to_string(), simulation: Some(args.sim_name.clone()) },
        audit_scope: AuditScope {
            namespaces: Vec::new(),
            namespace_prefix: Some(args.prefix().to_string()),
            simulation: Some(args.sim_name.clone()),
        },
        audit_log: args.audit.audit_log.clone(),
        audit_webhook_listen: args.audit.audit_webhook_listen,
    }
}

/// The run's facts for its summary, as they stand.
fn run_facts(
    args: &ReplayArgs,
    sim: &Simulation,
    start: Timestamp,
    result: &Result<Stats, RunError>,
    interrupted: bool,
) -> RunFacts {
    let mut details = std::collections::BTreeMap::new();
    details.insert("speed".to_string(), serde_json::json!(args.speed()));
    details.insert("virtual_namespace_prefix".to_string(), serde_json::json!(args.prefix()));
    details.insert("trace".to_string(), serde_json::json!(args.trace_path));
    RunFacts {
        kind: RunKind::Replay,
        name: args.sim_name.clone(),
        simulation: Some(args.sim_name.clone()),
        run: args.run_index.to_string(),
        start: Some(start.to_string()),
        end: Some(Timestamp::now().to_string()),
        result: match result {
            Ok(_) => RunResult::Succeeded,
            Err(_) if interrupted => RunResult::Interrupted,
            Err(_) => RunResult::Failed,
        },
        failures: result.as_ref().err().map(|e| vec![e.to_string()]).unwrap_or_default(),
        thresholds: sim.spec.collect.as_ref().map(|c| c.thresholds.clone()).unwrap_or_default(),
        details,
        ..RunFacts::default()
    }
}

/// Writes the summary, report and manifest, uploads the folder, and reports thresholds and
/// the upload on the Simulation; a breach or a failed upload fails a run that had succeeded.
async fn finish_evidence(
    evidence: Evidence,
    reporter: &Reporter,
    facts: RunFacts,
    result: &mut Result<Stats, RunError>,
) -> Option<String> {
    let has_thresholds = !facts.thresholds.is_empty();
    let finished = evidence.finish(&facts).await;
    for note in &finished.notes {
        tracing::warn!("{note}");
    }
    if let Some(written) = &finished.written {
        let breaches = written.breaches();
        if !breaches.is_empty() {
            let msg = breaches.join("; ");
            reporter.stage(conditions::THRESHOLDS_MET, Status::False, "Breached", msg.clone()).await;
            if result.is_ok() {
                *result = Err(fail(conditions::THRESHOLDS_MET, msg));
            }
        } else if has_thresholds {
            reporter.stage(conditions::THRESHOLDS_MET, Status::True, "Met", "every threshold met").await;
        }
        tracing::info!(report = %written.report_path.display(), "report written");
    }
    if let Some(e) = &finished.upload_error {
        reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::False, "UploadFailed", e.clone()).await;
        if result.is_ok() {
            *result = Err(fail(conditions::ARTIFACTS_UPLOADED, e));
        }
    }
    if let Some(uri) = &finished.uri {
        reporter.stage(conditions::ARTIFACTS_UPLOADED, Status::True, "Uploaded", uri.clone()).await;
    }
    finished.uri
}

/// What the stages made that the end of the run must release.
#[derive(Default)]
struct Made {
    listener: Option<Listener>,
    root: Option<RootRef>,
}

/// Speed and prefix from the Simulation unless a flag overrides them (said in the log), so
/// `kubectl get simulations` never shows a speed the run does not use.
fn resolve(args: &ReplayArgs, sim: &Simulation) -> Result<ReplayArgs, String> {
    let mut out = args.clone();
    let spec_speed = crate::limits::check_speed("spec.speed", sim.spec.speed).map_err(|e| e.to_string())?;
    out.speed = Some(match args.speed {
        Some(flag) => {
            if flag != spec_speed {
                tracing::info!(flag, spec = spec_speed, "--speed overrides the Simulation's spec.speed");
            }
            flag
        }
        None => spec_speed,
    });
    let spec_prefix = &sim.spec.virtual_namespace_prefix;
    out.virtual_ns_prefix = Some(match &args.virtual_ns_prefix {
        Some(flag) => {
            if flag != spec_prefix {
                tracing::info!(flag = %flag, spec = %spec_prefix, "--virtual-ns-prefix overrides the Simulation's spec.virtualNamespacePrefix");
            }
            flag.clone()
        }
        None => spec_prefix.clone(),
    });
    Ok(out)
}

async fn pre_run(reporter: &Reporter, hooks: &[rehearsal_crds::Hook], sim_json: &[u8]) -> Result<Stats, RunError> {
    if hooks.is_empty() {
        return Ok(Stats::default());
    }
    reporter
        .stage(conditions::PRE_RUN_HOOKS, Status::Unknown, "Running", format!("running {} preRun hooks", hooks.len()))
        .await;
    match hooks::run("preRun", hooks, sim_json).await {
        Ok(n) => {
            reporter.stage(conditions::PRE_RUN_HOOKS, Status::True, "Succeeded", format!("{n} preRun hooks ran")).await;
            Ok(Stats::default())
        }
        Err(e) => {
            reporter.stage(conditions::PRE_RUN_HOOKS, Status::False, "HookFailed", e.to_string()).await;
            Err(fail(conditions::PRE_RUN_HOOKS, e))
        }
    }
}

async fn replay_stages(
    client: &kube::Client,
    args: &ReplayArgs,
    sim: &Simulation,
    reporter: &Reporter,
    roots: &Api<SimulationRoot>,
    made: &mut Made,
    signals: &Signals,
) -> Result<Stats, RunError> {
    let listener = &mut made.listener;
    let run_root = &mut made.root;
    // Stages 2 to 5 report as the Replay condition, each failure with its own reason.
    let report_fail = |reason: &'static str, e: String| async move {
        reporter.stage(conditions::REPLAY, Status::False, reason, e.clone()).await;
        fail(conditions::REPLAY, e)
    };

    // 2. The webhook listener, before anything can create pods of the run.
    let state = Arc::new(State::new(&args.sim_name, args.prefix(), ApiLookup::new(client.clone())));
    let addr = SocketAddr::new(args.listen_address, args.admission_webhook_port);
    match server::serve(addr, &args.cert_path, &args.key_path, state.clone()).await {
        Ok(l) => {
            tracing::info!(addr = %l.local_addr, "webhook listening");
            *listener = Some(l);
        }
        Err(e) => return Err(report_fail("WebhookFailed", e.to_string()).await),
    }

    // 3. The run's root, and the webhook registration when the driver runs on its own.
    let cleanup_timeout = Duration::from_secs(args.cleanup_timeout);
    let root = match root::create(roots, sim, args.run_index, cleanup_timeout, args.prefix()).await {
        Ok(r) => r,
        Err(e) => return Err(report_fail("RootFailed", e.to_string()).await),
    };
    *run_root = Some(root.clone());
    if let Some(url) = &args.webhook_url {
        let ca_path = args.webhook_ca_path.as_ref().unwrap_or(&args.cert_path);
        let ca = match tokio::fs::read(ca_path).await {
            Ok(ca) => ca,
            Err(e) => {
                return Err(report_fail(
                    "WebhookFailed",
                    format!("cannot read the webhook CA {}: {e}", ca_path.display()),
                )
                .await);
            }
        };
        let owner = serde_json::to_value(sim.controller_owner_ref(&())).unwrap_or_default();
        let registration = register::Registration {
            name: register::configuration_name(&args.sim_name, args.run_index),
            owner: &owner,
            simulation: &args.sim_name,
            endpoint: register::Endpoint::Url(url.clone()),
            ca_pem: &ca,
            manager: rehearsal_crds::keys::DRIVER_MANAGER,
        };
        if let Err(e) = register::register(client, &registration).await {
            return Err(report_fail("WebhookFailed", format!("cannot register the webhook: {e}")).await);
        }
    }

    // 4. The trace, fully checked, and every kind it holds resolved, before anything is applied.
    let read = crate::trace::read_with_policy(&args.trace_path, &args.trace_policy()).await;
    let trace = match read.and_then(|b| Trace::parse(b, &args.trace_path)) {
        Ok(t) => Arc::new(t),
        Err(e) => return Err(report_fail("BadTrace", e.to_string()).await),
    };
    let kinds = match engine::resolve_kinds(client, trace.kinds()).await {
        Ok(k) => k,
        Err(e) => return Err(report_fail("UnknownKind", e.to_string()).await),
    };
    state.set_run(RunInfo {
        root_uid: root.uid.clone(),
        lifetimes: Arc::new(TraceLifetimes::new(trace.clone(), args.speed())),
    });

    // Before the first object: the webhook must be in effect, or early pods would miss it.
    if let Some(ns) = first_namespace(&trace, &kinds) {
        let vns = match super::objects::virtual_namespace(args.prefix(), &ns) {
            Ok(v) => v,
            Err(e) => return Err(report_fail("BadNamespace", e.to_string()).await),
        };
        if let Err(e) =
            engine::ensure_namespace(client, &vns, &root, &sim.name_any(), engine::TERMINATING_NAMESPACE_WAIT).await
        {
            return Err(report_fail("NamespaceFailed", e).await);
        }
        match probe::wait_until_called(client, &vns, &root, &args.sim_name, Duration::from_secs(60)).await {
            Ok(took) => tracing::info!(namespace = %vns, ?took, "the API server calls the webhook"),
            Err(e) => return Err(report_fail("WebhookNotCalled", e).await),
        }
    }

    // 5. The replay.
    let duration = match sim.spec.duration.as_deref().map(parse_duration).transpose() {
        Ok(d) => d,
        Err(e) => return Err(report_fail("BadDuration", e).await),
    };
    let settings = Settings {
        simulation: sim.name_any(),
        prefix: args.prefix().to_string(),
        speed: args.speed(),
        duration,
        concurrency: usize::from(args.concurrency),
        signals: signals.clone(),
        late: Arc::default(),
    };
    let events = trace.event_count();
    reporter
        .stage(
            conditions::REPLAY,
            Status::Unknown,
            "Replaying",
            format!("replaying {events} events at speed {}", args.speed()),
        )
        .await;
    let started = Instant::now();
    if signals.stop_requested() {
        return Err(report_fail("Interrupted", "interrupted by a signal before the replay started".to_string()).await);
    }
    // The dispatch on a thread of its own, with a client of its own made as the command's was
    // (from the environment); the webhook, the collectors and the status stay on this runtime.
    let replayed = own_thread::run(REPLAY_THREAD, |apart| {
        let (trace, kinds, root, settings) = (&trace, &kinds, &root, &settings);
        async move {
            let client = if apart { own_thread::client(None, client).await } else { client.clone() };
            engine::replay(&client, trace, kinds, root, settings, &PreciseClock, reporter).await
        }
    })
    .await;
    let stats = match replayed {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(report_fail("ReplayFailed", e.to_string()).await),
        None => {
            return Err(report_fail("ReplayFailed", "the replay's thread ended without replaying".to_string()).await);
        }
    };
    let summary = format!(
        "replayed {} of {events} events in {:.1} s: {} objects applied, {} deleted, {} skipped, {} failed; lateness p99 {:.1} ms{}",
        stats.events,
        started.elapsed().as_secs_f64(),
        stats.applied,
        stats.deleted,
        stats.skipped.len(),
        stats.failed.len(),
        stats.lateness_quantile(0.99).as_secs_f64() * 1000.0,
        if stats.events_cut > 0 {
            format!("; {} events after the duration were left out", stats.events_cut)
        } else {
            String::new()
        }
    );
    if let Some(path) = &args.stats_file {
        let body = serde_json::to_vec_pretty(&stats.to_json(started.elapsed())).unwrap_or_default();
        if let Err(e) = tokio::fs::write(path, body).await {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the stats file");
        }
    }
    if stats.interrupted {
        return Err(report_fail("Interrupted", format!("interrupted by a signal: {summary}")).await);
    }
    if stats.failed.is_empty() {
        reporter.stage(conditions::REPLAY, Status::True, "Completed", summary).await;
        Ok(stats)
    } else {
        let first = stats.failed.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        Err(report_fail("ObjectsFailed", format!("{summary}; first failures: {first}")).await)
    }
}

/// Parses a Go-style duration ("90s", "5m", "1h30m", "250ms"), as the CRD's schema allows, of at
/// most 30 days; the checks live in [`crate::limits::parse_duration`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::limits::parse_duration("duration", s).map_err(|e| e.to_string())
}

/// The recorded namespace of the trace's first namespaced object, if any.
fn first_namespace(trace: &Trace, kinds: &engine::Kinds) -> Option<String> {
    (0..trace.event_count()).filter_map(|i| trace.event(i).ok()).find_map(|event| {
        event.applied.iter().chain(&event.deleted).find_map(|obj| {
            let (api_version, kind, ns, _) = super::objects::key_of(obj).ok()?;
            kinds.get(&(api_version, kind)).filter(|t| t.is_namespaced()).map(|_| ns)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        for bad in ["", "5", "5 m", "m", "-1s", "5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(r#"duration "99999999999999999999h": longer than the maximum of 30 days (720h)"#.to_string())
        );
    }
}
