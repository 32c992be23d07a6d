//! Pod figures from `pods.jsonl`: latencies per condition as kube-burner measures them
//! (creationTimestamp to the condition's first True, both API server times, whole seconds),
//! the same latencies as the collectors saw them (watch times, microseconds: on virtual nodes a
//! pod is often Ready within the second it was created, where the first figure reads 0), pods
//! by phase and pending over time, and scheduling throughput. State is kept per live pod and dropped
//! when the pod is deleted; what outlives it is its latencies (a few numbers per pod, needed
//! for exact quantiles).

use std::collections::{BTreeMap, HashMap};

use crate::collect::records::{PodChange, PodRecord};

use super::read::{micros, micros_opt, ms_between, rfc3339};
use super::series::Series;
use super::summary::{ConditionLatency, Pending, PodFigures, Quantiles, Throughput};

/// Conditions measured, in the order a pod goes through them.
pub const CONDITIONS: [&str; 5] =
    ["PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"];

/// Index of PodReadyToStartContainers, reported only when some pod has it.
const READY_TO_START: usize = 1;

/// Phases, in the order the plots stack them.
pub const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/// Width of a scheduling throughput window.
pub const THROUGHPUT_WINDOW_SECONDS: u64 = 5;
const WINDOW_US: i64 = 5_000_000;

/// Share of pods that may lack a condition before its figures are left out (kube-burner's).
pub const MAX_UNMEASURED: f64 = 0.10;

/// When the collectors first saw a change.
#[derive(Debug, Clone, Copy)]
enum SeenAt {
    /// Delivered by the watch at this time (µs).
    Watch(i64),
    /// Found by a list after a lost watch (`relisted`): the list's time, not the change's.
    List,
}

impl SeenAt {
    fn of(t: i64, relisted: bool) -> Self {
        if relisted { SeenAt::List } else { SeenAt::Watch(t) }
    }

    /// The watch's time, if the watch delivered it.
    fn watch(self) -> Option<i64> {
        match self {
            SeenAt::Watch(t) => Some(t),
            SeenAt::List => None,
        }
    }
}

#[derive(Debug, Default)]
struct PodState {
    created_us: Option<i64>,
    /// When the collectors saw the pod's creation (`t` of its `created` record).
    created_seen: Option<SeenAt>,
    phase: usize,
    conditions: [Option<i64>; 5],
    /// When the collectors saw each condition first True.
    conditions_seen: [Option<SeenAt>; 5],
    scheduled_counted: bool,
    evicted: bool,
    failed: bool,
}

impl PodState {
    /// `CONDITIONS[i]` seen True, at `at` by the API server (kept until one is known) and at
    /// `t` by the collectors (the first only; `relisted` when a list found it).
    fn reached(&mut self, i: usize, at: Option<i64>, t: i64, relisted: bool) {
        if let Some(slot) = self.conditions.get_mut(i)
            && slot.is_none()
        {
            *slot = at;
        }
        if let Some(seen) = self.conditions_seen.get_mut(i) {
            seen.get_or_insert(SeenAt::of(t, relisted));
        }
    }
}

/// Pod figures being read.
#[derive(Debug)]
pub struct PodAnalysis {
    live: HashMap<String, PodState>,
    total: u64,
    /// Latencies of finished pods per condition (ms), and pods without the condition.
    latencies: [Vec<f64>; 5],
    unmeasured: [u64; 5],
    with_created: u64,
    /// The same, by the collectors' watch times, for the pods whose creation they saw.
    observed: [Vec<f64>; 5],
    with_created_seen: u64,
    /// Pods by phase over time.
    pub phases: Series,
    pending_peak: i64,
    pending_peak_at: Option<i64>,
    /// Sum of pending × µs since the first record.
    pending_area: i128,
    last_us: Option<i64>,
    first_us: Option<i64>,
    windows: HashMap<i64, u64>,
    /// Pods that ended in Failed, by reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Pods with reason Evicted.
    pub evicted: u64,
}

impl Default for PodAnalysis {
    fn default() -> Self {
        PodAnalysis {
            live: HashMap::new(),
            total: 0,
            latencies: Default::default(),
            unmeasured: [0; 5],
            with_created: 0,
            observed: Default::default(),
            with_created_seen: 0,
            phases: Series::new(PHASES),
            pending_peak: 0,
            pending_peak_at: None,
            pending_area: 0,
            last_us: None,
            first_us: None,
            windows: HashMap::new(),
            failed_by_reason: BTreeMap::new(),
            evicted: 0,
        }
    }
}

fn phase_index(phase: &str) -> usize {
    PHASES.iter().position(|p| *p == phase).unwrap_or(PHASES.len().saturating_sub(1))
}

impl PodAnalysis {
    /// Times of the first and last record (µs).
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_us.zip(self.last_us)
    }

    /// Takes one record.
    pub fn record(&mut self, r: PodRecord) {
        let Some(t) = micros(&r.t) else { return };
        self.advance(t);
        let at = micros_opt(r.at.as_deref());
        if r.change == PodChange::Deleted {
            if let Some(state) = self.live.remove(&r.uid) {
                self.phases.add(t, state.phase, -1);
                self.finish(state);
                self.after_change(t);
            }
            return;
        }
        let is_new = !self.live.contains_key(&r.uid);
        let state = self.live.entry(r.uid).or_default();
        if is_new {
            self.total = self.total.saturating_add(1);
            self.phases.add(t, 0, 1);
        }
        match r.change {
            PodChange::Created => {
                if state.created_us.is_none() {
                    state.created_us = at;
                    state.created_seen = Some(SeenAt::of(t, r.relisted));
                }
            }
            PodChange::Scheduled => state.reached(0, at, t, r.relisted),
            PodChange::Condition => {
                if let Some(i) = r.condition.as_deref().and_then(|c| CONDITIONS.iter().position(|x| *x == c)) {
                    state.reached(i, at, t, r.relisted);
                }
            }
            PodChange::Phase => {
                if let Some(p) = r.phase.as_deref() {
                    let new = phase_index(p);
                    if new != state.phase {
                        self.phases.add(t, state.phase, -1);
                        self.phases.add(t, new, 1);
                        state.phase = new;
                    }
                    if p == "Failed" && !state.failed {
                        state.failed = true;
                        let reason = r.reason.clone().unwrap_or_else(|| "unknown".to_string());
                        let n = self.failed_by_reason.entry(reason).or_default();
                        *n = n.saturating_add(1);
                    }
                }
            }
            PodChange::Terminated | PodChange::Deleting => {}
            PodChange::Deleted => {}
        }
        // A kubelet eviction is phase Failed with reason Evicted; the eviction API, preemption
        // and the taint manager set the DisruptionTarget condition.
        let disrupted = r.change == PodChange::Condition && r.condition.as_deref() == Some("DisruptionTarget");
        if (disrupted || r.reason.as_deref() == Some("Evicted")) && !state.evicted {
            state.evicted = true;
            self.evicted = self.evicted.saturating_add(1);
        }
        // Scheduling throughput: the first scheduling of each pod, at the API server's time.
        if !state.scheduled_counted
            && (r.change == PodChange::Scheduled
                || (r.change == PodChange::Condition && r.condition.as_deref() == Some("PodScheduled")))
        {
            state.scheduled_counted = true;
            let when = at.unwrap_or(t);
            let n = self.windows.entry(when.div_euclid(WINDOW_US)).or_default();
            *n = n.saturating_add(1);
        }
        self.after_change(t);
    }

    /// Moves the pending integral to `t`.
    fn advance(&mut self, t: i64) {
        self.first_us = Some(self.first_us.map_or(t, |f| f.min(t)));
        if let Some(last) = self.last_us {
            let dt = t.saturating_sub(last).max(0);
            let pending = self.phases.current().first().copied().unwrap_or(0);
            self.pending_area = self.pending_area.saturating_add(i128::from(pending) * i128::from(dt));
        }
        self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
    }

    fn after_change(&mut self, t: i64) {
        let pending = self.phases.current().first().copied().unwrap_or(0);
        if pending > self.pending_peak {
            self.pending_peak = pending;
            self.pending_peak_at = Some(t);
        }
    }

    /// A pod's latencies, once it is gone or the file ended.
    fn finish(&mut self, state: PodState) {
        let Some(created) = state.created_us else { return };
        self.with_created = self.with_created.saturating_add(1);
        for (i, at) in state.conditions.iter().enumerate() {
            match at {
                Some(at) => self.latencies[i].push(ms_between(created, *at)),
                None => self.unmeasured[i] = self.unmeasured[i].saturating_add(1),
            }
        }
        // By watch times only for pods created once the collectors were watching (from the
        // second of their first record): a pod they found already there was seen created and
        // ready at once. Likewise a creation or condition that a list found after a lost watch
        // has the list's time: such a pod, or condition, is left out (unmeasured).
        let watching_since = self.first_us.map(|f| f.saturating_sub(f.rem_euclid(1_000_000)));
        if let (Some(seen), Some(since)) = (state.created_seen.and_then(SeenAt::watch), watching_since)
            && created >= since
        {
            self.with_created_seen = self.with_created_seen.saturating_add(1);
            for (i, at) in state.conditions_seen.iter().enumerate() {
                if let Some(at) = at.and_then(SeenAt::watch) {
                    self.observed[i].push(ms_between(seen, at));
                }
            }
        }
    }

    /// The figures over the window [`start`, `end`] (µs), and the sorted watch-time latencies per
    /// condition reported (for the plots).
    pub fn finish_all(mut self, window: Option<(i64, i64)>) -> (PodFigures, Vec<(String, Vec<f64>)>, Series) {
        let live: Vec<PodState> = self.live.drain().map(|(_, s)| s).collect();
        let mut phases_at_end = BTreeMap::new();
        for (name, n) in PHASES.iter().zip(self.phases.current()) {
            if *n != 0 {
                phases_at_end.insert((*name).to_string(), *n);
            }
        }
        for state in live {
            self.finish(state);
        }
        // Pending until the end of the window, then the time-weighted mean.
        let mut mean = 0.0;
        if let Some((start, end)) = window {
            if let Some(last) = self.last_us {
                let tail = end.saturating_sub(last).max(0);
                let pending = self.phases.current().first().copied().unwrap_or(0);
                self.pending_area = self.pending_area.saturating_add(i128::from(pending) * i128::from(tail));
            }
            let span = end.saturating_sub(start);
            if span > 0 {
                mean = (self.pending_area as f64 / span as f64 * 1000.0).round() / 1000.0;
            }
        }
        let mut latency_ms = Vec::new();
        let mut observed_latency_ms = Vec::new();
        let mut sorted_out = Vec::new();
        for (i, condition) in CONDITIONS.iter().enumerate() {
            let mut values = std::mem::take(&mut self.latencies[i]);
            let mut observed = std::mem::take(&mut self.observed[i]);
            if i == READY_TO_START && values.is_empty() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            observed.sort_by(f64::total_cmp);
            latency_ms.push(condition_latency(condition, self.with_created, &values, "pods"));
            observed_latency_ms.push(condition_latency(condition, self.with_created_seen, &observed, "pods"));
            // The plots draw the watch times: whole seconds would put every pod of a fast
            // cluster at 0.
            sorted_out.push(((*condition).to_string(), observed));
        }
        let figures = PodFigures {
            total: self.total,
            phases_at_end,
            latency_ms,
            observed_latency_ms,
            pending: Pending { peak: self.pending_peak, peak_at: self.pending_peak_at.map(rfc3339), mean },
            scheduling_throughput: throughput(&self.windows),
        };
        (figures, sorted_out, self.phases)
    }

    /// Pods scheduled per 5 s window: (window start in µs, pods), sorted.
    pub fn throughput_windows(&self) -> Vec<(i64, u64)> {
        let mut w: Vec<(i64, u64)> = self.windows.iter().map(|(k, v)| (k.saturating_mul(WINDOW_US), *v)).collect();
        w.sort_unstable();
        w
    }
}

/// Latency figures of one condition, left out (with a note) when more than 10 % of the
/// `total` subjects lack it.
pub fn condition_latency(condition: &str, total: u64, sorted: &[f64], subjects: &str) -> ConditionLatency {
    let measured = u64::try_from(sorted.len()).unwrap_or(u64::MAX);
    let missing = total.saturating_sub(measured);
    let mut out = ConditionLatency { condition: condition.to_string(), total, measured, quantiles: None, note: None };
    if total == 0 {
        out.note = Some(format!("no {subjects} with a creation time"));
    } else if missing as f64 > MAX_UNMEASURED * total as f64 {
        out.note = Some(format!(
            "{missing} of {total} {subjects} ({:.1} %) never reached {condition}: more than 10 %, figures left out",
            missing as f64 * 100.0 / total as f64
        ));
    } else {
        out.quantiles = Quantiles::of_sorted(sorted);
    }
    out
}

/// Throughput over the windows from the first to the last one with a scheduling; the empty
/// windows between count as 0 (without being held in memory).
fn throughput(windows: &HashMap<i64, u64>) -> Throughput {
    let mut out = Throughput { window_seconds: THROUGHPUT_WINDOW_SECONDS, ..Throughput::default() };
    let (Some(first), Some(last)) = (windows.keys().min(), windows.keys().max()) else { return out };
    let span = u64::try_from(last.saturating_sub(*first)).unwrap_or(0).saturating_add(1);
    let mut busy: Vec<f64> = windows.values().map(|n| *n as f64 / THROUGHPUT_WINDOW_SECONDS as f64).collect();
    busy.sort_by(f64::total_cmp);
    let empty = span.saturating_sub(busy.len() as u64);
    let at = |q: f64| -> f64 {
        let n = span as f64;
        let rank = ((q * n).ceil() as u64).clamp(1, span);
        if rank <= empty {
            0.0
        } else {
            let i = usize::try_from(rank.saturating_sub(empty)).unwrap_or(usize::MAX);
            busy.get(i.saturating_sub(1)).copied().unwrap_or(0.0)
        }
    };
    out.scheduled = windows.values().fold(0u64, |a, b| a.saturating_add(*b));
    out.windows = span;
    out.p50 = at(0.5);
    out.p90 = at(0.9);
    out.p99 = at(0.99);
    out.max = busy.last().copied().unwrap_or(0.0);
    out
}
