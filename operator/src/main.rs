//! `rehearsal-operator`: reconciles Simulations and Scenarios. This file only wires the parts:
//! flags, logging, the API client, the metrics and probe server, leader election, and the
//! controllers until SIGTERM/SIGINT (or until leadership is lost, when the process exits so the
//! Deployment restarts it as a standby).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rehearsal_operator::settings::Settings;
use rehearsal_operator::{cli, connect, leader, metrics::Metrics, run, shutdown, telemetry, web};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    telemetry::init(&args.log_level, args.log_format);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let client = match connect::connect().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("rehearsal-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let settings = Settings::from(&args);
    if let Err(err) = rehearsal_operator::webhook::cert_settings(&settings).validate() {
        eprintln!("rehearsal-operator: {err}");
        return ExitCode::from(2);
    }
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(web::Health::new());
    let server = match web::serve(args.metrics_address, metrics.clone(), health.clone()).await {
        Ok(s) => s,
        Err(err) => {
            eprintln!("rehearsal-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    health.set_ready(true);

    let mut lease_settings =
        leader::LeaderSettings::new(&args.namespace, &args.lease_name, Duration::from_secs(args.lease_duration));
    if let Some(id) = &args.identity {
        lease_settings.identity = id.clone();
    }
    let identity = lease_settings.identity.clone();
    let mut stop = Box::pin(shutdown::wait());

    let leadership = if args.leader_election {
        match leader::elect(client.clone(), lease_settings).await {
            Ok(l) => Some(l),
            Err(err) => {
                eprintln!("rehearsal-operator: {err}");
                server.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut leading = leadership.as_ref().map(leader::Leadership::subscribe);
    if let Some(rx) = leading.as_mut() {
        tracing::info!(%identity, "waiting to become the leader");
        tokio::select! {
            signal = &mut stop => {
                tracing::info!(%signal, "stopping before becoming the leader");
                finish(leadership, server).await;
                return ExitCode::SUCCESS;
            }
            won = rx.wait_for(|l| *l) => if won.is_err() {
                eprintln!("rehearsal-operator: leader election stopped");
                finish(leadership, server).await;
                return ExitCode::FAILURE;
            }
        }
    }
    metrics.set_leader(true);

    // Stop on a signal, or when leadership is lost (another replica may reconcile now).
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<bool>();
    let watch_leader = async move {
        let lost = match leading.as_mut() {
            Some(rx) => tokio::select! {
                signal = &mut stop => { tracing::info!(%signal, "stopping"); false }
                _ = rx.wait_for(|l| !*l) => { tracing::error!("lost leadership; stopping so that only the leader reconciles"); true }
            },
            None => {
                let signal = (&mut stop).await;
                tracing::info!(%signal, "stopping");
                false
            }
        };
        let _ = lost_tx.send(lost);
    };
    run::controllers(client, settings, &identity, metrics.clone(), watch_leader).await;
    let lost = lost_rx.await.unwrap_or(false);
    metrics.set_leader(false);
    finish(leadership, server).await;
    if lost { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

async fn finish(leadership: Option<leader::Leadership>, server: web::WebServer) {
    if let Some(l) = leadership
        && let Err(err) = l.release().await
    {
        tracing::warn!(error = %err, "cannot release the leader lease");
    }
    server.shutdown().await;
}
