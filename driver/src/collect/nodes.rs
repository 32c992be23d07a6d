//! `nodes.jsonl`, the nodes' part: added, Ready / NotReady, cordoned / uncordoned, deleted. Every
//! record carries what the node is (instance type, zone, capacity type, node pool, virtual) so a
//! reader can group by it without joining; allocatable goes with `added` only.

use std::collections::BTreeMap;

use rehearsal_crds::keys::{VIRTUAL_NODE_LABEL, VIRTUAL_NODE_VALUE};

use super::records::{NodeChange, NodeRecord};
use super::time;
use super::view::NodeView;
use super::watch::{Diff, Seen};

/// Well-known label with the instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// Well-known label with the zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Karpenter's capacity type label (spot, on-demand, reserved).
pub const CAPACITY_TYPE_LABEL: &str = "karpenter.sh/capacity-type";
/// Karpenter's label naming the NodePool a node or NodeClaim belongs to.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";

/// What a node or NodeClaim is, from its labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// Instance type.
    pub instance_type: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Capacity type.
    pub capacity_type: Option<String>,
    /// NodePool.
    pub nodepool: Option<String>,
}

impl Labels {
    /// The labels that matter, from all of them.
    pub fn of(labels: Option<&BTreeMap<String, String>>) -> Self {
        let get = |key: &str| labels.and_then(|l| l.get(key)).cloned();
        Labels {
            instance_type: get(INSTANCE_TYPE_LABEL),
            zone: get(ZONE_LABEL),
            capacity_type: get(CAPACITY_TYPE_LABEL),
            nodepool: get(NODEPOOL_LABEL),
        }
    }
}

/// What is remembered of a live node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    name: String,
    labels: Labels,
    virtual_node: bool,
    /// The Ready condition's status last seen: None without one.
    ready: Option<bool>,
    unschedulable: bool,
}

/// The node collector's diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nodes;

impl Diff for Nodes {
    type Object = NodeView;
    type State = NodeState;
    type Record = NodeRecord;

    fn observe(&self, old: Option<NodeState>, node: &NodeView, _seen: Seen, t: &str) -> (NodeState, Vec<NodeRecord>) {
        let labels = node.metadata.labels.as_ref();
        let is_new = old.is_none();
        let mut state = old.unwrap_or_else(|| NodeState {
            name: node.metadata.name.clone().unwrap_or_default(),
            ..Default::default()
        });
        // Labels can be added after registration (Karpenter's, a zone): keep the latest.
        state.labels = Labels::of(labels);
        state.virtual_node = labels.and_then(|l| l.get(VIRTUAL_NODE_LABEL)).is_some_and(|v| v == VIRTUAL_NODE_VALUE);
        let mut records = Vec::new();
        if is_new {
            let mut r = record(&state, t, NodeChange::Added);
            r.at = node.metadata.creation_timestamp.as_ref().map(time::at);
            r.allocatable = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .map(|a| a.iter().map(|(k, q)| (k.clone(), q.0.clone())).collect())
                .unwrap_or_default();
            records.push(r);
        }

        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let now_ready = ready.map(|c| c.status == "True");
        if let Some(now) = now_ready
            && now_ready != state.ready
        {
            let mut r = record(&state, t, if now { NodeChange::Ready } else { NodeChange::NotReady });
            r.at = ready.and_then(|c| c.last_transition_time.as_ref()).map(time::at);
            records.push(r);
        }
        if now_ready.is_some() {
            state.ready = now_ready;
        }

        let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        if unschedulable != state.unschedulable {
            state.unschedulable = unschedulable;
            records.push(record(&state, t, if unschedulable { NodeChange::Cordoned } else { NodeChange::Uncordoned }));
        }
        (state, records)
    }

    fn gone(&self, last: NodeState, _seen: Seen, t: &str) -> Vec<NodeRecord> {
        vec![record(&last, t, NodeChange::Deleted)]
    }
}

/// A record of `change` with what the node is.
fn record(state: &NodeState, t: &str, change: NodeChange) -> NodeRecord {
    NodeRecord {
        t: t.to_string(),
        change,
        name: state.name.clone(),
        object: None,
        at: None,
        instance_type: state.labels.instance_type.clone(),
        zone: state.labels.zone.clone(),
        capacity_type: state.labels.capacity_type.clone(),
        nodepool: state.labels.nodepool.clone(),
        virtual_node: Some(state.virtual_node),
        allocatable: BTreeMap::new(),
        conditions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::view;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn ts(s: i64) -> Time {
        Time(Timestamp::from_second(1_796_205_600 + s).unwrap())
    }

    fn node(ready: Option<&str>, unschedulable: bool) -> Node {
        let labels = [
            ("type", "virtual"),
            (INSTANCE_TYPE_LABEL, "m5.large"),
            (ZONE_LABEL, "us-east-1a"),
            (CAPACITY_TYPE_LABEL, "spot"),
            (NODEPOOL_LABEL, "default"),
        ];
        Node {
            metadata: ObjectMeta {
                name: Some("kwok-node-0".into()),
                uid: Some("n0".into()),
                creation_timestamp: Some(ts(0)),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec { unschedulable: Some(unschedulable), ..Default::default() }),
            status: Some(NodeStatus {
                allocatable: Some(
                    [("cpu".to_string(), Quantity("2".into())), ("pods".to_string(), Quantity("110".into()))].into(),
                ),
                conditions: ready.map(|status| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        last_transition_time: Some(ts(5)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn changes(versions: &[Node]) -> (NodeState, Vec<Vec<NodeChange>>, Vec<NodeRecord>) {
        let mut state = None;
        let mut out = Vec::new();
        let mut all = Vec::new();
        for n in versions {
            let (s, records) = Nodes.observe(state.take(), &view::of(n), Seen::Watch, "t");
            state = Some(s);
            out.push(records.iter().map(|r| r.change).collect());
            all.extend(records);
        }
        (state.unwrap(), out, all)
    }

    #[test]
    fn a_node_is_added_becomes_ready_is_cordoned_and_goes() {
        use NodeChange::*;
        let (state, per_version, all) = changes(&[
            node(None, false),
            node(Some("False"), false),
            node(Some("True"), false),
            node(Some("True"), false),
            node(Some("True"), true),
            node(Some("Unknown"), true),
            node(Some("Unknown"), false),
        ]);
        assert_eq!(
            per_version,
            [vec![Added], vec![NotReady], vec![Ready], vec![], vec![Cordoned], vec![NotReady], vec![Uncordoned]]
        );
        let added = &all[0];
        assert_eq!(added.at.as_deref(), Some("2026-12-02T10:00:00Z"));
        assert_eq!(added.allocatable.get("pods").map(String::as_str), Some("110"));
        assert_eq!(
            (
                added.instance_type.as_deref(),
                added.zone.as_deref(),
                added.capacity_type.as_deref(),
                added.nodepool.as_deref()
            ),
            (Some("m5.large"), Some("us-east-1a"), Some("spot"), Some("default"))
        );
        assert_eq!(added.virtual_node, Some(true));
        assert_eq!(all[2].at.as_deref(), Some("2026-12-02T10:00:05Z"));
        assert!(all[2].allocatable.is_empty(), "allocatable goes with added only");
        let gone = Nodes.gone(state, Seen::Watch, "t");
        assert_eq!(
            (gone[0].change, gone[0].name.as_str(), gone[0].instance_type.as_deref()),
            (Deleted, "kwok-node-0", Some("m5.large"))
        );
    }

    #[test]
    fn a_node_first_seen_ready_and_cordoned_says_both_and_a_real_node_is_not_virtual() {
        let mut n = node(Some("True"), true);
        n.metadata.labels.as_mut().unwrap().remove("type");
        let (_, per_version, all) = changes(&[n]);
        assert_eq!(per_version, [vec![NodeChange::Added, NodeChange::Ready, NodeChange::Cordoned]]);
        assert_eq!(all[0].virtual_node, Some(false));
        let line = serde_json::to_string(&all[2]).unwrap();
        assert_eq!(
            line,
            r#"{"t":"t","change":"cordoned","name":"kwok-node-0","instance_type":"m5.large","zone":"us-east-1a","capacity_type":"spot","nodepool":"default","virtual_node":false}"#
        );
    }
}
