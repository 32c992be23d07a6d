//! A scenario directory as a `Scenario` object (`rehearsal-driver scenario convert DIR`).

use rehearsal_crds::{Action, ActionData, EmbeddedObject, Scenario, ScenarioSpec, Step};
use serde_json::Value;

use super::directory::ScenarioDir;
use super::error::ScenarioError;
use super::steps::ActionArgs;

/// Namespace a converted scenario plays in unless told otherwise (the original wrapper's).
pub const DEFAULT_NAMESPACE: &str = "karpenter-test";

/// `config.yml` keys the Scenario API has fields of its own for; all others go to
/// `karpenterConfig`.
const API_FIELDS: [&str; 5] = ["run_id", "run_description", "timestep", "start_step", "limit"];

impl ScenarioDir {
    /// The Scenario `name`, playing in [`DEFAULT_NAMESPACE`].
    pub fn to_scenario(&self, name: &str) -> Scenario {
        self.to_scenario_in(name, DEFAULT_NAMESPACE)
    }

    /// The Scenario `name`, playing in `namespace`.
    pub fn to_scenario_in(&self, name: &str, namespace: &str) -> Scenario {
        Scenario::new(name, self.to_spec(namespace))
    }

    /// The Scenario's spec, playing in `namespace`.
    pub fn to_spec(&self, namespace: &str) -> ScenarioSpec {
        let config = &self.config;
        // `load` checked both fit the API's i32.
        let to_i32 = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        ScenarioSpec {
            run_id: config.run_id.clone(),
            description: config.run_description.clone(),
            timestep: config.timestep,
            start_step: config.start_step.map_or(1, to_i32),
            limit: config.limit.map(to_i32),
            namespace: namespace.to_string(),
            manifests: self.manifests.iter().cloned().map(EmbeddedObject).collect(),
            optional_manifests: self.optional_manifests.iter().cloned().map(EmbeddedObject).collect(),
            steps: self
                .steps
                .iter()
                .map(|step| Step {
                    name: step.name.clone(),
                    actions: step
                        .actions
                        .iter()
                        .map(|a| Action {
                            type_: a.action_type,
                            comment: a.comment.clone(),
                            data: Some(data_of(&a.args)),
                        })
                        .collect(),
                })
                .collect(),
            karpenter_config: self.karpenter_config(),
        }
    }

    /// Every `config.yml` field the Scenario API has no field for, as written; None if there is
    /// none.
    fn karpenter_config(&self) -> Option<Value> {
        // Serializing a parsed config cannot fail: every field is a string, number or JSON value.
        let Ok(Value::Object(mut map)) = serde_json::to_value(&self.config) else { return None };
        for field in API_FIELDS {
            map.remove(field);
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }

    /// A Kubernetes object name for the scenario: its run_id (or directory name) in lowercase,
    /// with anything but letters, digits, '-' and '.' turned into '-'.
    pub fn suggested_name(&self) -> String {
        let base = match &self.config.run_id {
            Some(run_id) => run_id.clone(),
            None => self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        let name: String = base
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
            .take(253)
            .collect();
        let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if name.is_empty() { "scenario".to_string() } else { name.to_string() }
    }
}

/// The API form of parsed action data.
fn data_of(args: &ActionArgs) -> ActionData {
    match args.clone() {
        ActionArgs::K8sScale { name, replicas } => {
            ActionData { name: Some(name), replicas: Some(replicas), ..Default::default() }
        }
        ActionArgs::Scale { name, desired_count } => {
            ActionData { name: Some(name), desired_count: Some(desired_count), ..Default::default() }
        }
        ActionArgs::Apply { manifest, .. } => {
            ActionData { manifest: Some(EmbeddedObject(manifest)), ..Default::default() }
        }
        ActionArgs::Delete { api_version, kind, name } => {
            ActionData { api_version: Some(api_version), kind: Some(kind), name: Some(name), ..Default::default() }
        }
        ActionArgs::WaitAvailable { name, timeout_seconds } => {
            ActionData { name: Some(name), timeout_seconds, ..Default::default() }
        }
    }
}

/// The Scenario as a YAML manifest, for `kubectl apply -f`.
///
/// Strings that a YAML 1.1 reader (kubectl) would take for something else (`yes`, `on`, `0644`)
/// come out quoted.
pub fn render_manifest(scn: &Scenario) -> Result<String, ScenarioError> {
    serde_saphyr::to_string(scn).map_err(|e| ScenarioError::Render(e.to_string()))
}
