//! Performing one planned action against the cluster.
//!
//! | action | request |
//! |---|---|
//! | `K8S_SCALE`, `SCALE` | server-side apply of the Deployment's `scale` subresource (`spec.replicas`), field manager `rehearsal-driver-scale`, force |
//! | `APPLY` | as for the manifests: created (labels, namespace, placement), or updated by server-side apply when this play made it; an object the play did not make is refused unless `--adopt` |
//! | `DELETE` | delete with the object's UID as precondition, background propagation, only when this play made (or adopted) it; an object already gone counts as done |
//! | `WAIT_AVAILABLE` | watch the Deployment until it is available, or fail at its timeout |
//!
//! A step's actions start together, as the Scenario API says, with one exception that keeps
//! written order meaningful: only scale actions run side by side ([`batches`]), and only while
//! they name different Deployments. An APPLY, DELETE or WAIT_AVAILABLE runs alone, after the
//! actions before it and before the ones after it (apply then scale, scale then wait).

use std::collections::BTreeSet;
use std::ops::Range;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::actions::{ActionKind, PlannedAction};
use super::apply::{self, Kinds, SCALE_MANAGER, api_for};
use super::available::wait_available;
use super::ownership::{self, Identity, Ledger};
use super::placement::Placement;

/// Where actions act.
pub struct Target<'a> {
    /// The cluster.
    pub client: &'a kube::Client,
    /// The play's namespace.
    pub namespace: &'a str,
    /// Every kind the scenario names, resolved (DELETE's kinds may be missing: not served).
    pub kinds: &'a Kinds,
    /// Who the play is.
    pub identity: &'a Identity,
    /// What the play owns (APPLY adds to it).
    pub ledger: &'a Ledger,
    /// Take over objects the play did not create (`--adopt`).
    pub adopt: bool,
    /// Placement of APPLY'd objects.
    pub placement: Placement,
}

/// A step's actions cut into groups that run side by side: consecutive scale actions of
/// different Deployments together, every other action alone; in written order.
pub fn batches(actions: &[PlannedAction]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    // Names of the scale batch being built; empty when the last batch is not one.
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (i, action) in actions.iter().enumerate() {
        let scaled = match &action.kind {
            ActionKind::Scale { name, .. } => Some(name.as_str()),
            _ => None,
        };
        match (scaled, out.last_mut()) {
            (Some(name), Some(last)) if !names.is_empty() && !names.contains(name) => last.end = i + 1,
            _ => {
                out.push(i..i + 1);
                names.clear();
            }
        }
        names.extend(scaled);
    }
    out
}

/// Performs one action: Ok with an optional note, or the error message.
pub async fn perform(target: &Target<'_>, kind: &ActionKind) -> Result<Option<String>, String> {
    let ns = target.namespace;
    match kind {
        ActionKind::Scale { name, replicas } => {
            let api: Api<Deployment> = Api::namespaced(target.client.clone(), ns);
            // The scale subresource: a missing Deployment is a plain 404, where applying
            // spec.replicas to the Deployment itself would try to create a half object.
            let body = json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas}
            });
            match api.patch_scale(name, &PatchParams::apply(SCALE_MANAGER).force(), &Patch::Apply(&body)).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    Err(format!("deployment {name:?} not found in namespace {ns}"))
                }
                Err(e) => Err(format!("scale deployment {name:?} to {replicas}: {e}")),
            }
        }
        ActionKind::Apply { manifest } => {
            let key = apply::kind_key(manifest).ok_or_else(|| "the manifest has no apiVersion or kind".to_string())?;
            let Some(kind) = target.kinds.get(&key) else {
                return Err(format!("{} ({}) is not served by this cluster", key.1, key.0));
            };
            let (object, _) = apply::prepare(manifest, kind, ns, &target.identity.labels(), target.placement);
            ownership::claim(target.client, kind, ns, &object, target.identity, target.adopt, target.ledger)
                .await
                .map(|()| None)
                .map_err(|e| e.to_string())
        }
        ActionKind::Delete { api_version, kind, name } => {
            let Some(resolved) = target.kinds.get(&(api_version.clone(), kind.clone())) else {
                return Err(format!("{kind} ({api_version}) is not served by this cluster"));
            };
            let api = api_for(target.client, resolved, ns);
            let gone = || Ok(Some(format!("{kind} {name} was already gone")));
            let existing = match api.get_opt(name).await {
                Ok(Some(o)) => o,
                // Already gone: what the action asks for holds.
                Ok(None) => return gone(),
                Err(e) => return Err(format!("read {kind} {name}: {e}")),
            };
            let uid = existing.metadata.uid.clone().unwrap_or_default();
            let ours = target.identity.owns(existing.labels()) || target.ledger.entries().iter().any(|o| o.uid == uid);
            if !ours {
                return Err(format!("{kind} {name} was not created by this play: not deleted"));
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::background()
            };
            match api.delete(name, &params).await {
                Ok(_) => Ok(None),
                // Gone, or replaced by an object that is not ours.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => gone(),
                Err(e) => Err(format!("delete {kind} {name}: {e}")),
            }
        }
        ActionKind::WaitAvailable { name, timeout } => {
            let api: Api<Deployment> = Api::namespaced(target.client.clone(), ns);
            wait_available(&api, name, *timeout).await.map(|()| None).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehearsal_crds::ActionType;
    use std::time::Duration;

    fn action(kind: ActionKind) -> PlannedAction {
        PlannedAction {
            step_index: 0,
            step_name: "1".into(),
            action_index: 0,
            action_type: ActionType::K8sScale,
            kind,
            comment: None,
        }
    }

    fn scale(name: &str) -> PlannedAction {
        action(ActionKind::Scale { name: name.into(), replicas: 1 })
    }

    #[test]
    fn scales_of_different_deployments_run_together() {
        let wait = || action(ActionKind::WaitAvailable { name: "a".into(), timeout: Duration::from_secs(1) });
        let apply = || action(ActionKind::Apply { manifest: json!({}) });
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(batches(&[scale("a"), scale("b"), scale("c")]), vec![0..3]);
        // The same Deployment twice: the second waits for the first, so the last one wins.
        assert_eq!(batches(&[scale("a"), scale("b"), scale("a")]), vec![0..2, 2..3]);
        assert_eq!(batches(&[apply(), scale("a"), scale("b"), wait(), scale("a")]), vec![0..1, 1..3, 3..4, 4..5]);
        assert_eq!(batches(&[wait(), wait()]), vec![0..1, 1..2]);
    }
}
