//! Deleting what a Simulation's runs left behind: the safety net when a driver died before its
//! own cleanup, and the work of the finalizer when a Simulation is deleted.
//!
//! Only objects that carry this Simulation's labels are touched, and namespaces are deleted with
//! a UID precondition so a namespace re-created meanwhile by someone else is left alone. Each
//! call starts the deletions that are still needed and reports what is not gone yet; the caller
//! retries until nothing is left, so an operator restart in the middle loses nothing.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Resource, ResourceExt};
use rehearsal_crds::keys::OWNED_BY_SIMULATION_LABEL;
use rehearsal_crds::{Scenario, Simulation, SimulationRoot};
use rehearsal_driver::scenario::apply::{KindKey, api_for, discover, kind_key};
use serde::de::DeserializeOwned;

use crate::error::{Context, Error, Result, is_not_found};
use crate::names;
use crate::settings::Settings;

/// What is still there; empty when everything is gone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers(pub Vec<String>);

impl Leftovers {
    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing is left, else a [`Error::Waiting`] listing what is.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = self.0.iter().take(5).map(String::as_str).collect();
        let more = self.0.len().saturating_sub(shown.len());
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        Err(Error::Waiting(format!("still deleting {}{tail}", shown.join(", "))))
    }
}

/// Deletes every object of `api` matching `selector` (with `params`) and returns the ones that
/// still exist, as "Kind name".
async fn delete_matching<K>(api: &Api<K>, selector: &str, params: &DeleteParams, kind: &str) -> Result<Vec<String>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .context(|| format!("list {kind}s labelled {selector}"))?;
    let mut left = vec![];
    for obj in list.items {
        let name = obj.name_any();
        let mut p = params.clone();
        if let Some(uid) = obj.meta().uid.clone() {
            p.preconditions = Some(Preconditions { uid: Some(uid), resource_version: None });
        }
        if obj.meta().deletion_timestamp.is_none() {
            match api.delete(&name, &p).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => continue,
                // A UID precondition that fails means a new object with this name: not ours to wait for.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(Error::kube(format!("delete {kind} {name}"), e)),
            }
        }
        left.push(format!("{kind} {name}"));
    }
    Ok(left)
}

/// The run's objects in the cluster: roots, virtual namespaces (trace runs, and a scenario
/// play's namespace when the play created it), and what a scenario play created. Returns what
/// is not gone yet.
pub async fn run_objects(client: &kube::Client, sim: &Simulation) -> Result<Leftovers> {
    let name = sim.name_any();
    let by_sim = format!("{OWNED_BY_SIMULATION_LABEL}={name}");
    let mut left = vec![];
    let roots: Api<SimulationRoot> = Api::all(client.clone());
    left.extend(delete_matching(&roots, &by_sim, &DeleteParams::foreground(), "SimulationRoot").await?);
    // Namespaces directly too: faster than waiting for the root's cascade, and they hold
    // everything a replay made.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    left.extend(delete_matching(&namespaces, &by_sim, &DeleteParams::background(), "Namespace").await?);

    if let Some(scenario_ref) = &sim.spec.source.scenario_ref {
        let scenarios: Api<Scenario> = Api::all(client.clone());
        if let Some(scenario) =
            scenarios.get_opt(&scenario_ref.name).await.context(|| format!("read Scenario {}", scenario_ref.name))?
        {
            left.extend(scenario_objects(client, &scenario, &by_sim).await?);
        }
    }
    Ok(Leftovers(left))
}

/// What a scenario play of this Simulation created and its driver did not delete: objects of
/// every kind the Scenario names (manifests, optional manifests, APPLY actions), found by the
/// Simulation's label (the driver puts it on everything it creates, with a play id of its own),
/// each deleted with its UID as precondition. Kinds the cluster does not serve are skipped.
async fn scenario_objects(client: &kube::Client, scenario: &Scenario, by_sim: &str) -> Result<Vec<String>> {
    let spec = &scenario.spec;
    let mut keys: Vec<KindKey> =
        spec.manifests.iter().chain(&spec.optional_manifests).filter_map(|m| kind_key(&m.0)).collect();
    for step in &spec.steps {
        keys.extend(
            step.actions.iter().filter_map(|a| a.data.as_ref()?.manifest.as_ref()).filter_map(|m| kind_key(&m.0)),
        );
    }
    keys.sort();
    keys.dedup();
    let bg = DeleteParams::background();
    let mut left = vec![];
    let mut seen = vec![];
    for key in keys {
        let kind = match discover(client, &key).await {
            Ok(Some(kind)) => kind,
            Ok(None) => continue,
            Err(e) => return Err(Error::Internal(e.to_string())),
        };
        if seen.contains(&kind.resource) {
            continue;
        }
        seen.push(kind.resource.clone());
        let api = api_for(client, &kind, &spec.namespace);
        match delete_matching(&api, by_sim, &bg, &kind.resource.kind).await {
            Ok(found) => left.extend(found),
            // The driver has no more rights than the operator (see config/rbac): a kind the
            // operator may not list, the driver could not have created.
            Err(Error::Kube { source: kube::Error::Api(s), .. }) if s.code == 403 => {
                tracing::warn!(kind = %kind.resource.kind, "cannot list it (forbidden); a driver could not have created it either");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(left)
}

/// The run's webhook configurations: deleted only once the run's objects are gone, because a
/// controller still making pods in a virtual namespace must not skip the webhook.
pub async fn webhook_configurations(client: &kube::Client, sim: &Simulation) -> Result<Leftovers> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let selector = format!("{OWNED_BY_SIMULATION_LABEL}={}", sim.name_any());
    Ok(Leftovers(delete_matching(&api, &selector, &DeleteParams::default(), "MutatingWebhookConfiguration").await?))
}

/// The driver Jobs (foreground: their pods go first).
pub async fn jobs(client: &kube::Client, settings: &Settings, sim: &Simulation) -> Result<Leftovers> {
    let api: Api<Job> = Api::namespaced(client.clone(), &settings.namespace);
    Ok(Leftovers(delete_matching(&api, &names::selector(&sim.name_any()), &DeleteParams::foreground(), "Job").await?))
}

/// The Service, the serving certificate's Secret and the trace copy.
pub async fn support_objects(client: &kube::Client, settings: &Settings, sim: &Simulation) -> Result<Leftovers> {
    let selector = names::selector(&sim.name_any());
    let ns = &settings.namespace;
    let bg = DeleteParams::background();
    let mut left = vec![];
    left.extend(delete_matching(&Api::<Service>::namespaced(client.clone(), ns), &selector, &bg, "Service").await?);
    left.extend(delete_matching(&Api::<Secret>::namespaced(client.clone(), ns), &selector, &bg, "Secret").await?);
    left.extend(delete_matching(&Api::<ConfigMap>::namespaced(client.clone(), ns), &selector, &bg, "ConfigMap").await?);
    Ok(Leftovers(left))
}

/// What the runs left, in order: the run objects first, then (once those are gone) the webhook
/// configurations and the support objects. Jobs are kept, for their logs.
pub async fn runs(client: &kube::Client, settings: &Settings, sim: &Simulation) -> Result<Leftovers> {
    let left = run_objects(client, sim).await?;
    if !left.is_empty() {
        return Ok(left);
    }
    let mut left = webhook_configurations(client, sim).await?;
    left.0.extend(support_objects(client, settings, sim).await?.0);
    Ok(left)
}

/// Everything of a Simulation: its Jobs and run objects first (both deletions started at once),
/// then the rest as [`runs`] does.
pub async fn everything(client: &kube::Client, settings: &Settings, sim: &Simulation) -> Result<Leftovers> {
    let mut left = jobs(client, settings, sim).await?;
    if left.is_empty() {
        return runs(client, settings, sim).await;
    }
    left.0.extend(run_objects(client, sim).await?.0);
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_name_what_is_left() {
        assert!(Leftovers::default().into_result().is_ok());
        let many = Leftovers((0..7).map(|i| format!("Namespace v-{i}")).collect());
        let msg = many.into_result().expect_err("waiting").to_string();
        assert_eq!(
            msg,
            "waiting: still deleting Namespace v-0, Namespace v-1, Namespace v-2, Namespace v-3, Namespace v-4 and 2 more"
        );
    }
}
