//! Removing what a play created: exactly the objects of its [`Ledger`](super::ownership::Ledger),
//! each deleted with its UID as precondition (an object of the same name made by someone else
//! meanwhile is left alone), and its namespace when the play owns it (the objects inside go
//! with it; it is emptied first, see [`crate::emptying`]). Transient API errors and dropped
//! watches are retried with backoff until the deadline; one object that cannot be deleted does
//! not stop the others, and every leftover is reported by kind and name.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Preconditions};
use kube::runtime::wait::{await_condition, conditions};
use tokio::time::Instant;

use super::apply::{Kind, PlayNamespace, api_for};
use super::ownership::Owned;

/// Why the cleanup did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// Something was still there at the deadline (or could not be deleted at all).
    #[error("still there after {} s: {}", timeout.as_secs(), left.join(", "))]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// What was left, with the last error about each when there was one.
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

/// One deletion to see through.
struct Target {
    what: String,
    api: Api<DynamicObject>,
    name: String,
    uid: String,
    params: DeleteParams,
    /// The delete request was accepted (or the object was already gone or replaced).
    requested: bool,
    gone: bool,
    /// The last error; a refusal (403, 422...) is not retried.
    error: Option<String>,
    refused: bool,
    /// The play's namespace (not one of the ledger's objects).
    namespace: bool,
}

impl Target {
    fn new(what: String, api: Api<DynamicObject>, name: String, uid: String, params: DeleteParams) -> Self {
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
            ..params
        };
        Target {
            what,
            api,
            name,
            uid,
            params,
            requested: false,
            gone: false,
            error: None,
            refused: false,
            namespace: false,
        }
    }

    fn open(&self) -> bool {
        !self.gone && !self.refused
    }
}

/// What to delete: the owned namespace (which takes the objects inside with it) and every
/// ledger object outside it.
fn targets(client: &kube::Client, owned: &[Owned], namespace: &PlayNamespace) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(uid) = &namespace.uid {
        let resource = ApiResource::erase::<Namespace>(&());
        let kind = Kind { resource, namespaced: false };
        let api = api_for(client, &kind, "");
        let what = format!("namespace {}", namespace.name);
        let mut target = Target::new(what, api, namespace.name.clone(), uid.clone(), DeleteParams::background());
        target.namespace = true;
        out.push(target);
    }
    for o in owned {
        if namespace.owned() && o.namespace.as_deref() == Some(namespace.name.as_str()) {
            continue;
        }
        let api = api_for(client, &o.kind, o.namespace.as_deref().unwrap_or(""));
        // Foreground: a Deployment is gone only once its ReplicaSets and pods are.
        out.push(Target::new(o.what(), api, o.name.clone(), o.uid.clone(), DeleteParams::foreground()));
    }
    out
}

/// Deletes what the play owns and waits until all of it is gone or `timeout` passes.
pub async fn cleanup(
    client: &kube::Client,
    owned: &[Owned],
    namespace: &PlayNamespace,
    timeout: Duration,
) -> Result<Cleaned, CleanupError> {
    let started = Instant::now();
    let deadline = started + timeout;
    if let Some(uid) = &namespace.uid {
        // The play's own namespace goes with everything in it: emptied first, it goes faster.
        crate::emptying::empty(client, &namespace.name, uid, deadline).await;
    }
    let mut targets = targets(client, owned, namespace);
    let mut failures: u32 = 0;
    loop {
        for t in targets.iter_mut().filter(|t| t.open() && !t.requested) {
            match t.api.delete(&t.name, &t.params).await {
                Ok(_) => t.requested = true,
                // Gone already, or replaced by an object that is not ours (UID precondition).
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    t.requested = true;
                    t.gone = true;
                }
                Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 429 => {
                    t.refused = true;
                    t.error = Some(s.message.clone());
                }
                Err(e) => t.error = Some(e.to_string()),
            }
        }
        let waits = targets.iter().filter(|t| t.open() && t.requested).map(|t| {
            let watch = await_condition(t.api.clone(), &t.name, conditions::is_deleted(&t.uid));
            async move { tokio::time::timeout_at(deadline, watch).await }
        });
        let results = futures::future::join_all(waits).await;
        let open: Vec<&mut Target> = targets.iter_mut().filter(|t| t.open() && t.requested).collect();
        for (t, result) in open.into_iter().zip(results) {
            match result {
                Ok(Ok(_)) => t.gone = true,
                // A watch that dropped is watched again, after a pause.
                Ok(Err(e)) => t.error = Some(format!("watch: {e}")),
                Err(_) => {}
            }
        }
        if !targets.iter().any(Target::open) || Instant::now() >= deadline {
            break;
        }
        failures = failures.saturating_add(1);
        let pause = Duration::from_millis(200u64.saturating_mul(1u64 << failures.min(5)));
        tracing::warn!(left = targets.iter().filter(|t| t.open()).count(), "cleanup: retrying in {pause:?}");
        tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
    }
    let mut left = Vec::new();
    for t in targets.iter().filter(|t| t.open()) {
        // The watch may have missed the end; ask once more.
        let still =
            t.api.get_opt(&t.name).await.ok().flatten().is_some_and(|o| o.metadata.uid.as_deref() == Some(&t.uid));
        if still {
            let hint = if t.namespace { " (check its finalizers and the objects inside)" } else { "" };
            match &t.error {
                Some(e) => left.push(format!("{}{hint}: {e}", t.what)),
                None => left.push(format!("{}{hint}", t.what)),
            }
        }
    }
    if !left.is_empty() {
        return Err(CleanupError::Timeout { timeout, left });
    }
    let objects = targets.iter().filter(|t| !t.namespace).map(|t| t.what.clone()).collect();
    Ok(Cleaned { objects, namespace: namespace.owned(), elapsed: started.elapsed() })
}
