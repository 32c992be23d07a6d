//! The JSON lines a run's collectors write, one file per subject, one object per line:
//! `pods.jsonl`, `nodes.jsonl`, `workloads.jsonl`, `events.jsonl` and `audit.jsonl`. The
//! collectors write these types and the report reads them back, so both sides share them.
//!
//! Every record has `t`, when the collector saw the change (RFC 3339, microseconds), and the
//! times the API server itself gives (`at`: a condition's `lastTransitionTime`, a
//! `creationTimestamp`) where there are any: latencies are computed from the latter, as
//! kube-burner does, and the former shows when a watch learned of it. Records only say what
//! changed: a collector that re-lists after a lost watch compares with what it knew and writes
//! no duplicates. Fields that do not apply are left out. [`SCHEMA_VERSION`] is the version of
//! these formats; a reader refuses a newer major version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the record formats (and of `summary.json`).
pub const SCHEMA_VERSION: &str = "1.1";

/// File names of a run folder.
pub mod files {
    /// Pod timelines.
    pub const PODS: &str = "pods.jsonl";
    /// Node timelines, NodePools and NodeClaims.
    pub const NODES: &str = "nodes.jsonl";
    /// Replica counts of Deployments, ReplicaSets, StatefulSets and Jobs.
    pub const WORKLOADS: &str = "workloads.jsonl";
    /// Kubernetes Events.
    pub const EVENTS: &str = "events.jsonl";
    /// API server audit events of the run.
    pub const AUDIT: &str = "audit.jsonl";
    /// What the run did (scenario actions; replay applies and deletes).
    pub const ACTIONS: &str = "actions.jsonl";
    /// The figures of the run.
    pub const SUMMARY: &str = "summary.json";
    /// The report.
    pub const REPORT: &str = "report.html";
    /// Every file of the folder with its size and sha256.
    pub const MANIFEST: &str = "manifest.json";
}

/// What happened to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodChange {
    /// First seen; `at` is its creationTimestamp.
    Created,
    /// Bound to `node`; `at` is PodScheduled's lastTransitionTime.
    Scheduled,
    /// `condition` became True for the first time; `at` is its lastTransitionTime.
    Condition,
    /// `phase` changed.
    Phase,
    /// A container (init containers included) terminated; `reason` and `exit_code` say how, `at`
    /// is its finishedAt.
    Terminated,
    /// Deletion requested; `at` is its deletionTimestamp.
    Deleting,
    /// Gone from the API server.
    Deleted,
}

/// One line of `pods.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    /// When the collector saw it (RFC 3339).
    pub t: String,
    /// What changed.
    pub change: PodChange,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// The controller owning it, `Kind/name` (on `created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The API server's time of the change (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Node (on `scheduled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Condition type (on `condition`): PodScheduled, PodReadyToStartContainers, Initialized,
    /// ContainersReady, Ready, and DisruptionTarget (an eviction, preemption or taint-manager
    /// deletion coming; its `reason` says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// New phase (on `phase`): Pending, Running, Succeeded, Failed, Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why (on `terminated`; on `phase` when the pod's status has a reason, e.g. Failed with
    /// Evicted; on the DisruptionTarget `condition` and on `deleting` when that condition is True,
    /// e.g. EvictionByEvictionAPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code (on `terminated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Found by a list made after the watch was lost (or by the list at stop), not delivered by
    /// the watch: `t` is when the list was read, some time after the change. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relisted: bool,
}

/// What happened to a node or a Karpenter object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChange {
    /// First seen; `at` is its creationTimestamp.
    Added,
    /// Ready became True; `at` is its lastTransitionTime.
    Ready,
    /// Ready became False or Unknown.
    NotReady,
    /// Marked unschedulable.
    Cordoned,
    /// Schedulable again.
    Uncordoned,
    /// Gone.
    Deleted,
    /// A NodePool or NodeClaim was added or changed (`object` says which).
    Changed,
}

/// One line of `nodes.jsonl`: a node, or a Karpenter NodePool/NodeClaim when `object` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// When the collector saw it (RFC 3339).
    pub t: String,
    /// What changed.
    pub change: NodeChange,
    /// Name.
    pub name: String,
    /// `NodePool` or `NodeClaim`; absent for a Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The API server's time of the change (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `node.kubernetes.io/instance-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `karpenter.sh/capacity-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// `karpenter.sh/nodepool`, or the NodeClaim's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodepool: Option<String>,
    /// Whether it is a virtual (KWOK) node: label `type: virtual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_node: Option<bool>,
    /// Allocatable resources (on `added`): cpu, memory, pods as the API gives them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, String>,
    /// A NodePool's or NodeClaim's conditions that are True, for `changed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// One line of `workloads.jsonl`: a workload's replica counts after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// When the collector saw it (RFC 3339).
    pub t: String,
    /// Deployment, ReplicaSet, StatefulSet or Job.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Replicas asked for (`spec.replicas`; a Job's `spec.parallelism`).
    pub desired: i32,
    /// Ready replicas (a Job's ready pods).
    pub ready: i32,
    /// Available replicas (a Job's succeeded pods).
    pub available: i32,
    /// Gone: the counts are the last known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One line of `events.jsonl`: a Kubernetes Event, each time it is created or its count grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When the collector saw it (RFC 3339).
    pub t: String,
    /// When it happened this time (series.lastObservedTime, else eventTime, else lastTimestamp,
    /// else firstTimestamp; RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: String,
    /// CamelCase reason (Scheduled, FailedScheduling, Evicted, ...).
    pub reason: String,
    /// The message.
    pub message: String,
    /// What it is about: `Kind namespace/name` or `Kind name`.
    pub object: String,
    /// Namespace of the object it is about (empty for cluster-scoped ones).
    #[serde(default)]
    pub namespace: String,
    /// How many times it happened so far.
    #[serde(default = "one")]
    pub count: i32,
    /// Who reported it (reportingController, else source.component).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

fn one() -> i32 {
    1
}

/// One line of `audit.jsonl`: the fields of an `audit.k8s.io/v1` Event a report uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The request's id.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// Stage (ResponseComplete, ...).
    pub stage: String,
    /// get, list, create, update, patch, delete, ...
    pub verb: String,
    /// The request URI (`requestURI`, as the API server spells it).
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// Who asked (`user.username`).
    #[serde(default)]
    pub user: String,
    /// User agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// resource, namespace, name, apiGroup, subresource of the object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub object_ref: BTreeMap<String, String>,
    /// HTTP status code of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// When the API server received the request (RFC 3339, microseconds).
    pub request_received_timestamp: String,
    /// When the stage was reached.
    pub stage_timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written_and_leave_out_what_does_not_apply() {
        let pod = PodRecord {
            t: "2026-12-02T10:00:00.000001Z".into(),
            change: PodChange::Scheduled,
            namespace: "ns".into(),
            name: "web-1".into(),
            uid: "u".into(),
            owner: None,
            at: Some("2026-12-02T10:00:00Z".into()),
            node: Some("kwok-node-0".into()),
            condition: None,
            phase: None,
            reason: None,
            exit_code: None,
            relisted: false,
        };
        let line = serde_json::to_string(&pod).unwrap();
        assert_eq!(
            line,
            r#"{"t":"2026-12-02T10:00:00.000001Z","change":"scheduled","namespace":"ns","name":"web-1","uid":"u","at":"2026-12-02T10:00:00Z","node":"kwok-node-0"}"#
        );
        assert_eq!(serde_json::from_str::<PodRecord>(&line).unwrap(), pod);
        let event: EventRecord = serde_json::from_str(
            r#"{"t":"x","type":"Warning","reason":"FailedScheduling","message":"0/10 nodes","object":"Pod ns/p"}"#,
        )
        .unwrap();
        assert_eq!((event.count, event.namespace.as_str()), (1, ""));
    }
}
