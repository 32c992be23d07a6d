//! `rehearsal-operator`: reconciles Simulations and Scenarios.
//!
//! Until the controller lands, the binary starts, connects to the API server, logs what it
//! found and stops cleanly on SIGTERM or SIGINT; it reconciles nothing.

use rehearsal_operator::{cli, connect, shutdown, telemetry};

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    telemetry::init(&args.log_level, args.log_format);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let client = match connect::connect().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("rehearsal-operator: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!("ready; no controllers are enabled in this version, waiting for a stop signal");
    let signal = shutdown::wait().await;
    tracing::info!(%signal, "stopping");
    drop(client);
    std::process::ExitCode::SUCCESS
}
