//! What the cluster looked like after a step: a few list calls, made once the step's actions
//! finished, kept to the fields that tell how the scenario went (not a full dump).
//!
//! Deployments, pods and nodes are listed in protobuf, a page of `PAGE` (500) at a time, each page
//! turned into the snapshot's few fields before the next is asked for: a snapshot holds one
//! page's bytes, not the whole list's. Listed unpaged in JSON (up to 8 snapshots at once, each
//! ~3,000-4,000 pods and 1,001 nodes), the scenario driver's peak RSS was 227 MiB in
//! `make bench-scenario-scale`; paged in protobuf, 135 MiB. PodDisruptionBudgets (a few per
//! namespace) stay in JSON.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::collect::proto::Protobuf;
use crate::collect::proto_watch::ProtoApi;
use crate::collect::view::{NodeView, PodView, WorkloadView};

/// Node label with the node's kind in the local control plane (`virtual` for KWOK nodes).
const TYPE_LABEL: &str = "type";
/// Well-known node label with the instance type.
const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

/// `steps/<NNN>-<step>.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSnapshot {
    /// Position of the step in the play, from 1.
    pub step: usize,
    /// Position of the step in the scenario's step list, from 1.
    pub step_index: usize,
    /// The step's name.
    pub step_name: String,
    /// When the step was due (RFC 3339).
    pub due: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Started minus due, in milliseconds.
    pub lateness_ms: f64,
    /// Actions of the step, and how many failed.
    pub actions: usize,
    /// Failed actions of the step.
    pub actions_failed: usize,
    /// When the lists below were taken (RFC 3339), after the step's actions finished.
    pub collected: String,
    /// The namespace's Deployments.
    pub deployments: Vec<DeploymentState>,
    /// The namespace's PodDisruptionBudgets.
    pub pdbs: Vec<PdbState>,
    /// The namespace's pods.
    pub pods: Vec<PodState>,
    /// Every node.
    pub nodes: Vec<NodeState>,
    /// List calls that failed (their lists above are then empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One Deployment after a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentState {
    /// Name.
    pub name: String,
    /// spec.replicas: what the scenario asked for.
    pub spec_replicas: Option<i32>,
    /// status.replicas.
    pub replicas: i32,
    /// status.readyReplicas.
    pub ready: i32,
    /// status.availableReplicas.
    pub available: i32,
}

/// One PodDisruptionBudget after a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PdbState {
    /// Name.
    pub name: String,
    /// spec.minAvailable, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<String>,
    /// spec.maxUnavailable, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
    /// status.currentHealthy.
    pub current_healthy: i32,
    /// status.desiredHealthy.
    pub desired_healthy: i32,
    /// status.disruptionsAllowed.
    pub disruptions_allowed: i32,
}

/// One pod after a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodState {
    /// Name.
    pub name: String,
    /// status.phase.
    pub phase: Option<String>,
    /// spec.nodeName (None while unscheduled).
    pub node: Option<String>,
}

/// One node after a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    /// Name.
    pub name: String,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Its `type` label (`virtual` for KWOK nodes).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Its `node.kubernetes.io/instance-type` label.
    pub instance_type: Option<String>,
}

/// The lists of one snapshot.
#[derive(Debug, Default)]
pub struct Lists {
    /// Deployments.
    pub deployments: Vec<DeploymentState>,
    /// PDBs.
    pub pdbs: Vec<PdbState>,
    /// Pods.
    pub pods: Vec<PodState>,
    /// Nodes.
    pub nodes: Vec<NodeState>,
    /// Failed list calls.
    pub errors: Vec<String>,
}

/// Objects per page of a snapshot's lists.
const PAGE: u32 = 500;

/// Lists the namespace's Deployments, PDBs and pods and every node, at once.
pub async fn collect(client: &kube::Client, namespace: &str) -> Lists {
    use kube::Resource;
    let (d, b, p, n) = tokio::join!(
        pages(ProtoApi::<WorkloadView<Deployment>>::namespaced(client.clone(), namespace), deployment_state),
        list::<PodDisruptionBudget>(client, PodDisruptionBudget::url_path(&(), Some(namespace))),
        pages(ProtoApi::<PodView>::namespaced(client.clone(), namespace), pod_state),
        pages(ProtoApi::<NodeView>::all(client.clone()), node_state),
    );
    let mut lists = Lists::default();
    // A failed list is recorded in the snapshot, never silently left empty.
    match d {
        Ok(states) => lists.deployments = states,
        Err(e) => lists.errors.push(format!("list deployments: {e}")),
    }
    match b {
        Ok(items) => lists.pdbs = items.iter().map(pdb_state).collect(),
        Err(e) => lists.errors.push(format!("list poddisruptionbudgets: {e}")),
    }
    match p {
        Ok(states) => lists.pods = states,
        Err(e) => lists.errors.push(format!("list pods: {e}")),
    }
    match n {
        Ok(states) => lists.nodes = states,
        Err(e) => lists.errors.push(format!("list nodes: {e}")),
    }
    lists
}

/// Every page of `api`'s list, each object kept as `keep` makes it (one consistent list: the
/// pages after the first follow its continue token).
async fn pages<K, T>(api: ProtoApi<K>, keep: fn(&K) -> T) -> Result<Vec<T>, String>
where
    K: kube::Resource<DynamicType = ()> + Protobuf + Send + 'static,
{
    let mut params = ListParams::default().limit(PAGE);
    let mut kept = Vec::new();
    loop {
        let (items, meta) = api.list(&params).await.map_err(|e| e.to_string())?;
        kept.extend(items.iter().map(keep));
        match meta.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(kept),
        }
    }
}

/// A list's items, whatever its kind.
#[derive(Deserialize)]
struct Items<K> {
    #[serde(default = "Vec::new")]
    items: Vec<K>,
}

/// Lists `url_path` (all pages at once) and decodes the answer on a blocking thread.
async fn list<K: DeserializeOwned + Send + 'static>(client: &kube::Client, url_path: String) -> Result<Vec<K>, String> {
    let request = kube::core::Request::new(url_path).list(&ListParams::default()).map_err(|e| e.to_string())?;
    let text = client.request_text(request).await.map_err(|e| e.to_string())?;
    let decoded = tokio::task::spawn_blocking(move || serde_json::from_str::<Items<K>>(&text))
        .await
        .map_err(|e| format!("decoding the list failed: {e}"))?;
    decoded.map(|l| l.items).map_err(|e| format!("the list cannot be read: {e}"))
}

/// The fields of a Deployment the snapshot keeps.
pub fn deployment_state(d: &WorkloadView<Deployment>) -> DeploymentState {
    let status = d.status.clone().unwrap_or_default();
    DeploymentState {
        name: d.metadata.name.clone().unwrap_or_default(),
        spec_replicas: d.spec.as_ref().and_then(|s| s.replicas),
        replicas: status.replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The fields of a PDB the snapshot keeps.
pub fn pdb_state(b: &PodDisruptionBudget) -> PdbState {
    let spec = b.spec.clone().unwrap_or_default();
    let status = b.status.clone().unwrap_or_default();
    PdbState {
        name: b.metadata.name.clone().unwrap_or_default(),
        min_available: spec.min_available.as_ref().map(int_or_string),
        max_unavailable: spec.max_unavailable.as_ref().map(int_or_string),
        current_healthy: status.current_healthy.unwrap_or(0),
        desired_healthy: status.desired_healthy.unwrap_or(0),
        disruptions_allowed: status.disruptions_allowed.unwrap_or(0),
    }
}

/// The fields of a pod the snapshot keeps.
pub fn pod_state(p: &PodView) -> PodState {
    PodState {
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: p.status.as_ref().and_then(|s| s.phase.clone()),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
    }
}

/// The fields of a node the snapshot keeps.
pub fn node_state(n: &NodeView) -> NodeState {
    let label = |key: &str| n.metadata.labels.as_ref().and_then(|l| l.get(key).cloned());
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    NodeState {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready,
        type_: label(TYPE_LABEL),
        instance_type: label(INSTANCE_TYPE_LABEL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn keeps_the_fields_that_matter() {
        let d: WorkloadView<Deployment> = from(json!({
            "metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 1}
        }));
        assert_eq!(
            deployment_state(&d),
            DeploymentState { name: "web".into(), spec_replicas: Some(3), replicas: 3, ready: 2, available: 1 }
        );
        let fresh: WorkloadView<Deployment> = from(json!({"metadata": {"name": "new"}}));
        assert_eq!(deployment_state(&fresh).available, 0);

        let p: PodView = from(
            json!({"metadata": {"name": "web-1"}, "spec": {"containers": [], "nodeName": "kwok-node-3"}, "status": {"phase": "Running"}}),
        );
        assert_eq!(
            pod_state(&p),
            PodState { name: "web-1".into(), phase: Some("Running".into()), node: Some("kwok-node-3".into()) }
        );
        let n: NodeView = from(json!({
            "metadata": {"name": "kwok-node-0", "labels": {"type": "virtual", "node.kubernetes.io/instance-type": "kwok"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }));
        let state = node_state(&n);
        assert!(state.ready);
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            json!({"name": "kwok-node-0", "ready": true, "type": "virtual", "instance_type": "kwok"})
        );
        let b: PodDisruptionBudget = from(json!({
            "metadata": {"name": "web-pdb"}, "spec": {"minAvailable": "50%"},
            "status": {"currentHealthy": 3, "desiredHealthy": 2, "disruptionsAllowed": 1, "expectedPods": 3}
        }));
        assert_eq!(
            serde_json::to_value(pdb_state(&b)).unwrap(),
            json!({"name": "web-pdb", "min_available": "50%", "current_healthy": 3, "desired_healthy": 2, "disruptions_allowed": 1})
        );
    }
}
