//! The JSON patch that pins a simulated pod to the virtual nodes.
//!
//! Pure: given the pod as the API server sent it, returns the operations. Each operation is
//! valid whether or not the pod already has labels, annotations, tolerations or a node
//! selector, because missing parents are added first.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use rehearsal_crds::keys::{
    LIFETIME_ANNOTATION, SIMULATION_LABEL, VIRTUAL_NODE_LABEL, VIRTUAL_NODE_TAINT, VIRTUAL_NODE_VALUE,
};
use serde_json::{Value, json};

/// What to write on one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation<'a> {
    /// Name of the Simulation, for the `simkube.io/simulation` label.
    pub simulation: &'a str,
    /// Seconds the pod lives once running (already divided by the speed), when the trace knows.
    pub lifetime_seconds: Option<f64>,
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path: PointerBuf::from_tokens(tokens.iter().copied()), value })
}

/// Formats seconds without float noise: 3 → "3", 2.5 → "2.5", 1/3 → "0.333".
pub fn format_seconds(seconds: f64) -> String {
    let s = format!("{:.3}", seconds.max(0.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".to_string() } else { s.to_string() }
}

/// The operations that label, annotate, tolerate and select the virtual nodes for `pod`.
pub fn patch_for(pod: &Value, m: &Mutation<'_>) -> Vec<PatchOperation> {
    let mut ops = vec![];
    let metadata = pod.get("metadata");

    if metadata.and_then(|md| md.get("labels")).and_then(Value::as_object).is_none() {
        ops.push(add(&["metadata", "labels"], json!({})));
    }
    ops.push(add(&["metadata", "labels", SIMULATION_LABEL], json!(m.simulation)));

    if let Some(lifetime) = m.lifetime_seconds {
        if metadata.and_then(|md| md.get("annotations")).and_then(Value::as_object).is_none() {
            ops.push(add(&["metadata", "annotations"], json!({})));
        }
        ops.push(add(&["metadata", "annotations", LIFETIME_ANNOTATION], json!(format_seconds(lifetime))));
    }

    let spec = pod.get("spec");
    let toleration = json!({"key": VIRTUAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"});
    match spec.and_then(|s| s.get("tolerations")).and_then(Value::as_array) {
        None => ops.push(add(&["spec", "tolerations"], json!([toleration]))),
        Some(list) if !list.iter().any(|t| t.get("key").and_then(Value::as_str) == Some(VIRTUAL_NODE_TAINT)) => {
            ops.push(add(&["spec", "tolerations", "-"], toleration))
        }
        Some(_) => {}
    }

    match spec.and_then(|s| s.get("nodeSelector")).and_then(Value::as_object) {
        None => ops.push(add(&["spec", "nodeSelector"], json!({VIRTUAL_NODE_LABEL: VIRTUAL_NODE_VALUE}))),
        // `add` on an existing member replaces it, so a selector of another `type` is overridden.
        Some(_) => ops.push(add(&["spec", "nodeSelector", VIRTUAL_NODE_LABEL], json!(VIRTUAL_NODE_VALUE))),
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(pod: &Value, m: &Mutation<'_>) -> Value {
        let mut doc = pod.clone();
        json_patch::patch(&mut doc, &patch_for(pod, m)).expect("patch applies");
        doc
    }

    const M: Mutation<'static> = Mutation { simulation: "sim-a", lifetime_seconds: Some(3.0) };

    #[test]
    fn bare_pod_gets_every_field() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let out = apply(&pod, &M);
        assert_eq!(out["metadata"]["labels"]["simkube.io/simulation"], "sim-a");
        assert_eq!(out["metadata"]["annotations"]["simkube.io/lifetime-seconds"], "3");
        assert_eq!(
            out["spec"]["tolerations"],
            json!([{"key": "kwok-provider", "operator": "Exists", "effect": "NoSchedule"}])
        );
        assert_eq!(out["spec"]["nodeSelector"], json!({"type": "virtual"}));
    }

    #[test]
    fn existing_fields_are_kept_and_extended() {
        let pod = json!({
            "metadata": {"name": "p", "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
                "nodeSelector": {"disk": "ssd", "type": "real"}
            }
        });
        let out = apply(&pod, &M);
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "simkube.io/simulation": "sim-a"}));
        assert_eq!(out["metadata"]["annotations"], json!({"a": "b", "simkube.io/lifetime-seconds": "3"}));
        assert_eq!(out["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
        assert_eq!(out["spec"]["tolerations"][1]["key"], "kwok-provider");
        assert_eq!(out["spec"]["nodeSelector"], json!({"disk": "ssd", "type": "virtual"}));
    }

    #[test]
    fn present_toleration_is_not_duplicated() {
        let pod = json!({"metadata": {}, "spec": {"tolerations": [{"key": "kwok-provider", "operator": "Exists", "effect": "NoSchedule"}]}});
        let out = apply(&pod, &M);
        assert_eq!(out["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn no_lifetime_means_no_annotation() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let out = apply(&pod, &Mutation { simulation: "s", lifetime_seconds: None });
        assert!(out["metadata"].get("annotations").is_none());
        assert_eq!(out["metadata"]["labels"]["simkube.io/simulation"], "s");
    }

    #[test]
    fn empty_maps_and_nulls_are_handled() {
        // null labels/tolerations are what some clients send; they are replaced, not indexed into.
        let pod =
            json!({"metadata": {"labels": null, "annotations": {}}, "spec": {"tolerations": null, "nodeSelector": {}}});
        let out = apply(&pod, &M);
        assert_eq!(out["metadata"]["labels"]["simkube.io/simulation"], "sim-a");
        assert_eq!(out["spec"]["tolerations"][0]["key"], "kwok-provider");
        assert_eq!(out["spec"]["nodeSelector"]["type"], "virtual");
    }

    #[test]
    fn patch_is_stable() {
        // The exact operations, so a change to the patch shows up as a reviewable diff.
        let pod = json!({"metadata": {"labels": {"app": "x"}}, "spec": {}});
        let ops = serde_json::to_value(patch_for(&pod, &M)).expect("patch serialises");
        assert_eq!(
            ops,
            json!([
                {"op": "add", "path": "/metadata/labels/simkube.io~1simulation", "value": "sim-a"},
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/simkube.io~1lifetime-seconds", "value": "3"},
                {"op": "add", "path": "/spec/tolerations", "value": [{"key": "kwok-provider", "operator": "Exists", "effect": "NoSchedule"}]},
                {"op": "add", "path": "/spec/nodeSelector", "value": {"type": "virtual"}}
            ])
        );
    }

    #[test]
    fn seconds_are_formatted_without_noise() {
        assert_eq!(format_seconds(3.0), "3");
        assert_eq!(format_seconds(2.5), "2.5");
        assert_eq!(format_seconds(30.0 / 9.0), "3.333");
        assert_eq!(format_seconds(0.0), "0");
        assert_eq!(format_seconds(-1.0), "0");
        assert_eq!(format_seconds(0.0004), "0");
    }
}
