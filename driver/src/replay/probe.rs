//! Waiting until the API server actually calls the run's webhook. A new
//! MutatingWebhookConfiguration takes effect a moment after it is written; pods created before
//! then would skip the webhook and could land on a real node.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use rehearsal_crds::keys::SIMULATION_LABEL;
use serde_json::json;

use super::objects::RootRef;

/// Name of the dry-run pod used to probe the webhook.
pub const PROBE_POD: &str = "rehearsal-webhook-probe";

/// Creates a dry-run pod owned by the run's root in `namespace` until the API server returns it
/// mutated by the webhook; returns how long that took.
pub async fn wait_until_called(
    client: &kube::Client,
    namespace: &str,
    root: &RootRef,
    simulation: &str,
    deadline: Duration,
) -> Result<Duration, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": PROBE_POD, "ownerReferences": [root.owner_reference()]},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "probe", "image": "rehearsal-probe"}]}
    }))
    .map_err(|e| format!("cannot build the webhook probe: {e}"))?;
    let params = PostParams { dry_run: true, field_manager: None };
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < deadline {
        match pods.create(&params, &probe).await {
            Ok(p)
                if p.metadata.labels.as_ref().and_then(|l| l.get(SIMULATION_LABEL)).map(String::as_str)
                    == Some(simulation) =>
            {
                return Ok(start.elapsed());
            }
            Ok(_) => last = "the API server admitted a probe pod without calling the webhook".to_string(),
            // A fresh namespace has no default ServiceAccount for a moment; a webhook not yet
            // listening is refused: both pass.
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "the API server did not call the admission webhook within {} s (check the MutatingWebhookConfiguration for this run and that the API server can reach the driver): {last}",
        deadline.as_secs()
    ))
}
