//! `rehearsal-driver`: runs one run of a Simulation.

use rehearsal_driver::{cli, replay, telemetry, trace};
use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        cli::Command::Trace(cmd) => match trace_command(cmd).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rehearsal-driver: {e}");
                ExitCode::FAILURE
            }
        },
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

/// `trace check` and `trace synthetic`.
async fn trace_command(cmd: cli::TraceCommand) -> Result<(), String> {
    match cmd {
        cli::TraceCommand::Check { location } => {
            let bytes = trace::read(&location).await.map_err(|e| e.to_string())?;
            let size = bytes.len();
            let t = trace::Trace::parse(bytes, &location).map_err(|e| e.to_string())?;
            // Decode every event once more, as a replay would, so the figures cover that too.
            let mut objects = 0;
            for event in t.events() {
                let e = event.map_err(|e| e.to_string())?;
                objects += e.applied.len() + e.deleted.len();
            }
            let span = t.last_ts().zip(t.first_ts()).map(|(l, f)| l - f).unwrap_or(0);
            println!("{location}: trace format version {}, {size} bytes", t.version());
            println!("  {} events, {objects} objects, spanning {span} s", t.event_count());
            for (api_version, kind) in t.kinds() {
                println!("  kind {kind} ({api_version})");
            }
            Ok(())
        }
        cli::TraceCommand::Synthetic { output, objects, span_seconds, megabytes } => {
            let written = match megabytes {
                Some(mb) => {
                    trace::write_synthetic(&output, mb * 1_000_000).map_err(|e| format!("{}: {e}", output.display()))?
                }
                None => {
                    std::fs::write(&output, trace::synthetic(objects, span_seconds, 1_700_000_000))
                        .map_err(|e| format!("{}: {e}", output.display()))?;
                    objects
                }
            };
            println!("wrote {} ({written} objects)", output.display());
            Ok(())
        }
    }
}
