//! Command-line flags of the operator.

use clap::{Parser, ValueEnum};

/// Reconciles rehearsal.dev Simulations and Scenarios.
#[derive(Parser, Debug)]
#[command(name = "rehearsal-operator", version, about)]
pub struct Args {
    /// Log filter, in tracing's EnvFilter syntax (e.g. "info", "rehearsal=debug,kube=warn").
    #[arg(long, env = "REHEARSAL_LOG", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "REHEARSAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
