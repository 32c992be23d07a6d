//! `Scenario`: a reusable scaling script in the Karpenter scenario format's terms.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A scripted scaling scenario: manifests to apply, then steps of actions, one step per
/// timestep.
// Each printcolumn(...) repeats the same keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rehearsal.dev",
    version = "v1alpha1",
    kind = "Scenario",
    plural = "scenarios",
    shortname = "scn",
    category = "rehearsal",
    doc = "A reusable, versioned scaling script: manifests to apply, then timed steps of actions.",
    status = "ScenarioStatus",
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status",
        description = "Whether the scenario passed validation"
    ),
    printcolumn(
        name = "Steps",
        type_ = "integer",
        json_path = ".status.steps",
        description = "Steps one play runs (limit)"
    ),
    printcolumn(
        name = "Duration",
        type_ = "string",
        json_path = ".status.expectedDuration",
        description = "Expected play time at speed 1"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioSpec {
    /// Identifier of the scenario's runs (Karpenter `run_id`); logs are stored under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = (r"self.matches('^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$')", "runId may hold only letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))]
    pub run_id: Option<String>,

    /// What the scenario exercises (Karpenter `run_description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Seconds between the starts of two steps, at speed 1. Greater than 0.
    #[x_kube(validation = ("self > 0.0", "timestep must be greater than 0"))]
    pub timestep: f64,

    /// Step the play starts at, counting from 1.
    #[serde(default = "default_start_step")]
    #[x_kube(validation = ("self >= 1", "startStep must be at least 1"))]
    pub start_step: i32,

    /// Number of steps played; past the last step the list wraps around to the first.
    /// Default: the number of steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ("self >= 1", "limit must be at least 1"))]
    pub limit: Option<i32>,

    /// Namespace the manifests are applied into and the actions act on (created if missing).
    #[serde(default = "default_namespace")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = (r"self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')", "namespace must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"))]
    pub namespace: String,

    /// Objects applied (server-side) before the first step: Deployments, PodDisruptionBudgets,
    /// anything the cluster serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<EmbeddedObject>,

    /// Objects applied only when the cluster serves their kind (Karpenter NodePools, say);
    /// skipped with a warning otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_manifests: Vec<EmbeddedObject>,

    /// The steps, in order. A step with no actions still takes its timestep.
    // No count bound here, on `actions` or on the manifests: the object's size is their bound
    // (like memory for a directory). The API server's CEL cost estimate multiplies each rule by
    // the items it may run on, so no CEL rule lives inside these lists: an action's checks are
    // OpenAPI bounds (no CEL cost) and the operator's validation (`Valid`), see `Action`.
    #[schemars(length(min = 1))]
    #[x_kube(validation = ("self.size() >= 1", "steps must hold at least one step"))]
    pub steps: Vec<Step>,

    /// Fields of the Karpenter `config.yml` this API has no field for (clusters, logging,
    /// instance_pool_size, ...), kept as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub karpenter_config: Option<serde_json::Value>,
}

/// One step: actions started together when the step is due.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Label of the step; order comes from the list position.
    #[serde(default)]
    pub name: String,
    /// Actions of the step.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// What an action does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionType {
    /// Set a Deployment's replicas: `data.name`, `data.replicas`.
    #[serde(rename = "K8S_SCALE")]
    K8sScale,
    /// Legacy ECS spelling of a scale: `data.name`, `data.desiredCount` (or `data.replicas`).
    #[serde(rename = "SCALE")]
    Scale,
    /// Apply an object server-side: `data.manifest`.
    #[serde(rename = "APPLY")]
    Apply,
    /// Delete an object: `data.apiVersion`, `data.kind`, `data.name`.
    #[serde(rename = "DELETE")]
    Delete,
    /// Wait until a Deployment is available: `data.name`, optional `data.timeoutSeconds`.
    #[serde(rename = "WAIT_AVAILABLE")]
    WaitAvailable,
}

impl ActionType {
    /// The name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::K8sScale => "K8S_SCALE",
            ActionType::Scale => "SCALE",
            ActionType::Apply => "APPLY",
            ActionType::Delete => "DELETE",
            ActionType::WaitAvailable => "WAIT_AVAILABLE",
        }
    }

    /// Every action type, in documentation order.
    pub const ALL: [ActionType; 5] =
        [ActionType::K8sScale, ActionType::Scale, ActionType::Apply, ActionType::Delete, ActionType::WaitAvailable];
}

/// One action of a step.
// Which data fields an action type needs is checked by the operator, which writes the first
// problem to the Scenario's `Valid` condition naming the step, action and field (the driver's
// own validation, `actions_of`): a CEL rule here would run once per action, and the API server
// estimates its cost for the most actions the object could hold, far over its budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// What the action does.
    #[serde(rename = "type")]
    pub type_: ActionType,
    /// Free text kept with the action in the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The action's arguments; which ones are needed depends on the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ActionData>,
}

/// Arguments of an action.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionData {
    /// Name of the Deployment (scale, wait) or object (delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // OpenAPI bounds, not CEL: they cost nothing against the CEL budget however many actions.
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Replicas to scale to (K8S_SCALE). At least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Replicas to scale to, in the legacy SCALE spelling. At least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub desired_count: Option<i32>,
    /// API version of the object to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the object to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object to apply (APPLY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<EmbeddedObject>,
    /// Seconds to wait before the action fails (WAIT_AVAILABLE). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,
}

/// A whole Kubernetes object embedded in a Scenario.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct EmbeddedObject(pub serde_json::Value);

impl JsonSchema for EmbeddedObject {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EmbeddedObject".into()
    }
    fn json_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

fn preserved_object(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Observed state of a Scenario.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Valid (with the first problem found as its message), Ready, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Steps one play runs (limit, or the number of steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<i64>,
    /// Expected play time at speed 1, e.g. "15m0s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_duration: Option<String>,
}

fn default_start_step() -> i32 {
    1
}
fn default_namespace() -> String {
    "karpenter-test".to_string()
}
