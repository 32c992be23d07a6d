//! Workload figures from `workloads.jsonl`, and for scenarios the steps of `actions.jsonl`:
//! how long each step's scale actions took to have every replica available. A scale action is
//! done when its Deployment has exactly the replicas asked for, all available; one scaled
//! again before that is superseded (and says so). Only the first [`MAX_PLOTTED`] workloads
//! keep a timeline for the plots; the others are counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use crate::collect::records::WorkloadRecord;

use super::read::{micros, ms_between, rfc3339};
use super::series::Series;
use super::summary::{Quantiles, ScenarioFigures, StepFigure, WorkloadFigures};

/// Workloads plotted, at most.
pub const MAX_PLOTTED: usize = 8;

/// Failed actions listed in the summary, at most (all are counted).
const MAX_FAILED_LISTED: usize = 100;

/// One line of `actions.jsonl` (written by `scenario::logs::ActionRecord`), read leniently.
#[derive(Debug, Deserialize)]
pub struct ActionLine {
    /// Position of the step in the play.
    #[serde(default)]
    pub step: u64,
    /// The step's name.
    #[serde(default)]
    pub step_name: String,
    /// Position of the action in its step.
    #[serde(default)]
    pub action: u64,
    /// The action type.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The action's data.
    #[serde(default)]
    pub data: Value,
    /// When it started.
    pub started: String,
    /// Started minus due.
    #[serde(default)]
    pub lateness_ms: Option<f64>,
    /// How long it took.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// ok or error.
    #[serde(default)]
    pub result: String,
    /// The error.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug)]
struct Wait {
    step: usize,
    name: String,
    replicas: i64,
    started_us: i64,
    resolved_us: Option<i64>,
    superseded_by: Option<u64>,
    checked_prev: bool,
}

/// One step on the timeline plot.
#[derive(Debug, Clone, Default)]
pub struct TimelineStep {
    /// Position in the play.
    pub step: u64,
    /// Its name.
    pub name: String,
    /// First action's start (µs).
    pub start_us: i64,
    /// Every scaled Deployment available (µs), or the end of its last action.
    pub end_us: Option<i64>,
    /// Each action's start and whether it succeeded.
    pub actions: Vec<(i64, bool)>,
    /// Its scale actions reached their replicas.
    pub reached: bool,
}

/// Actions and steps of a scenario, read from `actions.jsonl` before `workloads.jsonl`.
#[derive(Debug, Default)]
pub struct Steps {
    steps: Vec<StepFigure>,
    timeline: Vec<TimelineStep>,
    step_index: HashMap<u64, usize>,
    waits: Vec<Wait>,
    by_name: HashMap<String, Vec<usize>>,
    last_state: HashMap<String, (i64, i64, i64, i64)>,
    actions: u64,
    failed: u64,
    /// Failed actions, one line each.
    pub failed_lines: Vec<String>,
    action_lateness: Vec<f64>,
    step_lateness: Vec<f64>,
    first_us: Option<i64>,
    last_us: Option<i64>,
}

impl Steps {
    /// Times of the first action start and last action end (µs).
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_us.zip(self.last_us)
    }

    /// Takes one action.
    pub fn action(&mut self, a: ActionLine) {
        let Some(started) = micros(&a.started) else { return };
        let ended = started.saturating_add(a.duration_ms.map_or(0, |d| (d.max(0.0) * 1000.0).min(1e15) as i64));
        self.first_us = Some(self.first_us.map_or(started, |f| f.min(started)));
        self.last_us = Some(self.last_us.map_or(ended, |l| l.max(ended)));
        self.actions = self.actions.saturating_add(1);
        let ok = a.result != "error";
        if let Some(l) = a.lateness_ms.filter(|l| l.is_finite()) {
            self.action_lateness.push(l.max(0.0));
        }
        let idx = match self.step_index.get(&a.step) {
            Some(i) => *i,
            None => {
                let lateness = a.lateness_ms.filter(|l| l.is_finite()).map(|l| l.max(0.0));
                if let Some(l) = lateness {
                    self.step_lateness.push(l);
                }
                self.steps.push(StepFigure {
                    step: a.step,
                    step_name: a.step_name.clone(),
                    started: Some(rfc3339(started)),
                    lateness_ms: lateness,
                    ..StepFigure::default()
                });
                self.timeline.push(TimelineStep {
                    step: a.step,
                    name: a.step_name.clone(),
                    start_us: started,
                    ..TimelineStep::default()
                });
                let i = self.steps.len().saturating_sub(1);
                self.step_index.insert(a.step, i);
                i
            }
        };
        if let Some(s) = self.steps.get_mut(idx) {
            s.actions = s.actions.saturating_add(1);
            if !ok {
                s.failed_actions = s.failed_actions.saturating_add(1);
            }
        }
        if let Some(t) = self.timeline.get_mut(idx) {
            t.actions.push((started, ok));
            t.end_us = Some(t.end_us.map_or(ended, |e| e.max(ended)));
        }
        if !ok {
            self.failed = self.failed.saturating_add(1);
            if self.failed_lines.len() < MAX_FAILED_LISTED {
                self.failed_lines.push(format!(
                    "step {} ({:?}), action {} ({}): {}",
                    a.step,
                    a.step_name,
                    a.action,
                    a.type_,
                    a.message.as_deref().unwrap_or("failed")
                ));
            }
        }
        if matches!(a.type_.as_str(), "K8S_SCALE" | "SCALE") {
            if let Some(s) = self.steps.get_mut(idx) {
                s.scale_actions = s.scale_actions.saturating_add(1);
            }
            let name = a.data.get("name").and_then(Value::as_str);
            let replicas = a.data.get("replicas").or_else(|| a.data.get("desiredCount")).and_then(Value::as_i64);
            if let (true, Some(name), Some(replicas)) = (ok, name, replicas) {
                let w = self.waits.len();
                self.waits.push(Wait {
                    step: idx,
                    name: name.to_string(),
                    replicas,
                    started_us: started,
                    resolved_us: None,
                    superseded_by: None,
                    checked_prev: false,
                });
                self.by_name.entry(name.to_string()).or_default().push(w);
            }
        }
    }

    /// Sorts the scale actions of each Deployment by start, once every action is read.
    pub fn actions_done(&mut self) {
        let waits = &self.waits;
        for list in self.by_name.values_mut() {
            list.sort_by_key(|w| waits.get(*w).map_or(0, |w| w.started_us));
        }
    }

    /// Takes one workload record (Deployments scaled by the scenario matter).
    fn workload(&mut self, r: &WorkloadRecord, t: i64) {
        if r.kind != "Deployment" {
            return;
        }
        let Some(list) = self.by_name.get(&r.name) else { return };
        let key = format!("{}/{}", r.namespace, r.name);
        let prev = self.last_state.get(&key).copied();
        let satisfies = |replicas: i64, desired: i64, available: i64| desired == replicas && available == replicas;
        for (pos, &w) in list.iter().enumerate() {
            let next_start =
                list.get(pos.saturating_add(1)).and_then(|n| self.waits.get(*n)).map(|n| (n.started_us, n.step));
            let next_step = next_start.and_then(|(_, s)| self.steps.get(s)).map(|s| s.step);
            let Some(wait) = self.waits.get_mut(w) else { continue };
            if wait.resolved_us.is_some() || wait.superseded_by.is_some() {
                continue;
            }
            if wait.started_us > t {
                break;
            }
            if !wait.checked_prev {
                wait.checked_prev = true;
                if let Some((pt, desired, _, available)) = prev
                    && satisfies(wait.replicas, desired, available)
                {
                    wait.resolved_us = Some(pt.max(wait.started_us));
                    continue;
                }
            }
            if let Some((next, _)) = next_start
                && next <= t
            {
                wait.superseded_by = next_step;
                continue;
            }
            if satisfies(wait.replicas, i64::from(r.desired), i64::from(r.available)) {
                wait.resolved_us = Some(t);
            }
        }
        self.last_state.insert(key, (t, i64::from(r.desired), i64::from(r.ready), i64::from(r.available)));
    }

    /// The scenario figures, the timeline, and the step and action lateness.
    pub fn finish(mut self, have_workloads: bool) -> (ScenarioFigures, Vec<TimelineStep>, Vec<f64>, Vec<f64>) {
        // Scale actions after the last record: the last state tells.
        for wait in &mut self.waits {
            if wait.resolved_us.is_some() || wait.superseded_by.is_some() || wait.checked_prev {
                continue;
            }
            let last = self.last_state.iter().find(|(k, _)| k.rsplit('/').next() == Some(wait.name.as_str()));
            if let Some((_, (pt, desired, _, available))) = last
                && *desired == wait.replicas
                && *available == wait.replicas
            {
                wait.resolved_us = Some((*pt).max(wait.started_us));
            }
        }
        let mut per_step: BTreeMap<usize, Vec<&Wait>> = BTreeMap::new();
        for wait in &self.waits {
            per_step.entry(wait.step).or_default().push(wait);
        }
        let mut available = Vec::new();
        for (i, step) in self.steps.iter_mut().enumerate() {
            let Some(waits) = per_step.get(&i) else {
                if step.scale_actions > 0 {
                    step.note = Some("its scale actions failed".to_string());
                }
                continue;
            };
            let first = waits.iter().map(|w| w.started_us).min().unwrap_or(0);
            let mut problems = vec![];
            let mut last = first;
            for w in waits {
                match (w.resolved_us, w.superseded_by) {
                    (Some(r), _) => last = last.max(r),
                    (None, Some(by)) => problems.push(format!(
                        "{} was scaled again by step {by} before all {} replicas were available",
                        w.name, w.replicas
                    )),
                    (None, None) if !have_workloads => problems.push("no workloads.jsonl".to_string()),
                    (None, None) => {
                        problems.push(format!("{} never had exactly {} replicas, all available", w.name, w.replicas))
                    }
                }
            }
            problems.dedup();
            if problems.is_empty() {
                let ms = ms_between(first, last);
                step.all_available_ms = Some(ms);
                available.push(ms);
                if let Some(t) = self.timeline.get_mut(i) {
                    t.end_us = Some(t.end_us.map_or(last, |e| e.max(last)));
                    t.reached = true;
                }
            } else {
                step.note = Some(problems.join("; "));
            }
        }
        let figures = ScenarioFigures {
            actions: self.actions,
            failed_actions: self.failed,
            steps_played: u64::try_from(self.steps.len()).unwrap_or(u64::MAX),
            scale_to_available_ms: Quantiles::of_ms(available),
            steps: self.steps,
        };
        (figures, self.timeline, self.step_lateness, self.action_lateness)
    }
}

/// Workload timelines and counts being read.
#[derive(Debug, Default)]
pub struct WorkloadAnalysis {
    seen: HashSet<String>,
    by_kind: BTreeMap<String, u64>,
    plotted: Vec<(String, Series)>,
    replica_sets: Vec<(String, Series)>,
    first_us: Option<i64>,
    last_us: Option<i64>,
}

impl WorkloadAnalysis {
    /// Times of the first and last record (µs).
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_us.zip(self.last_us)
    }

    /// Takes one record, and gives it to the scenario's steps.
    pub fn record(&mut self, r: WorkloadRecord, steps: Option<&mut Steps>) {
        let Some(t) = micros(&r.t) else { return };
        self.first_us = Some(self.first_us.map_or(t, |f| f.min(t)));
        self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
        if let Some(steps) = steps {
            steps.workload(&r, t);
        }
        let label = format!("{} {}/{}", r.kind, r.namespace, r.name);
        if self.seen.insert(label.clone()) {
            let n = self.by_kind.entry(r.kind.clone()).or_default();
            *n = n.saturating_add(1);
            let list = if r.kind == "ReplicaSet" { &mut self.replica_sets } else { &mut self.plotted };
            if list.len() < MAX_PLOTTED {
                list.push((label.clone(), Series::new(["desired", "ready"])));
            }
        }
        let list = if r.kind == "ReplicaSet" { &mut self.replica_sets } else { &mut self.plotted };
        if let Some((_, series)) = list.iter_mut().find(|(l, _)| *l == label) {
            let (desired, ready) = if r.deleted { (0, 0) } else { (i64::from(r.desired), i64::from(r.ready)) };
            series.set(t, &[desired, ready]);
        }
    }

    /// The figures, and the plotted timelines with how many workloads were left out.
    pub fn finish(self) -> (WorkloadFigures, Vec<(String, Series)>, u64) {
        // ReplicaSets repeat their Deployments' counts: plotted only when nothing else is there.
        let plotted = if self.plotted.is_empty() { self.replica_sets } else { self.plotted };
        let total = u64::try_from(self.seen.len()).unwrap_or(u64::MAX);
        let shown = u64::try_from(plotted.len()).unwrap_or(u64::MAX);
        let figures = WorkloadFigures { total, by_kind: self.by_kind, plotted: shown };
        (figures, plotted, total.saturating_sub(shown))
    }
}
