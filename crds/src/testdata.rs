//! Invalid objects and the rejection each must get, invalid actions and the `Valid` condition
//! each must get, and a Scenario the size of a production export, shared by the schema, driver
//! and operator unit tests and the end-to-end tests against a real API server (feature
//! `testdata`).

use serde::Deserialize;

/// One invalid object and where and how it must be rejected.
#[derive(Deserialize, Debug, Clone)]
pub struct InvalidCase {
    /// What is wrong, in words.
    pub name: String,
    /// `enum` when the schema's enum rejects it, `bound` when an OpenAPI bound (minimum,
    /// minLength) does; absent for CEL rules.
    #[serde(default)]
    pub rule: Option<String>,
    /// Field path the error names (empty for object-level rules).
    pub field: String,
    /// Text the error message contains.
    pub message: String,
    /// Text the API server's message contains instead, when a schema bound (maxLength, enum)
    /// rejects the object before its CEL rules run; `message` is what the CEL rule says.
    #[serde(default, rename = "serverMessage")]
    pub server_message: Option<String>,
    /// The object itself.
    pub object: serde_json::Value,
}

/// The cases of `crds/testdata/invalid-objects.yaml`.
pub fn invalid_objects() -> Vec<InvalidCase> {
    let text = include_str!("../testdata/invalid-objects.yaml");
    // The file is part of this crate; a parse failure is a bug caught by its own unit test.
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("crds/testdata/invalid-objects.yaml: {e}"))
}

/// A Scenario the API server accepts whose `Valid` condition the operator sets to False.
#[derive(Deserialize, Debug, Clone)]
pub struct InvalidActionCase {
    /// What is wrong, in words.
    pub name: String,
    /// The message of the `Valid` condition: the only problem of the Scenario.
    pub valid: String,
    /// The Scenario.
    pub object: serde_json::Value,
}

/// The cases of `crds/testdata/invalid-actions.yaml`.
pub fn invalid_actions() -> Vec<InvalidActionCase> {
    let text = include_str!("../testdata/invalid-actions.yaml");
    // As above: the file is part of this crate.
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("crds/testdata/invalid-actions.yaml: {e}"))
}

/// Deployments the big Scenario creates (its manifests).
pub const BIG_DEPLOYMENTS: usize = 300;
/// Actions of the big Scenario's first step.
pub const BIG_FIRST_STEP_ACTIONS: usize = 1_000;
/// Actions of the big Scenario in all: the first step's, then one per step.
pub const BIG_ACTIONS: usize = 10_000;
/// Steps of the big Scenario.
pub const BIG_STEPS: usize = 1 + BIG_ACTIONS - BIG_FIRST_STEP_ACTIONS;

/// A valid Scenario the size of a production export: [`BIG_DEPLOYMENTS`] Deployments,
/// [`BIG_FIRST_STEP_ACTIONS`] scale actions in its first step, then one per step, [`BIG_ACTIONS`]
/// in all over [`BIG_STEPS`] steps (more than the 100 actions a step and 5000 steps the API once
/// took). Action `a` of step `s` (0-based) is at `/spec/steps/s/actions/a`; step `s` is named
/// `s + 1`. The Deployments are bare (validation only looks at their names): not for playing.
pub fn big_scenario(name: &str) -> serde_json::Value {
    use serde_json::json;
    let deployment = |i: usize| format!("d{i:03}");
    let scale =
        |i: usize| json!({"type": "K8S_SCALE", "data": {"name": deployment(i % BIG_DEPLOYMENTS), "replicas": i % 7}});
    let manifests: Vec<_> = (0..BIG_DEPLOYMENTS)
        .map(|i| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment(i)}}))
        .collect();
    let mut steps = vec![json!({"name": "1", "actions": (0..BIG_FIRST_STEP_ACTIONS).map(scale).collect::<Vec<_>>()})];
    steps.extend((1..BIG_STEPS).map(|s| json!({"name": (s + 1).to_string(), "actions": [scale(s)]})));
    json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Scenario", "metadata": {"name": name},
        "spec": {"timestep": 1, "namespace": "big", "manifests": manifests, "steps": steps}
    })
}
