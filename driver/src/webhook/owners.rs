//! Finding which object of the trace a pod belongs to, by walking owner references up to the
//! object the run applied (the one owned by the run's SimulationRoot).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use rehearsal_crds::keys::ORIGINAL_NAMESPACE_ANNOTATION;
use serde_json::Value;

use crate::trace::gvk_string;

/// Owner chains longer than this are not followed (real ones are 2 or 3 deep).
const MAX_DEPTH: usize = 8;

/// The trace object a pod descends from: its GVK string and "original-namespace/name", the key
/// under which the trace records pod lifecycles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceObject {
    /// e.g. "batch/v1.CronJob".
    pub gvk: String,
    /// e.g. "default/hello-simkube", in the namespace the trace recorded.
    pub owner: String,
}

/// Reads an owner object; the real one asks the API server.
pub trait ObjectLookup: Send + Sync {
    /// The object as JSON, or None when it does not exist.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Value>, kube::Error>> + Send;
}

/// Looks objects up through the API server, resolving kinds with cached discovery.
pub struct ApiLookup {
    client: kube::Client,
    resources: Mutex<HashMap<(String, String), ApiResource>>,
}

impl ApiLookup {
    /// A lookup through `client`.
    pub fn new(client: kube::Client) -> Self {
        ApiLookup { client, resources: Mutex::new(HashMap::new()) }
    }

    async fn resource(&self, api_version: &str, kind: &str) -> Result<ApiResource, kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(ar) = self.resources.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(ar);
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let (ar, _) = pinned_kind(&self.client, &GroupVersionKind::gvk(group, version, kind)).await?;
        if let Ok(mut m) = self.resources.lock() {
            m.insert(key, ar.clone());
        }
        Ok(ar)
    }
}

impl ObjectLookup for ApiLookup {
    async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, kube::Error> {
        let ar = self.resource(api_version, kind).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let obj = api.get_opt(name).await?;
        Ok(obj.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
    }
}

fn owner_refs(obj: &Value) -> Vec<&Value> {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// Where the trace recorded an object: the original namespace the driver noted on it, or the
/// virtual namespace without its prefix.
fn original_key(obj: &Value, namespace: &str, prefix: &str) -> String {
    let annotated =
        obj.pointer("/metadata/annotations").and_then(|a| a.get(ORIGINAL_NAMESPACE_ANNOTATION)).and_then(Value::as_str);
    let ns = annotated.unwrap_or_else(|| namespace.strip_prefix(&format!("{prefix}-")).unwrap_or(namespace));
    format!("{ns}/{}", str_at(obj, "/metadata/name"))
}

/// Walks from `pod` (in `namespace`) up its owner references; returns the trace object the
/// chain reaches when one link is owned by the root with `root_uid`, or None when the pod does
/// not belong to this run.
pub async fn trace_owner<L: ObjectLookup>(
    lookup: &L,
    namespace: &str,
    prefix: &str,
    pod: &Value,
    root_uid: &str,
) -> Result<Option<TraceObject>, kube::Error> {
    let mut current = pod.clone();
    let (mut api_version, mut kind) = ("v1".to_string(), "Pod".to_string());
    for _ in 0..MAX_DEPTH {
        let refs = owner_refs(&current);
        if refs.iter().any(|r| str_at(r, "/uid") == root_uid) {
            return Ok(Some(TraceObject {
                gvk: gvk_string(&api_version, &kind),
                owner: original_key(&current, namespace, prefix),
            }));
        }
        // Follow the controller when there is one: that is who created the object.
        let Some(next) =
            refs.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).or(refs.first())
        else {
            return Ok(None);
        };
        let (av, k, name) = (str_at(next, "/apiVersion"), str_at(next, "/kind"), str_at(next, "/name"));
        let Some(obj) = lookup.get(av, k, namespace, name).await? else { return Ok(None) };
        (api_version, kind) = (av.to_string(), k.to_string());
        current = obj;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Map(HashMap<(String, String), Value>);

    impl ObjectLookup for Map {
        async fn get(&self, _: &str, kind: &str, _: &str, name: &str) -> Result<Option<Value>, kube::Error> {
            Ok(self.0.get(&(kind.to_string(), name.to_string())).cloned())
        }
    }

    fn lookup() -> Map {
        let mut m = HashMap::new();
        m.insert(
            ("CronJob".into(), "hello".into()),
            json!({"metadata": {"name": "hello", "annotations": {"rehearsal.dev/original-namespace": "default"},
                "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": "root-uid"}]}}),
        );
        m.insert(
            ("Job".into(), "hello-123".into()),
            json!({"metadata": {"name": "hello-123", "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello", "uid": "cj", "controller": true}]}}),
        );
        m.insert(("Job".into(), "other".into()), json!({"metadata": {"name": "other"}}));
        Map(m)
    }

    #[tokio::test]
    async fn cronjob_pod_resolves_to_the_cronjob() {
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "hello-123", "uid": "j", "controller": true}]}});
        let found = trace_owner(&lookup(), "virtual-default", "virtual", &pod, "root-uid").await.expect("lookup");
        assert_eq!(found, Some(TraceObject { gvk: "batch/v1.CronJob".into(), owner: "default/hello".into() }));
    }

    #[tokio::test]
    async fn bare_pod_owned_by_the_root_is_its_own_trace_object() {
        let pod = json!({"metadata": {"name": "bare-1", "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": "root-uid"}]}});
        let found = trace_owner(&lookup(), "virtual-testing", "virtual", &pod, "root-uid").await.expect("lookup");
        assert_eq!(found, Some(TraceObject { gvk: "v1.Pod".into(), owner: "testing/bare-1".into() }));
    }

    #[tokio::test]
    async fn foreign_pods_are_not_ours() {
        let l = lookup();
        let orphan = json!({"metadata": {"name": "x"}});
        assert_eq!(trace_owner(&l, "ns", "virtual", &orphan, "root-uid").await.expect("lookup"), None);
        let other = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "other", "uid": "o"}]}});
        assert_eq!(trace_owner(&l, "ns", "virtual", &other, "root-uid").await.expect("lookup"), None);
        let gone = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "missing", "uid": "m"}]}});
        assert_eq!(trace_owner(&l, "ns", "virtual", &gone, "root-uid").await.expect("lookup"), None);
        // Another run's root does not count.
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "hello-123", "uid": "j", "controller": true}]}});
        assert_eq!(trace_owner(&l, "ns", "virtual", &pod, "another-root").await.expect("lookup"), None);
    }

    #[tokio::test]
    async fn cycles_stop_at_the_depth_limit() {
        let mut m = HashMap::new();
        m.insert(("Job".into(), "loop".into()), json!({"metadata": {"name": "loop", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "loop", "uid": "l"}]}}));
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "loop", "uid": "l"}]}});
        assert_eq!(trace_owner(&Map(m), "ns", "virtual", &pod, "root").await.expect("lookup"), None);
    }
}
