//! Starting the two controllers (Simulations and Scenarios) and running them until a shutdown
//! signal: the Simulation controller owns the driver Jobs and watches Scenarios, so a
//! Simulation waiting on a missing or invalid Scenario starts when it is fixed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use rehearsal_crds::{Scenario, Simulation};

use crate::controller::{self, Context, ScenarioContext};
use crate::metrics::Metrics;
use crate::names;
use crate::settings::Settings;

/// Runs both controllers until `shutdown` resolves; returns when they have stopped.
pub async fn controllers(
    client: kube::Client,
    settings: Settings,
    identity: &str,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let sims: Api<Simulation> = Api::all(client.clone());
    let jobs: Api<Job> = Api::namespaced(client.clone(), &settings.namespace);
    let scenarios: Api<Scenario> = Api::all(client.clone());
    let job_filter = watcher::Config::default().labels(&format!("{}={}", names::MANAGED_BY_LABEL, names::MANAGED_BY));

    // Both controllers' series show (at zero) before their first reconcile.
    metrics.init_controller("simulation");
    metrics.init_controller("scenario");
    let sim_controller = Controller::new(sims, watcher::Config::default());
    let store = sim_controller.store();
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: names::MANAGED_BY.into(), instance: Some(identity.to_string()) },
    );
    let ctx = Arc::new(Context::new(client.clone(), settings, recorder, metrics.clone(), store.clone()));
    let mapper_store = store.clone();
    let queue_store = store.clone();
    let sim_run = sim_controller
        // Not `.owns()`: that keys the owner by the Job's namespace, and a cluster-scoped
        // Simulation would then have two keys (with and without it) and be reconciled twice at
        // once. The mapper names it without a namespace, as its own watch does.
        .watches(jobs, job_filter, |job| controller::owner_of(&job))
        .watches(scenarios.clone(), watcher::Config::default(), move |scn| {
            controller::simulations_of(&mapper_store, &scn)
        })
        // A finished, deleted, suspended or stalled Simulation frees a slot: wake the queue.
        .watches(Api::<Simulation>::all(client.clone()), watcher::Config::default(), move |sim| {
            controller::queue_wakeups(&queue_store, &sim)
        })
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "simulation controller");
            }
        });

    let scenario_ctx = Arc::new(ScenarioContext { client: client.clone(), metrics: metrics.clone() });
    let scenario_run = Controller::new(scenarios, watcher::Config::default())
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(controller::reconcile_scenario, controller::scenario_error_policy, scenario_ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "scenario controller");
            }
        });

    // The per-phase gauges, from the cache: cheap, and current within a few seconds.
    let gauges = {
        let metrics = metrics.clone();
        let mut rx = stop_rx.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => controller::update_gauges(&store, &metrics),
                    _ = rx.wait_for(|s| *s) => break,
                }
            }
        }
    };

    let signal = async move {
        shutdown.await;
        tracing::info!("stopping the controllers");
        let _ = stop_tx.send(true);
    };
    tracing::info!("controllers started");
    futures::join!(sim_run, scenario_run, gauges, signal);
    tracing::info!("controllers stopped");
}
