//! Command-line flags of the driver.

// The doc comments are clap's --help text, where `<simulation>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::scenario::placement::Placement;
use crate::trace::guard::TraceLocationPolicy;

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
    /// Play a scaling scenario (a Karpenter scenario directory, or a Scenario object) onto the
    /// cluster; `scenario convert DIR` prints a directory as a Scenario manifest.
    Scenario(Box<ScenarioCommand>),
    /// Inspect or generate traces without a cluster.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Rebuild summary.json and report.html of a run folder from its JSON lines (on disk, or
    /// s3://bucket/prefix/ where both files are written back).
    Report(ReportArgs),
    /// Write one report putting two runs side by side: the same plots overlaid, and every
    /// figure with its difference.
    Compare(CompareArgs),
    /// Upload a run folder kept locally (say after a failed upload): its manifest.json is
    /// written again, then every file goes to s3://bucket/prefix/, the manifest last.
    Upload(UploadArgs),
    /// Download a run folder from s3://bucket/prefix/ into a directory, to open its report.
    Download(DownloadArgs),
    /// Benchmark results (bench-results/*.json, written by make bench).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `rehearsal-driver bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Put two results files of one benchmark part side by side: per figure OLD, NEW, NEW/OLD
    /// and whether it got better or worse (and NEW's goals); exits 0 whatever changed.
    Compare {
        /// The earlier results file (e.g. a copy of bench-results/replay.json).
        old: PathBuf,
        /// The later one.
        new: PathBuf,
    },
}

/// `rehearsal-driver download s3://bucket/prefix/ DIR`
#[derive(Args, Debug, Clone)]
pub struct DownloadArgs {
    /// The run folder: s3://bucket/prefix/.
    pub location: String,
    /// Where to put its files (created if missing).
    pub dir: PathBuf,
    /// Region of the bucket [default: from the AWS configuration chain].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
}

/// `rehearsal-driver upload DIR s3://bucket/prefix/`
#[derive(Args, Debug, Clone)]
pub struct UploadArgs {
    /// The run folder.
    pub dir: PathBuf,
    /// Where it goes: s3://bucket/prefix/.
    pub location: String,
    /// Region of the bucket [default: from the AWS configuration chain].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
}

/// `rehearsal-driver report LOCATION`
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The run folder: a directory, or s3://bucket/prefix/.
    pub location: String,
    /// Region of the bucket [default: from the AWS configuration chain].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
}

/// `rehearsal-driver compare A B`
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Run A (drawn solid): a directory, or s3://bucket/prefix/.
    pub a: String,
    /// Run B (drawn dashed): a directory, or s3://bucket/prefix/.
    pub b: String,
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "compare.html")]
    pub out: PathBuf,
    /// Region of the bucket(s) [default: from the AWS configuration chain].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
}

/// `rehearsal-driver trace ...`
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Read and fully validate a trace (every event decoded), then print what it holds.
    Check {
        /// The trace: file:///path, a plain path, s3://bucket/key, http:// or https://.
        location: String,
    },
    /// Write a synthetic trace (ConfigMaps and Deployments) for tests and benchmarks.
    Synthetic {
        /// Where to write it.
        output: PathBuf,
        /// Objects (applied and deleted) in the trace.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Seconds of recorded time the events span.
        #[arg(long, default_value_t = 100)]
        span_seconds: i64,
        /// Instead of --objects: write about this many megabytes (msgpack only).
        #[arg(long, conflicts_with = "json")]
        megabytes: Option<u64>,
        /// Write SimKube's JSON form instead of msgpack (benchmarks read it back).
        #[arg(long)]
        json: bool,
    },
}

/// Where a run's audit events come from (replay and scenario alike). Neither given: the run
/// records everything else and says once that audit events are not available.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditArgs {
    /// The API server's audit log (JSON lines, `--audit-log-path`), followed from the run's
    /// start; rotation and truncation are followed too.
    #[arg(long, env = "AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Receive the API server's audit webhook batches on http://ADDR:PORT/audit while the run
    /// lasts (the API server's `--audit-webhook-config-file` points there).
    #[arg(long, env = "AUDIT_WEBHOOK_LISTEN", value_name = "ADDR:PORT")]
    pub audit_webhook_listen: Option<SocketAddr>,
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
    /// Prefix of the virtual namespaces: objects of namespace `ns` go to `<prefix>-ns`
    /// [default: the Simulation's spec.virtualNamespacePrefix; the flag overrides it].
    #[arg(long)]
    pub virtual_ns_prefix: Option<String>,
    /// Port of the HTTPS admission webhook.
    #[arg(long, default_value_t = 8888)]
    pub admission_webhook_port: u16,
    /// Speed factor: 10 replays ten times faster than recorded; from 0.001 to 10000
    /// [default: the Simulation's spec.speed; the flag overrides it].
    #[arg(long, value_parser = parse_speed)]
    pub speed: Option<f64>,
    /// PEM certificate of the webhook listener.
    #[arg(long)]
    pub cert_path: PathBuf,
    /// PEM private key of the webhook listener.
    #[arg(long)]
    pub key_path: PathBuf,
    /// The trace: file:///path, a plain path, s3://bucket/key, http:// or https://.
    #[arg(long)]
    pub trace_path: String,
    /// A file trace (file:///path or a plain path) must resolve, symlinks and `..` followed, to a
    /// file inside this directory; the operator sets it for Simulations' file traces [default:
    /// any path the driver can read].
    #[arg(long, value_name = "DIR")]
    pub trace_file_root: Option<PathBuf>,
    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter expression).
    #[arg(short, long, default_value = "info")]
    pub verbosity: String,
    /// Where the run folder goes: LOG_DIR/<simulation>/<run index>/ (collectors' JSON lines,
    /// summary.json, report.html, manifest.json).
    #[arg(long, env = "LOG_DIR", value_name = "DIR", default_value = "./rehearsal-logs")]
    pub log_dir: PathBuf,
    /// Bucket the run folder is uploaded to, under [S3_PREFIX/]<simulation>/<run index>/;
    /// unset: the folder stays local [default: the Simulation's spec.artifacts.bucket].
    #[arg(long, env = "S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix in the bucket [default: the Simulation's spec.artifacts.prefix].
    #[arg(long, env = "S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// Region of the bucket [default: the Simulation's spec.artifacts.region, else the AWS chain].
    #[arg(long, env = "S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Audit event sources.
    #[command(flatten)]
    pub audit: AuditArgs,

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
    /// Requests to the API server in flight at once during the replay. Objects recorded at the
    /// same second are sent together at their deadline up to this many; over HTTP/2 (what
    /// kube-apiserver offers) they share one connection, over HTTP/1.1 (a kubeconfig with a
    /// proxy) each one is a connection.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Write the replay's figures (counts, objects per second, lateness percentiles) as JSON here.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Seconds to wait for the run's objects to be deleted at the end.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub cleanup_timeout: u64,
}

impl ReplayArgs {
    /// The speed in effect (resolved from the Simulation when the flag was not given).
    pub fn speed(&self) -> f64 {
        self.speed.unwrap_or(1.0)
    }

    /// The virtual namespace prefix in effect (resolved from the Simulation when not given).
    pub fn prefix(&self) -> &str {
        self.virtual_ns_prefix.as_deref().unwrap_or("virtual")
    }

    /// What the trace location may point at: the default limits, confined to --trace-file-root.
    pub fn trace_policy(&self) -> TraceLocationPolicy {
        TraceLocationPolicy { file_root: self.trace_file_root.clone(), ..TraceLocationPolicy::default() }
    }
}

/// `rehearsal-driver scenario [FLAGS]` plays a scenario; `rehearsal-driver scenario convert DIR`
/// converts one.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ScenarioCommand {
    /// Convert instead of playing.
    #[command(subcommand)]
    pub command: Option<ScenarioSubcommand>,
    /// Flags of a play.
    #[command(flatten)]
    pub play: ScenarioArgs,
}

/// `rehearsal-driver scenario ...` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum ScenarioSubcommand {
    /// Print a Karpenter scenario directory as a Scenario manifest (YAML, manifests embedded),
    /// for `kubectl apply -f -`.
    Convert {
        /// The scenario directory (config.yml, steps.yml, deployments/, nodepools/).
        dir: PathBuf,
        /// Name of the Scenario. Default: the run_id (or directory name), made a valid name.
        #[arg(long)]
        name: Option<String>,
        /// Namespace the Scenario plays in.
        #[arg(long, default_value = crate::scenario::DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

/// Flags of `rehearsal-driver scenario`. The ones with a variable fall back to the Karpenter
/// scenario driver's environment; an empty variable counts as unset. Checked by
/// [`crate::scenario::settings::resolve`], which names the flag and variable of a bad value.
#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// Karpenter scenario directory (config.yml, steps.yml, manifests) to play.
    #[arg(long, env = "SCENARIO", value_name = "DIR")]
    pub scenario: Option<PathBuf>,
    /// Instead of --scenario: a Scenario object (cluster-scoped) to play, by name.
    #[arg(long, value_name = "NAME")]
    pub scenario_ref: Option<String>,
    /// Simulation this run belongs to: its status gets the run's stage conditions and progress.
    #[arg(long, value_name = "NAME")]
    pub sim_name: Option<String>,
    /// Namespace the scenario plays in, created if missing [default: karpenter-test, or the
    /// Scenario's spec.namespace with --scenario-ref].
    #[arg(long, env = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Directory of the run logs (LOG_DIR/<run id>/<start time>/) [default: ./scenario-logs].
    #[arg(long, env = "LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Kubeconfig file(s), ':'-separated [default: in-cluster, then ~/.kube/config].
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// Bucket the logs are uploaded to (s3://<bucket>/<run id>/<start time>/); unset: logs
    /// stay local. AWS_ENDPOINT_URL and the standard AWS credential chain apply.
    #[arg(long, env = "S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// Region of the bucket [default: us-west-2].
    #[arg(long, env = "S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Speed factor: the timestep is divided by it (15 plays a 15 s timestep every second); from
    /// 0.001 to 10000.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed, allow_negative_numbers = true)]
    pub speed: f64,
    /// Where pods run: `virtual` puts every pod template on the KWOK nodes (toleration
    /// kwok-provider, node selector type=virtual instead of karpenter.sh/nodepool); `keep`
    /// applies the manifests as written (clusters with Karpenter and its KWOK provider).
    #[arg(long, value_enum, default_value_t = Placement::Virtual)]
    pub placement: Placement,
    /// Seconds to wait for the scenario's Deployments to be available before the first step.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ready_timeout: u64,
    /// Seconds to wait for everything the run created to be deleted at the end.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub cleanup_timeout: u64,
    /// Leave what the run created in the cluster (no cleanup).
    #[arg(long)]
    pub keep: bool,
    /// Take over objects the scenario names that exist already (made by someone else, or left
    /// by an ended play) instead of refusing the play. DANGER: the play then changes them and
    /// deletes them at the end. Never takes over a running play's objects.
    #[arg(long)]
    pub adopt: bool,
    /// This play's id, written on everything it creates (label rehearsal.dev/play) [default: a
    /// fresh random id]. Lowercase letters, digits and '-', at most 48 characters.
    #[arg(long, value_name = "ID")]
    pub play_id: Option<String>,
    /// With --sim-name: the run's index, so the logs go to LOG_DIR/<simulation>/<index>/ and
    /// s3://<bucket>/[S3_PREFIX/]<simulation>/<index>/ (the operator sets it); without it, the
    /// Karpenter driver's <run id>/<start time>/.
    #[arg(long, value_name = "N")]
    pub run_index: Option<u32>,
    /// Key prefix in the bucket for a Simulation's runs (with --run-index).
    #[arg(long, env = "S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// Audit event sources.
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter expression).
    #[arg(short, long, default_value = "info")]
    pub verbosity: String,
}

/// A speed within the driver's bounds (see `limits`): 1e-20 would make every offset overflow.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if crate::limits::check_speed("--speed", v).is_ok() => Ok(v),
        Ok(_) => Err(format!("{s} is not a speed: it must be a number from 0.001 to 10000")),
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
        assert_eq!((a.admission_webhook_port, a.speed, a.verbosity.as_str()), (8888, None, "info"));
        assert_eq!(a.virtual_ns_prefix.as_deref(), Some("virtual"));
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn trace_file_root_confines_the_replay() {
        let cli = Cli::try_parse_from(REQUIRED).expect("parses");
        let Command::Replay(a) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!(a.trace_policy(), TraceLocationPolicy::default());

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.json"), b"inside").expect("write");
        let root = dir.path().to_str().expect("utf-8 path");
        let args: Vec<&str> = REQUIRED.iter().copied().chain(["--trace-file-root", root]).collect();
        let Command::Replay(a) = Cli::try_parse_from(args).expect("parses").command else {
            panic!("parsed as another subcommand")
        };
        let policy = a.trace_policy();
        assert_eq!(policy.file_root.as_deref(), Some(dir.path()));
        assert_eq!(policy.max_bytes, TraceLocationPolicy::default().max_bytes);
        let inside = format!("file://{root}/t.json");
        assert_eq!(crate::trace::read_with_policy(&inside, &policy).await.expect("inside the root"), b"inside");
        for outside in ["file:///etc/passwd", "/etc/passwd", &format!("{root}/../../etc/passwd")] {
            let err = crate::trace::read_with_policy(outside, &policy).await.expect_err("refused").to_string();
            assert!(err.contains("is outside the allowed trace directory"), "{outside}: {err}");
        }
    }

    #[test]
    fn bad_flags_are_named() {
        for (extra, needle) in [
            (vec!["--speed", "0"], "0 is not a speed"),
            (vec!["--speed=-3"], "-3 is not a speed"),
            (vec!["--speed", "1e-20"], "1e-20 is not a speed: it must be a number from 0.001 to 10000"),
            (vec!["--speed", "10001"], "10001 is not a speed"),
            (vec!["--speed", "inf"], "inf is not a speed"),
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

    #[test]
    fn report_and_compare() {
        let cli = Cli::try_parse_from(["rehearsal-driver", "report", "s3://b/sim/0/"]).expect("parses");
        let Command::Report(r) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!((r.location.as_str(), r.s3_region), ("s3://b/sim/0/", None));
        let cli = Cli::try_parse_from(["rehearsal-driver", "compare", "a", "b", "--out", "x.html"]).expect("parses");
        let Command::Compare(c) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!((c.a.as_str(), c.b.as_str(), c.out), ("a", "b", PathBuf::from("x.html")));
        let cli = Cli::try_parse_from(["rehearsal-driver", "compare", "a", "b"]).expect("parses");
        let Command::Compare(c) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!(c.out, PathBuf::from("compare.html"));
        let err = Cli::try_parse_from(["rehearsal-driver", "compare", "a"]).expect_err("B is needed").to_string();
        assert!(err.contains("<B>"), "{err}");
    }

    #[tokio::test]
    async fn bench_compare() {
        let cli = Cli::try_parse_from(["rehearsal-driver", "bench", "compare", "a.json", "b.json"]).expect("parses");
        let Command::Bench(BenchCommand::Compare { old, new }) = cli.command else { panic!("not bench compare") };
        assert_eq!((old, new), (PathBuf::from("a.json"), PathBuf::from("b.json")));
        let err = Cli::try_parse_from(["rehearsal-driver", "bench", "compare", "a.json"]).expect_err("NEW is needed");
        assert!(err.to_string().contains("<NEW>"), "{err}");

        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/bench/replay.json");
        let cli = Cli::try_parse_from(["rehearsal-driver", "bench", "compare", fixture, fixture]).expect("parses");
        let mut out = Vec::new();
        let exit = crate::commands::run(cli, &mut out).await;
        assert_eq!(format!("{exit:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("rss.rss_to_file_ratio") && text.contains("< 3: met"), "{text}");

        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{").expect("written");
        let bad = bad.display().to_string();
        let cli = Cli::try_parse_from(["rehearsal-driver", "bench", "compare", fixture, &bad]).expect("parses");
        let mut out = Vec::new();
        let exit = crate::commands::run(cli, &mut out).await;
        assert_eq!(format!("{exit:?}"), format!("{:?}", std::process::ExitCode::from(2)));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn upload_and_download_name_bad_locations() {
        let cli = Cli::try_parse_from(["rehearsal-driver", "upload", "run", "s3://b/p/"]).expect("parses");
        let Command::Upload(u) = cli.command else { panic!("parsed as another subcommand") };
        assert_eq!((u.dir, u.location.as_str()), (PathBuf::from("run"), "s3://b/p/"));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        for (args, code) in [
            (vec!["rehearsal-driver", "upload", &d, "https://b/p/"], 2),
            (vec!["rehearsal-driver", "upload", &d, "s3://b"], 2),
            (vec!["rehearsal-driver", "upload", "/nonexistent/run", "s3://b/p/"], 2),
            (vec!["rehearsal-driver", "download", "s3://b/../x/", &d], 2),
            (vec!["rehearsal-driver", "download", "/local", &d], 2),
        ] {
            let cli = Cli::try_parse_from(args.clone()).expect("parses");
            let mut out = Vec::new();
            let exit = crate::commands::run(cli, &mut out).await;
            assert_eq!(format!("{exit:?}"), format!("{:?}", std::process::ExitCode::from(code)), "{args:?}");
        }
    }

    #[test]
    fn scenario_flags_and_convert() {
        let cli = Cli::try_parse_from([
            "rehearsal-driver",
            "scenario",
            "--scenario",
            "dir",
            "--speed",
            "15",
            "--placement",
            "keep",
            "--keep",
            "-v",
            "debug",
        ])
        .expect("parses");
        let Command::Scenario(cmd) = cli.command else { panic!("parsed as another subcommand") };
        assert!(cmd.command.is_none());
        let p = cmd.play;
        assert_eq!(p.scenario_ref, None);
        assert_eq!((p.speed, p.placement, p.keep, p.verbosity.as_str()), (15.0, Placement::Keep, true, "debug"));
        assert_eq!((p.ready_timeout, p.cleanup_timeout), (300, 300));

        let cli =
            Cli::try_parse_from(["rehearsal-driver", "scenario", "convert", "dir", "--name", "n"]).expect("parses");
        let Command::Scenario(cmd) = cli.command else { panic!("parsed as another subcommand") };
        let Some(ScenarioSubcommand::Convert { dir, name, namespace }) = cmd.command else { panic!("not convert") };
        assert_eq!((dir, name.as_deref(), namespace.as_str()), (PathBuf::from("dir"), Some("n"), "karpenter-test"));

        for (args, needle) in [
            (vec!["--speed", "0"], "0 is not a speed"),
            (vec!["--speed", "-1"], "-1 is not a speed"),
            (vec!["--placement", "karpenter"], "--placement"),
            (vec!["--ready-timeout", "0"], "--ready-timeout"),
            (vec!["--speed", "1e-20"], "1e-20 is not a speed"),
            (vec!["--ready-timeout", "86401"], "--ready-timeout"),
            (vec!["--ready-timeout", "18446744073709551615"], "--ready-timeout"),
        ] {
            let all: Vec<&str> = ["rehearsal-driver", "scenario", "--scenario", "d"].into_iter().chain(args).collect();
            let err = Cli::try_parse_from(all).expect_err("rejected").to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let err = Cli::try_parse_from(["rehearsal-driver", "scenario", "--keep", "convert", "d"])
            .expect_err("flags of a play do not go with convert")
            .to_string();
        assert!(err.contains("convert"), "{err}");
    }
}
