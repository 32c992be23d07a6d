//! `rehearsal-driver`: runs one run of a Simulation.

mod cli;
mod hooks;
mod replay;
mod status;
mod telemetry;
mod trace;
mod webhook;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        cli::Command::Replay(args) => {
            telemetry::init(&args.verbosity);
            let client = match kube::Client::try_default().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rehearsal-driver: cannot build a Kubernetes client (KUBECONFIG or in-cluster): {e}");
                    return ExitCode::FAILURE;
                }
            };
            match replay::run::run(client, &args).await {
                Ok(stats) => {
                    tracing::info!(applied = stats.applied, deleted = stats.deleted, "replay finished");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rehearsal-driver: replay of simulation {}: {e}", args.sim_name);
                    ExitCode::FAILURE
                }
            }
        }
    }
}
