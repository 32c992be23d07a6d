//! The types of `summary.json` (documented field by field in the module doc of
//! [`crate::report`] and in README.md), and the quantiles every latency figure uses.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RunFacts;
use super::read::{BadLine, FileRead};

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Version of this format ([`crate::collect::records::SCHEMA_VERSION`]).
    pub schema_version: String,
    /// When the summary was computed (RFC 3339).
    pub generated_at: String,
    /// What ran, as the driver says.
    pub run: RunFacts,
    /// passed, failed or unknown, and why.
    pub verdict: Verdict,
    /// The span the evidence covers.
    pub window: Window,
    /// What was read.
    pub inputs: Inputs,
    /// Pod figures; absent without `pods.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodFigures>,
    /// Node figures; absent without `nodes.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeFigures>,
    /// Workloads seen in `workloads.jsonl`; absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<WorkloadFigures>,
    /// Scenario figures; absent for replays and without `actions.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioFigures>,
    /// How late the run started what it did.
    pub lateness_ms: Lateness,
    /// What went wrong.
    pub failures: Failures,
    /// Audit events; absent without `audit.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditFigures>,
    /// Every threshold of the run, checked.
    #[serde(default)]
    pub thresholds: Vec<ThresholdCheck>,
    /// The breached ones, one line each (e.g. "Ready p99 7310 ms > 5000 ms").
    #[serde(default)]
    pub breaches: Vec<String>,
    /// What the report could not say, and why (a missing file, figures left out).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The verdict of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// passed: the run succeeded and no threshold was breached; failed: it did not, or one was;
    /// unknown: the driver's result is not known (a rebuilt report without one) and none was.
    pub status: VerdictStatus,
    /// Why it failed: the run's failures, then the breaches.
    pub reasons: Vec<String>,
}

/// passed, failed or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictStatus {
    /// Succeeded within its thresholds.
    Passed,
    /// Failed, or over a threshold.
    Failed,
    /// Result not known, no threshold breached.
    Unknown,
}

/// The span the evidence covers: from the earlier of the run's start and the first record to
/// the later of its end and the last record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// end minus start.
    pub seconds: f64,
}

/// What was read of the folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// One entry per JSON-lines file the report reads.
    pub files: Vec<FileRead>,
    /// Lines that could not be read, in all.
    pub bad_lines_total: u64,
    /// The first of them, with file, line number and error.
    pub bad_lines: Vec<BadLine>,
}

/// Nearest-rank quantiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub avg: f64,
}

impl Quantiles {
    /// The quantiles of values sorted ascending; None when empty.
    pub fn of_sorted(sorted: &[f64]) -> Option<Self> {
        let max = *sorted.last()?;
        let sum: f64 = sorted.iter().sum();
        let count = sorted.len();
        Some(Quantiles {
            count: u64::try_from(count).unwrap_or(u64::MAX),
            p50: nearest_rank(sorted, 0.50),
            p90: nearest_rank(sorted, 0.90),
            p99: nearest_rank(sorted, 0.99),
            max,
            avg: round3(sum / count as f64),
        })
    }

    /// The quantiles of values in milliseconds, any order; None when empty.
    pub fn of_ms(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        Self::of_sorted(&values)
    }

    /// The quantiles of durations (e.g. a replay's lateness); None when empty.
    pub fn of_durations(values: &[Duration]) -> Option<Self> {
        Self::of_ms(values.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    }

    /// The figure named by a threshold metric.
    pub fn metric(&self, metric: rehearsal_crds::simulation::LatencyMetric) -> f64 {
        use rehearsal_crds::simulation::LatencyMetric as M;
        match metric {
            M::P50 => self.p50,
            M::P90 => self.p90,
            M::P99 => self.p99,
            M::Max => self.max,
            M::Avg => self.avg,
        }
    }
}

/// The value of rank ceil(q * n) (from 1) of sorted values; 0 when empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

/// Rounded to three decimals (microseconds, for milliseconds).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Latency of one condition, over the pods (or nodes) that have a creation time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConditionLatency {
    /// PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady or Ready.
    pub condition: String,
    /// Pods (nodes) with a creation time.
    pub total: u64,
    /// Of those, how many reached the condition.
    pub measured: u64,
    /// The figures; absent when more than 10 % of them could not be measured, or none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Quantiles>,
    /// Why the figures are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Figures from `pods.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodFigures {
    /// Pods seen.
    pub total: u64,
    /// Pods per phase at the end of the evidence (deleted ones left out).
    pub phases_at_end: BTreeMap<String, i64>,
    /// Creation to each condition's first True, kube-burner style.
    pub latency_ms: Vec<ConditionLatency>,
    /// The same by the collectors' watch times (schema 1.1; empty in older summaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_latency_ms: Vec<ConditionLatency>,
    /// Pods in phase Pending over time.
    pub pending: Pending,
    /// Pods scheduled per second in 5 s windows.
    pub scheduling_throughput: Throughput,
}

/// Pods in phase Pending over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Most at once.
    pub peak: i64,
    /// When first at the peak (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_at: Option<String>,
    /// Time-weighted mean over the window.
    pub mean: f64,
}

/// Pods scheduled per second, in windows of `window_seconds` from the first to the last
/// scheduling (empty windows between them count as 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Width of a window: 5.
    pub window_seconds: u64,
    /// Pods scheduled.
    pub scheduled: u64,
    /// Windows from the first to the last scheduling.
    pub windows: u64,
    /// Median pods/s.
    pub p50: f64,
    /// 90th percentile, pods/s.
    pub p90: f64,
    /// 99th percentile, pods/s.
    pub p99: f64,
    /// Busiest window, pods/s.
    pub max: f64,
}

/// Figures from `nodes.jsonl` (Nodes only, not NodePools or NodeClaims).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Nodes that existed before the run (created before its start).
    pub at_start: i64,
    /// Nodes at the end.
    pub at_end: i64,
    /// Fewest at once after the start.
    pub min: i64,
    /// Most at once.
    pub max: i64,
    /// Nodes created during the run.
    pub added: u64,
    /// Nodes deleted during the run.
    pub removed: u64,
    /// Most nodes at once per instance type (`unknown` without the label).
    pub max_by_instance_type: BTreeMap<String, i64>,
    /// Creation to first Ready, of the nodes created during the run.
    pub readiness_latency_ms: ConditionLatency,
    /// NodePool and NodeClaim changes seen.
    pub karpenter_changes: u64,
}

/// Workloads seen in `workloads.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFigures {
    /// Distinct workloads (kind, namespace, name).
    pub total: u64,
    /// Per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Plotted in report.html.
    pub plotted: u64,
}

/// Scenario figures, from `actions.jsonl` and `workloads.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioFigures {
    /// Actions run.
    pub actions: u64,
    /// Of those, failed.
    pub failed_actions: u64,
    /// Steps played.
    pub steps_played: u64,
    /// Per step with a scale action: its scale to all replicas available.
    pub scale_to_available_ms: Option<Quantiles>,
    /// One entry per step played, in order.
    pub steps: Vec<StepFigure>,
}

/// One step played.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepFigure {
    /// Position in the play, from 1.
    pub step: u64,
    /// The step's name.
    pub step_name: String,
    /// When its first action started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Its first action's lateness (start minus the step's due time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_ms: Option<f64>,
    /// Actions run.
    pub actions: u64,
    /// Of those, failed.
    pub failed_actions: u64,
    /// Scale actions (K8S_SCALE, SCALE).
    pub scale_actions: u64,
    /// From its first scale action's start to every Deployment it scaled having exactly the
    /// replicas asked for, all available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_available_ms: Option<f64>,
    /// Why `all_available_ms` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Lateness of what the run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// Replay: each request's start minus its deadline. Scenario: each step's start minus its due
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Quantiles>,
    /// Scenario: each action's start minus its step's due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Quantiles>,
}

/// A reason and how often it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The reason.
    pub reason: String,
    /// Lines of events.jsonl (or pods) with it.
    pub events: u64,
    /// Distinct objects it was about.
    pub objects: u64,
}

/// What went wrong.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    /// The run's own failures, as the driver gave them.
    pub run: Vec<String>,
    /// Failed actions (scenario), one line each, at most 100.
    pub actions: Vec<String>,
    /// FailedScheduling events by reason (the scheduler's message split into its reasons).
    pub failed_scheduling: Vec<ReasonCount>,
    /// Evictions: pods evicted or disrupted, and Evicted/Preempted/TaintManagerEviction events.
    pub evictions: Evictions,
    /// Pods that ended in phase Failed, by reason.
    pub pods_failed: BTreeMap<String, u64>,
    /// Warning events by reason, most frequent first, at most 20.
    pub warnings: Vec<ReasonCount>,
}

/// Evictions seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evictions {
    /// Pods evicted: phase Failed with reason Evicted, or the DisruptionTarget condition.
    pub pods: u64,
    /// Eviction events.
    pub events: u64,
}

/// Audit events of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFigures {
    /// Events read.
    pub events: u64,
    /// Per verb.
    pub by_verb: BTreeMap<String, u64>,
    /// Answered with a code of 400 or more.
    pub errors: u64,
}

/// One threshold, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// The pod condition.
    pub condition: String,
    /// p50, p90, p99, max or avg.
    pub metric: String,
    /// The limit.
    pub max_ms: i64,
    /// The figure, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_ms: Option<f64>,
    /// Over the limit, or not measurable.
    pub breached: bool,
    /// e.g. "Ready p99 7310 ms > 5000 ms".
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let q = Quantiles::of_ms(v.into_iter().rev().collect()).unwrap();
        assert_eq!((q.count, q.p50, q.p90, q.p99, q.max, q.avg), (10, 5.0, 9.0, 10.0, 10.0, 5.5));
        assert_eq!(Quantiles::of_ms(vec![]), None);
        let d = Quantiles::of_durations(&[Duration::from_micros(1500), Duration::from_micros(500)]).unwrap();
        assert_eq!((d.p50, d.max, d.avg), (0.5, 1.5, 1.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 0.99), 3.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}
