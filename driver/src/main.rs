//! `rehearsal-driver`: runs one run of a Simulation. This file only wires the parts.

use std::process::ExitCode;

use clap::Parser;
use rehearsal_driver::{cli, commands};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    commands::run(cli, &mut std::io::stdout().lock()).await
}
