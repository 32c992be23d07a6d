//! Condition types written on Simulation and Scenario status, and a helper to build them.
//!
//! The operator owns `Ready`, `Reconciling` and `Stalled` (kstatus, so Flux and Argo CD health
//! checks work); the driver owns one condition per stage of its run. Conditions are a list-map
//! keyed by `type`, so each writer applies only its own with server-side apply.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The resource is healthy and its last requested work finished (kstatus).
pub const READY: &str = "Ready";
/// The operator is working toward the desired state (kstatus).
pub const RECONCILING: &str = "Reconciling";
/// Progress stopped on an error that needs a change from the user (kstatus).
pub const STALLED: &str = "Stalled";
/// Stage condition: the preRun hooks of the current run.
pub const PRE_RUN_HOOKS: &str = "PreRunHooks";
/// Stage condition: the replay of the trace or the scenario steps.
pub const REPLAY: &str = "Replay";
/// Stage condition: deletion of what the current run created.
pub const CLEANUP: &str = "Cleanup";
/// Stage condition: the postRun hooks of the current run.
pub const POST_RUN_HOOKS: &str = "PostRunHooks";
/// Stage condition: the run's evidence was uploaded to S3.
pub const ARTIFACTS_UPLOADED: &str = "ArtifactsUploaded";
/// Stage condition: what the run recorded (collectors, audit events); says once what this
/// cluster does not offer (reason `Partial`), True when the run's folder holds its evidence.
pub const EVIDENCE: &str = "Evidence";
/// Stage condition: the run's pod latencies against `spec.collect.thresholds`; False names each
/// breached figure.
pub const THRESHOLDS_MET: &str = "ThresholdsMet";
/// Scenario condition: the scenario passed validation.
pub const VALID: &str = "Valid";

/// Status of a condition, as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Status {
    /// The API spelling: "True", "False" or "Unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Builds a condition, keeping `lastTransitionTime` from `previous` when the status is unchanged
/// so re-applying the same state does not look like a transition.
pub fn condition(
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status.as_str())
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time,
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_when_status_is_unchanged() {
        let first = condition(READY, Status::False, "Pending", "waiting", Some(1), &[]);
        let old_time = Time(Timestamp::UNIX_EPOCH);
        let previous = vec![Condition { last_transition_time: old_time.clone(), ..first }];
        let again = condition(READY, Status::False, "Running", "still", Some(2), &previous);
        assert_eq!(again.last_transition_time, old_time);
        assert_eq!(again.reason, "Running");
        let flipped = condition(READY, Status::True, "Succeeded", "done", Some(2), &previous);
        assert_ne!(flipped.last_transition_time, old_time);
    }

    #[test]
    fn finds_by_type() {
        let c = condition(STALLED, Status::True, "BadTrace", "x", None, &[]);
        assert_eq!(find(std::slice::from_ref(&c), STALLED).map(|c| c.reason.as_str()), Some("BadTrace"));
        assert!(find(&[c], READY).is_none());
    }
}
