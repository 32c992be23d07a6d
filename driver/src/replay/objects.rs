//! Turning a recorded object into the object the run applies: moved to its virtual namespace,
//! cleaned of what the recording cluster's server set, owned by the run's root, labelled.

use rehearsal_crds::keys::{ORIGINAL_NAMESPACE_ANNOTATION, OWNED_BY_SIMULATION_LABEL};
use serde_json::{Map, Value, json};

/// Why a recorded object cannot be replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectError {
    /// apiVersion, kind or metadata.name missing.
    #[error("recorded object has no {0}")]
    Missing(&'static str),
    /// `<prefix>-<namespace>` is not a valid namespace name.
    #[error(
        "virtual namespace {0:?} is not a valid namespace name (a DNS label of at most 63 characters); use a shorter virtualNamespacePrefix"
    )]
    BadNamespace(String),
    /// `<prefix>-<namespace>` would be a namespace of the system.
    #[error("virtual namespace {0:?} would be a system namespace (kube-*); choose another virtualNamespacePrefix")]
    SystemNamespace(String),
    /// The virtualized object could not be encoded as a request body.
    #[error("cannot encode the request body: {0}")]
    Body(String),
}

/// The SimulationRoot a run's objects are owned by.
#[derive(Debug, Clone, PartialEq)]
pub struct RootRef {
    /// Name of the root.
    pub name: String,
    /// UID of the root.
    pub uid: String,
}

impl RootRef {
    /// The owner reference every object of the run carries. `blockOwnerDeletion` makes the
    /// root's foreground deletion wait for the object.
    pub fn owner_reference(&self) -> Value {
        json!({
            "apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot",
            "name": self.name, "uid": self.uid, "controller": true, "blockOwnerDeletion": true
        })
    }
}

/// What identifies an object of the trace: (apiVersion, kind, namespace as recorded, name).
pub type ObjectKey = (String, String, String, String);

/// The key of a recorded object.
pub fn key_of(obj: &Value) -> Result<ObjectKey, ObjectError> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let (api_version, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
    if api_version.is_empty() {
        return Err(ObjectError::Missing("apiVersion"));
    }
    if kind.is_empty() {
        return Err(ObjectError::Missing("kind"));
    }
    if name.is_empty() {
        return Err(ObjectError::Missing("metadata.name"));
    }
    Ok((api_version, kind, s("/metadata/namespace"), name))
}

/// `<prefix>-<namespace>`, checked to be a valid namespace name. Objects recorded without a
/// namespace go to `<prefix>-default`.
pub fn virtual_namespace(prefix: &str, namespace: &str) -> Result<String, ObjectError> {
    let ns = if namespace.is_empty() { "default" } else { namespace };
    let name = format!("{prefix}-{ns}");
    let valid = name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(ObjectError::BadNamespace(name));
    }
    // The system's namespaces are never a replay's, whatever the prefix.
    if name.starts_with("kube-") || name == "default" {
        return Err(ObjectError::SystemNamespace(name));
    }
    Ok(name)
}

/// Annotations the recording cluster's tools wrote, meaningless in the simulation.
const DROPPED_ANNOTATIONS: [&str; 2] =
    ["kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"];

/// Labels the Job controller sets and validates against the Job's own UID.
const JOB_CONTROLLER_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// The body to server-side apply for a recorded namespaced object.
pub fn virtualize(obj: &Value, virtual_ns: &str, simulation: &str, root: &RootRef) -> Result<Value, ObjectError> {
    let (_, kind, original_ns, name) = key_of(obj)?;
    let mut out = obj.clone();
    let Some(body) = out.as_object_mut() else { return Err(ObjectError::Missing("body")) };
    body.remove("status");

    let old_meta = body.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut labels = old_meta.get("labels").and_then(Value::as_object).cloned().unwrap_or_default();
    labels.insert(OWNED_BY_SIMULATION_LABEL.into(), json!(simulation));
    let mut annotations = old_meta.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    for a in DROPPED_ANNOTATIONS {
        annotations.remove(a);
    }
    let original = if original_ns.is_empty() { "default".to_string() } else { original_ns };
    annotations.insert(ORIGINAL_NAMESPACE_ANNOTATION.into(), json!(original));
    // Only what the simulation should set: server-set fields (uid, resourceVersion, timestamps,
    // managedFields, generation) and the recording cluster's owners and finalizers are left out.
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(virtual_ns));
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert("annotations".into(), Value::Object(annotations));
    meta.insert("ownerReferences".into(), json!([root.owner_reference()]));
    body.insert("metadata".into(), Value::Object(meta));

    let spec = body.get_mut("spec").and_then(Value::as_object_mut);
    match (kind.as_str(), spec) {
        // The scheduler places the pod in the simulation; a recorded node does not exist here.
        ("Pod", Some(spec)) => {
            spec.remove("nodeName");
        }
        // Cluster IPs were allocated from the recording cluster's range.
        ("Service", Some(spec)) => {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        // A recorded Job's generated selector names the old Job's UID; let the controller
        // generate a new one unless the user chose the selector.
        ("Job", Some(spec)) if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) => {
            spec.remove("selector");
            if let Some(labels) =
                spec.get_mut("template").and_then(|t| t.pointer_mut("/metadata/labels")).and_then(Value::as_object_mut)
            {
                for l in JOB_CONTROLLER_LABELS {
                    labels.remove(l);
                }
            }
        }
        _ => {}
    }
    // Pinned when applied, not only by the webhook: a pod template that reached a cluster
    // without the webhook in effect still lands on the virtual nodes only.
    crate::scenario::placement::Placement::Virtual.apply(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RootRef {
        RootRef { name: "sim-run-0".into(), uid: "uid-root".into() }
    }

    #[test]
    fn server_fields_are_dropped_and_ownership_set() {
        let recorded = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "old", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}], "finalizers": ["x"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "gone"}],
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me", "deployment.kubernetes.io/revision": "4"}},
            "spec": {"replicas": 2},
            "status": {"replicas": 2}
        });
        let out = virtualize(&recorded, "virtual-default", "sim", &root()).expect("virtualize");
        assert_eq!(
            out,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "virtual-default",
                    "labels": {"app": "web", "rehearsal.dev/simulation": "sim"},
                    "annotations": {"keep": "me", "rehearsal.dev/original-namespace": "default"},
                    "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "sim-run-0",
                        "uid": "uid-root", "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": 2}
            })
        );
    }

    #[test]
    fn kind_specific_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "t"}, "spec": {"nodeName": "ip-1", "containers": []}});
        assert!(virtualize(&pod, "v-t", "s", &root()).expect("pod")["spec"].get("nodeName").is_none());
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "t"}, "spec": {"clusterIP": "10.1.2.3", "clusterIPs": ["10.1.2.3"], "ports": []}});
        let out = virtualize(&svc, "v-t", "s", &root()).expect("svc");
        assert!(out["spec"].get("clusterIP").is_none() && out["spec"].get("clusterIPs").is_none());
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "t"},
            "spec": {"selector": {"matchLabels": {"controller-uid": "old"}}, "template": {"metadata": {"labels": {"controller-uid": "old", "batch.kubernetes.io/controller-uid": "old", "app": "j"}}}}});
        let out = virtualize(&job, "v-t", "s", &root()).expect("job");
        assert!(out["spec"].get("selector").is_none());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"app": "j"}));
    }

    #[test]
    fn missing_identity_is_an_error() {
        assert_eq!(key_of(&json!({"kind": "Pod", "metadata": {"name": "p"}})), Err(ObjectError::Missing("apiVersion")));
        assert_eq!(key_of(&json!({"apiVersion": "v1", "metadata": {"name": "p"}})), Err(ObjectError::Missing("kind")));
        assert_eq!(
            key_of(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}})),
            Err(ObjectError::Missing("metadata.name"))
        );
        assert_eq!(virtualize(&json!("not an object"), "v", "s", &root()), Err(ObjectError::Missing("apiVersion")));
    }

    #[test]
    fn pod_templates_are_pinned_to_the_virtual_nodes_when_applied() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"nodeSelector": {"karpenter.sh/nodepool": "default"}, "containers": []}}}});
        let out = virtualize(&deploy, "virtual-shop", "s", &root()).expect("deployment");
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["nodeSelector"], json!({"type": "virtual"}));
        assert_eq!(spec["tolerations"][0]["key"], "kwok-provider");
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "shop"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        let out = virtualize(&cron, "virtual-shop", "s", &root()).expect("cronjob");
        assert_eq!(out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["nodeSelector"]["type"], "virtual");
    }

    #[test]
    fn system_namespaces_are_never_virtual_ones() {
        assert_eq!(virtual_namespace("kube", "system"), Err(ObjectError::SystemNamespace("kube-system".into())));
        assert_eq!(virtual_namespace("kube", "x").map_err(|e| e.to_string()), Err("virtual namespace \"kube-x\" would be a system namespace (kube-*); choose another virtualNamespacePrefix".into()));
        assert_eq!(virtual_namespace("virtual", "kube-system"), Ok("virtual-kube-system".into()));
    }

    #[test]
    fn virtual_namespaces_are_checked() {
        assert_eq!(virtual_namespace("virtual", "default"), Ok("virtual-default".into()));
        assert_eq!(virtual_namespace("virtual", ""), Ok("virtual-default".into()));
        let long = "n".repeat(60);
        let err = virtual_namespace("virtual", &long).expect_err("too long");
        assert!(err.to_string().contains("not a valid namespace name"), "{err}");
        assert!(virtual_namespace("Virtual", "x").is_err());
    }
}
