//! `nodes.jsonl`, Karpenter's part: NodePools and NodeClaims (`karpenter.sh/v1`), when the
//! cluster serves them. A `changed` record is written when one appears and whenever its True
//! conditions, its labels (instance type, zone, capacity type, pool) or, for a NodeClaim, its
//! allocatable change; `deleted` when it goes. Read as untyped objects: the driver does not
//! depend on Karpenter's types.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;

use super::nodes::Labels;
use super::records::{NodeChange, NodeRecord};
use super::time;
use super::watch::{Diff, Seen};

/// Karpenter's API group.
pub const GROUP: &str = "karpenter.sh";
/// The version watched.
pub const VERSION: &str = "v1";
/// The kinds watched.
pub const KINDS: [&str; 2] = ["NodePool", "NodeClaim"];

/// How the cluster serves `kind` of `karpenter.sh/v1`; None when it does not.
pub async fn discover(client: &kube::Client, kind: &str) -> Result<Option<ApiResource>, kube::Error> {
    let found = crate::served::served(client, &GroupVersionKind::gvk(GROUP, VERSION, kind)).await?;
    Ok(found.map(|(resource, _)| resource))
}

/// What is remembered of a live NodePool or NodeClaim: what its last record said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimState {
    name: String,
    labels: Labels,
    /// Conditions that are True.
    conditions: BTreeSet<String>,
    allocatable: BTreeMap<String, String>,
}

/// The diff of one Karpenter kind.
#[derive(Debug, Clone, Copy)]
pub struct Karpenter {
    /// `NodePool` or `NodeClaim`.
    pub kind: &'static str,
}

impl Diff for Karpenter {
    type Object = DynamicObject;
    type State = ClaimState;
    type Record = NodeRecord;

    fn observe(
        &self,
        old: Option<ClaimState>,
        obj: &DynamicObject,
        _seen: Seen,
        t: &str,
    ) -> (ClaimState, Vec<NodeRecord>) {
        let status = obj.data.get("status");
        let conditions =
            status.and_then(|s| s.get("conditions")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let is_true = |c: &&Value| c.get("status").and_then(Value::as_str) == Some("True");
        let type_of = |c: &Value| c.get("type").and_then(Value::as_str).map(str::to_string);
        let state = ClaimState {
            name: obj.metadata.name.clone().unwrap_or_default(),
            labels: Labels::of(obj.metadata.labels.as_ref()),
            conditions: conditions.iter().filter(is_true).filter_map(type_of).collect(),
            allocatable: status
                .and_then(|s| s.get("allocatable"))
                .and_then(Value::as_object)
                .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
        };
        if old.as_ref() == Some(&state) {
            return (state, Vec::new());
        }
        let at = match &old {
            None => obj.metadata.creation_timestamp.as_ref().map(time::at),
            // The latest transition of the conditions that became True.
            Some(old) => conditions
                .iter()
                .filter(is_true)
                .filter(|c| type_of(c).is_some_and(|k| !old.conditions.contains(&k)))
                .filter_map(|c| c.get("lastTransitionTime")?.as_str()?.parse::<Timestamp>().ok())
                .max()
                .map(|t| t.to_string()),
        };
        let mut r = record(self.kind, &state, t, NodeChange::Changed);
        r.at = at;
        r.conditions = state.conditions.iter().cloned().collect();
        r.allocatable = state.allocatable.clone();
        (state, vec![r])
    }

    fn gone(&self, last: ClaimState, _seen: Seen, t: &str) -> Vec<NodeRecord> {
        vec![record(self.kind, &last, t, NodeChange::Deleted)]
    }
}

fn record(kind: &str, state: &ClaimState, t: &str, change: NodeChange) -> NodeRecord {
    NodeRecord {
        t: t.to_string(),
        change,
        name: state.name.clone(),
        object: Some(kind.to_string()),
        at: None,
        instance_type: state.labels.instance_type.clone(),
        zone: state.labels.zone.clone(),
        capacity_type: state.labels.capacity_type.clone(),
        nodepool: state.labels.nodepool.clone(),
        virtual_node: None,
        allocatable: BTreeMap::new(),
        conditions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(conditions: &[(&str, &str, &str)], labels: Value, allocatable: Value) -> DynamicObject {
        let conditions: Vec<Value> = conditions
            .iter()
            .map(|(kind, status, at)| json!({"type": kind, "status": status, "lastTransitionTime": at}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodeClaim",
            "metadata": {"name": "default-abc", "uid": "c1", "creationTimestamp": "2026-12-02T10:00:00Z", "labels": labels},
            "status": {"conditions": conditions, "allocatable": allocatable}
        }))
        .unwrap()
    }

    #[test]
    fn a_claim_is_written_when_it_appears_and_when_what_it_says_changes() {
        let diff = Karpenter { kind: "NodeClaim" };
        let pool = json!({"karpenter.sh/nodepool": "default"});
        let launched = json!({
            "karpenter.sh/nodepool": "default",
            "node.kubernetes.io/instance-type": "c5.large",
            "topology.kubernetes.io/zone": "us-east-1b",
            "karpenter.sh/capacity-type": "on-demand"
        });
        let versions = [
            claim(&[("Launched", "Unknown", "2026-12-02T10:00:00Z")], pool.clone(), json!({})),
            // Only a transition time moved: nothing to write.
            claim(&[("Launched", "Unknown", "2026-12-02T10:00:01Z")], pool, json!({})),
            claim(&[("Launched", "True", "2026-12-02T10:00:02Z")], launched.clone(), json!({"cpu": "2", "pods": "29"})),
            claim(
                &[
                    ("Launched", "True", "2026-12-02T10:00:02Z"),
                    ("Registered", "True", "2026-12-02T10:00:07Z"),
                    ("Initialized", "True", "2026-12-02T10:00:09Z"),
                ],
                launched,
                json!({"cpu": "2", "pods": "29"}),
            ),
        ];
        let mut state = None;
        let mut records = Vec::new();
        for v in &versions {
            let (s, r) = diff.observe(state.take(), v, Seen::Watch, "t");
            state = Some(s);
            records.push(r);
        }
        assert_eq!(records.iter().map(Vec::len).collect::<Vec<_>>(), [1, 0, 1, 1]);
        let first = &records[0][0];
        assert_eq!(
            (first.change, first.object.as_deref(), first.at.as_deref()),
            (NodeChange::Changed, Some("NodeClaim"), Some("2026-12-02T10:00:00Z"))
        );
        assert_eq!(first.nodepool.as_deref(), Some("default"));
        assert!(first.conditions.is_empty() && first.virtual_node.is_none());
        let launched = &records[2][0];
        assert_eq!(launched.conditions, ["Launched"]);
        assert_eq!(launched.at.as_deref(), Some("2026-12-02T10:00:02Z"));
        assert_eq!(
            (launched.instance_type.as_deref(), launched.capacity_type.as_deref()),
            (Some("c5.large"), Some("on-demand"))
        );
        assert_eq!(launched.allocatable.get("pods").map(String::as_str), Some("29"));
        let ready = &records[3][0];
        assert_eq!(ready.conditions, ["Initialized", "Launched", "Registered"]);
        assert_eq!(ready.at.as_deref(), Some("2026-12-02T10:00:09Z"), "the latest of the new ones");
        let gone = diff.gone(state.unwrap(), Seen::Watch, "t");
        assert_eq!(
            (gone[0].change, gone[0].name.as_str(), gone[0].object.as_deref()),
            (NodeChange::Deleted, "default-abc", Some("NodeClaim"))
        );
    }

    #[test]
    fn a_pool_without_status_is_still_written() {
        let pool: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default", "uid": "p1"}, "spec": {}
        }))
        .unwrap();
        let (_, records) = Karpenter { kind: "NodePool" }.observe(None, &pool, Seen::FirstList, "t");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].at, None);
        assert_eq!(
            serde_json::to_string(&records[0]).unwrap(),
            r#"{"t":"t","change":"changed","name":"default","object":"NodePool"}"#
        );
    }
}
