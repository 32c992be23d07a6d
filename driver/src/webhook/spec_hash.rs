//! The pod-spec hash SimKube records pod lifecycles under, computed the same way, so a replayed
//! pod finds the lifetimes recorded for pods of its own spec rather than the owner's n-th one.
//!
//! SimKube's tracer (`record_pod_lifecycle`) and its driver's webhook both compute
//! `jsonutils::hash(&serde_json::to_value(pod.stable_spec()?)?)` (acrlabs/simkube,
//! `sk-core/src/k8s/pod_ext.rs` and `sk-core/src/jsonutils.rs`):
//!
//! 1. the *stable spec*: the typed `PodSpec` (fields it does not know are dropped, unset ones
//!    left out) with the service-account token volumes (`kube-api-access*`) and their mounts
//!    removed, `volumes` and every container's `volumeMounts` always present (`[]` when none),
//!    `nodeName`, `serviceAccount`, `serviceAccountName` and the containers' `ports` (not the
//!    init containers') removed;
//! 2. that spec as JSON fed depth first to std's `DefaultHasher` (SipHash-1-3, zero keys): null
//!    as `None::<()>`, booleans, numbers as serde_json hashes them, strings, arrays element by
//!    element (no length), objects key then value in key order.
//!
//! The replay pins pod templates to the virtual nodes (node selector `type: virtual`, toleration
//! `kwok-provider`), which the recorded pods did not carry, so a pinned pod is also hashed with
//! those two taken out again.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{PodSpec, Toleration, VolumeMount};
use rehearsal_crds::keys::{VIRTUAL_NODE_LABEL, VIRTUAL_NODE_TAINT, VIRTUAL_NODE_VALUE};
use serde::Deserialize;
use serde_json::Value;

/// Name prefix of the volume the ServiceAccount admission plugin adds (random suffix per pod).
const SERVICE_ACCOUNT_VOLUME_PREFIX: &str = "kube-api-access";

/// The hashes under which the trace may have recorded `pod` (a Pod as JSON), best first: its
/// stable spec as it is, then without the replay's pinning when it has some. Empty when the pod
/// has no spec a `PodSpec` can be read from (such a pod falls back to its owner's order).
pub fn pod_spec_hashes(pod: &Value) -> Vec<u64> {
    let Some(spec) = pod.get("spec").and_then(|s| PodSpec::deserialize(s).ok()) else {
        return Vec::new();
    };
    let stable = stable_spec(spec);
    let unpinned = unpin(stable.clone());
    let mut hashes: Vec<u64> = spec_hash(&stable).into_iter().collect();
    if unpinned != stable {
        hashes.extend(spec_hash(&unpinned));
    }
    hashes
}

/// SimKube's hash of one (already stable) spec.
fn spec_hash(spec: &PodSpec) -> Option<u64> {
    serde_json::to_value(spec).ok().map(|v| json_hash(&v))
}

/// SimKube's `jsonutils::hash` of a JSON value.
pub fn json_hash(value: &Value) -> u64 {
    let mut state = DefaultHasher::new();
    feed(value, &mut state);
    state.finish()
}

fn feed<H: Hasher>(value: &Value, state: &mut H) {
    match value {
        Value::Null => None::<()>.hash(state),
        Value::Bool(b) => b.hash(state),
        // As serde_json's own `Hash` for numbers (without `arbitrary_precision`): the integer,
        // or the float's bits with -0 taken as +0.
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.hash(state)
            } else if let Some(i) = n.as_i64() {
                i.hash(state)
            } else {
                let f = n.as_f64().unwrap_or_default();
                let f = if f == 0.0 { 0.0_f64 } else { f };
                f.to_bits().hash(state)
            }
        }
        Value::String(s) => s.hash(state),
        Value::Array(items) => items.iter().for_each(|v| feed(v, state)),
        // Key order, whether or not serde_json keeps maps sorted in this build.
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (k, v) in entries {
                k.hash(state);
                feed(v, state);
            }
        }
    }
}

/// SimKube's `stable_spec`: what differs between two pods of one template is left out.
fn stable_spec(mut spec: PodSpec) -> PodSpec {
    let is_kept = |name: &str| !name.starts_with(SERVICE_ACCOUNT_VOLUME_PREFIX);
    let mounts = |m: Option<Vec<VolumeMount>>| m.unwrap_or_default().into_iter().filter(|m| is_kept(&m.name)).collect();
    spec.volumes = Some(spec.volumes.take().unwrap_or_default().into_iter().filter(|v| is_kept(&v.name)).collect());
    spec.node_name = None;
    spec.service_account = None;
    spec.service_account_name = None;
    for container in spec.init_containers.iter_mut().flatten() {
        container.volume_mounts = Some(mounts(container.volume_mounts.take()));
    }
    for container in &mut spec.containers {
        container.volume_mounts = Some(mounts(container.volume_mounts.take()));
        container.ports = None;
    }
    spec
}

/// Is this exactly the toleration the replay adds (scenario `placement`, webhook `mutate`)?
fn is_virtual_toleration(t: &Toleration) -> bool {
    t.key.as_deref() == Some(VIRTUAL_NODE_TAINT)
        && t.operator.as_deref() == Some("Exists")
        && t.effect.as_deref() == Some("NoSchedule")
        && t.value.is_none()
        && t.toleration_seconds.is_none()
}

/// The spec without the replay's pinning to the virtual nodes; a map or list emptied by that is
/// left out, as it was in a template that had none.
fn unpin(mut spec: PodSpec) -> PodSpec {
    if let Some(selector) = spec.node_selector.as_mut()
        && selector.get(VIRTUAL_NODE_LABEL).map(String::as_str) == Some(VIRTUAL_NODE_VALUE)
    {
        selector.remove(VIRTUAL_NODE_LABEL);
        if selector.is_empty() {
            spec.node_selector = None;
        }
    }
    if let Some(tolerations) = spec.tolerations.as_mut() {
        let before = tolerations.len();
        tolerations.retain(|t| !is_virtual_toleration(t));
        if tolerations.len() != before && tolerations.is_empty() {
            spec.tolerations = None;
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A bare pod of SimKube's `bare-pods.sktrace` fixture, as recorded; the trace keeps its
    /// lifecycle under 2151974655102796215.
    fn recorded_bare_pod() -> Value {
        json!({"spec": {"containers":[{"command":["sleep","30"],"image":"busybox:latest","imagePullPolicy":"Always","name":"sleeper","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","volumeMounts":[{"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","name":"kube-api-access-plhnn","readOnly":true}]}],"dnsPolicy":"ClusterFirst","enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority","priority":0,"restartPolicy":"Never","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30,"tolerations":[{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300},{"effect":"NoExecute","key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":300}],"volumes":[{"name":"kube-api-access-plhnn","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"items":[{"key":"ca.crt","path":"ca.crt"}],"name":"kube-root-ca.crt"}},{"downwardAPI":{"items":[{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"},"path":"namespace"}]}}]}}]}})
    }

    /// A pod of the `cronjob.sktrace` fixture's CronJob as the API server hands it to the webhook
    /// in a replay: the template's spec, pinned to the virtual nodes, plus what admission added
    /// (service account and its token volume, default tolerations, priority).
    fn replayed_cronjob_pod() -> Value {
        json!({"spec": {"containers":[{"command":["sleep","30"],"image":"busybox","imagePullPolicy":"Always","name":"sleeper","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","volumeMounts":[{"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","name":"kube-api-access-x7k2p","readOnly":true}]}],
            "dnsPolicy":"ClusterFirst","enableServiceLinks":true,"nodeSelector":{"type":"virtual"},"preemptionPolicy":"PreemptLowerPriority","priority":0,"restartPolicy":"Never","schedulerName":"default-scheduler","securityContext":{},"serviceAccount":"default","serviceAccountName":"default","terminationGracePeriodSeconds":30,
            "tolerations":[{"key":"kwok-provider","operator":"Exists","effect":"NoSchedule"},{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300},{"effect":"NoExecute","key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":300}],
            "volumes":[{"name":"kube-api-access-x7k2p","projected":{"sources":[]}}]}})
    }

    #[test]
    fn simkube_test_constants() {
        // sk-core's EMPTY_OBJ_HASH and EMPTY_POD_SPEC_HASH (a default PodSpec's stable spec).
        assert_eq!(json_hash(&json!({})), 15130871412783076140);
        assert_eq!(pod_spec_hashes(&json!({"spec": {"containers": []}})), [17506812802394981455]);
    }

    #[test]
    fn hashes_match_the_keys_of_simkube_traces() {
        assert_eq!(pod_spec_hashes(&recorded_bare_pod()), [2151974655102796215]);
        // Pinned as replayed, it is found once the pinning is taken out.
        assert_eq!(pod_spec_hashes(&replayed_cronjob_pod()).get(1), Some(&10855072724872030168));
    }

    #[test]
    fn what_differs_between_pods_of_one_template_is_ignored() {
        let base = pod_spec_hashes(&recorded_bare_pod());
        let mut pod = recorded_bare_pod();
        let spec = &mut pod["spec"];
        spec["nodeName"] = json!("node-7");
        spec["serviceAccountName"] = json!("default");
        spec["serviceAccount"] = json!("default");
        spec["volumes"][0]["name"] = json!("kube-api-access-zzzzz");
        spec["containers"][0]["volumeMounts"][0]["name"] = json!("kube-api-access-zzzzz");
        spec["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        // Unset fields written as null, and fields the typed spec does not know.
        spec["hostname"] = Value::Null;
        spec["someFutureField"] = json!({"x": 1});
        assert_eq!(pod_spec_hashes(&pod), base);

        // Key order does not matter.
        let reordered: Value = serde_json::from_str(&recorded_bare_pod().to_string().replace(
            r#""command":["sleep","30"],"image":"busybox:latest""#,
            r#""image":"busybox:latest","command":["sleep","30"]"#,
        ))
        .expect("json");
        assert_eq!(pod_spec_hashes(&reordered), base);
    }

    #[test]
    fn what_makes_pods_differ_is_not() {
        let base = pod_spec_hashes(&recorded_bare_pod());
        let mut image = recorded_bare_pod();
        image["spec"]["containers"][0]["image"] = json!("busybox:1.36");
        let mut init_ports = recorded_bare_pod();
        init_ports["spec"]["initContainers"] = json!([{"name": "i", "image": "x", "ports": [{"containerPort": 1}]}]);
        let mut own_volume = recorded_bare_pod();
        own_volume["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        for pod in [image, init_ports, own_volume] {
            let hashes = pod_spec_hashes(&pod);
            assert_eq!(hashes.len(), 1);
            assert_ne!(hashes, base, "{pod}");
        }
    }

    #[test]
    fn only_the_replays_own_pinning_is_taken_out() {
        let pinned = replayed_cronjob_pod();
        let hashes = pod_spec_hashes(&pinned);
        assert_eq!(hashes.len(), 2);
        assert_ne!(hashes[0], hashes[1]);
        // Other selector keys and tolerations stay; another `type` is not the replay's.
        let mut other = pinned.clone();
        other["spec"]["nodeSelector"] = json!({"type": "gpu"});
        other["spec"]["tolerations"] = json!([{"key": "kwok-provider", "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(pod_spec_hashes(&other).len(), 1);
        // Unpinning a selector with other keys keeps them.
        let mut zone = pinned;
        zone["spec"]["nodeSelector"] = json!({"type": "virtual", "zone": "a"});
        let mut unpinned_by_hand = zone.clone();
        unpinned_by_hand["spec"]["nodeSelector"] = json!({"zone": "a"});
        unpinned_by_hand["spec"]["tolerations"].as_array_mut().expect("list").remove(0);
        assert_eq!(pod_spec_hashes(&zone).get(1), pod_spec_hashes(&unpinned_by_hand).first());
    }

    #[test]
    fn pods_without_a_readable_spec_have_no_hash() {
        for pod in [json!({}), json!({"spec": null}), json!({"spec": {"containers": 5}}), json!({"spec": []}), json!(7)]
        {
            assert!(pod_spec_hashes(&pod).is_empty(), "{pod}");
        }
        // As for SimKube's typed spec, missing containers are an empty list.
        assert_eq!(pod_spec_hashes(&json!({"spec": {}})), [17506812802394981455]);
    }

    #[test]
    fn numbers_hash_as_serde_json_does() {
        for n in [json!(0), json!(7), json!(u64::MAX), json!(-3), json!(i64::MIN), json!(2.5), json!(-0.0), json!(0.0)]
        {
            let (mut ours, mut theirs) = (DefaultHasher::new(), DefaultHasher::new());
            feed(&n, &mut ours);
            if let Value::Number(num) = &n {
                num.hash(&mut theirs);
            }
            assert_eq!(ours.finish(), theirs.finish(), "{n}");
        }
    }
}
