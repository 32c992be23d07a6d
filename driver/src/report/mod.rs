//! Turns a run folder into `summary.json` and `report.html`, the evidence a user opens to
//! see what the cluster did, how fast, and where it hurt. Both run kinds (replay and scenario)
//! call [`write()`] once at the end with the facts only the driver knows ([`RunFacts`]); the
//! figures come from the folder's JSON lines ([`crate::collect::records`]), read one line at a
//! time, so `rehearsal-driver report DIR` rebuilds the same files later (facts taken from the
//! previous `summary.json`) and `rehearsal-driver compare A B` puts two runs side by side.
//! A bad line costs that line only: it is counted with its file and line number.
//!
//! # `summary.json` (schema version [`SCHEMA_VERSION`])
//!
//! Times are RFC 3339 (UTC); durations are milliseconds (`*_ms`, three decimals at most);
//! quantiles are nearest-rank: `{count, p50, p90, p99, max, avg}`. Fields that do not apply
//! are left out.
//!
//! - `schema_version`: "MAJOR.MINOR"; a reader refuses a newer major.
//! - `generated_at`: when the summary was computed.
//! - `run`: the facts the driver gave ([`RunFacts`]): `kind` (replay|scenario), `name`
//!   (Simulation or Scenario), `simulation`, `run` (run index or run id), `start`, `end`,
//!   `result` (succeeded|failed|interrupted|unknown), `failures`, `cleanup`, `lateness_ms`,
//!   `action_lateness_ms`, `artifact_uri`, `thresholds` (`{condition, metric, maxMs}` as in
//!   `spec.collect.thresholds`), `details` (kind-specific facts, e.g. speed, steps played,
//!   objects applied), `notes`.
//! - `verdict`: `status` passed (succeeded, no threshold breached) | failed | unknown (no
//!   result known, nothing breached), and `reasons` (the run's failures, then the breaches).
//! - `window`: `start`, `end`, `seconds`: the earlier of the run's start and the first record
//!   to the later of its end and the last record; time-weighted means are over it.
//! - `inputs`: `files` (per JSON-lines file: `file`, `present`, `lines`, `records`,
//!   `bad_lines`), `bad_lines_total`, `bad_lines` (the first 50: `file`, `line`, `error`).
//! - `pods` (from `pods.jsonl`): `total` pods seen; `phases_at_end` (pods per phase, deleted
//!   ones left out); `latency_ms`: one entry per condition (PodScheduled,
//!   PodReadyToStartContainers when any pod has it, Initialized, ContainersReady, Ready):
//!   `condition`, `total` (pods with a creationTimestamp), `measured` (of those, pods that
//!   reached it), `quantiles` of the milliseconds from creationTimestamp to the condition's
//!   first True (both API server times; negative clamped to 0), or, when more than 10 % of the
//!   pods never reached it, no quantiles and a `note` saying so (kube-burner's rule);
//!   `observed_latency_ms` (since 1.1): the same entries by the collectors' own times (`t` of
//!   the pod's `created` record to `t` of the condition's first True record, microseconds),
//!   for the pods created once the collectors were watching (a creation or condition that a list
//!   after a lost watch found, `relisted`, is left out: its `t` is the list's): both API server
//!   times above are whole seconds, so on virtual nodes, where a pod is often Ready within the
//!   second it was created, they read 0 where these do not;
//!   `pending`: `peak`, `peak_at`, `mean` (time-weighted over the window) of pods in phase
//!   Pending; `scheduling_throughput`: pods/s per 5 s window (`window_seconds`, `scheduled`,
//!   `windows` from the first scheduling to the last, empty ones counting 0, `p50`, `p90`,
//!   `p99`, `max`).
//! - `nodes` (from `nodes.jsonl`, Nodes only): `at_start` (created before the run's start),
//!   `at_end`, `min`, `max` (node count over the run), `added`, `removed`,
//!   `max_by_instance_type`, `readiness_latency_ms` (as a `latency_ms` entry: creation to
//!   first Ready of the nodes added during the run), `karpenter_changes` (NodePool and
//!   NodeClaim records).
//! - `workloads` (from `workloads.jsonl`): `total`, `by_kind`, `plotted`.
//! - `scenario` (scenario runs, from `actions.jsonl` and `workloads.jsonl`): `actions`,
//!   `failed_actions`, `steps_played` (the player's count, empty steps included; else the
//!   steps found in actions.jsonl), `scale_to_available_ms` (quantiles over the steps with
//!   scale actions), `steps`: per step played `step`, `step_name`, `started`, `lateness_ms`,
//!   `actions`, `failed_actions`, `scale_actions`, `all_available_ms` (from the step's first
//!   scale action to every Deployment it scaled having exactly the replicas asked for, all
//!   available), `note` (why that is missing: scaled again first, never reached).
//! - `lateness_ms`: `run` (replay: each request's start minus its deadline; scenario: each
//!   step's start minus its due time) and `actions` (scenario: each action's), from the
//!   driver's facts, else from `actions.jsonl`.
//! - `failures`: `run` (the driver's), `actions` (failed actions, one line each, at most
//!   100), `failed_scheduling` (`reason`, `events`, `objects`: the scheduler's reasons split
//!   out of FailedScheduling messages), `evictions` (`pods` with reason Evicted, `events`
//!   Evicted/Preempted/TaintManagerEviction), `pods_failed` (phase Failed by reason),
//!   `warnings` (Warning events by reason, top 20).
//! - `audit` (from `audit.jsonl`): `events`, `by_verb`, `errors` (code ≥ 400).
//! - `thresholds`: each threshold checked: `condition`, `metric`, `max_ms`, `value_ms`,
//!   `breached`, `message`; `breaches`: the messages of the breached ones, e.g.
//!   "Ready p99 7310 ms > 5000 ms". A threshold whose figure cannot be measured is breached.
//! - `notes`: what the report could not say, and why.

pub mod compare;
pub mod events;
pub mod html;
pub mod nodes;
pub mod plots;
pub mod pods;
pub mod read;
pub mod remote;
pub mod series;
pub mod summary;
pub mod synthetic;
pub mod thresholds;
pub mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use rehearsal_crds::simulation::Threshold;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collect::records::{AuditRecord, EventRecord, NodeRecord, PodRecord, SCHEMA_VERSION, WorkloadRecord, files};

use read::{BadLines, each_line, micros_opt, rfc3339};
use series::Series;
use summary::{Evictions, Failures, Inputs, Lateness, Verdict, VerdictStatus, Window};
pub use summary::{Quantiles, Summary};
use workloads::{ActionLine, Steps, TimelineStep, WorkloadAnalysis};

/// Largest `summary.json` read back (it is one document, not JSON lines).
const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// Which kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A trace replay.
    #[default]
    Replay,
    /// A scenario play.
    Scenario,
}

impl RunKind {
    /// replay or scenario.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Replay => "replay",
            RunKind::Scenario => "scenario",
        }
    }
}

/// How the run ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    /// Everything it did succeeded.
    Succeeded,
    /// Something failed.
    Failed,
    /// A signal stopped it.
    Interrupted,
    /// Not known (a report rebuilt without the driver's facts).
    #[default]
    Unknown,
}

impl RunResult {
    /// succeeded, failed, interrupted or unknown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::Interrupted => "interrupted",
            RunResult::Unknown => "unknown",
        }
    }
}

/// The facts of a run only the driver knows; `summary.json` keeps them under `run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunFacts {
    /// replay or scenario.
    pub kind: RunKind,
    /// The Simulation (replay) or Scenario name.
    pub name: String,
    /// The Simulation the run belongs to, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulation: Option<String>,
    /// The run index (Simulation) or run id (scenario CLI).
    pub run: String,
    /// When the run started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When it ended, after its cleanup (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// How it ended.
    pub result: RunResult,
    /// What went wrong, one line each.
    pub failures: Vec<String>,
    /// What the cleanup did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<String>,
    /// Replay: request lateness; scenario: step lateness. Unset: computed from actions.jsonl.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateness_ms: Option<Quantiles>,
    /// Scenario: action lateness. Unset: computed from actions.jsonl.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_lateness_ms: Option<Quantiles>,
    /// Where the folder is uploaded (s3://bucket/prefix/).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    /// Limits on pod latencies (`spec.collect.thresholds`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// Kind-specific facts shown as they are (speed, steps played, objects applied, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
    /// Things the report should say (e.g. "audit events are not available on this cluster").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run folder cannot be read.
    #[error("cannot read the run folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The folder was summarised by a newer rehearsal.
    #[error("{}: summary.json has schema version {found}, newer than the {supported} this rehearsal reads; use a newer rehearsal-driver", path.display())]
    Newer {
        /// The folder.
        path: PathBuf,
        /// Its version.
        found: String,
        /// Ours.
        supported: String,
    },
    /// Two runs that cannot be compared.
    #[error("cannot compare {a} with {b}: {reason}")]
    Incompatible {
        /// First run.
        a: String,
        /// Second run.
        b: String,
        /// Why.
        reason: String,
    },
    /// An S3 location that cannot be used.
    #[error("{location}: {detail}")]
    Remote {
        /// The s3:// location.
        location: String,
        /// What went wrong.
        detail: String,
    },
}

/// What [`write()`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The summary (with its thresholds checked).
    pub summary: Summary,
    /// `summary.json`.
    pub summary_path: PathBuf,
    /// `report.html`.
    pub report_path: PathBuf,
}

impl Written {
    /// The breached thresholds, one line each ("Ready p99 7310 ms > 5000 ms").
    pub fn breaches(&self) -> &[String] {
        &self.summary.breaches
    }
}

/// Everything the plots need, bounded in size whatever the run's length.
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    /// Start of the window (µs since the epoch); plots count seconds from it.
    pub start_us: i64,
    /// End of the window (µs).
    pub end_us: i64,
    /// Pods by phase.
    pub phases: Series,
    /// Nodes: the total, then per instance type.
    pub nodes: Series,
    /// Desired and ready replicas of the plotted workloads.
    pub workloads: Vec<(String, Series)>,
    /// Workloads not plotted.
    pub workloads_left_out: u64,
    /// Per condition, the latencies (ms) by the collectors' watch times, sorted.
    pub latencies: Vec<(String, Vec<f64>)>,
    /// Node readiness latencies (ms) sorted.
    pub node_readiness: Vec<f64>,
    /// Pods scheduled per 5 s window: (window start in µs, pods).
    pub throughput: Vec<(i64, u64)>,
    /// Scenario steps.
    pub timeline: Vec<TimelineStep>,
}

/// A run folder read: its summary and its plot data.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The figures.
    pub summary: Summary,
    /// The plots' data.
    pub plots: PlotData,
}

/// Reads `dir`, writes `summary.json` and `report.html` into it, and returns the summary; the
/// driver sets a failed condition for each of its breaches.
pub fn write(dir: &Path, facts: &RunFacts) -> Result<Written, ReportError> {
    let analysis = analyse(dir, facts)?;
    let summary_path = dir.join(files::SUMMARY);
    let report_path = dir.join(files::REPORT);
    let mut body = serde_json::to_vec_pretty(&analysis.summary)
        .map_err(|e| ReportError::Write { path: summary_path.clone(), source: std::io::Error::other(e) })?;
    body.push(b'\n');
    write_file(&summary_path, &body)?;
    let page = html::report(&analysis.summary, &analysis.plots);
    write_file(&report_path, page.as_bytes())?;
    Ok(Written { summary: analysis.summary, summary_path, report_path })
}

/// [`write()`] with the facts of the folder's previous `summary.json` (see [`facts_of`]).
pub fn rebuild(dir: &Path) -> Result<Written, ReportError> {
    let facts = facts_of(dir)?;
    write(dir, &facts)
}

/// Writes through a temporary file, so a reader (or an upload) never sees half a file.
fn write_file(path: &Path, body: &[u8]) -> Result<(), ReportError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}

/// The major version of a "MAJOR.MINOR" schema version.
pub fn major(version: &str) -> Option<u64> {
    version.split('.').next()?.trim().parse().ok()
}

/// The schema version of the folder's `summary.json`, when it has one with a version.
pub fn schema_of(dir: &Path) -> Option<String> {
    let value = previous_summary(dir)?;
    value.get("schema_version")?.as_str().map(str::to_string)
}

fn previous_summary(dir: &Path) -> Option<Value> {
    let path = dir.join(files::SUMMARY);
    let len = std::fs::metadata(&path).ok()?.len();
    if len > MAX_SUMMARY_BYTES {
        return None;
    }
    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
}

/// The facts of a run as its previous `summary.json` holds them: this format's `run`, or the
/// scenario player's own summary (run_id, scenario, start, end, result, failures, ...). Without
/// one: the kind guessed from the folder (actions.jsonl or steps/ make a scenario), its name,
/// result unknown. A newer major version is refused.
pub fn facts_of(dir: &Path) -> Result<RunFacts, ReportError> {
    if !dir.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory");
        return Err(ReportError::Folder { path: dir.to_path_buf(), source });
    }
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let scenario_like = dir.join(files::ACTIONS).exists() || dir.join("steps").is_dir();
    let guessed = RunFacts {
        kind: if scenario_like { RunKind::Scenario } else { RunKind::Replay },
        name: folder.clone(),
        run: folder,
        ..RunFacts::default()
    };
    let Some(previous) = previous_summary(dir) else { return Ok(guessed) };
    if let Some(version) = previous.get("schema_version").and_then(Value::as_str) {
        if major(version).is_none_or(|m| Some(m) > major(SCHEMA_VERSION)) {
            return Err(ReportError::Newer {
                path: dir.to_path_buf(),
                found: version.to_string(),
                supported: SCHEMA_VERSION.to_string(),
            });
        }
        return Ok(match previous.get("run").map(RunFacts::deserialize) {
            Some(Ok(facts)) => facts,
            _ => RunFacts { notes: vec!["the previous summary.json has no readable run facts".to_string()], ..guessed },
        });
    }
    if previous.get("run_id").is_some() {
        return Ok(legacy_scenario_facts(&previous, guessed));
    }
    Ok(guessed)
}

/// The facts in a summary.json written by the scenario player itself.
fn legacy_scenario_facts(v: &Value, guessed: RunFacts) -> RunFacts {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut details = BTreeMap::new();
    for key in
        ["play_id", "source", "namespace", "placement", "speed", "timestep_seconds", "steps", "actions", "skipped"]
    {
        if let Some(x) = v.get(key) {
            details.insert(key.to_string(), x.clone());
        }
    }
    RunFacts {
        kind: RunKind::Scenario,
        name: s("scenario").unwrap_or(guessed.name),
        run: s("run_id").unwrap_or(guessed.run),
        start: s("start"),
        end: s("end"),
        result: match s("result").as_deref() {
            Some("succeeded") => RunResult::Succeeded,
            Some("failed") => RunResult::Failed,
            Some("interrupted") => RunResult::Interrupted,
            _ => RunResult::Unknown,
        },
        failures: v
            .get("failures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        cleanup: s("cleanup"),
        artifact_uri: s("s3_uri"),
        details,
        ..RunFacts::default()
    }
}

/// Reads the folder and computes the summary (thresholds checked) and the plots' data.
pub fn analyse(dir: &Path, facts: &RunFacts) -> Result<Analysis, ReportError> {
    std::fs::read_dir(dir).map_err(|source| ReportError::Folder { path: dir.to_path_buf(), source })?;
    let mut bad = BadLines::default();
    let mut notes = facts.notes.clone();
    let run_start = micros_opt(facts.start.as_deref());
    let run_end = micros_opt(facts.end.as_deref());
    let mut inputs = Vec::new();

    let mut steps = (facts.kind == RunKind::Scenario).then(Steps::default);
    if let Some(s) = steps.as_mut() {
        let read = each_line::<ActionLine>(dir, files::ACTIONS, &mut bad, |a| s.action(a));
        s.actions_done();
        if !read.present {
            notes.push(format!("{} is missing: no step figures", files::ACTIONS));
        }
        inputs.push(read);
    }
    let mut pods = pods::PodAnalysis::default();
    let pods_read = each_line::<PodRecord>(dir, files::PODS, &mut bad, |r| pods.record(r));
    let mut nodes = nodes::NodeAnalysis::new(run_start);
    let nodes_read = each_line::<NodeRecord>(dir, files::NODES, &mut bad, |r| nodes.record(r));
    let mut workloads = WorkloadAnalysis::default();
    let workloads_read =
        each_line::<WorkloadRecord>(dir, files::WORKLOADS, &mut bad, |r| workloads.record(r, steps.as_mut()));
    let mut events = events::EventAnalysis::default();
    let events_read = each_line::<EventRecord>(dir, files::EVENTS, &mut bad, |r| events.record(r));
    let mut audit = events::AuditAnalysis::default();
    let audit_read = each_line::<AuditRecord>(dir, files::AUDIT, &mut bad, |r| audit.record(r));

    for (read, what) in [
        (&pods_read, "no pod figures"),
        (&nodes_read, "no node figures"),
        (&workloads_read, "no workload figures"),
        (&events_read, "no failures from events"),
        (&audit_read, "the run's audit events were not collected"),
    ] {
        if !read.present {
            notes.push(format!("{} is missing: {what}", read.file));
        }
    }

    // The window covers the run and every record.
    let spans = [pods.span(), nodes.span(), workloads.span(), steps.as_ref().and_then(Steps::span)];
    let start = spans.iter().flatten().map(|s| s.0).chain(run_start).min();
    let end = spans.iter().flatten().map(|s| s.1).chain(run_end).max();
    let window_us = start.zip(end).map(|(s, e)| (s, e.max(s)));
    let window = Window {
        start: window_us.map(|w| rfc3339(w.0)),
        end: window_us.map(|w| rfc3339(w.1)),
        seconds: window_us.map_or(0.0, |(s, e)| read::ms_between(s, e) / 1000.0),
    };

    let throughput = pods.throughput_windows();
    let pods_evicted = pods.evicted;
    let pods_failed = std::mem::take(&mut pods.failed_by_reason);
    let (pod_figures, latencies, phases) = pods.finish_all(window_us);
    let (node_figures, node_readiness, node_series) = nodes.finish();
    let (workload_figures, plotted, left_out) = workloads.finish();
    let (failed_scheduling, warnings, eviction_events) = events.finish();

    let mut lateness = Lateness { run: facts.lateness_ms, actions: facts.action_lateness_ms };
    let mut failed_actions = vec![];
    let mut timeline = vec![];
    let scenario = steps.map(|s| {
        failed_actions.clone_from(&s.failed_lines);
        let (mut figures, steps_timeline, step_lateness, action_lateness) = s.finish(workloads_read.present);
        // actions.jsonl only knows the steps that had actions; the player counts every step
        // it played, empty ones too.
        if let Some(played) = facts.details.get("steps").and_then(|v| v.get("played")).and_then(Value::as_u64) {
            figures.steps_played = played;
        }
        timeline = steps_timeline;
        if lateness.run.is_none() {
            lateness.run = Quantiles::of_ms(step_lateness);
        }
        if lateness.actions.is_none() {
            lateness.actions = Quantiles::of_ms(action_lateness);
        }
        figures
    });

    let pod_figures = pods_read.present.then_some(pod_figures);
    if let Some(p) = &pod_figures {
        for c in &p.latency_ms {
            if let Some(note) = &c.note {
                notes.push(format!("pod latency {}: {note}", c.condition));
            }
        }
    }
    let checks = thresholds::check(&facts.thresholds, pod_figures.as_ref());
    let breaches: Vec<String> = checks.iter().filter(|c| c.breached).map(|c| c.message.clone()).collect();
    let verdict = verdict(facts, &breaches);

    inputs.extend([
        pods_read.clone(),
        nodes_read.clone(),
        workloads_read.clone(),
        events_read.clone(),
        audit_read.clone(),
    ]);
    let summary = Summary {
        schema_version: SCHEMA_VERSION.to_string(),
        generated_at: format!("{:.3}", Timestamp::now()),
        run: facts.clone(),
        verdict,
        window,
        inputs: Inputs { files: inputs, bad_lines_total: bad.total, bad_lines: bad.kept },
        pods: pod_figures,
        nodes: nodes_read.present.then_some(node_figures),
        workloads: workloads_read.present.then_some(workload_figures),
        scenario,
        lateness_ms: lateness,
        failures: Failures {
            run: facts.failures.clone(),
            actions: failed_actions,
            failed_scheduling,
            evictions: Evictions { pods: pods_evicted, events: eviction_events },
            pods_failed,
            warnings,
        },
        audit: audit_read.present.then(|| audit.finish()),
        thresholds: checks,
        breaches,
        notes,
    };
    let plots = PlotData {
        start_us: window_us.map_or(0, |w| w.0),
        end_us: window_us.map_or(0, |w| w.1),
        phases,
        nodes: node_series,
        workloads: plotted,
        workloads_left_out: left_out,
        latencies,
        node_readiness,
        throughput,
        timeline,
    };
    Ok(Analysis { summary, plots })
}

fn verdict(facts: &RunFacts, breaches: &[String]) -> Verdict {
    let mut reasons: Vec<String> = facts.failures.clone();
    if matches!(facts.result, RunResult::Failed | RunResult::Interrupted) && reasons.is_empty() {
        reasons.push(format!("the run {}", facts.result.as_str()));
    }
    reasons.extend(breaches.iter().cloned());
    let status = match facts.result {
        RunResult::Failed | RunResult::Interrupted => VerdictStatus::Failed,
        _ if !breaches.is_empty() => VerdictStatus::Failed,
        RunResult::Succeeded => VerdictStatus::Passed,
        RunResult::Unknown => VerdictStatus::Unknown,
    };
    Verdict { status, reasons }
}

#[cfg(test)]
mod tests;
