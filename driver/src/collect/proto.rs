//! The built-in kinds the collectors watch, read as protobuf: slim messages naming only the
//! fields the views hold, and their conversion into the views.
//!
//! Why: a watched object is about three times smaller in protobuf than in JSON (50 pods: 94,940
//! against 300,264 bytes), and a field a slim message does not name (the pod spec's containers,
//! `managedFields`) is skipped by its length instead of scanned. Decoding was most of the
//! collectors' own CPU (`make bench`, collectors section). Custom resources (Karpenter's) have
//! no protobuf and stay JSON.
//!
//! The tags are those of Kubernetes' `generated.proto` files (`k8s.io/api`,
//! `k8s.io/apimachinery`). The API server writes every non-pointer field, empty or not, where
//! JSON leaves out empty `omitempty` fields: the conversions follow the JSON encoding field by
//! field (an empty string, zero count, empty list or map, or zero time becomes `None` where
//! JSON would omit or null it), so a view is the same whichever encoding it was read from (the
//! end-to-end test `protobuf_views_match_json` checks this on a live API server).

use std::collections::BTreeMap;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, EventSeries, EventSource, NodeCondition, ObjectReference, PodCondition,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference as MetaOwnerReference};
use k8s_openapi::jiff::Timestamp;
use prost::Message;

use super::view::{
    ContainerStateView, ContainerStatusView, EventView, NodeSpecView, NodeStatusView, NodeView, PodSpecView,
    PodStatusView, PodView, WorkloadSpecView, WorkloadStatusView, WorkloadView,
};

/// What every protobuf object of the API server starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";
/// The media type asked for.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why bytes from the API server could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Not a Kubernetes protobuf object.
    #[error("not a Kubernetes protobuf object (no k8s\\0 prefix; {len} bytes)")]
    NoMagic {
        /// The bytes' length.
        len: usize,
    },
    /// Not valid protobuf for the message.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why.
        source: prost::DecodeError,
    },
    /// A watch event of a type the API does not have.
    #[error("a watch event of unknown type {0:?}")]
    EventType(String),
    /// A time out of range.
    #[error("{what}: time out of range ({seconds} s, {nanos} ns)")]
    Time {
        /// Which time.
        what: &'static str,
        /// Seconds since the epoch.
        seconds: i64,
        /// Nanoseconds.
        nanos: i32,
    },
}

/// `runtime.Unknown`: the envelope of every object (after [`MAGIC`]), its object only (its
/// `typeMeta`, tag 1, is skipped: the caller knows what it asked for).
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(bytes = "bytes", optional, tag = "2")]
    raw: Option<Bytes>,
}

/// `runtime.Unknown` whole, as the API server writes it: how tests make its bytes.
#[cfg(test)]
#[derive(Clone, PartialEq, Message)]
struct FullUnknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    raw: Option<Bytes>,
}

/// `TypeMeta`.
#[cfg(test)]
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    api_version: Option<String>,
}

/// `msg` as the API server sends it: [`MAGIC`], then a `runtime.Unknown` of `kind` holding it
/// (no `typeMeta` when `kind` is None).
#[cfg(test)]
pub fn wrapped(kind: Option<&str>, msg: &impl Message) -> Bytes {
    let unknown = FullUnknown {
        type_meta: kind.map(|k| TypeMeta { kind: Some(k.into()), api_version: Some("v1".into()) }),
        raw: Some(msg.encode_to_vec().into()),
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend(unknown.encode_to_vec());
    bytes.into()
}

/// `meta/v1.WatchEvent`: one frame of a watch.
#[derive(Clone, PartialEq, Message)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    #[prost(string, optional, tag = "1")]
    pub type_: Option<String>,
    /// The object, an `Unknown` with its [`MAGIC`] (a `Status` for ERROR).
    #[prost(message, optional, tag = "2")]
    pub object: Option<RawExtension>,
}

/// `runtime.RawExtension`.
#[derive(Clone, PartialEq, Message)]
pub struct RawExtension {
    /// The bytes.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub raw: Option<Bytes>,
}

/// `meta/v1.Status`, the fields an error needs.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    /// Failure or Success.
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    /// What happened.
    #[prost(string, optional, tag = "3")]
    pub message: Option<String>,
    /// Machine-readable reason (e.g. Expired).
    #[prost(string, optional, tag = "4")]
    pub reason: Option<String>,
    /// The HTTP code (410 for a resourceVersion too old).
    #[prost(int32, optional, tag = "6")]
    pub code: Option<i32>,
}

/// `meta/v1.ListMeta`.
#[derive(Clone, PartialEq, Message)]
pub struct ListMeta {
    /// The list's resourceVersion.
    #[prost(string, optional, tag = "2")]
    pub resource_version: Option<String>,
    /// The next page's token.
    #[prost(string, optional, tag = "3")]
    pub continue_: Option<String>,
}

/// The head of any object: its resourceVersion (what a bookmark carries).
#[derive(Clone, PartialEq, Message)]
struct Head {
    #[prost(message, optional, tag = "1")]
    metadata: Option<HeadMeta>,
}

#[derive(Clone, PartialEq, Message)]
struct HeadMeta {
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
}

/// The resourceVersion of an object's own bytes (a bookmark's).
pub fn resource_version(raw: Bytes) -> Result<String, ProtoError> {
    let head: Head = decode(raw, "bookmark")?;
    Ok(head.metadata.and_then(|m| m.resource_version).unwrap_or_default())
}

/// `meta/v1.Time` and `MicroTime`.
#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

/// `meta/v1.ObjectMeta`, the fields the views hold.
#[derive(Clone, PartialEq, Message)]
struct Meta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<Time>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
}

/// `meta/v1.OwnerReference`.
#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

/// `core/v1.Pod`.
#[derive(Clone, PartialEq, Message)]
pub struct Pod {
    #[prost(message, optional, tag = "1")]
    metadata: Option<Meta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<PodStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(string, optional, tag = "10")]
    node_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct PodStatus {
    #[prost(string, optional, tag = "1")]
    phase: Option<String>,
    #[prost(message, repeated, tag = "2")]
    conditions: Vec<Condition>,
    #[prost(string, optional, tag = "4")]
    reason: Option<String>,
    #[prost(message, repeated, tag = "8")]
    container_statuses: Vec<ContainerStatus>,
    #[prost(message, repeated, tag = "10")]
    init_container_statuses: Vec<ContainerStatus>,
}

/// `core/v1.PodCondition` and `NodeCondition` (tag 3 is `lastProbeTime` in the first,
/// `lastHeartbeatTime` in the second; tag 7 exists only in the first).
#[derive(Clone, PartialEq, Message)]
struct Condition {
    #[prost(string, optional, tag = "1")]
    type_: Option<String>,
    #[prost(string, optional, tag = "2")]
    status: Option<String>,
    #[prost(message, optional, tag = "3")]
    probe_or_heartbeat: Option<Time>,
    #[prost(message, optional, tag = "4")]
    last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    message: Option<String>,
    #[prost(int64, optional, tag = "7")]
    observed_generation: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerStatus {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "2")]
    state: Option<ContainerState>,
    #[prost(message, optional, tag = "3")]
    last_state: Option<ContainerState>,
    #[prost(int32, optional, tag = "5")]
    restart_count: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerState {
    #[prost(message, optional, tag = "3")]
    terminated: Option<Terminated>,
}

#[derive(Clone, PartialEq, Message)]
struct Terminated {
    #[prost(int32, optional, tag = "1")]
    exit_code: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    signal: Option<i32>,
    #[prost(string, optional, tag = "3")]
    reason: Option<String>,
    #[prost(string, optional, tag = "4")]
    message: Option<String>,
    #[prost(message, optional, tag = "5")]
    started_at: Option<Time>,
    #[prost(message, optional, tag = "6")]
    finished_at: Option<Time>,
    #[prost(string, optional, tag = "7")]
    container_id: Option<String>,
}

/// `core/v1.Node`.
#[derive(Clone, PartialEq, Message)]
pub struct Node {
    #[prost(message, optional, tag = "1")]
    metadata: Option<Meta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NodeSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<NodeStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeSpec {
    #[prost(bool, optional, tag = "4")]
    unschedulable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeStatus {
    #[prost(btree_map = "string, message", tag = "2")]
    allocatable: BTreeMap<String, QuantityMsg>,
    #[prost(message, repeated, tag = "4")]
    conditions: Vec<Condition>,
}

/// `resource.Quantity`.
#[derive(Clone, PartialEq, Message)]
struct QuantityMsg {
    #[prost(string, optional, tag = "1")]
    string: Option<String>,
}

/// `core/v1.Event`.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(message, optional, tag = "1")]
    metadata: Option<Meta>,
    #[prost(message, optional, tag = "2")]
    involved_object: Option<ObjectRef>,
    #[prost(string, optional, tag = "3")]
    reason: Option<String>,
    #[prost(string, optional, tag = "4")]
    message: Option<String>,
    #[prost(message, optional, tag = "5")]
    source: Option<Source>,
    #[prost(message, optional, tag = "6")]
    first_timestamp: Option<Time>,
    #[prost(message, optional, tag = "7")]
    last_timestamp: Option<Time>,
    #[prost(int32, optional, tag = "8")]
    count: Option<i32>,
    #[prost(string, optional, tag = "9")]
    type_: Option<String>,
    #[prost(message, optional, tag = "10")]
    event_time: Option<Time>,
    #[prost(message, optional, tag = "11")]
    series: Option<Series>,
    #[prost(string, optional, tag = "14")]
    reporting_component: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectRef {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    field_path: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Source {
    #[prost(string, optional, tag = "1")]
    component: Option<String>,
    #[prost(string, optional, tag = "2")]
    host: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Series {
    #[prost(int32, optional, tag = "1")]
    count: Option<i32>,
    #[prost(message, optional, tag = "2")]
    last_observed_time: Option<Time>,
}

/// A workload (Deployment, ReplicaSet, StatefulSet, Job): its spec's first field is the
/// desired count in all four (`replicas`, a Job's `parallelism`); the status is each kind's own
/// message (the same tag holds a count in one kind and a string or a time in another).
#[derive(Clone, PartialEq, Message)]
pub struct Workload<S: Message + Default + std::fmt::Debug> {
    #[prost(message, optional, tag = "1")]
    metadata: Option<Meta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<WorkloadSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<S>,
}

#[derive(Clone, PartialEq, Message)]
struct WorkloadSpec {
    #[prost(int32, optional, tag = "1")]
    first: Option<i32>,
}

/// `apps/v1.DeploymentStatus`, the counts.
#[derive(Clone, PartialEq, Message)]
pub struct DeploymentStatus {
    #[prost(int32, optional, tag = "2")]
    replicas: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    available_replicas: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    ready_replicas: Option<i32>,
}

/// `apps/v1.ReplicaSetStatus`, the counts.
#[derive(Clone, PartialEq, Message)]
pub struct ReplicaSetStatus {
    #[prost(int32, optional, tag = "1")]
    replicas: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    ready_replicas: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    available_replicas: Option<i32>,
}

/// `apps/v1.StatefulSetStatus`, the counts.
#[derive(Clone, PartialEq, Message)]
pub struct StatefulSetStatus {
    #[prost(int32, optional, tag = "2")]
    replicas: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    ready_replicas: Option<i32>,
    #[prost(int32, optional, tag = "11")]
    available_replicas: Option<i32>,
}

/// `batch/v1.JobStatus`, the counts.
#[derive(Clone, PartialEq, Message)]
pub struct JobStatus {
    #[prost(int32, optional, tag = "5")]
    succeeded: Option<i32>,
    #[prost(int32, optional, tag = "9")]
    ready: Option<i32>,
}

/// A list of one kind: its metadata and items.
#[derive(Clone, PartialEq, Message)]
pub struct List<T: Message + Default + std::fmt::Debug> {
    /// The list's metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ListMeta>,
    /// The objects.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<T>,
}

/// The object's own bytes inside a protobuf object with its [`MAGIC`].
pub fn unwrap(bytes: Bytes) -> Result<Bytes, ProtoError> {
    if !bytes.starts_with(MAGIC) {
        return Err(ProtoError::NoMagic { len: bytes.len() });
    }
    let unknown = Unknown::decode(bytes.slice(MAGIC.len()..))
        .map_err(|source| ProtoError::Decode { what: "runtime.Unknown", source })?;
    Ok(unknown.raw.unwrap_or_default())
}

/// Decodes `M` from `raw`, naming `what` on failure.
pub fn decode<M: Message + Default>(raw: Bytes, what: &'static str) -> Result<M, ProtoError> {
    M::decode(raw).map_err(|source| ProtoError::Decode { what, source })
}

/// A view that can be read from protobuf.
pub trait Protobuf: Sized {
    /// The slim message of one object.
    type Message: Message + Default + std::fmt::Debug;
    /// The kind's name in errors.
    const WHAT: &'static str;
    /// The view of one decoded object.
    fn from_message(m: Self::Message) -> Result<Self, ProtoError>;

    /// Decodes one object's own bytes (inside its envelope).
    fn decode(raw: Bytes) -> Result<Self, ProtoError> {
        Self::from_message(decode(raw, Self::WHAT)?)
    }

    /// Decodes a list's own bytes: its items and its metadata.
    fn decode_list(raw: Bytes) -> Result<(Vec<Self>, ListMeta), ProtoError> {
        let list: List<Self::Message> = decode(raw, Self::WHAT)?;
        let items = list.items.into_iter().map(Self::from_message).collect::<Result<_, _>>()?;
        Ok((items, list.metadata.unwrap_or_default()))
    }
}

/// `Some` unless empty: what JSON leaves out with `omitempty`.
fn text(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// `Some` unless zero (a non-pointer `omitempty` number).
fn number<N: Default + PartialEq>(n: Option<N>) -> Option<N> {
    n.filter(|n| *n != N::default())
}

/// `Some` unless empty.
fn list<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// A time; `None` for the zero time (an empty message), which JSON writes as null.
fn time(t: Option<Time>, what: &'static str) -> Result<Option<Timestamp>, ProtoError> {
    let Some(t) = t else { return Ok(None) };
    let (seconds, nanos) = (t.seconds.unwrap_or(0), t.nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    Timestamp::new(seconds, nanos).map(Some).map_err(|_| ProtoError::Time { what, seconds, nanos })
}

fn meta_time(
    t: Option<Time>,
    what: &'static str,
) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, ProtoError> {
    Ok(time(t, what)?.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time))
}

fn micro_time(t: Option<Time>, what: &'static str) -> Result<Option<MicroTime>, ProtoError> {
    Ok(time(t, what)?.map(MicroTime))
}

fn object_meta(m: Option<Meta>) -> Result<ObjectMeta, ProtoError> {
    let Some(m) = m else { return Ok(ObjectMeta::default()) };
    Ok(ObjectMeta {
        name: text(m.name),
        namespace: text(m.namespace),
        uid: text(m.uid),
        resource_version: text(m.resource_version),
        creation_timestamp: meta_time(m.creation_timestamp, "metadata.creationTimestamp")?,
        deletion_timestamp: meta_time(m.deletion_timestamp, "metadata.deletionTimestamp")?,
        labels: (!m.labels.is_empty()).then_some(m.labels),
        owner_references: list(
            m.owner_references
                .into_iter()
                .map(|o| MetaOwnerReference {
                    api_version: o.api_version.unwrap_or_default(),
                    block_owner_deletion: o.block_owner_deletion,
                    controller: o.controller,
                    kind: o.kind.unwrap_or_default(),
                    name: o.name.unwrap_or_default(),
                    uid: o.uid.unwrap_or_default(),
                })
                .collect(),
        ),
        ..Default::default()
    })
}

fn container_state(s: Option<ContainerState>) -> Result<Option<ContainerStateView>, ProtoError> {
    let Some(s) = s else { return Ok(None) };
    let terminated = match s.terminated {
        None => None,
        Some(t) => Some(ContainerStateTerminated {
            container_id: text(t.container_id),
            exit_code: t.exit_code.unwrap_or(0),
            finished_at: meta_time(t.finished_at, "terminated.finishedAt")?,
            message: text(t.message),
            reason: text(t.reason),
            signal: number(t.signal),
            started_at: meta_time(t.started_at, "terminated.startedAt")?,
        }),
    };
    Ok(Some(ContainerStateView { terminated }))
}

fn container_statuses(v: Vec<ContainerStatus>) -> Result<Option<Vec<ContainerStatusView>>, ProtoError> {
    let v = v
        .into_iter()
        .map(|c| {
            Ok(ContainerStatusView {
                name: c.name.unwrap_or_default(),
                restart_count: c.restart_count.unwrap_or(0),
                state: container_state(c.state)?,
                last_state: container_state(c.last_state)?,
            })
        })
        .collect::<Result<Vec<_>, ProtoError>>()?;
    Ok(list(v))
}

impl Protobuf for PodView {
    type Message = Pod;
    const WHAT: &'static str = "Pod";

    fn from_message(m: Pod) -> Result<Self, ProtoError> {
        let status = match m.status {
            None => None,
            Some(s) => {
                let conditions = s
                    .conditions
                    .into_iter()
                    .map(|c| {
                        Ok(PodCondition {
                            last_probe_time: meta_time(c.probe_or_heartbeat, "conditions.lastProbeTime")?,
                            last_transition_time: meta_time(c.last_transition_time, "conditions.lastTransitionTime")?,
                            message: text(c.message),
                            observed_generation: number(c.observed_generation),
                            reason: text(c.reason),
                            status: c.status.unwrap_or_default(),
                            type_: c.type_.unwrap_or_default(),
                        })
                    })
                    .collect::<Result<Vec<_>, ProtoError>>()?;
                Some(PodStatusView {
                    phase: text(s.phase),
                    reason: text(s.reason),
                    conditions: list(conditions),
                    init_container_statuses: container_statuses(s.init_container_statuses)?,
                    container_statuses: container_statuses(s.container_statuses)?,
                })
            }
        };
        Ok(PodView {
            metadata: object_meta(m.metadata)?,
            spec: m.spec.map(|s| PodSpecView { node_name: text(s.node_name) }),
            status,
        })
    }
}

impl Protobuf for NodeView {
    type Message = Node;
    const WHAT: &'static str = "Node";

    fn from_message(m: Node) -> Result<Self, ProtoError> {
        let status = match m.status {
            None => None,
            Some(s) => {
                let allocatable: BTreeMap<String, Quantity> =
                    s.allocatable.into_iter().map(|(k, q)| (k, Quantity(q.string.unwrap_or_default()))).collect();
                let conditions = s
                    .conditions
                    .into_iter()
                    .map(|c| {
                        Ok(NodeCondition {
                            last_heartbeat_time: meta_time(c.probe_or_heartbeat, "conditions.lastHeartbeatTime")?,
                            last_transition_time: meta_time(c.last_transition_time, "conditions.lastTransitionTime")?,
                            message: text(c.message),
                            reason: text(c.reason),
                            status: c.status.unwrap_or_default(),
                            type_: c.type_.unwrap_or_default(),
                        })
                    })
                    .collect::<Result<Vec<_>, ProtoError>>()?;
                Some(NodeStatusView {
                    allocatable: (!allocatable.is_empty()).then_some(allocatable),
                    conditions: list(conditions),
                })
            }
        };
        Ok(NodeView {
            metadata: object_meta(m.metadata)?,
            spec: m.spec.map(|s| NodeSpecView { unschedulable: s.unschedulable.filter(|u| *u) }),
            status,
        })
    }
}

impl Protobuf for EventView {
    type Message = Event;
    const WHAT: &'static str = "Event";

    fn from_message(m: Event) -> Result<Self, ProtoError> {
        let about = m.involved_object.unwrap_or_default();
        let series = match m.series {
            None => None,
            Some(s) => Some(EventSeries {
                count: number(s.count),
                last_observed_time: micro_time(s.last_observed_time, "series.lastObservedTime")?,
            }),
        };
        Ok(EventView {
            metadata: object_meta(m.metadata)?,
            involved_object: ObjectReference {
                api_version: text(about.api_version),
                field_path: text(about.field_path),
                kind: text(about.kind),
                name: text(about.name),
                namespace: text(about.namespace),
                resource_version: text(about.resource_version),
                uid: text(about.uid),
            },
            type_: text(m.type_),
            reason: text(m.reason),
            message: text(m.message),
            count: number(m.count),
            first_timestamp: meta_time(m.first_timestamp, "firstTimestamp")?,
            last_timestamp: meta_time(m.last_timestamp, "lastTimestamp")?,
            event_time: micro_time(m.event_time, "eventTime")?,
            series,
            // Written by JSON even when empty (no omitempty).
            reporting_component: Some(m.reporting_component.unwrap_or_default()),
            source: m.source.map(|s| EventSource { component: text(s.component), host: text(s.host) }),
        })
    }
}

/// Each workload kind's status message, and how JSON writes its counts.
pub trait WorkloadTags {
    /// The kind's status message.
    type Status: Message + Default + std::fmt::Debug;
    /// The status view of one kind.
    fn status(s: Self::Status) -> WorkloadStatusView;
    /// The spec view of one kind (`replicas` or `parallelism`, both pointers: kept when 0).
    fn spec(first: Option<i32>) -> WorkloadSpecView {
        WorkloadSpecView { replicas: first, parallelism: None }
    }
}

impl WorkloadTags for k8s_openapi::api::apps::v1::Deployment {
    type Status = DeploymentStatus;
    fn status(s: DeploymentStatus) -> WorkloadStatusView {
        WorkloadStatusView {
            replicas: number(s.replicas),
            ready_replicas: number(s.ready_replicas),
            available_replicas: number(s.available_replicas),
            ..Default::default()
        }
    }
}

impl WorkloadTags for k8s_openapi::api::apps::v1::ReplicaSet {
    type Status = ReplicaSetStatus;
    fn status(s: ReplicaSetStatus) -> WorkloadStatusView {
        // A ReplicaSet's status.replicas has no omitempty.
        WorkloadStatusView {
            replicas: Some(s.replicas.unwrap_or(0)),
            ready_replicas: number(s.ready_replicas),
            available_replicas: number(s.available_replicas),
            ..Default::default()
        }
    }
}

impl WorkloadTags for k8s_openapi::api::apps::v1::StatefulSet {
    type Status = StatefulSetStatus;
    fn status(s: StatefulSetStatus) -> WorkloadStatusView {
        // A StatefulSet's status.replicas and availableReplicas have no omitempty.
        WorkloadStatusView {
            replicas: Some(s.replicas.unwrap_or(0)),
            ready_replicas: number(s.ready_replicas),
            available_replicas: Some(s.available_replicas.unwrap_or(0)),
            ..Default::default()
        }
    }
}

impl WorkloadTags for k8s_openapi::api::batch::v1::Job {
    type Status = JobStatus;
    fn status(s: JobStatus) -> WorkloadStatusView {
        // `ready` is a pointer (kept when 0); `succeeded` is not.
        WorkloadStatusView { ready: s.ready, succeeded: number(s.succeeded), ..Default::default() }
    }

    fn spec(first: Option<i32>) -> WorkloadSpecView {
        WorkloadSpecView { replicas: None, parallelism: first }
    }
}

impl<K: WorkloadTags + k8s_openapi::Resource> Protobuf for WorkloadView<K> {
    type Message = Workload<K::Status>;
    const WHAT: &'static str = K::KIND;

    fn from_message(m: Workload<K::Status>) -> Result<Self, ProtoError> {
        let mut view = WorkloadView::<K>::default();
        view.metadata = object_meta(m.metadata)?;
        view.spec = m.spec.map(|s| K::spec(s.first));
        view.status = m.status.map(K::status);
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> Option<Meta> {
        Some(Meta {
            name: Some(name.into()),
            namespace: Some(String::new()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            creation_timestamp: Some(Time { seconds: Some(1_796_205_600), nanos: None }),
            deletion_timestamp: None,
            labels: BTreeMap::new(),
            owner_references: vec![],
        })
    }

    #[test]
    fn an_object_comes_out_of_its_envelope_and_empty_fields_read_as_json_leaves_them() {
        let pod = Pod {
            metadata: meta("web-1"),
            spec: Some(PodSpec { node_name: Some(String::new()) }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                conditions: vec![Condition {
                    type_: Some("PodScheduled".into()),
                    status: Some("False".into()),
                    probe_or_heartbeat: Some(Time { seconds: None, nanos: None }),
                    last_transition_time: Some(Time { seconds: Some(1_796_205_601), nanos: Some(5) }),
                    reason: Some("Unschedulable".into()),
                    message: Some(String::new()),
                    observed_generation: Some(0),
                }],
                reason: Some(String::new()),
                container_statuses: vec![],
                init_container_statuses: vec![],
            }),
        };
        // The envelope's typeMeta is skipped on the way to the object.
        let view = PodView::decode(unwrap(wrapped(Some("Pod"), &pod)).unwrap()).unwrap();
        assert_eq!(view.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(view.metadata.namespace, None, "empty: left out as in JSON");
        assert!(view.metadata.labels.is_none() && view.metadata.owner_references.is_none());
        assert_eq!(view.spec.and_then(|s| s.node_name), None);
        let status = view.status.unwrap();
        assert_eq!((status.phase.as_deref(), status.reason.as_deref()), (Some("Pending"), None));
        let c = &status.conditions.unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref(), c.message.as_deref()),
            ("PodScheduled", Some("Unschedulable"), None)
        );
        assert_eq!(c.last_probe_time, None, "the zero time is null in JSON");
        assert_eq!(c.last_transition_time.as_ref().map(|t| t.0.as_second()), Some(1_796_205_601));
        assert_eq!(c.observed_generation, None);
    }

    #[test]
    fn workload_counts_come_from_each_kinds_own_tags() {
        use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
        use k8s_openapi::api::batch::v1::Job;
        let spec = Some(WorkloadSpec { first: Some(0) });
        let status = DeploymentStatus { replicas: Some(2), available_replicas: Some(4), ready_replicas: Some(0) };
        let d = WorkloadView::<Deployment>::from_message(Workload {
            metadata: meta("d"),
            spec: spec.clone(),
            status: Some(status),
        })
        .unwrap();
        let s = d.status.unwrap();
        assert_eq!((s.replicas, s.ready_replicas, s.available_replicas), (Some(2), None, Some(4)));
        assert_eq!(d.spec.and_then(|s| s.replicas), Some(0), "a pointer: 0 is kept");
        let status = ReplicaSetStatus { replicas: Some(0), ready_replicas: Some(4), available_replicas: Some(5) };
        let r = WorkloadView::<ReplicaSet>::from_message(Workload {
            metadata: meta("r"),
            spec: spec.clone(),
            status: Some(status),
        });
        let r = r.unwrap().status.unwrap();
        assert_eq!(
            (r.replicas, r.ready_replicas, r.available_replicas),
            (Some(0), Some(4), Some(5)),
            "replicas: no omitempty"
        );
        let status = JobStatus { succeeded: Some(5), ready: Some(0) };
        let j =
            WorkloadView::<Job>::from_message(Workload { metadata: meta("j"), spec, status: Some(status) }).unwrap();
        let js = j.status.unwrap();
        assert_eq!((js.ready, js.succeeded), (Some(0), Some(5)));
        assert_eq!(j.spec.map(|s| (s.replicas, s.parallelism)), Some((None, Some(0))));
    }

    #[test]
    fn bad_bytes_say_what_they_are() {
        let e = unwrap(Bytes::from_static(b"{\"kind\":\"Pod\"}")).unwrap_err();
        assert!(e.to_string().contains("no k8s\\0 prefix"), "{e}");
        let e = unwrap(Bytes::from_static(b"k8s\0\x0a\xff")).unwrap_err();
        assert!(e.to_string().contains("runtime.Unknown"), "{e}");
        let e = PodView::decode(Bytes::from_static(b"\x0a\x05ab")).unwrap_err();
        assert!(e.to_string().contains("cannot decode Pod"), "{e}");
        let far = Pod {
            metadata: Some(Meta {
                creation_timestamp: Some(Time { seconds: Some(i64::MAX), nanos: None }),
                ..meta("x").unwrap()
            }),
            spec: None,
            status: None,
        };
        let e = PodView::decode(far.encode_to_vec().into()).unwrap_err();
        assert!(e.to_string().contains("metadata.creationTimestamp: time out of range"), "{e}");
    }

    #[test]
    fn a_list_reads_its_items_and_continue_token() {
        let list = List::<Pod> {
            metadata: Some(ListMeta { resource_version: Some("99".into()), continue_: Some("next".into()) }),
            items: vec![
                Pod { metadata: meta("a"), spec: None, status: None },
                Pod { metadata: meta("b"), spec: None, status: None },
            ],
        };
        let (items, meta) = PodView::decode_list(list.encode_to_vec().into()).unwrap();
        assert_eq!(items.iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((meta.resource_version.as_deref(), meta.continue_.as_deref()), (Some("99"), Some("next")));
    }
}
