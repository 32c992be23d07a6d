//! Emptying a run's own namespace before deleting it, kind by kind.
//!
//! Why: deleting a namespace full of pods leaves them to the namespace controller, which deletes
//! them gracefully (each marked, then removed by kwok: two writes, and a third, refused, from
//! kwok when the pod is already gone) and looks again only half a grace period (16 s) after it
//! saw pods left. Removed first at grace period 0 they cost one write each, and the namespace
//! controller finds the namespace (nearly) empty. Used by the replay's and the play's cleanups,
//! only on namespaces the run owns (checked here and by the caller, by UID).
//!
//! Each kind is deleted object by object, 32 deletes at once over all namespaces, then with
//! one `deletecollection` for whatever appeared meanwhile. A `deletecollection` alone deletes
//! one object at a time (the API server's `--delete-collection-workers`, 1 by default): 500
//! Deployments took 29.6 s and a scenario's Events more than the 60 s request timeout
//! (`make bench-scenario-scale`, audit log).

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

/// Deletes in flight at once, over every namespace being emptied: enough to keep the API
/// server's cores busy, far below its default 200 mutating requests in flight.
const IN_FLIGHT: usize = 32;

/// The permits of [`IN_FLIGHT`], shared by every namespace emptied at the same time.
static DELETES: Semaphore = Semaphore::const_new(IN_FLIGHT);

/// Set on a run's terminating namespace once its pods are removed (wakes the namespace controller).
const PODS_REMOVED_ANNOTATION: &str = "rehearsal.dev/pods-removed";

/// What makes pods, by API path segment and resource, owners before what they own (a
/// ReplicaSet deleted before its Deployment would be made again).
const POD_MAKERS: [&[(&str, &str)]; 2] = [
    &[
        ("apis/apps/v1", "deployments"),
        ("apis/apps/v1", "statefulsets"),
        ("apis/apps/v1", "daemonsets"),
        ("apis/batch/v1", "cronjobs"),
    ],
    &[("apis/apps/v1", "replicasets"), ("apis/batch/v1", "jobs")],
];

/// Empties namespace `name` (UID `uid`), one the run owns: what makes pods first (background:
/// the garbage collector's share is bounded by its request rate), then the pods, at grace period
/// 0 (they run on virtual nodes, nothing is there to stop), then the namespace's Events; each
/// kind object by object, then with one `deletecollection`. The pods' `deletecollection` is made
/// again until one ends complete: the API server stops one at its request timeout (60 s by
/// default) with what it has deleted so far. A namespace already terminating gets only the pods'
/// deletes, then an annotation that wakes the namespace controller (it waits half the pods'
/// grace period after it saw pods left), then the Events'. Failures are logged: the namespace
/// controller deletes whatever is left, more slowly.
///
/// The namespace is read first: gone, or another namespace of that name (not UID `uid`), it is
/// left alone. Each object's delete carries its UID as precondition; the `deletecollection`
/// calls take none.
pub async fn empty(client: &kube::Client, name: &str, uid: &str, deadline: tokio::time::Instant) {
    let api: Api<Namespace> = Api::all(client.clone());
    let terminating = match api.get_opt(name).await {
        Ok(Some(ns)) if ns.metadata.uid.as_deref() == Some(uid) => ns.metadata.deletion_timestamp.is_some(),
        Ok(_) => {
            tracing::debug!(namespace = %name, "cleanup: the namespace is gone or is not the run's; not emptied");
            return;
        }
        Err(e) => {
            tracing::debug!(namespace = %name, error = %e, "cleanup: cannot read the namespace; not emptied, the namespace controller will");
            return;
        }
    };
    if !terminating {
        for wave in POD_MAKERS {
            let calls = wave.iter().map(|(prefix, plural)| async move {
                let path = format!("/{prefix}/namespaces/{}/{plural}", name);
                if let Err(e) = delete_all(client, &path, &DeleteParams::background()).await {
                    tracing::debug!(namespace = %name, kind = plural, error = %e, "cleanup: cannot delete them at once; the namespace controller will");
                }
            });
            futures::future::join_all(calls).await;
        }
    }
    // The pods before the Events: a pod deleted here before the garbage collector reaches it
    // costs one write, not three (its graceful delete, kwok's, this one); the Events have no one
    // else deleting them. `make bench-scale`: the collector's pod deletes 6,832 -> 5,373, kwok's
    // 7,188 -> 3,259; cleanup 5.8 -> 4.3 ms an object. Tried, not kept: Events alongside at most
    // 8 in flight (5.0 ms an object); owners deleted orphaning their pods (the collector patched
    // 8,769 pods and the owners, kept meanwhile, took 3,200 status updates: 146.7 s).
    if remove_pods(client, name, deadline).await && terminating {
        // The UID in the patch makes it fail on a namespace of the same name that is not ours.
        let touch = json!({"metadata": {"uid": uid, "annotations": {PODS_REMOVED_ANNOTATION: "true"}}});
        if let Err(e) = api.patch(name, &PatchParams::default(), &Patch::Merge(&touch)).await {
            tracing::debug!(namespace = %name, error = %e, "cleanup: cannot mark the namespace emptied of pods");
        }
    }
    let events = format!("/api/v1/namespaces/{}/events", name);
    if let Err(e) = delete_all(client, &events, &DeleteParams::background()).await {
        tracing::debug!(namespace = %name, error = %e, "cleanup: cannot delete the events at once; the namespace controller will");
    }
}

/// Removes the pods of namespace `name` at grace period 0, the `deletecollection` made again
/// until one completes or `deadline`; whether it completed.
async fn remove_pods(client: &kube::Client, name: &str, deadline: tokio::time::Instant) -> bool {
    let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
    let pods = format!("/api/v1/namespaces/{}/pods", name);
    if let Err(e) = delete_each(client, &pods, &now).await {
        tracing::info!(namespace = %name, error = %e, "cleanup: cannot delete the pods one by one; deleting them at once");
    }
    let mut tries: u32 = 0;
    loop {
        tries = tries.saturating_add(1);
        let Err(e) = delete_collection(client, pods.clone(), &now).await else { return true };
        let refused = matches!(&e, kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 429);
        if refused || tokio::time::Instant::now() >= deadline {
            tracing::debug!(namespace = %name, error = %e, "cleanup: removing the pods at once failed; the namespace controller deletes them");
            return false;
        }
        if tries == 1 {
            tracing::warn!(namespace = %name, error = %e, "cleanup: retrying: cannot remove the pods at once");
        } else {
            tracing::debug!(namespace = %name, error = %e, tries, "cleanup: removing the pods again");
        }
        // A request that timed out took long already; a refused connection did not.
        if !matches!(&e, kube::Error::Api(_)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Everything in collection `path`: each object ([`delete_each`]), then one
/// `deletecollection` for what was created meanwhile.
async fn delete_all(client: &kube::Client, path: &str, params: &DeleteParams) -> Result<(), kube::Error> {
    if let Err(e) = delete_each(client, path, params).await {
        tracing::info!(collection = %path, error = %e, "cleanup: cannot delete them one by one; deleting them at once");
    }
    delete_collection(client, path.to_string(), params).await
}

/// A page of a metadata-only list: the names and UIDs of a collection.
#[derive(Deserialize)]
struct Names {
    /// `null` when the collection is empty.
    #[serde(default)]
    items: Option<Vec<Named>>,
    #[serde(default)]
    metadata: ListMeta,
}

/// One object of [`Names`].
#[derive(Deserialize)]
struct Named {
    metadata: NamedMeta,
}

/// The name and UID of a [`Named`].
#[derive(Deserialize)]
struct NamedMeta {
    name: String,
    uid: Option<String>,
}

/// The continue token of a [`Names`] page.
#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue")]
    next: Option<String>,
}

/// Deletes each object of collection `path` (listed by name, metadata only, 500 a page), each
/// with its UID as precondition and its answer read but not decoded ([`Body::Drain`]),
/// [`IN_FLIGHT`] at once over all callers. An object already gone or changed (404, 409) is skipped; the first other refusal
/// ends it with that error.
async fn delete_each(client: &kube::Client, path: &str, params: &DeleteParams) -> Result<(), kube::Error> {
    use futures::StreamExt;
    let mut page = ListParams::default().limit(500);
    loop {
        let list = kube::core::Request::new(path).list_metadata(&page).map_err(kube::Error::BuildRequest)?;
        let names: Names = client.request(list).await?;
        let deletes = names.items.unwrap_or_default().into_iter().map(|item| async move {
            let Ok(_permit) = DELETES.acquire().await else { return Ok(()) };
            let params = DeleteParams {
                preconditions: item.metadata.uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
                ..params.clone()
            };
            let request = kube::core::Request::new(path)
                .delete(&item.metadata.name, &params)
                .map_err(kube::Error::BuildRequest)?;
            answer(client.send(request.map(kube::client::Body::from)).await?, Body::Drain).await
        });
        let mut results = futures::stream::iter(deletes).buffer_unordered(IN_FLIGHT);
        while let Some(result) = results.next().await {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        match names.metadata.next.filter(|c| !c.is_empty()) {
            Some(token) => page = page.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// One `deletecollection` on `path`, its answer (the list of what it deleted, megabytes for
/// thousands of pods) left unread.
async fn delete_collection(client: &kube::Client, path: String, params: &DeleteParams) -> Result<(), kube::Error> {
    let request = kube::core::Request::new(path)
        .delete_collection(params, &ListParams::default())
        .map_err(kube::Error::BuildRequest)?;
    answer(client.send(request.map(kube::client::Body::from)).await?, Body::Drop).await
}

/// What [`answer`] does with the body of a success.
enum Body {
    /// Read to its end, not decoded: an answer dropped unread resets its HTTP/2 stream; with
    /// hundreds of deletes answered that way, every request in flight failed at once in a
    /// scenario's cleanup (`make bench-scenario-scale`).
    Drain,
    /// Dropped unread: a `deletecollection`'s answer lists everything deleted (megabytes).
    Drop,
}

/// Ok for a success; otherwise the API server's Status as an error.
async fn answer(response: axum::http::Response<kube::client::Body>, body: Body) -> Result<(), kube::Error> {
    use http_body_util::BodyExt;
    let code = response.status();
    if code.is_success() {
        if let Body::Drain = body {
            let mut stream = response.into_body();
            while let Some(frame) = stream.frame().await {
                frame?;
            }
        }
        return Ok(());
    }
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let status = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
        kube::core::Status::failure(&String::from_utf8_lossy(&body), code.canonical_reason().unwrap_or("Failure"))
            .with_code(code.as_u16())
    });
    Err(kube::Error::Api(status.boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_list_gives_names_uids_and_the_next_page() {
        let page: Names = serde_json::from_str(
            r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1",
                "metadata":{"resourceVersion":"7","continue":"abc"},
                "items":[{"metadata":{"name":"a","uid":"u-a","labels":{"x":"y"}}},{"metadata":{"name":"b"}}]}"#,
        )
        .unwrap();
        let items = page.items.unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].metadata.name.as_str(), items[0].metadata.uid.as_deref()), ("a", Some("u-a")));
        assert_eq!(items[1].metadata.uid, None);
        assert_eq!(page.metadata.next.as_deref(), Some("abc"));
    }

    #[test]
    fn an_empty_collection_lists_null_items() {
        // What the API server answers for an empty collection: `items` is null, not [].
        let page: Names = serde_json::from_str(
            r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"9"},"items":null}"#,
        )
        .unwrap();
        assert!(page.items.unwrap_or_default().is_empty());
        assert_eq!(page.metadata.next, None);
    }
}
