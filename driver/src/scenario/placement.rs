//! Where a scenario's pods run (`--placement`).
//!
//! Karpenter scenarios pin their pods to Karpenter's node pools (`nodeSelector:
//! karpenter.sh/nodepool: default`), a label no node carries unless Karpenter made it. With
//! `virtual` (the default) every pod template of a workload object is changed in exactly three
//! ways, and nothing else is touched (resources, affinities, topology spreads, other selector
//! keys, grace periods stay as written):
//!
//! 1. the node-selector keys naming a Karpenter node pool ([`NODEPOOL_SELECTOR_KEYS`]) are
//!    removed;
//! 2. the node selector `type: virtual` is set (replacing any other `type` value);
//! 3. the toleration `kwok-provider` (operator Exists, effect NoSchedule) is added, unless one
//!    like it is already there.
//!
//! Pod templates are found in Pods (`spec`), Deployments, ReplicaSets, StatefulSets,
//! DaemonSets, ReplicationControllers and Jobs (`spec.template.spec`) and CronJobs
//! (`spec.jobTemplate.spec.template.spec`). `keep` applies manifests as written, for clusters
//! running Karpenter with its KWOK provider.

use rehearsal_crds::keys::{VIRTUAL_NODE_LABEL, VIRTUAL_NODE_TAINT, VIRTUAL_NODE_VALUE};
use serde_json::{Map, Value, json};

/// Node-selector keys that name a Karpenter node pool: no node has them without Karpenter.
pub const NODEPOOL_SELECTOR_KEYS: [&str; 1] = ["karpenter.sh/nodepool"];

/// Where pods run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Placement {
    /// On the virtual (KWOK) nodes: toleration and node selector added to every pod template.
    #[default]
    Virtual,
    /// As the manifests say.
    Keep,
}

impl Placement {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Virtual => "virtual",
            Placement::Keep => "keep",
        }
    }

    /// Applies the placement to a whole object; returns what was changed, for the logs.
    pub fn apply(self, object: &mut Value) -> Vec<String> {
        match self {
            Placement::Keep => Vec::new(),
            Placement::Virtual => pod_spec_mut(object).map(place_on_virtual_nodes).unwrap_or_default(),
        }
    }
}

/// The pod spec of a workload object, when its kind has one and it is present.
pub fn pod_spec_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let path: &[&str] = match (group, object.get("kind")?.as_str()?) {
        ("", "Pod") => &["spec"],
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => &["spec", "template", "spec"],
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    };
    let mut current = object;
    for key in path {
        current = current.get_mut(*key)?;
    }
    current.as_object_mut()
}

/// Puts one pod spec on the virtual nodes (see the module documentation); returns the changes.
pub fn place_on_virtual_nodes(spec: &mut Map<String, Value>) -> Vec<String> {
    let mut changes = Vec::new();

    let selector = spec.entry("nodeSelector").or_insert_with(|| json!({}));
    if !selector.is_object() {
        // `nodeSelector: null` (or a mistake the API server would reject anyway).
        *selector = json!({});
    }
    if let Some(selector) = selector.as_object_mut() {
        for key in NODEPOOL_SELECTOR_KEYS {
            if let Some(value) = selector.remove(key) {
                changes.push(format!("removed nodeSelector {key}={}", plain(&value)));
            }
        }
        let wanted = Value::String(VIRTUAL_NODE_VALUE.to_string());
        if selector.get(VIRTUAL_NODE_LABEL) != Some(&wanted) {
            selector.insert(VIRTUAL_NODE_LABEL.to_string(), wanted);
            changes.push(format!("set nodeSelector {VIRTUAL_NODE_LABEL}={VIRTUAL_NODE_VALUE}"));
        }
    }

    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !tolerations.is_array() {
        *tolerations = json!([]);
    }
    if let Some(list) = tolerations.as_array_mut()
        && !list.iter().any(tolerates_virtual_nodes)
    {
        list.push(json!({"key": VIRTUAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}));
        changes.push(format!("added toleration {VIRTUAL_NODE_TAINT} (Exists, NoSchedule)"));
    }
    changes
}

/// Whether a toleration already covers the virtual nodes' taint (`kwok-provider=true:NoSchedule`).
fn tolerates_virtual_nodes(toleration: &Value) -> bool {
    let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    let effect_ok = matches!(field("effect"), "" | "NoSchedule");
    let operator_exists = field("operator") == "Exists";
    match field("key") {
        // An empty key with Exists tolerates every taint.
        "" => operator_exists && effect_ok,
        key if key == VIRTUAL_NODE_TAINT => effect_ok && (operator_exists || field("value") == "true"),
        _ => false,
    }
}

/// A selector value as text, without JSON quotes.
fn plain(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(pod_spec: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod_spec}}
        })
    }

    fn kwok_toleration() -> Value {
        json!({"key": "kwok-provider", "operator": "Exists", "effect": "NoSchedule"})
    }

    #[test]
    fn karpenter_pool_selector_is_replaced_and_the_rest_kept() {
        let spec = json!({
            "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "1.0"}}}],
            "nodeSelector": {"karpenter.sh/nodepool": "default", "kubernetes.io/os": "linux"},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname"}],
            "terminationGracePeriodSeconds": 30
        });
        let mut object = deployment(spec.clone());
        let changes = Placement::Virtual.apply(&mut object);
        assert_eq!(
            changes,
            vec![
                "removed nodeSelector karpenter.sh/nodepool=default",
                "set nodeSelector type=virtual",
                "added toleration kwok-provider (Exists, NoSchedule)"
            ]
        );
        let mut expected = spec;
        expected["nodeSelector"] = json!({"kubernetes.io/os": "linux", "type": "virtual"});
        expected["tolerations"] = json!([kwok_toleration()]);
        assert_eq!(object, deployment(expected));
    }

    #[test]
    fn template_without_selector_or_tolerations_gets_both() {
        let mut object = deployment(json!({"containers": []}));
        Placement::Virtual.apply(&mut object);
        assert_eq!(
            object["spec"]["template"]["spec"],
            json!({"containers": [], "nodeSelector": {"type": "virtual"}, "tolerations": [kwok_toleration()]})
        );
        let mut null_fields = deployment(json!({"nodeSelector": null, "tolerations": null}));
        Placement::Virtual.apply(&mut null_fields);
        assert_eq!(null_fields["spec"]["template"]["spec"]["nodeSelector"], json!({"type": "virtual"}));
        assert_eq!(null_fields["spec"]["template"]["spec"]["tolerations"], json!([kwok_toleration()]));
    }

    #[test]
    fn existing_tolerations_are_kept_and_not_duplicated() {
        let other = json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"});
        let mut object = deployment(json!({"tolerations": [other.clone()], "nodeSelector": {"type": "virtual"}}));
        let changes = Placement::Virtual.apply(&mut object);
        assert_eq!(changes, vec!["added toleration kwok-provider (Exists, NoSchedule)"]);
        assert_eq!(object["spec"]["template"]["spec"]["tolerations"], json!([other, kwok_toleration()]));
        // Applying twice changes nothing more.
        let again = object.clone();
        assert!(Placement::Virtual.apply(&mut object).is_empty());
        assert_eq!(object, again);
        for covering in [
            json!({"key": "kwok-provider", "operator": "Exists"}),
            json!({"key": "kwok-provider", "operator": "Equal", "value": "true", "effect": "NoSchedule"}),
            json!({"operator": "Exists"}),
        ] {
            let mut object = deployment(json!({"tolerations": [covering.clone()]}));
            Placement::Virtual.apply(&mut object);
            assert_eq!(object["spec"]["template"]["spec"]["tolerations"], json!([covering]));
        }
        let mut other_effect = deployment(json!({"tolerations": [{"key": "kwok-provider", "effect": "NoExecute"}]}));
        Placement::Virtual.apply(&mut other_effect);
        assert_eq!(other_effect["spec"]["template"]["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn other_type_value_is_replaced() {
        let mut object = deployment(json!({"nodeSelector": {"type": "real"}}));
        assert!(Placement::Virtual.apply(&mut object).contains(&"set nodeSelector type=virtual".to_string()));
        assert_eq!(object["spec"]["template"]["spec"]["nodeSelector"], json!({"type": "virtual"}));
    }

    #[test]
    fn every_workload_kind_and_nothing_else() {
        let spec = || json!({"containers": []});
        let template = || json!({"template": {"spec": spec()}});
        let cases = [
            (json!({"apiVersion": "v1", "kind": "Pod", "spec": spec()}), vec!["spec"]),
            (
                json!({"apiVersion": "v1", "kind": "ReplicationController", "spec": template()}),
                vec!["spec", "template", "spec"],
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": template()}),
                vec!["spec", "template", "spec"],
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": template()}),
                vec!["spec", "template", "spec"],
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": template()}),
                vec!["spec", "template", "spec"],
            ),
            (json!({"apiVersion": "batch/v1", "kind": "Job", "spec": template()}), vec!["spec", "template", "spec"]),
            (
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": template()}}}),
                vec!["spec", "jobTemplate", "spec", "template", "spec"],
            ),
        ];
        for (mut object, path) in cases {
            assert_eq!(Placement::Virtual.apply(&mut object).len(), 2, "{object}");
            let mut at = &object;
            for key in path {
                at = &at[key];
            }
            assert_eq!(at["nodeSelector"], json!({"type": "virtual"}), "{object}");
        }
        for untouched in [
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": {"minAvailable": "50%"}}),
            json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "spec": {"template": {"spec": {}}}}),
            json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": template()}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}}),
        ] {
            let mut object = untouched.clone();
            assert!(Placement::Virtual.apply(&mut object).is_empty());
            assert_eq!(object, untouched);
        }
    }

    #[test]
    fn keep_changes_nothing() {
        let original = deployment(json!({"nodeSelector": {"karpenter.sh/nodepool": "default"}}));
        let mut object = original.clone();
        assert!(Placement::Keep.apply(&mut object).is_empty());
        assert_eq!(object, original);
    }
}
