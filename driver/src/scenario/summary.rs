//! `summary.json`: what a play did, in one small document.

use std::time::Duration;

use serde::Serialize;

use super::logs::millis;
use crate::replay::engine::quantile;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The run id (label value and first folder of the logs).
    pub run_id: String,
    /// This play's own id (label `rehearsal.dev/play` on everything it created).
    pub play_id: String,
    /// Name of the Scenario played.
    pub scenario: String,
    /// Where it came from: the directory, or `Scenario <name>`.
    pub source: String,
    /// Namespace it played in.
    pub namespace: String,
    /// `virtual` or `keep`.
    pub placement: String,
    /// Speed factor.
    pub speed: f64,
    /// The scenario's timestep, in seconds.
    pub timestep_seconds: f64,
    /// Seconds between two steps at this speed.
    pub step_interval_seconds: f64,
    /// When the run started (RFC 3339).
    pub start: String,
    /// When the first step was due (RFC 3339), if the steps started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_start: Option<String>,
    /// When the last step finished (RFC 3339), if the steps started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_end: Option<String>,
    /// When the summary was written (RFC 3339), after the cleanup.
    pub end: String,
    /// Steps planned and played.
    pub steps: StepCounts,
    /// Actions played, ok and failed.
    pub actions: ActionCounts,
    /// Step start lateness (actual start minus due), over every step played.
    pub lateness_ms: Quantiles,
    /// Action start lateness (relative to its step's due time), over every action.
    pub action_lateness_ms: Quantiles,
    /// Optional manifests left out, one line per kind.
    pub skipped: Vec<String>,
    /// What went wrong, one line each (failed actions, failed stages).
    pub failures: Vec<String>,
    /// What the cleanup did.
    pub cleanup: String,
    /// Where the logs are uploaded (absent without a bucket, or when the upload failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_uri: Option<String>,
    /// succeeded or failed.
    pub result: String,
}

/// Steps of a play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct StepCounts {
    /// Steps the play was to run (limit).
    pub planned: usize,
    /// Steps it ran.
    pub played: usize,
}

/// Actions of a play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ActionCounts {
    /// Actions run.
    pub total: usize,
    /// Actions that did what they say.
    pub ok: usize,
    /// Actions that failed.
    pub failed: usize,
}

/// Nearest-rank quantiles of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// How many.
    pub count: usize,
}

impl Quantiles {
    /// The quantiles of `values` (any order); zeros when empty.
    pub fn of(values: &[Duration]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Quantiles {
            p50: millis(quantile(&sorted, 0.5)),
            p99: millis(quantile(&sorted, 0.99)),
            max: millis(sorted.last().copied().unwrap_or_default()),
            count: sorted.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_milliseconds() {
        let values: Vec<Duration> = (1..=100).rev().map(|ms| Duration::from_micros(ms * 1000 + 500)).collect();
        let q = Quantiles::of(&values);
        assert_eq!((q.p50, q.p99, q.max, q.count), (50.5, 99.5, 100.5, 100));
        assert_eq!(Quantiles::of(&[]), Quantiles::default());
    }
}
