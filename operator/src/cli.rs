//! Command-line flags of the operator, turned into plain [`Settings`](crate::settings::Settings).
// The flags' help shows clap placeholders such as `<host>`, which rustdoc takes for HTML tags.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::trace_files;

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
    /// Namespace the operator runs in: driver Jobs, their Services and Secrets, the CA and the
    /// leader-election Lease live there.
    #[arg(long, env = "POD_NAMESPACE", default_value = "rehearsal-system")]
    pub namespace: String,
    /// Identity of this replica for leader election [default: <host>-<pid>-<random>; the
    /// Deployment sets the pod name].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Image of the driver Jobs (a Simulation's spec.driver.image overrides it).
    #[arg(long, env = "REHEARSAL_DRIVER_IMAGE", default_value = "ghcr.io/rehearsal-dev/rehearsal-driver:0.1.0")]
    pub driver_image: String,
    /// Service account of the driver Jobs (a Simulation's spec.driver.serviceAccountName overrides it).
    #[arg(long, default_value = "rehearsal-driver")]
    pub driver_service_account: String,
    /// Simulations running at once; the others wait in creation order. Runs share the virtual
    /// nodes, so the default is one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_active: u32,
    /// Seconds a driver may spend deleting what its run created; its pod gets this plus a
    /// margin as termination grace period.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cleanup_timeout: u64,
    /// Run the preRun/postRun hooks of Simulations. Creating a Simulation with hooks means running
    /// its commands in the driver pod as the driver's service account; with false, such a
    /// Simulation is Stalled (HooksNotAllowed) instead.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_hooks: bool,
    /// Directory of trace files: a Simulation's file:// trace (or plain path) must name a file
    /// inside it, and its driver refuses anything resolving elsewhere. Unset, such a Simulation
    /// is Stalled (FileTracesDisabled).
    #[arg(long, env = "REHEARSAL_TRACE_FILE_ROOT", value_name = "DIR", value_parser = trace_files::parse_root)]
    pub trace_file_root: Option<PathBuf>,
    /// PersistentVolumeClaim in the operator's namespace, mounted read-only at --trace-file-root
    /// in the replay Jobs of file traces, so traces can be offered from a volume.
    #[arg(long, env = "REHEARSAL_TRACE_FILE_CLAIM", value_name = "NAME", requires = "trace_file_root",
        value_parser = trace_files::parse_claim)]
    pub trace_file_claim: Option<String>,
    /// The API server's audit log (JSON lines) as driver pods can read it, passed to every
    /// driver Job as AUDIT_LOG: runs then record their audit events. Unset: runs say that
    /// audit events are not available (managed clusters keep them outside the cluster).
    #[arg(long, env = "REHEARSAL_DRIVER_AUDIT_LOG", value_name = "PATH")]
    pub driver_audit_log: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,
    /// Elect a leader among replicas through a Lease; only the leader reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "rehearsal-operator")]
    pub lease_name: String,
    /// Seconds a leader's lease lasts without renewal: a standby takes over within this after
    /// the leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration: u64,
    /// Validity of the operator's webhook CA, in days.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub ca_validity_days: u64,
    /// Validity of a driver's serving certificate, in hours; renewed when a third is left.
    #[arg(long, default_value_t = 24 * 90, value_parser = clap::value_parser!(u64).range(1..=876_000))]
    pub serving_cert_validity_hours: u64,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn defaults_and_bad_values() {
        Args::command().debug_assert();
        let a = Args::try_parse_from(["rehearsal-operator"]).expect("defaults parse");
        assert_eq!((a.max_active, a.cleanup_timeout, a.leader_election), (1, 300, true));
        for (flag, value) in [("--max-active", "0"), ("--cleanup-timeout", "0"), ("--lease-duration", "1")] {
            let err = Args::try_parse_from(["rehearsal-operator", flag, value]).expect_err("rejected").to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
        let a = Args::try_parse_from(["rehearsal-operator", "--leader-election", "false"]).expect("parses");
        assert!(!a.leader_election);
    }

    #[test]
    fn trace_file_flags() {
        let a = Args::try_parse_from(["rehearsal-operator"]).expect("defaults parse");
        assert_eq!((a.trace_file_root, a.trace_file_claim), (None, None));
        let a = Args::try_parse_from([
            "rehearsal-operator",
            "--trace-file-root",
            "/traces/",
            "--trace-file-claim",
            "rehearsal-traces",
        ])
        .expect("parses");
        let s = crate::settings::Settings::from(&a);
        assert_eq!(s.trace_file_root, Some(PathBuf::from("/traces")));
        assert_eq!(s.trace_file_claim.as_deref(), Some("rehearsal-traces"));
        for args in [
            vec!["--trace-file-claim", "rehearsal-traces"],
            vec!["--trace-file-root", "traces"],
            vec!["--trace-file-root", "/"],
            vec!["--trace-file-root", "/etc"],
            vec!["--trace-file-root", "/traces", "--trace-file-claim", "Bad_Name"],
        ] {
            let all: Vec<&str> = ["rehearsal-operator"].into_iter().chain(args.iter().copied()).collect();
            let err = Args::try_parse_from(all).expect_err("rejected").to_string();
            assert!(err.contains("--trace-file-"), "{args:?}: {err}");
        }
    }
}
