//! Slim views of the watched kinds: only the fields the collectors read.
//!
//! Why: a watch event carries the whole object, and most of its bytes are what no collector
//! reads (`managedFields`, the pod spec's containers and volumes, a node's image list). Decoding
//! them into k8s-openapi's full types allocated a string or a `serde_json::Value` for each, and
//! that was most of the collectors' CPU (`make bench`, collectors section). serde skips a field a
//! struct does not name without allocating, so these views cost a fraction of it.
//!
//! Each view is a [`kube::Resource`] through the real kind's `k8s_openapi::Resource` constants,
//! so `Api<PodView>` and the watchers use the real kind's URLs. The collectors read the views
//! from protobuf ([`super::proto`]); the JSON reading here is the reference the end-to-end test
//! compares that with, and how tests build views.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, Event, EventSeries, EventSource, Node, NodeCondition, ObjectReference, Pod, PodCondition,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// The metadata fields the collectors and the watcher read (the watcher needs `resourceVersion`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

/// Reads `metadata` through [`SlimMeta`], leaving out everything else.
fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<SlimMeta>::deserialize(d)?;
    Ok(m.map(|m| ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        labels: m.labels,
        owner_references: m.owner_references,
        ..Default::default()
    })
    .unwrap_or_default())
}

/// Makes `$view` a resource of the real kind `$real` (its group, version, kind and URLs);
/// `generic K` makes it generic over the real kind `K`.
macro_rules! view_of {
    ($view:ty, $real:ty $(, generic $g:ident)?) => {
        impl$(<$g: k8s_openapi::Resource>)? k8s_openapi::Resource for $view {
            const API_VERSION: &'static str = <$real as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$real as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$real as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$real as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str = <$real as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$real as k8s_openapi::Resource>::Scope;
        }

        impl$(<$g: k8s_openapi::Resource>)? k8s_openapi::Metadata for $view {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A pod: identity, node, phase, conditions and container terminations.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodView {
    /// Metadata (slim).
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// `spec`, the node only.
    pub spec: Option<PodSpecView>,
    /// `status`.
    pub status: Option<PodStatusView>,
}
view_of!(PodView, Pod);

/// The part of a pod's spec read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    /// The node it is bound to.
    pub node_name: Option<String>,
}

/// The part of a pod's status read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    /// Phase.
    pub phase: Option<String>,
    /// Why it is in this phase (e.g. Evicted).
    pub reason: Option<String>,
    /// Conditions.
    pub conditions: Option<Vec<PodCondition>>,
    /// Init containers.
    pub init_container_statuses: Option<Vec<ContainerStatusView>>,
    /// Containers.
    pub container_statuses: Option<Vec<ContainerStatusView>>,
}

/// The part of a container's status read: its terminations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusView {
    /// Container name.
    #[serde(default)]
    pub name: String,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: i32,
    /// Its state now.
    pub state: Option<ContainerStateView>,
    /// Its previous state.
    pub last_state: Option<ContainerStateView>,
}

/// A container state, the terminated case only.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerStateView {
    /// Set when the container has terminated.
    pub terminated: Option<ContainerStateTerminated>,
}

/// A node: labels, cordon, Ready and allocatable.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeView {
    /// Metadata (slim; labels kept).
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// `spec`, cordon only.
    pub spec: Option<NodeSpecView>,
    /// `status`, without images, addresses or node info.
    pub status: Option<NodeStatusView>,
}
view_of!(NodeView, Node);

/// The part of a node's spec read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeSpecView {
    /// Cordoned.
    pub unschedulable: Option<bool>,
}

/// The part of a node's status read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStatusView {
    /// What pods may use.
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Conditions (Ready).
    pub conditions: Option<Vec<NodeCondition>>,
}

/// A core/v1 Event, without its metadata's bulk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Metadata (slim).
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// What it is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Old-style count.
    pub count: Option<i32>,
    /// Old-style first time.
    pub first_timestamp: Option<Time>,
    /// Old-style last time.
    pub last_timestamp: Option<Time>,
    /// New-style time.
    pub event_time: Option<MicroTime>,
    /// New-style repetitions.
    pub series: Option<EventSeries>,
    /// New-style reporter.
    pub reporting_component: Option<String>,
    /// Old-style reporter.
    pub source: Option<EventSource>,
}
view_of!(EventView, Event);

/// A workload of kind `K` (Deployment, ReplicaSet, StatefulSet, Job): its replica counts.
#[derive(Deserialize)]
pub struct WorkloadView<K> {
    /// Metadata (slim).
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The desired count.
    pub spec: Option<WorkloadSpecView>,
    /// The counts reached.
    pub status: Option<WorkloadStatusView>,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

// Derived Clone, Default and Debug would ask K for them too.
impl<K: k8s_openapi::Resource> std::fmt::Debug for WorkloadView<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::KIND)
            .field("metadata", &self.metadata)
            .field("spec", &self.spec)
            .field("status", &self.status)
            .finish()
    }
}

impl<K> Clone for WorkloadView<K> {
    fn clone(&self) -> Self {
        WorkloadView {
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: self.status.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for WorkloadView<K> {
    fn default() -> Self {
        WorkloadView { metadata: ObjectMeta::default(), spec: None, status: None, kind: PhantomData }
    }
}

view_of!(WorkloadView<K>, K, generic K);

/// The desired count of any workload kind (`replicas`, or a Job's `parallelism`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkloadSpecView {
    /// Deployments, ReplicaSets, StatefulSets.
    pub replicas: Option<i32>,
    /// Jobs.
    pub parallelism: Option<i32>,
}

/// The counts of any workload kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatusView {
    /// Deployments, ReplicaSets, StatefulSets: pods made.
    pub replicas: Option<i32>,
    /// Deployments, ReplicaSets, StatefulSets.
    pub ready_replicas: Option<i32>,
    /// Deployments, ReplicaSets, StatefulSets.
    pub available_replicas: Option<i32>,
    /// Jobs: pods ready.
    pub ready: Option<i32>,
    /// Jobs: pods succeeded.
    pub succeeded: Option<i32>,
}

/// The view of a full object, through its JSON: how tests build views from k8s-openapi values.
#[cfg(test)]
pub fn of<V: serde::de::DeserializeOwned>(obj: &impl serde::Serialize) -> V {
    serde_json::from_value(serde_json::to_value(obj).expect("serializable")).expect("the view reads it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use kube::Resource;
    use serde_json::json;

    type JobView = WorkloadView<Job>;
    type DeploymentView = WorkloadView<Deployment>;

    #[test]
    fn a_view_is_the_real_kind_for_the_api() {
        assert_eq!(PodView::url_path(&(), Some("ns")), Pod::url_path(&(), Some("ns")));
        assert_eq!(JobView::url_path(&(), Some("ns")), "/apis/batch/v1/namespaces/ns/jobs");
        assert_eq!(<NodeView as Resource>::kind(&()), "Node");
        assert_eq!(<DeploymentView as Resource>::api_version(&()), "apps/v1");
        assert_eq!(EventView::url_path(&(), None), "/api/v1/events");
    }

    #[test]
    fn a_pod_as_the_api_server_sends_it_reads_into_its_view() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u1", "resourceVersion": "42",
                "creationTimestamp": "2026-12-02T10:00:00Z", "labels": {"app": "web"},
                "annotations": {"a": "b"}, "generateName": "web-",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-12-02T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]
            },
            "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "web", "image": "nginx", "resources": {}}],
                "volumes": [{"name": "v", "emptyDir": {}}], "tolerations": null},
            "status": {
                "phase": "Running", "podIP": "10.0.0.1", "hostIP": null,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T10:00:02Z", "lastProbeTime": null}],
                "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": true, "restartCount": 1,
                    "started": true, "state": {"running": {"startedAt": "2026-12-02T10:00:02Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-12-02T10:00:01Z"}}}]
            }
        });
        let view: PodView = serde_json::from_value(pod.clone()).unwrap();
        let full: Pod = serde_json::from_value(pod).unwrap();
        let meta = &view.metadata;
        assert_eq!(
            (meta.name.as_deref(), meta.namespace.as_deref(), meta.uid.as_deref()),
            (Some("web-1"), Some("ns"), Some("u1"))
        );
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert_eq!(meta.creation_timestamp, full.metadata.creation_timestamp);
        assert_eq!(meta.owner_references, full.metadata.owner_references);
        assert!(meta.managed_fields.is_none() && meta.annotations.is_none(), "left out");
        assert_eq!(view.spec.and_then(|s| s.node_name).as_deref(), Some("kwok-node-0"));
        let status = view.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.conditions, full.status.as_ref().and_then(|s| s.conditions.clone()));
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!((cs.name.as_str(), cs.restart_count), ("web", 1));
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (137, Some("OOMKilled")));
        assert!(cs.state.as_ref().is_some_and(|s| s.terminated.is_none()));
    }

    #[test]
    fn views_take_nulls_and_missing_parts() {
        let pod: PodView = serde_json::from_value(json!({"metadata": null, "spec": null})).unwrap();
        assert!(pod.metadata.name.is_none() && pod.spec.is_none() && pod.status.is_none());
        let job: JobView = serde_json::from_value(
            json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"succeeded": 1}}),
        )
        .unwrap();
        assert_eq!(job.spec.and_then(|s| s.parallelism), Some(3));
        assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
        let event: EventView = serde_json::from_value(json!({"metadata": {"name": "e"}, "type": "Warning"})).unwrap();
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert!(event.involved_object.kind.is_none());
        assert!(serde_json::from_value::<NodeView>(json!({"status": {"conditions": "no"}})).is_err());
    }
}
