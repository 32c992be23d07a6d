//! Deleting what a Simulation's runs left behind: the safety net when a driver died before its
//! own cleanup, and the work of the finalizer when a Simulation is deleted.
//!
//! Only objects that carry this Simulation's labels are touched, and namespaces are deleted with
//! a UID precondition so a namespace re-created meanwhile by someone else is left alone. Each
//! call starts the deletions that are still needed and reports what is not gone yet; the caller
//! retries until nothing is left, so an operator restart in the middle loses nothing.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Resource, ResourceExt};
use rehearsal_crds::keys::{OWNED_BY_SIMULATION_LABEL, SCENARIO_RUN_LABEL};
use rehearsal_crds::{Scenario, Simulation, SimulationRoot};
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

/// The run's objects in the cluster: roots, virtual namespaces (trace runs), and what a scenario
/// play labelled with its run id. Returns what is not gone yet.
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
            let run_id = rehearsal_driver::scenario::logs::run_id_value(
                scenario.spec.run_id.as_deref().unwrap_or(&scenario.name_any()),
            );
            let by_run = format!("{SCENARIO_RUN_LABEL}={run_id}");
            left.extend(delete_matching(&namespaces, &by_run, &DeleteParams::background(), "Namespace").await?);
            let ns = &scenario.spec.namespace;
            let bg = DeleteParams::background();
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
            left.extend(delete_matching(&deployments, &by_run, &bg, "Deployment").await?);
            let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            left.extend(delete_matching(&sets, &by_run, &bg, "StatefulSet").await?);
            let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
            left.extend(delete_matching(&pdbs, &by_run, &bg, "PodDisruptionBudget").await?);
        }
    }
    Ok(Leftovers(left))
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
