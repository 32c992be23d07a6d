//! Registering the webhook with the API server when the driver runs on its own (without the
//! operator, which otherwise does it): a MutatingWebhookConfiguration limited to the run's
//! virtual namespaces. It is owned by the Simulation, not the run's root: the garbage collector
//! would delete it early in the root's foreground deletion, and controllers still making pods
//! during the teardown would then skip it. The driver deletes it after the cleanup.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rehearsal_crds::keys::{DRIVER_MANAGER, OWNED_BY_SIMULATION_LABEL};
use serde_json::{Value, json};

use crate::replay::objects::RootRef;

/// Name of the configuration registered for a root.
pub fn configuration_name(root: &RootRef) -> String {
    format!("rehearsal-{}", root.name)
}

/// The configuration: pods created in namespaces labelled for `simulation` go to `url`.
pub fn configuration(root: &RootRef, owner: &Value, simulation: &str, url: &str, ca_pem: &[u8]) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": configuration_name(root),
            "labels": {OWNED_BY_SIMULATION_LABEL: simulation},
            "ownerReferences": [owner]
        },
        "webhooks": [{
            "name": "pods.rehearsal.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            // A pod of the run that misses the webhook would land on a real node.
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "clientConfig": {"url": url, "caBundle": ByteString(ca_pem.to_vec())},
            "namespaceSelector": {"matchLabels": {OWNED_BY_SIMULATION_LABEL: simulation}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}]
        }]
    })
}

/// Applies the configuration.
pub async fn register(
    client: &kube::Client,
    root: &RootRef,
    owner: &Value,
    simulation: &str,
    url: &str,
    ca_pem: &[u8],
) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let body = configuration(root, owner, simulation, url, ca_pem);
    api.patch(&configuration_name(root), &PatchParams::apply(DRIVER_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Removes the configuration (gone already is fine).
pub async fn unregister(client: &kube::Client, root: &RootRef) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    match api.delete(&configuration_name(root), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_a_valid_object() {
        let root = RootRef { name: "sim-run-0".into(), uid: "u".into() };
        let owner = json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "name": "sim", "uid": "s"});
        let v = configuration(&root, &owner, "sim", "https://127.0.0.1:8888/mutate", b"PEM");
        let typed: MutatingWebhookConfiguration = serde_json::from_value(v.clone()).expect("typed");
        let hook = &typed.webhooks.expect("webhooks")[0];
        assert_eq!(hook.client_config.url.as_deref(), Some("https://127.0.0.1:8888/mutate"));
        assert_eq!(hook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()), Some(&b"PEM"[..]));
        assert_eq!(v["metadata"]["name"], "rehearsal-sim-run-0");
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Simulation");
        assert_eq!(v["webhooks"][0]["clientConfig"]["caBundle"], "UEVN");
    }
}
