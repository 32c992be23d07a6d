//! The runner's Node: registration (with its taints), the heartbeat (Lease renewal and Ready
//! status) that keeps kube-controller-manager's node lifecycle controller from marking it
//! NotReady, and removal.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{MicroTime, OwnerReference, Time},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams},
};
use rehearsal_crds::keys::RUNNER_NODE_LABEL;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{context::FIELD_MANAGER, env::LOOPBACK, retry::Backoff};

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often the lease and the Ready condition are renewed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// The lease's duration, as kubelet sets it.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The node's default taint: pods run here (on the developer's machine) only when they tolerate
/// it, so a pod that missed the rehearsal webhook stays Pending instead.
pub const DEFAULT_TAINT: &str = "rehearsal.dev/runner=true:NoSchedule";
/// The `--taint` value that registers the node without taints.
pub const NO_TAINTS: &str = "none";
/// Taint effects the API accepts.
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Errors talking to the API server about the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An API call failed.
    #[error("{action} node {node}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The node.
        node: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The node object came back without a UID.
    #[error("node {0} has no uid")]
    NoUid(String),
}

/// Capacity the node advertises (the scheduler's view; nothing enforces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// CPU quantity, e.g. `8`.
    pub cpu: String,
    /// Memory quantity, e.g. `16Gi`.
    pub memory: String,
    /// Maximum pod count, e.g. `50`.
    pub pods: String,
}

/// Host facts reported in `status.nodeInfo`.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// API server version, reused as the "kubelet" version so version-skew checks pass.
    pub kubelet_version: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
}

impl HostInfo {
    /// Reads the host facts; whatever cannot be read is left empty.
    pub fn read(kubelet_version: String) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default();
        HostInfo {
            kubelet_version,
            kernel_version: read("/proc/sys/kernel/osrelease"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
        }
    }
}

/// Kubernetes' name for the host architecture.
pub fn kube_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Parses a taint as kubectl writes it: `key=value:Effect` or `key:Effect`.
pub fn parse_taint(text: &str) -> Result<Taint, String> {
    let invalid = |why: &str| format!("taint {text:?}: {why} (expected key=value:Effect, e.g. {DEFAULT_TAINT})");
    let (key_value, effect) = text.rsplit_once(':').ok_or_else(|| invalid("no effect"))?;
    if !TAINT_EFFECTS.contains(&effect) {
        return Err(invalid(&format!("effect must be one of {}", TAINT_EFFECTS.join(", "))));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_owned())),
        None => (key_value, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(invalid("empty or blank key"));
    }
    Ok(Taint { key: key.to_owned(), value, effect: effect.to_owned(), time_added: None })
}

/// The `--taint` values as taints: each parsed, or none at all for a single [`NO_TAINTS`].
pub fn parse_taints(values: &[String]) -> Result<Vec<Taint>, String> {
    match values {
        [only] if only == NO_TAINTS => Ok(Vec::new()),
        _ => values.iter().map(|v| parse_taint(v)).collect(),
    }
}

/// The Node's metadata and spec: its name, labels and taints.
pub fn node_manifest(name: &str, taints: &[Taint]) -> Node {
    let labels = BTreeMap::from([
        (RUNNER_NODE_LABEL.to_owned(), "true".to_owned()),
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), std::env::consts::OS.to_owned()),
        ("kubernetes.io/arch".to_owned(), kube_arch().to_owned()),
    ]);
    // No taints: the field is left out, so the apply gives up what an earlier registration set.
    let spec = (!taints.is_empty()).then(|| NodeSpec { taints: Some(taints.to_vec()), ..Default::default() });
    Node {
        metadata: ObjectMeta { name: Some(name.to_owned()), labels: Some(labels), ..Default::default() },
        spec,
        ..Default::default()
    }
}

/// The Node's status at `now`: Ready (heartbeat `now`, transition at `since`), no pressure,
/// loopback address, the advertised capacity.
pub fn node_status(name: &str, capacity: &Capacity, host: &HostInfo, since: Timestamp, now: Timestamp) -> NodeStatus {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(capacity.cpu.clone())),
        ("memory".to_owned(), Quantity(capacity.memory.clone())),
        ("pods".to_owned(), Quantity(capacity.pods.clone())),
        ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
    ]);
    NodeStatus {
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "rehearsal-runner does not track memory",
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "rehearsal-runner does not track disk"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "rehearsal-runner does not track pids"),
            condition("Ready", "True", "KubeletReady", "rehearsal-runner is posting ready status"),
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".to_owned(), address: LOOPBACK.to_owned() },
            NodeAddress { type_: "Hostname".to_owned(), address: name.to_owned() },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        node_info: Some(NodeSystemInfo {
            architecture: kube_arch().to_owned(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: format!("rehearsal-runner://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: host.kubelet_version.clone(),
            machine_id: host.machine_id.clone(),
            operating_system: std::env::consts::OS.to_owned(),
            os_image: "rehearsal-runner (host processes)".to_owned(),
            system_uuid: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The node's Lease, owned by the Node so it goes away with it.
pub fn lease(name: &str, node_uid: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Node".to_owned(),
                name: name.to_owned(),
                uid: node_uid.to_owned(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Registers the node and keeps it alive.
pub struct NodeAgent {
    client: Client,
    name: String,
    capacity: Capacity,
    taints: Vec<Taint>,
    host: HostInfo,
    since: Timestamp,
}

impl NodeAgent {
    /// An agent for node `name` with `taints`; reads host facts and the API server version.
    pub async fn new(client: Client, name: String, capacity: Capacity, taints: Vec<Taint>) -> Self {
        let version = match client.apiserver_version().await {
            Ok(info) => info.git_version,
            Err(error) => {
                tracing::warn!(%error, "reading the API server version failed; reporting v0.0.0");
                "v0.0.0".to_owned()
            }
        };
        NodeAgent { client, name, capacity, taints, host: HostInfo::read(version), since: Timestamp::now() }
    }

    fn params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// Creates or updates the Node (labels and taints, forced: every registration, including
    /// after the Node was deleted, puts the taints back), its status and its Lease; returns the
    /// Node's UID.
    pub async fn register(&self) -> Result<String, NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let api = |action| move |source| NodeError::Api { action, node: self.name.clone(), source };
        let node = nodes
            .patch(&self.name, &Self::params(), &Patch::Apply(node_manifest(&self.name, &self.taints)))
            .await
            .map_err(api("registering"))?;
        let uid = node.metadata.uid.ok_or_else(|| NodeError::NoUid(self.name.clone()))?;
        self.post_status().await?;
        self.renew_lease(&uid).await?;
        Ok(uid)
    }

    async fn post_status(&self) -> Result<(), NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let status = node_status(&self.name, &self.capacity, &self.host, self.since, Timestamp::now());
        let body = json!({ "apiVersion": "v1", "kind": "Node", "status": status });
        nodes
            .patch_status(&self.name, &Self::params(), &Patch::Apply(body))
            .await
            .map_err(|source| NodeError::Api { action: "posting status of", node: self.name.clone(), source })?;
        Ok(())
    }

    async fn renew_lease(&self, node_uid: &str) -> Result<(), NodeError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let lease = lease(&self.name, node_uid, Timestamp::now());
        leases.patch(&self.name, &Self::params(), &Patch::Apply(lease)).await.map_err(|source| NodeError::Api {
            action: "renewing lease of",
            node: self.name.clone(),
            source,
        })?;
        Ok(())
    }

    /// Registers (retrying with backoff) and then renews lease and status every
    /// [`HEARTBEAT_INTERVAL`] until `shutdown`; re-registers if the Node disappears.
    pub async fn run(&self, registered: Option<String>, shutdown: CancellationToken) {
        let mut uid = registered;
        let mut backoff = Backoff::new(Duration::from_secs(1), HEARTBEAT_INTERVAL);
        loop {
            let result = match &uid {
                None => self.register().await.map(|new_uid| {
                    tracing::info!(node = %self.name, "node registered");
                    uid = Some(new_uid);
                }),
                Some(node_uid) => match self.renew_lease(node_uid).await {
                    Ok(()) => self.post_status().await,
                    Err(error) => Err(error),
                },
            };
            let delay = match result {
                Ok(()) => {
                    backoff.reset();
                    HEARTBEAT_INTERVAL
                }
                Err(error) => {
                    tracing::warn!(%error, "node heartbeat failed; retrying");
                    // A Node deleted under us (404) or re-created (owner uid conflict) is registered again.
                    if let NodeError::Api { source: kube::Error::Api(response), .. } = &error
                        && matches!(response.code, 404 | 409 | 422)
                    {
                        uid = None;
                    }
                    backoff.next_delay()
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Deletes the Lease and the Node; a missing one is fine.
    pub async fn deregister(&self) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Err(error) = leases.delete(&self.name, &DeleteParams::default()).await
            && !is_not_found(&error)
        {
            tracing::warn!(%error, "deleting node lease failed");
        }
        match nodes.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(node = %self.name, "node deleted"),
            Err(error) if is_not_found(&error) => {}
            Err(error) => tracing::warn!(%error, "deleting node failed"),
        }
    }
}

/// Whether an API error is a 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity() -> Capacity {
        Capacity { cpu: "8".into(), memory: "16Gi".into(), pods: "50".into() }
    }

    fn default_taints() -> Vec<Taint> {
        parse_taints(&[DEFAULT_TAINT.to_owned()]).expect("default taint")
    }

    #[test]
    fn manifest_has_the_runner_label_and_the_runner_taint() {
        let node = node_manifest("rehearsal-runner", &default_taints());
        let value = serde_json::to_value(&node).expect("json");
        assert_eq!(
            value["spec"]["taints"],
            json!([{"key": "rehearsal.dev/runner", "value": "true", "effect": "NoSchedule"}])
        );
        // The key the operator's Jobs and Deployment tolerate is the node's label key.
        assert_eq!(value["spec"]["taints"][0]["key"], RUNNER_NODE_LABEL);
        let labels = node.metadata.labels.unwrap_or_default();
        assert_eq!(labels.get("rehearsal.dev/runner").map(String::as_str), Some("true"));
        assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("rehearsal-runner"));
        assert_eq!(labels.get("kubernetes.io/os").map(String::as_str), Some("linux"));
        assert!(labels.contains_key("kubernetes.io/arch"));
    }

    #[test]
    fn without_taints_the_manifest_leaves_the_field_out() {
        let taints = parse_taints(&[NO_TAINTS.to_owned()]).expect("none");
        assert!(taints.is_empty());
        let value = serde_json::to_value(node_manifest("n", &taints)).expect("json");
        assert!(value.get("spec").is_none(), "{value}");
    }

    #[test]
    fn taints_parse_as_kubectl_writes_them() {
        let taints =
            parse_taints(&["a.b/c=d:NoExecute".to_owned(), "only-key:PreferNoSchedule".to_owned()]).expect("taints");
        assert_eq!((taints[0].key.as_str(), taints[0].value.as_deref()), ("a.b/c", Some("d")));
        assert_eq!(taints[0].effect, "NoExecute");
        assert_eq!((taints[1].key.as_str(), taints[1].value.as_deref()), ("only-key", None));
        for bad in ["no-effect", "k=v:Sometimes", ":NoSchedule", "=v:NoSchedule", ""] {
            assert!(parse_taint(bad).is_err(), "{bad}");
        }
        // `none` only means "no taints" on its own.
        assert!(parse_taints(&[NO_TAINTS.to_owned(), DEFAULT_TAINT.to_owned()]).is_err());
    }

    #[test]
    fn status_is_ready_with_fresh_heartbeat_and_stable_transition() {
        let since = Timestamp::from_second(1_700_000_000).expect("ts");
        let now = Timestamp::from_second(1_700_000_100).expect("ts");
        let status = node_status("n", &capacity(), &HostInfo::default(), since, now);
        let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_heartbeat_time, Some(Time(now)));
        assert_eq!(ready.last_transition_time, Some(Time(since)));
        assert_eq!(status.addresses.as_ref().map(|a| a[0].address.as_str()), Some("127.0.0.1"));
        let pods = status.allocatable.as_ref().and_then(|a| a.get("pods")).map(|q| q.0.as_str());
        assert_eq!(pods, Some("50"));
    }

    #[test]
    fn lease_is_owned_by_the_node_and_serializes_micro_time() {
        let now = Timestamp::from_second(1_700_000_000).expect("ts");
        let lease = lease("n", "uid-1", now);
        let value = serde_json::to_value(&lease).expect("json");
        assert_eq!(value["kind"], "Lease");
        assert_eq!(value["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(value["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(value["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(value["spec"]["renewTime"], "2023-11-14T22:13:20.000000Z");
    }
}
