//! Removing what a play created: every object with the run label, of every kind the scenario
//! applies, and the namespace when the run owns it; then waiting, with a deadline, until all of
//! it is gone.

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::runtime::wait::{await_condition, conditions};

use super::apply::{Kind, PlayNamespace, RUN_LABEL, api_for};

/// Why the cleanup did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// Listing or deleting failed.
    #[error("{action} {what}: {source}")]
    Api {
        /// list or delete.
        action: &'static str,
        /// What.
        what: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// Something was still there at the deadline.
    #[error("still there after {} s: {}", timeout.as_secs(), left.join(", "))]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// What was left.
        left: Vec<String>,
    },
}

/// What the cleanup removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// Objects deleted one by one (namespaced ones inside an owned namespace go with it).
    pub objects: Vec<String>,
    /// Whether the namespace was deleted.
    pub namespace: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// One deletion to wait for.
struct Pending {
    what: String,
    api: Api<DynamicObject>,
    name: String,
    uid: String,
}

/// Deletes every object labelled with `run_id` of `kinds` (in the namespace for namespaced
/// kinds, cluster-wide for the others) and the namespace if the run owns it, then waits until
/// all of it is gone or `timeout` passes.
pub async fn cleanup(
    client: &kube::Client,
    kinds: &[Kind],
    namespace: &PlayNamespace,
    run_id: &str,
    timeout: Duration,
) -> Result<Cleaned, CleanupError> {
    let started = Instant::now();
    let selector = format!("{RUN_LABEL}={run_id}");
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen: Vec<&kube::api::ApiResource> = Vec::new();
    for kind in kinds {
        if seen.contains(&&kind.resource) {
            continue;
        }
        seen.push(&kind.resource);
        // Deleting the namespace deletes what is inside; one request instead of many.
        if kind.namespaced && namespace.owned {
            continue;
        }
        let api = api_for(client, kind, &namespace.name);
        let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|source| CleanupError::Api {
            action: "list",
            what: format!("{} labelled {selector}", kind.resource.plural),
            source,
        })?;
        for object in list.items {
            let name = object.name_any();
            let what = format!("{} {name}", kind.resource.kind);
            // Foreground: a Deployment is gone only once its ReplicaSets and pods are.
            match api.delete(&name, &DeleteParams::foreground()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(source) => return Err(CleanupError::Api { action: "delete", what, source }),
            }
            pending.push(Pending { what, api: api.clone(), name, uid: object.uid().unwrap_or_default() });
        }
    }
    let objects: Vec<String> = pending.iter().map(|p| p.what.clone()).collect();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace_uid = None;
    if namespace.owned {
        match namespaces.get_opt(&namespace.name).await {
            Ok(Some(ns)) => match namespaces.delete(&namespace.name, &DeleteParams::default()).await {
                Ok(_) => namespace_uid = Some(ns.uid().unwrap_or_default()),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(CleanupError::Api {
                        action: "delete",
                        what: format!("namespace {}", namespace.name),
                        source,
                    });
                }
            },
            Ok(None) => {}
            Err(source) => {
                return Err(CleanupError::Api {
                    action: "read",
                    what: format!("namespace {}", namespace.name),
                    source,
                });
            }
        }
    }

    let objects_gone =
        join_all(pending.iter().map(|p| await_condition(p.api.clone(), &p.name, conditions::is_deleted(&p.uid))));
    let namespace_gone = async {
        match &namespace_uid {
            Some(uid) => {
                await_condition(namespaces.clone(), &namespace.name, conditions::is_deleted(uid)).await.is_ok()
            }
            None => true,
        }
    };
    let finished = tokio::time::timeout(timeout, futures::future::join(objects_gone, namespace_gone)).await;
    // A watch that failed proves nothing: those objects are checked once more below.
    let all_seen_gone = finished.as_ref().is_ok_and(|(objects, ns)| *ns && objects.iter().all(Result::is_ok));
    if !all_seen_gone {
        let mut left = Vec::new();
        for p in &pending {
            let still =
                p.api.get_opt(&p.name).await.ok().flatten().is_some_and(|o| o.uid().is_some_and(|u| u == p.uid));
            if still {
                left.push(p.what.clone());
            }
        }
        if namespace_uid.is_some() && namespaces.get_opt(&namespace.name).await.ok().flatten().is_some() {
            left.push(format!("namespace {} (check its finalizers and the objects inside)", namespace.name));
        }
        if !left.is_empty() {
            return Err(CleanupError::Timeout { timeout, left });
        }
    }
    Ok(Cleaned { objects, namespace: namespace_uid.is_some(), elapsed: started.elapsed() })
}
