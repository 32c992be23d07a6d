//! Command-line flags of the driver.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Replays a recorded cluster trace, or plays a scaling scenario, onto virtual nodes, and
/// records what the cluster did.
#[derive(Parser, Debug)]
#[command(name = "rehearsal-driver", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The driver's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay a recorded cluster trace (SimKube format version 2) for a Simulation.
    Replay(Box<ReplayArgs>),
    /// Inspect or generate traces without a cluster.
    #[command(subcommand)]
    Trace(TraceCommand),
}

/// `rehearsal-driver trace ...`
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Read and fully validate a trace (every event decoded), then print what it holds.
    Check {
        /// The trace: file:///path, a plain path, s3://bucket/key, http:// or https://.
        location: String,
    },
    /// Write a synthetic msgpack trace (ConfigMaps and Deployments) for tests and benchmarks.
    Synthetic {
        /// Where to write it.
        output: PathBuf,
        /// Objects (applied and deleted) in the trace.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Seconds of recorded time the events span.
        #[arg(long, default_value_t = 100)]
        span_seconds: i64,
        /// Instead of --objects: write about this many megabytes.
        #[arg(long)]
        megabytes: Option<u64>,
    },
}

/// Flags of `rehearsal-driver replay`; the first ones keep the SimKube driver's names.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Name of the Simulation this run belongs to.
    #[arg(long)]
    pub sim_name: String,
    /// Namespace of the operator (where the driver runs).
    #[arg(long)]
    pub controller_ns: String,
    /// Prefix of the virtual namespaces: objects of namespace `ns` go to `<prefix>-ns`.
    #[arg(long)]
    pub virtual_ns_prefix: String,
    /// Port of the HTTPS admission webhook.
    #[arg(long, default_value_t = 8888)]
    pub admission_webhook_port: u16,
    /// Speed factor: 10 replays ten times faster than recorded.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// PEM certificate of the webhook listener.
    #[arg(long)]
    pub cert_path: PathBuf,
    /// PEM private key of the webhook listener.
    #[arg(long)]
    pub key_path: PathBuf,
    /// The trace: file:///path, a plain path, s3://bucket/key, http:// or https://.
    #[arg(long)]
    pub trace_path: String,
    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter expression).
    #[arg(short, long, default_value = "info")]
    pub verbosity: String,

    /// Index of this run within its Simulation (names the run's SimulationRoot).
    #[arg(long, default_value_t = 0)]
    pub run_index: u32,
    /// Address the webhook listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen_address: IpAddr,
    /// When set, the driver registers its own MutatingWebhookConfiguration calling this URL
    /// (e.g. https://127.0.0.1:8888/mutate); without it the operator registers the webhook.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// CA certificate (PEM) the API server uses to verify the webhook; default: --cert-path.
    #[arg(long)]
    pub webhook_ca_path: Option<PathBuf>,
    /// Requests to the API server in flight at once during the replay.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Write the replay's figures (counts, objects per second, lateness percentiles) as JSON here.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Seconds to wait for the run's objects to be deleted at the end.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub cleanup_timeout: u64,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{s} is not a speed: it must be a number greater than 0")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const REQUIRED: [&str; 13] = [
        "rehearsal-driver",
        "replay",
        "--sim-name",
        "s",
        "--controller-ns",
        "rehearsal",
        "--virtual-ns-prefix",
        "virtual",
        "--cert-path",
        "c.pem",
        "--key-path",
        "k.pem",
        "--trace-path=x",
    ];

    #[test]
    fn defaults_match_the_simkube_driver() {
        let cli = Cli::try_parse_from(REQUIRED).expect("parses");
        let Command::Replay(a) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!((a.admission_webhook_port, a.speed, a.verbosity.as_str()), (8888, 1.0, "info"));
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_flags_are_named() {
        for (extra, needle) in [
            (vec!["--speed", "0"], "0 is not a speed"),
            (vec!["--speed=-3"], "-3 is not a speed"),
            (vec!["--speed", "fast"], "\"fast\" is not a number"),
            (vec!["--admission-webhook-port", "70000"], "--admission-webhook-port"),
            (vec!["--concurrency", "0"], "--concurrency"),
        ] {
            let args: Vec<&str> = REQUIRED.iter().copied().chain(extra).collect();
            let err = Cli::try_parse_from(args).expect_err("rejected").to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let err =
            Cli::try_parse_from(["rehearsal-driver", "replay", "--sim-name", "s"]).expect_err("missing").to_string();
        assert!(err.contains("--controller-ns"), "{err}");
    }
}
