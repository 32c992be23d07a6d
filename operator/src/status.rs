//! The operator's part of a Simulation's status: phase, the kstatus conditions `Ready`,
//! `Reconciling` and `Stalled`, times, run counts and `runs[]`.
//!
//! The driver writes the stage conditions and `progress` of its run under its own field manager;
//! the operator never sends those, so server-side apply keeps the two writers apart. Because
//! server-side apply drops a field its manager stops sending, every write here carries the whole
//! operator part, rebuilt from what the status already says.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::{Resource, ResourceExt};
use rehearsal_crds::conditions::{self, Status, condition};
use rehearsal_crds::keys::OPERATOR_MANAGER;
use rehearsal_crds::{Phase, RunStatus, Simulation};
use serde_json::json;

use crate::error::{Context, Result};

/// Phase of a run in `status.runs[]`.
pub const RUN_RUNNING: &str = "Running";
/// A run that finished well.
pub const RUN_SUCCEEDED: &str = "Succeeded";
/// A run that failed.
pub const RUN_FAILED: &str = "Failed";

/// What the operator says about a Simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorStatus {
    /// Where the simulation is.
    pub phase: Phase,
    /// Human explanation: why it waits, what runs, why it failed.
    pub message: String,
    /// Set when the simulation cannot go on without a change (kstatus `Stalled=True`).
    pub stalled: Option<&'static str>,
    /// Held by `spec.suspend`.
    pub suspended: bool,
    /// When the first run started.
    pub start_time: Option<Time>,
    /// When the last run finished.
    pub completion_time: Option<Time>,
    /// Runs finished.
    pub completed_runs: i32,
    /// One entry per run started (the operator's fields only).
    pub runs: Vec<RunStatus>,
}

impl OperatorStatus {
    /// The operator's part of the current status (Pending for a new Simulation).
    pub fn of(sim: &Simulation) -> Self {
        let status = sim.status.clone().unwrap_or_default();
        let message = conditions::find(&status.conditions, conditions::RECONCILING)
            .or_else(|| conditions::find(&status.conditions, conditions::STALLED).filter(|c| c.status == "True"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        let stalled_reason = conditions::find(&status.conditions, conditions::STALLED)
            .filter(|c| c.status == "True")
            .map(|c| stalled_reason(&c.reason));
        OperatorStatus {
            phase: status.phase.unwrap_or_default(),
            message,
            stalled: stalled_reason,
            suspended: false,
            start_time: status.start_time,
            completion_time: status.completion_time,
            completed_runs: status.completed_runs.unwrap_or(0),
            runs: status.runs,
        }
    }

    /// The run entry with `index`, added when missing.
    pub fn run_mut(&mut self, index: u32) -> &mut RunStatus {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        if let Some(pos) = self.runs.iter().position(|r| r.index == index) {
            return &mut self.runs[pos];
        }
        self.runs.push(RunStatus { index, ..RunStatus::default() });
        self.runs.sort_by_key(|r| r.index);
        let pos = self.runs.iter().position(|r| r.index == index).unwrap_or(0);
        &mut self.runs[pos]
    }

    /// The run entry with `index`, if recorded.
    pub fn run(&self, index: u32) -> Option<&RunStatus> {
        let index = i32::try_from(index).ok()?;
        self.runs.iter().find(|r| r.index == index)
    }

    /// The three kstatus conditions for this state (see the module comment of `conditions`).
    pub fn conditions(&self, total_runs: i32, generation: Option<i64>, previous: &[Condition]) -> Vec<Condition> {
        let c = |t, s, r: &str, m: &str| condition(t, s, r, m, generation, previous);
        let runs = format!("{}/{total_runs} runs", self.completed_runs);
        match (self.phase, self.stalled) {
            (Phase::Succeeded, _) => vec![
                c(conditions::READY, Status::True, "Succeeded", &format!("{runs} succeeded")),
                c(conditions::RECONCILING, Status::False, "Succeeded", &format!("{runs} succeeded")),
                c(conditions::STALLED, Status::False, "Succeeded", ""),
            ],
            (Phase::Failed, reason) => vec![
                c(conditions::READY, Status::False, "Failed", &self.message),
                c(conditions::RECONCILING, Status::False, "Failed", &self.message),
                c(conditions::STALLED, Status::True, reason.unwrap_or("RunFailed"), &self.message),
            ],
            (_, Some(reason)) => vec![
                c(conditions::READY, Status::False, reason, &self.message),
                c(conditions::RECONCILING, Status::False, "Stalled", &self.message),
                c(conditions::STALLED, Status::True, reason, &self.message),
            ],
            (phase, None) if self.suspended => {
                let _ = phase;
                vec![
                    c(conditions::READY, Status::False, "Suspended", &self.message),
                    c(conditions::RECONCILING, Status::False, "Suspended", &self.message),
                    c(conditions::STALLED, Status::False, "Suspended", ""),
                ]
            }
            (phase, None) => {
                let reason = phase_name(phase);
                vec![
                    c(conditions::READY, Status::False, reason, &self.message),
                    c(conditions::RECONCILING, Status::True, reason, &self.message),
                    c(conditions::STALLED, Status::False, reason, ""),
                ]
            }
        }
    }

    /// The status body the operator applies.
    pub fn body(&self, sim: &Simulation) -> serde_json::Value {
        let previous = sim.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        let total = sim.spec.repetitions.max(1);
        // artifactUri is copied from the driver's condition, so the operator owns it too.
        json!({
            "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation",
            "status": {
                "observedGeneration": sim.meta().generation,
                "phase": self.phase,
                "conditions": self.conditions(total, sim.meta().generation, previous),
                "startTime": self.start_time,
                "completionTime": self.completion_time,
                "completedRuns": self.completed_runs,
                "runsSummary": format!("{}/{total}", self.completed_runs),
                "runs": self.runs,
            }
        })
    }

    /// True when applying this state would change the stored status (times of unchanged
    /// conditions aside), so a reconcile without news writes nothing and triggers nothing.
    pub fn differs_from(&self, sim: &Simulation) -> bool {
        let Some(current) = &sim.status else { return true };
        let total = sim.spec.repetitions.max(1);
        let wanted = self.conditions(total, sim.meta().generation, &current.conditions);
        let same_conditions = wanted.iter().all(|w| {
            conditions::find(&current.conditions, &w.type_).is_some_and(|c| {
                c.status == w.status
                    && c.reason == w.reason
                    && c.message == w.message
                    && c.observed_generation == w.observed_generation
            })
        });
        !(same_conditions
            && current.observed_generation == sim.meta().generation
            && current.phase == Some(self.phase)
            && current.start_time == self.start_time
            && current.completion_time == self.completion_time
            && current.completed_runs == Some(self.completed_runs)
            && current.runs_summary.as_deref() == Some(format!("{}/{total}", self.completed_runs).as_str())
            && current.runs == self.runs)
    }

    /// Applies the operator's part of the status when it changed.
    pub async fn apply(&self, api: &Api<Simulation>, sim: &Simulation) -> Result<()> {
        if !self.differs_from(sim) {
            return Ok(());
        }
        let name = sim.name_any();
        api.patch_status(&name, &PatchParams::apply(OPERATOR_MANAGER).force(), &Patch::Apply(&self.body(sim)))
            .await
            .context(|| format!("write the status of Simulation {name}"))?;
        Ok(())
    }
}

/// Now, as an API time.
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// The phase's name, as the API spells it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Queued => "Queued",
        Phase::Initializing => "Initializing",
        Phase::Running => "Running",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
    }
}

/// Maps a stored reason back to the static string the operator uses (unknown ones to "Stalled").
fn stalled_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "RunFailed",
        "ScenarioNotFound",
        "ScenarioInvalid",
        "SecretNotFound",
        "ConfigMapNotFound",
        "InvalidSpec",
        "HooksNotAllowed",
        "ServiceAccountNotFound",
        "Stalled",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or("Stalled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sim(status: serde_json::Value) -> Simulation {
        serde_json::from_value(json!({
            "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation",
            "metadata": {"name": "s", "generation": 1},
            "spec": {"source": {"trace": {"uri": "s3://b/t"}}, "repetitions": 2},
            "status": status
        }))
        .expect("simulation literal")
    }

    fn by_type(cs: &[Condition], t: &str) -> (String, String) {
        let c = conditions::find(cs, t).expect("condition present");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn kstatus_conditions_follow_the_phase() {
        let mut st = OperatorStatus::of(&sim(json!({})));
        assert_eq!(st.phase, Phase::Pending);
        st.phase = Phase::Running;
        let cs = st.conditions(2, Some(1), &[]);
        assert_eq!(by_type(&cs, "Reconciling"), ("True".into(), "Running".into()));
        assert_eq!(by_type(&cs, "Ready").0, "False");
        assert_eq!(by_type(&cs, "Stalled").0, "False");

        st.phase = Phase::Failed;
        st.message = "run 0 failed".into();
        let cs = st.conditions(2, Some(1), &[]);
        assert_eq!(by_type(&cs, "Stalled"), ("True".into(), "RunFailed".into()));
        assert_eq!(by_type(&cs, "Reconciling").0, "False", "kstatus reads Reconciling before Stalled");

        st.phase = Phase::Succeeded;
        let cs = st.conditions(2, Some(1), &[]);
        assert_eq!(by_type(&cs, "Ready"), ("True".into(), "Succeeded".into()));

        st.phase = Phase::Pending;
        st.stalled = Some("ScenarioNotFound");
        let cs = st.conditions(2, Some(1), &[]);
        assert_eq!(by_type(&cs, "Stalled"), ("True".into(), "ScenarioNotFound".into()));
        assert_eq!(by_type(&cs, "Reconciling"), ("False".into(), "Stalled".into()));
    }

    #[test]
    fn unchanged_state_is_not_written_again() {
        let s = sim(json!({}));
        let mut st = OperatorStatus::of(&s);
        st.phase = Phase::Queued;
        st.message = "waiting for Simulation a".into();
        assert!(st.differs_from(&s));
        let written: rehearsal_crds::SimulationStatus =
            serde_json::from_value(st.body(&s)["status"].clone()).expect("status body is a status");
        let stored = Simulation { status: Some(written), ..s };
        assert!(!st.differs_from(&stored));
        let again = OperatorStatus::of(&stored);
        assert_eq!((again.phase, again.message.as_str()), (Phase::Queued, "waiting for Simulation a"));
        let mut next = again.clone();
        next.run_mut(0).job_name = Some("s-run-0".into());
        assert!(next.differs_from(&stored));
        assert_eq!(next.run(0).and_then(|r| r.job_name.as_deref()), Some("s-run-0"));
    }
}
