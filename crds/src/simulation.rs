//! `Simulation`: one request to replay a trace or play a scenario, N times, on virtual nodes.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Simulation: what to run, how fast, how often, and what to keep.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rehearsal.dev",
    version = "v1alpha1",
    kind = "Simulation",
    plural = "simulations",
    shortname = "sim",
    shortname = "sims",
    category = "rehearsal",
    doc = "Replays a recorded cluster trace, or plays a Scenario, onto virtual nodes N times, and records what the cluster did.",
    status = "SimulationStatus",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$')").message("metadata.name of a Simulation must be a DNS label of at most 50 characters: it names the run's Jobs, namespaces and labels"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Where the simulation is in its life"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress.summary", description = "Events or steps done of total, in the current run"),
    printcolumn(name = "Runs", type_ = "string", json_path = ".status.runsSummary", description = "Runs completed of total"),
    printcolumn(name = "Speed", type_ = "number", json_path = ".spec.speed", description = "Replay speed factor"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(IMMUTABLE_SPEC_RULE).message("spec of a Simulation cannot change once created, except spec.suspend: create a new Simulation (another name) to run something else").reason(Reason::FieldValueForbidden))]
pub struct SimulationSpec {
    /// What to run: exactly one of a recorded trace or a Scenario.
    pub source: SimulationSource,

    /// Speed factor: 2.0 plays the trace or the scenario twice as fast as recorded. From 0.001
    /// to 10000.
    #[serde(default = "default_speed")]
    #[x_kube(validation = ("self >= 0.001 && self <= 10000.0", "speed must be from 0.001 to 10000"))]
    pub speed: f64,

    /// Cuts each run short after this much trace or scenario time (Go duration syntax,
    /// e.g. "90s", "5m", "1h30m"). Unset: run to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = (r"self.matches('^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$')", "duration must be a Go duration such as 90s, 5m or 1h30m"))]
    #[x_kube(validation = ("!self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) <= duration('720h')", "duration must be at most 720h (30 days)"))]
    pub duration: Option<String>,

    /// How many times to run, one after the other; each run starts after the previous one is
    /// cleaned up. At least 1.
    #[serde(default = "default_repetitions")]
    #[x_kube(validation = ("self >= 1", "repetitions must be at least 1"))]
    pub repetitions: i32,

    /// Prefix of the virtual namespaces: objects recorded in namespace `ns` are created in
    /// `<prefix>-ns`. A DNS label of at most 20 characters, not `kube` nor `kube-*`.
    #[serde(default = "default_virtual_namespace_prefix")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = (r"self.matches('^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$')", "virtualNamespacePrefix must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit) of at most 20 characters"))]
    #[x_kube(validation = ("self != 'kube' && !self.startsWith('kube-')", "virtualNamespacePrefix must not make kube-* namespaces (the system's)"))]
    pub virtual_namespace_prefix: String,

    /// Commands run by the driver before and after each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,

    /// Where the evidence of each run (logs, timelines, summary, plots) is uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,

    /// How the driver Job of each run is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverConfig>,

    /// What the driver records during a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect: Option<Collect>,

    /// Holds the Simulation before its next run: a run in progress finishes, no new one starts
    /// until this is false again. The only field that may change after creation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Transition rule: every field but `suspend` keeps its value (and its presence).
// Optional fields are compared through has() so adding or removing one is a change too.
const IMMUTABLE_SPEC_RULE: &str = "self.source == oldSelf.source && self.speed == oldSelf.speed \
    && self.repetitions == oldSelf.repetitions && self.virtualNamespacePrefix == oldSelf.virtualNamespacePrefix \
    && has(self.duration) == has(oldSelf.duration) && (!has(self.duration) || self.duration == oldSelf.duration) \
    && has(self.hooks) == has(oldSelf.hooks) && (!has(self.hooks) || self.hooks == oldSelf.hooks) \
    && has(self.artifacts) == has(oldSelf.artifacts) && (!has(self.artifacts) || self.artifacts == oldSelf.artifacts) \
    && has(self.driver) == has(oldSelf.driver) && (!has(self.driver) || self.driver == oldSelf.driver) \
    && has(self.collect) == has(oldSelf.collect) && (!has(self.collect) || self.collect == oldSelf.collect)";

/// What a Simulation runs. Exactly one field is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = ("has(self.trace) != has(self.scenarioRef)", "exactly one of source.trace or source.scenarioRef must be set"))]
pub struct SimulationSource {
    /// A recorded cluster trace (SimKube format version 2, msgpack or JSON) to replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSource>,

    /// A Scenario, by name, to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_ref: Option<ScenarioRef>,
}

/// Where a trace is read from. Exactly one field is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = ("has(self.uri) != has(self.configMapRef)", "exactly one of trace.uri or trace.configMapRef must be set"))]
pub struct TraceSource {
    /// Location of the trace: `s3://bucket/key`, `file:///path`, `http://` or `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = ("self.matches('^(s3|file|https?)://.+')", "trace.uri must start with s3://, file://, http:// or https://"))]
    pub uri: Option<String>,

    /// A ConfigMap holding the trace in one of its keys (binaryData for msgpack, data for JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in a namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Namespace of the ConfigMap.
    #[schemars(length(max = 63))]
    #[x_kube(validation = (r"self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')", "configMapRef.namespace must be a DNS label"))]
    pub namespace: String,
    /// Name of the ConfigMap.
    #[schemars(length(max = 253))]
    #[x_kube(validation = ("self.size() > 0", "configMapRef.name must not be empty"))]
    pub name: String,
    /// Key within the ConfigMap's data or binaryData.
    #[schemars(length(max = 253))]
    #[x_kube(validation = ("self.size() > 0", "configMapRef.key must not be empty"))]
    pub key: String,
}

/// A Scenario by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioRef {
    /// Name of the Scenario (cluster-scoped).
    #[schemars(length(max = 253))]
    #[x_kube(validation = ("self.size() > 0", "scenarioRef.name must not be empty"))]
    pub name: String,
}

/// Hooks run by the driver around each run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    /// Run in order before the run starts; a failing hook fails the run unless it ignores
    /// failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub pre_run: Vec<Hook>,
    /// Run in order after the run is cleaned up, whether the run succeeded or failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub post_run: Vec<Hook>,
}

/// One command run as a hook. Its output goes to the driver's log.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Executable to run (looked up on PATH when it has no '/').
    #[schemars(length(max = 4096))]
    #[x_kube(validation = ("self.size() > 0", "hook command must not be empty"))]
    pub command: String,
    /// Arguments passed to the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Write the Simulation, as JSON, to the command's standard input.
    #[serde(default)]
    pub send_simulation: bool,
    /// Seconds the hook may run before it is stopped and counted as failed. Default 60.
    #[serde(default = "default_hook_timeout")]
    #[x_kube(validation = ("self >= 1 && self <= 86400", "hook timeoutSeconds must be between 1 and 86400"))]
    pub timeout_seconds: i32,
    /// When true, a failing hook is logged and the run goes on. Default false.
    #[serde(default)]
    pub ignore_failure: bool,
}

/// S3 location and credentials for a run's evidence.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Artifacts {
    /// Bucket name.
    #[schemars(length(max = 63))]
    #[x_kube(validation = (r"self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')", "artifacts.bucket must be a valid S3 bucket name (3-63 lowercase letters, digits, '.' or '-')"))]
    pub bucket: String,
    /// Key prefix; each run is uploaded under `<prefix>/<simulation>/<run>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = ("!self.startsWith('/')", "artifacts.prefix must not start with '/'"))]
    pub prefix: Option<String>,
    /// AWS region. Default: from the credential chain, else us-east-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server (MinIO, Ceph); path-style addressing is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = ("self.matches('^https?://.+')", "artifacts.endpoint must start with http:// or https://"))]
    pub endpoint: Option<String>,
    /// Secret (in the operator's namespace) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
    /// passed to the driver as environment. Unset: the driver's own credential chain (IRSA,
    /// Pod Identity, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
}

/// A Secret by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = ("self.size() > 0", "secret name must not be empty"))]
    pub name: String,
}

/// How the operator starts the driver of each run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriverConfig {
    /// Container image of the driver. Default: the operator's own driver image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the driver container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Port of the driver's admission webhook. Default 8888.
    #[serde(default = "default_driver_port")]
    #[x_kube(validation = ("self >= 1 && self <= 65535", "driver.port must be between 1 and 65535"))]
    pub port: i32,
    /// Service account of the driver pod. Default: the one installed with the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig { image: None, resources: None, port: default_driver_port(), service_account_name: None }
    }
}

/// What a run records. Everything is on by default.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Collect {
    /// Kubernetes Events in the run's namespaces and on nodes.
    #[serde(default = "yes")]
    pub events: bool,
    /// Pod timelines (created, scheduled, running, ready, finished).
    #[serde(default = "yes")]
    pub pods: bool,
    /// Node timelines and node counts over time.
    #[serde(default = "yes")]
    pub nodes: bool,
    /// Deployment and ReplicaSet timelines.
    #[serde(default = "yes")]
    pub deployments: bool,
    /// API server audit events, when the cluster exposes them.
    #[serde(default = "yes")]
    pub audit: bool,
    /// Limits on the run's pod latencies (e.g. Ready p99 at most 5000 ms), checked on the
    /// run's summary like kube-burner's: a run over any of them fails, with a condition naming
    /// the figure. At most 20, each condition and metric once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = ("self.all(t, self.exists_one(u, u.condition == t.condition && u.metric == t.metric))", "collect.thresholds must name each condition and metric at most once"))]
    pub thresholds: Vec<Threshold>,
}

impl Default for Collect {
    fn default() -> Self {
        Collect { events: true, pods: true, nodes: true, deployments: true, audit: true, thresholds: vec![] }
    }
}

/// A limit on one pod latency figure: milliseconds from a pod's creation to the first time its
/// `condition` is True, summarised over the run's pods by `metric`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// The pod condition: PodScheduled, Initialized, ContainersReady or Ready.
    pub condition: LatencyCondition,
    /// The figure: P50, P90, P99, Max or Avg.
    pub metric: LatencyMetric,
    /// Most milliseconds allowed, from 1 to 86400000 (a day).
    #[x_kube(validation = ("self >= 1 && self <= 86400000", "thresholds[].maxMs must be from 1 to 86400000 (one day)"))]
    pub max_ms: i64,
}

/// A pod condition whose latency a threshold limits.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LatencyCondition {
    /// Bound to a node.
    PodScheduled,
    /// Init containers done.
    Initialized,
    /// Every container ready.
    ContainersReady,
    /// The pod ready.
    Ready,
}

impl LatencyCondition {
    /// The condition type as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyCondition::PodScheduled => "PodScheduled",
            LatencyCondition::Initialized => "Initialized",
            LatencyCondition::ContainersReady => "ContainersReady",
            LatencyCondition::Ready => "Ready",
        }
    }
}

/// Which figure of a latency distribution a threshold limits.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LatencyMetric {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// Largest.
    Max,
    /// Mean.
    Avg,
}

impl LatencyMetric {
    /// The figure's name in reports: p50, p90, p99, max, avg.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyMetric::P50 => "p50",
            LatencyMetric::P90 => "p90",
            LatencyMetric::P99 => "p99",
            LatencyMetric::Max => "max",
            LatencyMetric::Avg => "avg",
        }
    }
}

/// Where a Simulation is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// Accepted, not looked at yet.
    #[default]
    Pending,
    /// Waiting for another simulation to finish with the virtual nodes.
    Queued,
    /// Certificates, webhook and driver Job being set up.
    Initializing,
    /// A run is in progress.
    Running,
    /// Every run finished.
    Succeeded,
    /// A run failed, or the simulation cannot run as written.
    Failed,
}

/// Observed state of a Simulation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SimulationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the simulation is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Reconciling and Stalled (kstatus), and one condition per stage of the current run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the first run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the last run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Progress of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Number of runs finished, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_runs: Option<i32>,
    /// Runs completed of total, e.g. "1/3" (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_summary: Option<String>,
    /// One entry per run started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["index".into()]))]
    pub runs: Vec<RunStatus>,
}

/// Progress of a run: events (trace replay) or steps (scenario) done of total.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Events or steps done.
    pub done: i64,
    /// Events or steps in the run.
    pub total: i64,
    /// "events" or "steps".
    pub unit: String,
    /// Human form, e.g. "37/120 events".
    pub summary: String,
}

/// What happened in one run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Index of the run, from 0.
    pub index: i32,
    /// Name of the driver Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Where the run's evidence was uploaded (s3://bucket/prefix/).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    /// One line: what the run did, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

fn default_speed() -> f64 {
    1.0
}
fn default_repetitions() -> i32 {
    1
}
fn default_virtual_namespace_prefix() -> String {
    "virtual".to_string()
}
fn default_hook_timeout() -> i32 {
    60
}
fn default_driver_port() -> i32 {
    8888
}
fn yes() -> bool {
    true
}

#[cfg(test)]
mod threshold_tests {
    use kube::CustomResourceExt;
    use kube::core::cel::Validator;
    use serde_json::{Value, json};

    use super::*;

    fn errors(collect: Value, old: Option<Value>) -> Vec<String> {
        let crd = Simulation::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema).expect("schema");
        let sim = |c: Value| {
            json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": "sim"},
                "spec": {"source": {"trace": {"uri": "s3://b/t"}}, "speed": 1.0, "repetitions": 1,
                    "virtualNamespacePrefix": "virtual", "collect": c}})
        };
        match Validator::new().validate(&schema, &sim(collect), old.map(sim).as_ref()) {
            Ok(()) => vec![],
            Err(errs) => errs.iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
        }
    }

    #[test]
    fn thresholds_are_bounded_unique_and_immutable() {
        let ok = json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": 5000},
            {"condition": "PodScheduled", "metric": "Avg", "maxMs": 1}]});
        assert_eq!(errors(ok.clone(), None), Vec::<String>::new());
        let c: Collect = serde_json::from_value(ok.clone()).expect("typed");
        assert_eq!(
            c.thresholds[0],
            Threshold { condition: LatencyCondition::Ready, metric: LatencyMetric::P99, max_ms: 5000 }
        );
        assert!(c.events && c.pods, "the other switches keep their defaults");
        assert_eq!(serde_json::to_value(Collect::default()).expect("json").get("thresholds"), None);

        for bad in [0, 86_400_001] {
            let errs = errors(json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": bad}]}), None);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].starts_with("spec.collect.thresholds[0].maxMs: ")
                    && errs[0].contains("thresholds[].maxMs must be from 1 to 86400000"),
                "{errs:?}"
            );
        }
        let twice = json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": 1},
            {"condition": "Ready", "metric": "P99", "maxMs": 2}]});
        let errs = errors(twice, None);
        assert!(
            errs.len() == 1 && errs[0].starts_with("spec.collect.thresholds: ") && errs[0].contains("at most once"),
            "{errs:?}"
        );
        let schema = serde_json::to_value(Simulation::crd()).expect("crd");
        let field = &schema
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/collect/properties/thresholds")
            .expect("field");
        assert_eq!(field["maxItems"], 20);
        assert_eq!(field["items"]["properties"]["metric"]["enum"], json!(["P50", "P90", "P99", "Max", "Avg"]));
        assert_eq!(
            field["items"]["properties"]["condition"]["enum"],
            json!(["PodScheduled", "Initialized", "ContainersReady", "Ready"])
        );

        // The spec stays immutable: a changed threshold is refused like any other field.
        let changed = json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": 6000}]});
        let errs =
            errors(changed, Some(json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": 5000}]})));
        assert!(errs.len() == 1 && errs[0].contains("cannot change once created"), "{errs:?}");
        assert_eq!(errors(ok.clone(), Some(ok)), Vec::<String>::new());
    }
}
