//! Scenarios: the operator checks each one with the driver's own validation (the same code a
//! play runs first) and writes `Valid`, the step count and the expected duration, so
//! `kubectl get scenarios` shows them and a Simulation can say why its Scenario cannot run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::{Resource, ResourceExt};
use rehearsal_crds::Scenario;
use rehearsal_crds::conditions::{self, Status, condition};
use rehearsal_crds::keys::OPERATOR_MANAGER;
use serde_json::json;

use crate::error::{Context, Result};

/// What the operator says about a Scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The first problem found, or None when the Scenario is valid.
    pub problem: Option<String>,
    /// Number of problems.
    pub problems: usize,
    /// Steps one play runs.
    pub steps: i64,
    /// Expected play time at speed 1, Go style ("14m45s").
    pub expected_duration: String,
}

/// Checks a Scenario.
pub fn verdict(scenario: &Scenario) -> Verdict {
    let spec = &scenario.spec;
    let (problem, problems) = match rehearsal_driver::scenario::actions_of(spec) {
        Ok(_) => (None, 0),
        Err(e) => {
            let all = e.problems();
            let first = all.first().map_or_else(|| e.to_string(), ToString::to_string);
            (Some(first), all.len().max(1))
        }
    };
    let n_steps = u32::try_from(spec.steps.len()).unwrap_or(u32::MAX);
    let limit = spec.limit.map_or(n_steps, |l| u32::try_from(l).unwrap_or(0));
    let timestep = if spec.timestep.is_finite() && spec.timestep > 0.0 { spec.timestep } else { 0.0 };
    let duration = rehearsal_driver::scenario::expected_duration(limit, timestep, 1.0);
    Verdict {
        problem,
        problems,
        steps: i64::from(limit),
        expected_duration: rehearsal_driver::scenario::format_duration(duration),
    }
}

impl Verdict {
    /// The Valid condition.
    pub fn condition(&self, generation: Option<i64>, previous: &[Condition]) -> Condition {
        match &self.problem {
            None => condition(
                conditions::VALID,
                Status::True,
                "Valid",
                "the scenario passed validation",
                generation,
                previous,
            ),
            Some(p) => {
                let more = if self.problems > 1 {
                    format!(" (and {} more problems)", self.problems - 1)
                } else {
                    String::new()
                };
                condition(conditions::VALID, Status::False, "Invalid", format!("{p}{more}"), generation, previous)
            }
        }
    }
}

/// Writes the Scenario's status when it changed.
pub async fn reconcile(api: &Api<Scenario>, scenario: &Scenario) -> Result<Verdict> {
    let v = verdict(scenario);
    let generation = scenario.meta().generation;
    let status = scenario.status.clone().unwrap_or_default();
    let cond = v.condition(generation, &status.conditions);
    let same = status.observed_generation == generation
        && status.steps == Some(v.steps)
        && status.expected_duration.as_deref() == Some(v.expected_duration.as_str())
        && conditions::find(&status.conditions, conditions::VALID)
            .is_some_and(|c| c.status == cond.status && c.message == cond.message);
    if same {
        return Ok(v);
    }
    let body = json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Scenario",
        "status": {
            "observedGeneration": generation,
            "conditions": [cond],
            "steps": v.steps,
            "expectedDuration": v.expected_duration,
        }
    });
    let name = scenario.name_any();
    api.patch_status(&name, &PatchParams::apply(OPERATOR_MANAGER).force(), &Patch::Apply(&body))
        .await
        .context(|| format!("write the status of Scenario {name}"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(spec: serde_json::Value) -> Scenario {
        serde_json::from_value(json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Scenario",
            "metadata": {"name": "s", "generation": 2}, "spec": spec}))
        .expect("scenario literal")
    }

    #[test]
    fn valid_and_invalid_scenarios() {
        let ok = scenario(
            json!({"timestep": 15, "steps": [{"name": "1", "actions": []}, {"name": "2", "actions": []}, {"name": "3", "actions": []}]}),
        );
        let v = verdict(&ok);
        assert_eq!((v.problem.as_deref(), v.steps, v.expected_duration.as_str()), (None, 3, "30s"));
        assert_eq!(v.condition(Some(2), &[]).status, "True");

        let bad = scenario(json!({"timestep": 15, "steps": [{"name": "1", "actions": [
            {"type": "K8S_SCALE", "data": {"name": "nope", "replicas": 2}}]}]}));
        let v = verdict(&bad);
        let c = v.condition(Some(2), &[]);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Invalid"));
        assert!(c.message.contains("nope"), "{}", c.message);
    }

    #[test]
    fn every_rule_moved_out_of_the_schema_is_named_in_valid() {
        let cases = rehearsal_crds::testdata::invalid_actions();
        assert!(cases.len() >= 7, "the shared cases went missing");
        for case in cases {
            let scenario: Scenario = serde_json::from_value(case.object).expect("case object");
            let c = verdict(&scenario).condition(Some(1), &[]);
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Invalid"), "{}", case.name);
            assert_eq!(c.message, case.valid, "{}", case.name);
        }
    }

    #[test]
    fn a_scenario_the_size_of_an_export_is_judged_naming_its_bad_action() {
        use rehearsal_crds::testdata::{BIG_STEPS, big_scenario};
        let ok: Scenario = serde_json::from_value(big_scenario("big")).expect("big scenario");
        let v = verdict(&ok);
        assert_eq!((v.problem.as_deref(), v.steps), (None, BIG_STEPS as i64));
        assert_eq!(v.expected_duration, "2h30m0s");

        let mut bad = big_scenario("big");
        let data = bad.pointer_mut("/spec/steps/0/actions/517/data").and_then(|d| d.as_object_mut()).expect("action");
        data.remove("replicas");
        // A wait does not take replicas: a second problem, counted but not spelled out.
        *bad.pointer_mut("/spec/steps/8999/actions/0/type").expect("step 8999") = json!("WAIT_AVAILABLE");
        let bad: Scenario = serde_json::from_value(bad).expect("big scenario");
        let c = verdict(&bad).condition(Some(3), &[]);
        assert_eq!(c.status, "False");
        assert_eq!(
            c.message,
            r#"spec.steps[0].actions[517] (step "1", K8S_SCALE): data.replicas is missing (and 1 more problems)"#
        );
    }
}
