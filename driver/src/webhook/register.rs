//! The MutatingWebhookConfiguration of a run, built once for both ways of running: the driver
//! on its own registers it with a URL (`--webhook-url`); the operator registers it with a
//! reference to the driver's Service. Either way it is limited to the run's virtual namespaces,
//! so no other pod of the cluster is ever sent to the webhook.
//!
//! It is owned by the Simulation, not the run's root: the garbage collector would delete it
//! early in the root's foreground deletion, and controllers still making pods during the
//! teardown would then skip it. Whoever registered it deletes it after the cleanup.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rehearsal_crds::keys::OWNED_BY_SIMULATION_LABEL;
use serde_json::{Value, json};

/// Name of the configuration of run `index` of `simulation` (the name of the run's root with
/// a `rehearsal-` prefix).
pub fn configuration_name(simulation: &str, index: u32) -> String {
    format!("rehearsal-{}", crate::replay::root::root_name(simulation, index))
}

/// How the API server reaches the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A URL (the driver on its own, e.g. `https://127.0.0.1:8888/mutate`).
    Url(String),
    /// A Service in front of the driver pod (the operator's driver Jobs).
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// Service port.
        port: i32,
    },
}

/// What the configuration of one run says.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// Name of the configuration.
    pub name: String,
    /// The Simulation's controller owner reference, as JSON.
    pub owner: &'a Value,
    /// Name of the Simulation; its virtual namespaces carry it as a label.
    pub simulation: &'a str,
    /// Where the webhook is.
    pub endpoint: Endpoint,
    /// PEM CA bundle the API server verifies the webhook's certificate with.
    pub ca_pem: &'a [u8],
    /// Field manager of the writer.
    pub manager: &'a str,
}

/// The configuration: pods created in namespaces labelled for the simulation go to the webhook.
pub fn configuration(r: &Registration<'_>) -> Value {
    let client_config = match &r.endpoint {
        Endpoint::Url(url) => json!({"url": url, "caBundle": ByteString(r.ca_pem.to_vec())}),
        Endpoint::Service { namespace, name, port } => json!({
            "service": {"namespace": namespace, "name": name, "path": "/mutate", "port": port},
            "caBundle": ByteString(r.ca_pem.to_vec())
        }),
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": r.name,
            "labels": {OWNED_BY_SIMULATION_LABEL: r.simulation},
            "ownerReferences": [r.owner]
        },
        "webhooks": [{
            "name": "pods.rehearsal.dev",
            "admissionReviewVersions": ["v1"],
            // The webhook counts the pods it has seen, but not on dry runs.
            "sideEffects": "NoneOnDryRun",
            // A pod of the run that misses the webhook would land on a real node.
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "clientConfig": client_config,
            "namespaceSelector": {"matchLabels": {OWNED_BY_SIMULATION_LABEL: r.simulation}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}]
        }]
    })
}

/// Applies the configuration (server-side, under the registration's field manager).
pub async fn register(client: &kube::Client, r: &Registration<'_>) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    api.patch(&r.name, &PatchParams::apply(r.manager).force(), &Patch::Apply(&configuration(r))).await?;
    Ok(())
}

/// Removes a configuration (gone already is fine).
pub async fn unregister(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration<'a>(owner: &'a Value, endpoint: Endpoint) -> Registration<'a> {
        Registration {
            name: configuration_name("sim", 0),
            owner,
            simulation: "sim",
            endpoint,
            ca_pem: b"PEM",
            manager: "rehearsal-driver",
        }
    }

    #[test]
    fn url_configuration_is_a_valid_object() {
        let owner = json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "name": "sim", "uid": "s"});
        let v = configuration(&registration(&owner, Endpoint::Url("https://127.0.0.1:8888/mutate".into())));
        let typed: MutatingWebhookConfiguration = serde_json::from_value(v.clone()).expect("typed");
        let hook = &typed.webhooks.expect("webhooks")[0];
        assert_eq!(hook.client_config.url.as_deref(), Some("https://127.0.0.1:8888/mutate"));
        assert_eq!(hook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()), Some(&b"PEM"[..]));
        assert_eq!(v["metadata"]["name"], "rehearsal-sim-run-0");
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Simulation");
        // PEM bytes, base64-encoded once by serde (not DER, not twice).
        assert_eq!(v["webhooks"][0]["clientConfig"]["caBundle"], "UEVN");
    }

    #[test]
    fn service_configuration_has_no_url_and_is_scoped_to_the_run() {
        let owner = json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "name": "sim", "uid": "s"});
        let endpoint =
            Endpoint::Service { namespace: "rehearsal-system".into(), name: "rehearsal-sim".into(), port: 443 };
        let v = configuration(&registration(&owner, endpoint));
        let typed: MutatingWebhookConfiguration = serde_json::from_value(v).expect("typed");
        let hook = &typed.webhooks.expect("webhooks")[0];
        assert_eq!(hook.client_config.url, None);
        let svc = hook.client_config.service.as_ref().expect("service reference");
        assert_eq!(
            (svc.namespace.as_str(), svc.name.as_str(), svc.path.as_deref(), svc.port),
            ("rehearsal-system", "rehearsal-sim", Some("/mutate"), Some(443))
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        let selector = hook.namespace_selector.as_ref().and_then(|s| s.match_labels.as_ref()).expect("selector");
        assert_eq!(selector.get(OWNED_BY_SIMULATION_LABEL).map(String::as_str), Some("sim"));
    }
}
