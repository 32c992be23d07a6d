//! `rehearsal-driver`: runs one run of a Simulation. This file only wires the parts.

use std::process::ExitCode;

use clap::Parser;
use rehearsal_driver::{cli, commands};

/// Watch events and API bodies are many 4-16 KB buffers; mimalloc serves them far cheaper than
/// glibc's malloc (see driver/Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    commands::run(cli, &mut std::io::stdout().lock()).await
}
