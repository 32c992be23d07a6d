//! Putting a scenario's objects into the cluster: finding how each kind is served (discovery),
//! preparing each object (run label, namespace, placement) and applying it server-side.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions};
use rehearsal_crds::keys::DRIVER_MANAGER;
use serde_json::{Value, json};

use super::ownership::{Identity, Standing, standing_of};
use super::placement::Placement;

pub use rehearsal_crds::keys::{SCALE_MANAGER, SCENARIO_RUN_LABEL as RUN_LABEL};

/// (apiVersion, kind) of an object.
pub type KindKey = (String, String);

/// How the cluster serves a kind.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Where its API is.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

/// The kinds of a play, resolved once before anything is applied.
pub type Kinds = HashMap<KindKey, Kind>;

/// Why an object could not be put into the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Discovery itself failed (not a missing kind).
    #[error("cannot discover how this cluster serves {kind} ({api_version}): {source}")]
    Discovery {
        /// apiVersion.
        api_version: String,
        /// Kind.
        kind: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The object has no usable name.
    #[error("{0} has no metadata.name")]
    NoName(String),
    /// The API server refused the object.
    #[error("apply {what}: {source}")]
    Api {
        /// Kind and name.
        what: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The object exists and is not this play's to change.
    #[error(
        "{what}: {reason}; refusing to change it (delete it, play in another namespace, or pass --adopt to take it over: the play then changes it and deletes it at the end)"
    )]
    NotOurs {
        /// Kind and name.
        what: String,
        /// Who has it.
        reason: String,
    },
    /// The namespace could not be made ready.
    #[error("namespace {name}: {message}")]
    Namespace {
        /// The namespace.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The (apiVersion, kind) of an object, when it has both.
pub fn kind_key(object: &Value) -> Option<KindKey> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    Some((api_version.to_string(), kind.to_string()))
}

/// How the cluster serves `key`; None when it does not (no such group, version or kind).
pub async fn discover(client: &kube::Client, key: &KindKey) -> Result<Option<Kind>, ApplyError> {
    let (api_version, kind) = key;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
    match crate::served::served(client, &GroupVersionKind::gvk(group, version, kind)).await {
        Ok(found) => Ok(found.map(|(resource, caps)| Kind { resource, namespaced: caps.scope == Scope::Namespaced })),
        Err(source) => Err(ApplyError::Discovery { api_version: api_version.clone(), kind: kind.clone(), source }),
    }
}

/// What to install to get a kind the cluster lacks, for the skip warning.
pub fn install_hint(api_version: &str) -> &'static str {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match group {
        "karpenter.sh" => "install Karpenter to use it",
        "karpenter.kwok.sh" => "install Karpenter with its KWOK provider to use it",
        g if g.starts_with("karpenter.") || g.ends_with(".karpenter.sh") => {
            "install Karpenter and its cloud provider to use it"
        }
        _ => "install the CRD or API that serves it to use it",
    }
}

/// The object as the play applies it: the play's labels added, metadata the server owns removed,
/// the namespace set to the play's (namespaced kinds) or removed (cluster-scoped ones), and the
/// placement applied to its pod template. Returns the placement's changes too.
pub fn prepare(
    object: &Value,
    kind: &Kind,
    namespace: &str,
    labels_in: &std::collections::BTreeMap<String, String>,
    placement: Placement,
) -> (Value, Vec<String>) {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        // An object exported from a cluster carries these; server-side apply refuses or
        // misreads them (a stale resourceVersion is a conflict).
        for field in ["resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"] {
            metadata.remove(field);
        }
        if kind.namespaced {
            metadata.insert("namespace".to_string(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Some(existing) = labels.as_object_mut() {
            for (key, value) in labels_in {
                existing.insert(key.clone(), json!(value));
            }
        }
    }
    let changes = placement.apply(&mut object);
    (object, changes)
}

/// `Kind name` of an object, for messages.
pub fn what(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = object.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    format!("{kind} {name}")
}

/// The API of a kind in the play's namespace (or cluster-wide).
pub fn api_for(client: &kube::Client, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client.clone(), namespace, &kind.resource)
    } else {
        Api::all_with(client.clone(), &kind.resource)
    }
}

/// The play's namespace, and whether the cleanup removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayNamespace {
    /// Its name.
    pub name: String,
    /// This play created it.
    pub created: bool,
    /// Its UID when this play owns it (created it, or took over one an ended play left, with
    /// `--adopt`): the cleanup deletes it, with this UID as precondition. None: it was there
    /// before and stays.
    pub uid: Option<String>,
}

impl PlayNamespace {
    /// The cleanup deletes it.
    pub fn owned(&self) -> bool {
        self.uid.is_some()
    }
}

/// Makes sure the namespace exists: created (with the play's labels) if missing, after waiting
/// for an earlier one of the same name to finish terminating. A namespace another play created
/// is refused while that play runs; one an ended play left is used as it is, or taken over with
/// `adopt`. A namespace no play made is used and kept. A new namespace is ready once its
/// `default` ServiceAccount exists, since pods created before that are refused.
pub async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    identity: &Identity,
    adopt: bool,
    timeout: Duration,
) -> Result<PlayNamespace, ApplyError> {
    let fail = |message: String| ApplyError::Namespace { name: name.to_string(), message };
    let api: Api<Namespace> = Api::all(client.clone());
    // Twice at most: a create that loses a race is decided again on what won it.
    for _ in 0..2 {
        let existing = api.get_opt(name).await.map_err(|e| fail(format!("cannot read it: {e}")))?;
        if let Some(ns) = &existing {
            if ns.metadata.deletion_timestamp.is_none() {
                return existing_namespace(client, &api, ns, identity, adopt).await;
            }
            tracing::info!(
                namespace = name,
                "the namespace is terminating (an earlier run's cleanup?); waiting until it is gone"
            );
            let uid = ns.metadata.uid.clone().unwrap_or_default();
            match tokio::time::timeout(timeout, await_condition(api.clone(), name, conditions::is_deleted(&uid))).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(fail(format!("watching its deletion failed: {e}"))),
                Err(_) => return Err(fail(format!("still terminating after {} s", timeout.as_secs()))),
            }
        }
        let body: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": identity.labels()}
        }))
        .map_err(|e| fail(format!("cannot build it: {e}")))?;
        let pp = PostParams { field_manager: Some(DRIVER_MANAGER.to_string()), ..Default::default() };
        let created = match api.create(&pp, &body).await {
            Ok(created) => created,
            // Created by someone else in between: decided again on what is there now.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(fail(format!("cannot create it: {e}"))),
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        let exists = |sa: Option<&ServiceAccount>| sa.is_some();
        if tokio::time::timeout(timeout, await_condition(accounts, "default", exists)).await.is_err() {
            // Not fatal: the ReplicaSet controller retries pods refused for want of it.
            tracing::warn!(namespace = name, "no default ServiceAccount after {} s; going on", timeout.as_secs());
        }
        return Ok(PlayNamespace { name: name.to_string(), created: true, uid: created.metadata.uid });
    }
    Err(fail("it was created and deleted again while the play tried to create it".to_string()))
}

/// An existing namespace: refused while another play that made it runs, else used (and, with
/// `adopt`, taken over when an ended play made it).
async fn existing_namespace(
    client: &kube::Client,
    api: &Api<Namespace>,
    ns: &Namespace,
    identity: &Identity,
    adopt: bool,
) -> Result<PlayNamespace, ApplyError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let fail = |message: String| ApplyError::Namespace { name: name.clone(), message };
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    let standing = standing_of(client, &labels, identity)
        .await
        .map_err(|e| fail(format!("cannot read the Leases of plays: {e}")))?;
    let uid = ns.metadata.uid.clone();
    match standing {
        Standing::Ours => Ok(PlayNamespace { name, created: false, uid }),
        Standing::Live(play) => Err(fail(format!(
            "play {play} created it and is still running; wait for it to end or play in another namespace"
        ))),
        Standing::LeftBy(play) if adopt => {
            // Only the play labels change; the UID is a precondition.
            let patch = json!({"metadata": {"uid": uid, "labels": identity.labels()}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| fail(format!("cannot take it over from play {play}: {e}")))?;
            tracing::warn!(namespace = %name, play = %play, "adopted (--adopt): the namespace is deleted at the end");
            Ok(PlayNamespace { name, created: false, uid })
        }
        // Someone's namespace, or one an ended play left: used, and kept.
        _ => Ok(PlayNamespace { name, created: false, uid: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(namespaced: bool) -> Kind {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        Kind { resource: ApiResource::from_gvk(&gvk), namespaced }
    }

    #[test]
    fn prepared_objects_carry_the_label_and_the_namespace() {
        let object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "elsewhere", "labels": {"app": "web"}, "resourceVersion": "12", "uid": "u"},
            "spec": {"template": {"spec": {"nodeSelector": {"karpenter.sh/nodepool": "default"}}}}
        });
        let labels = |v: &str| std::collections::BTreeMap::from([(RUN_LABEL.to_string(), v.to_string())]);
        let (out, changes) = prepare(&object, &kind(true), "karpenter-test", &labels("run-1"), Placement::Virtual);
        assert_eq!(
            out["metadata"],
            json!({"name": "web", "namespace": "karpenter-test", "labels": {"app": "web", RUN_LABEL: "run-1"}})
        );
        assert_eq!(out["spec"]["template"]["spec"]["nodeSelector"], json!({"type": "virtual"}));
        assert_eq!(changes.len(), 3);
        let (kept, none) = prepare(&object, &kind(true), "ns", &labels("r"), Placement::Keep);
        assert!(none.is_empty());
        assert_eq!(kept["spec"], object["spec"]);

        let pool = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default", "namespace": "x", "labels": null}});
        let (out, _) = prepare(&pool, &kind(false), "ns", &labels("r"), Placement::Virtual);
        assert_eq!(out["metadata"], json!({"name": "default", "labels": {RUN_LABEL: "r"}}));
    }

    #[test]
    fn hints_and_names() {
        assert_eq!(install_hint("karpenter.sh/v1"), "install Karpenter to use it");
        assert_eq!(install_hint("karpenter.kwok.sh/v1alpha1"), "install Karpenter with its KWOK provider to use it");
        assert_eq!(install_hint("karpenter.k8s.aws/v1"), "install Karpenter and its cloud provider to use it");
        assert_eq!(install_hint("example.com/v1"), "install the CRD or API that serves it to use it");
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(what(&object), "ConfigMap c");
        assert_eq!(kind_key(&object), Some(("v1".to_string(), "ConfigMap".to_string())));
        assert_eq!(kind_key(&json!({"kind": "X"})), None);
    }
}
