//! The run's SimulationRoot: created first, owning everything the run makes; deleted last with
//! foreground propagation so the garbage collector removes the run's objects before the root.
//!
//! The run's namespaces are emptied and deleted directly before the root (one `deletecollection`
//! per kind), where the root's cascade alone has the garbage collector delete every Deployment,
//! ReplicaSet and pod with a request of its own (10,403 pods took 381 s at the controller
//! manager's 100 requests/s). The root's foreground deletion stays the safety net: it ends only
//! once everything the run made is gone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Resource, ResourceExt};
use rehearsal_crds::keys::{DRIVER_MANAGER, OWNED_BY_SIMULATION_LABEL, RUN_LABEL};
use rehearsal_crds::{Simulation, SimulationRoot};
use serde_json::json;

use super::objects::RootRef;
use crate::emptying;

/// Why the root could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The API server refused or failed.
    #[error("SimulationRoot {name}: {action} failed: {source}")]
    Api {
        /// Root name.
        name: String,
        /// What was attempted.
        action: &'static str,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// Watching the deletion failed.
    #[error("SimulationRoot {name}: watching its deletion failed: {source}")]
    Watch {
        /// Root name.
        name: String,
        /// What went wrong.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// The root exists already: another driver may be running this run.
    #[error(
        "SimulationRoot {name} already exists: another driver may be running this run. If none is, delete it (kubectl delete simulationroot {name}) and start again"
    )]
    Exists {
        /// Root name.
        name: String,
    },
    /// Deletion did not finish in time.
    #[error(
        "SimulationRoot {name} and the objects of the run were not gone after {secs} s (namespaces {prefix}-*); left: {left}"
    )]
    Timeout {
        /// What is still there, by kind and name.
        left: String,
        /// Root name.
        name: String,
        /// Deadline in seconds.
        secs: u64,
        /// Namespace prefix of the run.
        prefix: String,
    },
}

/// The root's name for run `index` of `simulation`.
pub fn root_name(simulation: &str, index: u32) -> String {
    format!("{simulation}-run-{index}")
}

/// Deletes a root (foreground) and waits until it, and so every object blocking it, is gone.
/// Transient API errors and dropped watches are retried with backoff until `timeout`; at the
/// deadline the error lists what is left (the root, the run's namespaces) by kind and name.
pub async fn delete(
    api: &Api<SimulationRoot>,
    root: &RootRef,
    simulation: &str,
    timeout: Duration,
    prefix: &str,
) -> Result<(), RootError> {
    let name = root.name.as_str();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failures: u32 = 0;
    let mut last_error = String::new();
    loop {
        match delete_once(api, root, simulation, deadline).await {
            Ok(true) => return Ok(()),
            // The deadline passed with the root still there.
            Ok(false) => break,
            Err(e) => {
                // A refusal (403, 422...) will not change by retrying.
                if let RootError::Api { source: kube::Error::Api(s), .. } = &e
                    && (400..500).contains(&s.code)
                    && s.code != 429
                {
                    return Err(e);
                }
                failures = failures.saturating_add(1);
                last_error = e.to_string();
                tracing::warn!(root = %name, error = %e, "cleanup: retrying");
                let pause = Duration::from_millis(200u64.saturating_mul(1u64 << failures.min(5)));
                if tokio::time::Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
    let left = leftovers(api, name, prefix).await;
    let mut what =
        if left.is_empty() { String::from("nothing found, but the deletion did not finish") } else { left.join(", ") };
    if !last_error.is_empty() {
        what.push_str(&format!("; last error: {last_error}"));
    }
    Err(RootError::Timeout { name: name.to_string(), secs: timeout.as_secs(), prefix: prefix.to_string(), left: what })
}

/// One attempt: delete the run's namespaces, then the root (foreground), and watch until the
/// root is gone or `deadline`; Ok(false) at the deadline.
async fn delete_once(
    api: &Api<SimulationRoot>,
    root: &RootRef,
    simulation: &str,
    deadline: tokio::time::Instant,
) -> Result<bool, RootError> {
    let name = root.name.as_str();
    let err = |action, source| RootError::Api { name: name.to_string(), action, source };
    let uid = match api.get_opt(name).await.map_err(|e| err("read", e))? {
        Some(root) => root.uid().unwrap_or_default(),
        None => return Ok(true),
    };
    let client = api.clone().into_client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match clear_namespaces(&client, root, simulation, deadline).await {
        Ok(0) => {}
        Ok(n) => {
            // The root last: deleted while its namespaces still hold objects, the garbage
            // collector would delete them one request each. At the deadline the root's deletion
            // still runs, as the safety net.
            if !namespaces_gone(&namespaces, root, simulation, deadline).await {
                tracing::warn!(root = %name, namespaces = n, "cleanup: the run's namespaces are still terminating; deleting the root anyway");
            }
        }
        // Without the right to list or delete namespaces, the root's cascade still removes them.
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(root = %name, error = %s, "cleanup: cannot delete the run's namespaces directly; the root's cascade will, more slowly");
        }
        Err(e) => return Err(err("delete the run's namespaces", e)),
    }
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
        Err(e) => return Err(err("delete", e)),
    }
    match tokio::time::timeout_at(deadline, await_condition(api.clone(), name, conditions::is_deleted(&uid))).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(source)) => Err(RootError::Watch { name: name.to_string(), source }),
        Err(_) => Ok(false),
    }
}

/// Empties ([`emptying::empty`]) and deletes the namespaces `root` owns; how many there were.
/// Namespaces are found by the Simulation's label and kept only when the root is among their
/// owners, so a namespace of another run, or one re-created meanwhile by someone else, is never
/// touched. On the 10,000-pod benchmark, with the namespaces deleted first, the namespace
/// controller (started 5 s after) overtook the driver's pod `deletecollection` and marked nearly
/// every pod (16,974 deletes from kwok refused).
async fn clear_namespaces(
    client: &kube::Client,
    root: &RootRef,
    simulation: &str,
    deadline: tokio::time::Instant,
) -> Result<usize, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ours: Vec<OwnNamespace> =
        owned_namespaces(&api, root, simulation).await?.iter().map(OwnNamespace::of).collect();
    if ours.is_empty() {
        return Ok(0);
    }
    tracing::info!(root = %root.name, namespaces = ours.len(), "cleanup: emptying and deleting the run's namespaces");
    futures::future::join_all(ours.iter().map(|ns| emptying::empty(client, &ns.name, &ns.uid, deadline))).await;
    for ns in ours.iter().filter(|ns| !ns.terminating) {
        let mut params = DeleteParams::background();
        params.preconditions = Some(Preconditions { uid: Some(ns.uid.clone()), resource_version: None });
        match api.delete(&ns.name, &params).await {
            Ok(_) => {}
            // Gone already, or a new namespace of that name (the UID precondition failed): not ours.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ours.len())
}

/// The namespaces labelled for `simulation` that `root` owns.
async fn owned_namespaces(
    api: &Api<Namespace>,
    root: &RootRef,
    simulation: &str,
) -> Result<Vec<Namespace>, kube::Error> {
    let selector = format!("{OWNED_BY_SIMULATION_LABEL}={simulation}");
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.into_iter().filter(|ns| owned_by(ns, root)).collect())
}

/// One of the run's namespaces.
struct OwnNamespace {
    name: String,
    uid: String,
    /// Being deleted already (an earlier attempt, or someone else, started it).
    terminating: bool,
}

impl OwnNamespace {
    fn of(ns: &Namespace) -> OwnNamespace {
        OwnNamespace {
            name: ns.name_any(),
            uid: ns.metadata.uid.clone().unwrap_or_default(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Polls until no namespace of the root is left, or `deadline`; true when none is left.
async fn namespaces_gone(
    api: &Api<Namespace>,
    root: &RootRef,
    simulation: &str,
    deadline: tokio::time::Instant,
) -> bool {
    const EVERY: Duration = Duration::from_millis(500);
    loop {
        // A failed list counts as "not yet": the root's deletion is the safety net.
        match owned_namespaces(api, root, simulation).await {
            Ok(left) if left.is_empty() => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(root = %root.name, error = %e, "cleanup: retrying: cannot list the run's namespaces")
            }
        }
        if tokio::time::Instant::now() + EVERY >= deadline {
            return false;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Whether `ns` has the root among its owners (by UID).
fn owned_by(ns: &Namespace, root: &RootRef) -> bool {
    !root.uid.is_empty() && ns.owner_references().iter().any(|o| o.uid == root.uid)
}

/// What of the run is still there: the root (with its finalizers) and the run's namespaces.
async fn leftovers(api: &Api<SimulationRoot>, name: &str, prefix: &str) -> Vec<String> {
    let mut left = vec![];
    if let Ok(Some(root)) = api.get_opt(name).await {
        let finalizers = root.finalizers().join(", ");
        left.push(format!("SimulationRoot {name} (finalizers: {finalizers})"));
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(api.clone().into_client());
    if let Ok(list) = namespaces.list(&kube::api::ListParams::default()).await {
        for ns in list.items {
            let n = ns.name_any();
            if n.starts_with(&format!("{prefix}-")) {
                let phase = ns.status.and_then(|s| s.phase).unwrap_or_default();
                left.push(format!("Namespace {n} ({phase})"));
            }
        }
    }
    left
}

/// Creates the run's root, owned by the Simulation. A root that exists already is never deleted
/// here: it may be a live run's (a second driver started for the same run), so the run is
/// refused, naming the root. The operator deletes a dead run's root before it starts a run.
pub async fn create(
    api: &Api<SimulationRoot>,
    sim: &Simulation,
    index: u32,
    _cleanup_timeout: Duration,
    _prefix: &str,
) -> Result<RootRef, RootError> {
    let name = root_name(&sim.name_any(), index);
    if api
        .get_opt(&name)
        .await
        .map_err(|source| RootError::Api { name: name.clone(), action: "read", source })?
        .is_some()
    {
        return Err(RootError::Exists { name });
    }
    let owner = sim.controller_owner_ref(&());
    let body = json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot",
        "metadata": {
            "name": name,
            "labels": {OWNED_BY_SIMULATION_LABEL: sim.name_any(), RUN_LABEL: index.to_string()},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>()
        },
        "spec": {}
    });
    let root: SimulationRoot = serde_json::from_value(body).map_err(|e| RootError::Api {
        name: name.clone(),
        action: "build",
        source: kube::Error::SerdeError(e),
    })?;
    // Create, not apply: of two drivers racing for the same run, only one gets the root.
    let root = match api
        .create(&kube::api::PostParams { dry_run: false, field_manager: Some(DRIVER_MANAGER.into()) }, &root)
        .await
    {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 409 => return Err(RootError::Exists { name }),
        Err(source) => return Err(RootError::Api { name: name.clone(), action: "create", source }),
    };
    Ok(RootRef { name, uid: root.uid().unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(owners: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "v-default", "ownerReferences": owners}}))
            .unwrap_or_else(|e| panic!("namespace: {e}"))
    }

    fn owner(uid: &str) -> serde_json::Value {
        json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "s-run-0", "uid": uid})
    }

    #[test]
    fn only_namespaces_the_root_owns_are_the_runs() {
        let root = RootRef { name: "s-run-0".into(), uid: "u-1".into() };
        assert!(owned_by(&namespace(json!([owner("u-1")])), &root));
        assert!(owned_by(&namespace(json!([owner("u-0"), owner("u-1")])), &root));
        // Another run's root of the same name, or no owner at all: not this run's.
        assert!(!owned_by(&namespace(json!([owner("u-2")])), &root));
        assert!(!owned_by(&namespace(json!([])), &root));
        // A root without a UID (never read back) owns nothing.
        let nameless = RootRef { name: "s-run-0".into(), uid: String::new() };
        assert!(!owned_by(&namespace(json!([owner("")])), &nameless));
    }
}
