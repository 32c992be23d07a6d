//! Waiting, by watch, until Deployments are available: every replica of the current spec
//! created, updated and available, as `kubectl rollout status` sees it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::wait::await_condition;

/// Why a Deployment did not become available.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed.
    #[error("deployment {name:?} not available after {} s ({status})", timeout.as_secs())]
    Timeout {
        /// The Deployment.
        name: String,
        /// The deadline.
        timeout: Duration,
        /// What it looked like at the deadline.
        status: String,
    },
    /// The watch failed.
    #[error("deployment {name:?}: watching it failed: {source}")]
    Watch {
        /// The Deployment.
        name: String,
        /// What went wrong.
        #[source]
        source: kube::runtime::wait::Error,
    },
}

/// Whether the controller has caught up with the spec and every desired replica is available.
pub fn is_available(d: Option<&Deployment>) -> bool {
    let Some(d) = d else { return false };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else { return false };
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    observed
        && status.replicas.unwrap_or(0) == desired
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
}

/// A Deployment's progress in words, for messages.
pub fn describe(d: Option<&Deployment>) -> String {
    let Some(d) = d else { return "not found".to_string() };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    format!(
        "{} of {desired} replicas available, {} updated, {} existing",
        status.available_replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0)
    )
}

/// Waits until Deployment `name` is available, or `timeout` passes.
pub async fn wait_available(api: &Api<Deployment>, name: &str, timeout: Duration) -> Result<(), WaitError> {
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, is_available)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(WaitError::Watch { name: name.to_string(), source }),
        Err(_) => {
            let status = match api.get_opt(name).await {
                Ok(d) => describe(d.as_ref()),
                Err(e) => format!("cannot read it: {e}"),
            };
            Err(WaitError::Timeout { name: name.to_string(), timeout, status })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, spec: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": spec, "selector": {}, "template": {}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn available_only_when_caught_up() {
        let ready = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        assert!(is_available(Some(&deployment(2, 3, ready.clone()))));
        assert!(!is_available(Some(&deployment(3, 3, ready))), "the controller has not seen the new spec");
        let scaling = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2});
        assert!(!is_available(Some(&deployment(2, 3, scaling))));
        let shrinking = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3});
        assert!(!is_available(Some(&deployment(2, 3, shrinking))));
        let zero = json!({"observedGeneration": 2});
        assert!(is_available(Some(&deployment(2, 0, zero))));
        assert!(!is_available(None));
        assert_eq!(
            describe(Some(&deployment(1, 3, json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1})))),
            "1 of 3 replicas available, 3 updated, 3 existing"
        );
    }
}
