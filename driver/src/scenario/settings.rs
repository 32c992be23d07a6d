//! The settings of one play, resolved from the flags and their environment fallbacks.
//!
//! clap reads the flags and the Karpenter driver's variables (`SCENARIO`, `NAMESPACE`,
//! `LOG_DIR`, `KUBECONFIG`, `S3_BUCKET`, `S3_REGION`); [`resolve`] applies the defaults and
//! checks the values, so a bad one gives one line naming both the flag and the variable. An
//! empty variable counts as unset: CI systems often define a variable with an empty value.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ScenarioArgs;

use super::placement::Placement;

/// `NAMESPACE` when neither the flag, the variable nor the Scenario says.
pub const DEFAULT_NAMESPACE: &str = super::convert::DEFAULT_NAMESPACE;
/// `LOG_DIR` when unset (the Karpenter wrapper's default).
pub const DEFAULT_LOG_DIR: &str = "./scenario-logs";
/// `S3_REGION` when unset (the Karpenter driver's default).
pub const DEFAULT_S3_REGION: &str = "us-west-2";

/// A flag or variable with a value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// Nothing to play.
    #[error("no scenario: give --scenario DIR (or set SCENARIO), or --scenario-ref NAME")]
    NoScenario,
    /// Two things to play.
    #[error(
        "--scenario (or SCENARIO) {dir:?} and --scenario-ref {name:?} are both given; give one (unset SCENARIO to play a Scenario object)"
    )]
    BothSources {
        /// The directory given.
        dir: String,
        /// The Scenario name given.
        name: String,
    },
    /// A value breaks the rule of its flag.
    #[error("{flag} (or {variable}) {value:?}: {rule}")]
    BadValue {
        /// The flag.
        flag: &'static str,
        /// The variable it falls back to.
        variable: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A value of a flag without a variable breaks its rule.
    #[error("{flag} {value:?}: {rule}")]
    BadFlag {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
}

/// What a play reads its scenario from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Karpenter scenario directory.
    Directory(PathBuf),
    /// A Scenario object, by name.
    Reference(String),
}

/// Where the logs go in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    /// The bucket.
    pub bucket: String,
    /// Its region.
    pub region: String,
}

/// Everything a play needs to know before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The scenario.
    pub source: Source,
    /// The Simulation the run reports to.
    pub sim_name: Option<String>,
    /// Namespace given by flag or variable; None: the Scenario's (a directory's: karpenter-test).
    pub namespace: Option<String>,
    /// Root of the logs.
    pub log_dir: PathBuf,
    /// Kubeconfig path list (':'-separated); None: in-cluster, then ~/.kube/config.
    pub kubeconfig: Option<String>,
    /// Upload target; None: logs stay local.
    pub s3: Option<S3Target>,
    /// Speed factor (> 0).
    pub speed: f64,
    /// Where pods run.
    pub placement: Placement,
    /// Deadline for the Deployments to become available before the first step.
    pub ready_timeout: Duration,
    /// Deadline for the cleanup.
    pub cleanup_timeout: Duration,
    /// Skip the cleanup.
    pub keep: bool,
    /// Take over existing objects the scenario names instead of refusing them (`--adopt`).
    pub adopt: bool,
    /// The play's id (`--play-id`); None: a fresh one.
    pub play_id: Option<String>,
    /// With `sim_name`: the run's index, for the `<simulation>/<index>/` layout.
    pub run_index: Option<u32>,
    /// Key prefix of a Simulation's runs in the bucket.
    pub s3_prefix: Option<String>,
    /// The API server's audit log.
    pub audit_log: Option<PathBuf>,
    /// Where to receive the API server's audit webhook.
    pub audit_webhook_listen: Option<std::net::SocketAddr>,
}

/// Resolves and checks the flags of `rehearsal-driver scenario`.
pub fn resolve(args: &ScenarioArgs) -> Result<Settings, SettingsError> {
    let dir = args.scenario.as_ref().filter(|d| !d.as_os_str().is_empty());
    let reference = set(&args.scenario_ref);
    let source = match (dir, reference) {
        (Some(dir), Some(name)) => {
            return Err(SettingsError::BothSources { dir: dir.display().to_string(), name: name.to_string() });
        }
        (Some(dir), None) => Source::Directory(dir.clone()),
        (None, Some(name)) => {
            if !is_dns_subdomain(name) {
                return Err(SettingsError::BadFlag {
                    flag: "--scenario-ref",
                    value: name.to_string(),
                    rule: "a Scenario name is a DNS subdomain (lowercase letters, digits, '-' and '.')",
                });
            }
            Source::Reference(name.to_string())
        }
        (None, None) => return Err(SettingsError::NoScenario),
    };
    let sim_name = match set(&args.sim_name) {
        Some(name) if !is_dns_subdomain(name) => {
            return Err(SettingsError::BadFlag {
                flag: "--sim-name",
                value: name.to_string(),
                rule: "a Simulation name is a DNS subdomain (lowercase letters, digits, '-' and '.')",
            });
        }
        other => other.map(str::to_string),
    };
    let namespace = match set(&args.namespace) {
        Some(ns) if !is_dns_label(ns) => {
            return Err(SettingsError::BadValue {
                flag: "--namespace",
                variable: "NAMESPACE",
                value: ns.to_string(),
                rule: "must be a DNS label (lowercase letters, digits and '-', at most 63 characters)",
            });
        }
        other => other.map(str::to_string),
    };
    let log_dir = args
        .log_dir
        .as_ref()
        .filter(|d| !d.as_os_str().is_empty())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR));
    let region = set(&args.s3_region).unwrap_or(DEFAULT_S3_REGION);
    if !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(SettingsError::BadValue {
            flag: "--s3-region",
            variable: "S3_REGION",
            value: region.to_string(),
            rule: "must be a region name such as us-west-2",
        });
    }
    let s3 = match set(&args.s3_bucket) {
        None => None,
        Some(bucket) if bucket.contains("://") || bucket.contains('/') => {
            return Err(SettingsError::BadValue {
                flag: "--s3-bucket",
                variable: "S3_BUCKET",
                value: bucket.to_string(),
                rule: "give the bucket name only, without s3:// or a path",
            });
        }
        Some(bucket) if !is_bucket_name(bucket) => {
            return Err(SettingsError::BadValue {
                flag: "--s3-bucket",
                variable: "S3_BUCKET",
                value: bucket.to_string(),
                rule: "must be a bucket name (3 to 63 lowercase letters, digits, '.' and '-')",
            });
        }
        Some(bucket) => Some(S3Target { bucket: bucket.to_string(), region: region.to_string() }),
    };
    // clap's value parser already refused these; checked again because Settings may be built
    // from other callers' values.
    if crate::limits::check_speed("--speed", args.speed).is_err() {
        return Err(SettingsError::BadFlag {
            flag: "--speed",
            value: args.speed.to_string(),
            rule: "must be a number from 0.001 to 10000",
        });
    }
    // Also a flag clap bounds; a wait of u64::MAX seconds would overflow a deadline.
    if !(1..=crate::limits::MAX_TIMEOUT_SECONDS as u64).contains(&args.ready_timeout) {
        return Err(SettingsError::BadFlag {
            flag: "--ready-timeout",
            value: args.ready_timeout.to_string(),
            rule: "must be from 1 to 86400 seconds",
        });
    }
    let play_id = set(&args.play_id).map(str::to_string);
    if let Some(id) = &play_id
        && let Some(rule) = super::ownership::play_id_problem(id)
    {
        return Err(SettingsError::BadFlag { flag: "--play-id", value: id.clone(), rule });
    }
    if let (Some(index), None) = (args.run_index, &sim_name) {
        return Err(SettingsError::BadFlag {
            flag: "--run-index",
            value: index.to_string(),
            rule: "needs --sim-name: it numbers a Simulation's runs",
        });
    }
    Ok(Settings {
        source,
        sim_name,
        namespace,
        log_dir,
        kubeconfig: set(&args.kubeconfig).map(str::to_string),
        s3,
        speed: args.speed,
        placement: args.placement,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        cleanup_timeout: Duration::from_secs(args.cleanup_timeout.max(1)),
        keep: args.keep,
        adopt: args.adopt,
        play_id,
        run_index: args.run_index,
        s3_prefix: set(&args.s3_prefix).map(str::to_string),
        audit_log: args.audit.audit_log.clone(),
        audit_webhook_listen: args.audit.audit_webhook_listen,
    })
}

/// The value when given and not empty.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A namespace name: RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An object name: RFC 1123 subdomain.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An S3 bucket name (the common rules; AWS refuses a few more).
fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags as clap gives them with nothing set.
    fn args() -> ScenarioArgs {
        ScenarioArgs {
            scenario: None,
            scenario_ref: None,
            sim_name: None,
            namespace: None,
            log_dir: None,
            kubeconfig: None,
            s3_bucket: None,
            s3_region: None,
            speed: 1.0,
            placement: Placement::Virtual,
            ready_timeout: 300,
            cleanup_timeout: 300,
            keep: false,
            adopt: false,
            play_id: None,
            run_index: None,
            s3_prefix: None,
            audit: crate::cli::AuditArgs::default(),
            verbosity: "info".into(),
        }
    }

    fn with_dir() -> ScenarioArgs {
        ScenarioArgs { scenario: Some("scn".into()), ..args() }
    }

    #[test]
    fn defaults_are_the_karpenter_drivers() {
        let s = resolve(&with_dir()).unwrap();
        assert_eq!(s.source, Source::Directory("scn".into()));
        assert_eq!(s.namespace, None);
        assert_eq!(s.log_dir, PathBuf::from("./scenario-logs"));
        assert_eq!((s.s3, s.kubeconfig, s.sim_name), (None, None, None));
        assert_eq!((s.speed, s.placement, s.keep), (1.0, Placement::Virtual, false));
        assert_eq!(s.ready_timeout, Duration::from_secs(300));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let a = ScenarioArgs {
            namespace: Some(String::new()),
            log_dir: Some(PathBuf::new()),
            kubeconfig: Some(String::new()),
            s3_bucket: Some(String::new()),
            s3_region: Some(String::new()),
            scenario_ref: Some(String::new()),
            ..with_dir()
        };
        let s = resolve(&a).unwrap();
        assert_eq!((s.namespace, s.kubeconfig, s.s3), (None, None, None));
        assert_eq!(s.log_dir, PathBuf::from(DEFAULT_LOG_DIR));
        let empty_dir = ScenarioArgs { scenario: Some(PathBuf::new()), ..args() };
        assert_eq!(resolve(&empty_dir), Err(SettingsError::NoScenario));
    }

    #[test]
    fn given_values_are_used() {
        let a = ScenarioArgs {
            namespace: Some("load-test".into()),
            log_dir: Some("/tmp/logs".into()),
            kubeconfig: Some("/a:/b".into()),
            s3_bucket: Some("my-bucket".into()),
            sim_name: Some("sim-1".into()),
            speed: 15.0,
            placement: Placement::Keep,
            keep: true,
            ..with_dir()
        };
        let s = resolve(&a).unwrap();
        assert_eq!(s.namespace.as_deref(), Some("load-test"));
        assert_eq!(s.log_dir, PathBuf::from("/tmp/logs"));
        assert_eq!(s.kubeconfig.as_deref(), Some("/a:/b"));
        assert_eq!(s.s3, Some(S3Target { bucket: "my-bucket".into(), region: "us-west-2".into() }));
        assert_eq!(s.sim_name.as_deref(), Some("sim-1"));
        assert_eq!((s.speed, s.placement, s.keep), (15.0, Placement::Keep, true));
        assert_eq!((s.adopt, s.play_id), (false, None));
        let adopting = resolve(&ScenarioArgs { adopt: true, play_id: Some("ci-42".into()), ..a.clone() }).unwrap();
        assert_eq!((adopting.adopt, adopting.play_id.as_deref()), (true, Some("ci-42")));
        let east = resolve(&ScenarioArgs { s3_region: Some("us-east-1".into()), ..a }).unwrap();
        assert_eq!(east.s3.map(|t| t.region).as_deref(), Some("us-east-1"));
        let by_ref = resolve(&ScenarioArgs { scenario_ref: Some("web-burst".into()), ..args() }).unwrap();
        assert_eq!(by_ref.source, Source::Reference("web-burst".into()));
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        let cases = [
            (args(), "no scenario: give --scenario DIR (or set SCENARIO), or --scenario-ref NAME"),
            (
                ScenarioArgs { scenario_ref: Some("x".into()), ..with_dir() },
                r#"--scenario (or SCENARIO) "scn" and --scenario-ref "x" are both given; give one (unset SCENARIO to play a Scenario object)"#,
            ),
            (
                ScenarioArgs { namespace: Some("Bad_NS".into()), ..with_dir() },
                r#"--namespace (or NAMESPACE) "Bad_NS": must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"#,
            ),
            (
                ScenarioArgs { s3_bucket: Some("s3://b/logs".into()), ..with_dir() },
                r#"--s3-bucket (or S3_BUCKET) "s3://b/logs": give the bucket name only, without s3:// or a path"#,
            ),
            (
                ScenarioArgs { s3_bucket: Some("My_Bucket".into()), ..with_dir() },
                r#"--s3-bucket (or S3_BUCKET) "My_Bucket": must be a bucket name (3 to 63 lowercase letters, digits, '.' and '-')"#,
            ),
            (
                ScenarioArgs { s3_region: Some("US West".into()), ..with_dir() },
                r#"--s3-region (or S3_REGION) "US West": must be a region name such as us-west-2"#,
            ),
            (
                ScenarioArgs { scenario_ref: Some("Web".into()), ..args() },
                r#"--scenario-ref "Web": a Scenario name is a DNS subdomain (lowercase letters, digits, '-' and '.')"#,
            ),
            (
                ScenarioArgs { sim_name: Some("a b".into()), ..with_dir() },
                r#"--sim-name "a b": a Simulation name is a DNS subdomain (lowercase letters, digits, '-' and '.')"#,
            ),
            (
                ScenarioArgs { play_id: Some("CI_42".into()), ..with_dir() },
                r#"--play-id "CI_42": a play id has lowercase letters, digits and '-', and starts and ends with a letter or digit"#,
            ),
            (
                ScenarioArgs { play_id: Some("p".repeat(49)), ..with_dir() },
                &format!("--play-id {:?}: a play id has 1 to 48 characters", "p".repeat(49)),
            ),
            (
                ScenarioArgs { run_index: Some(2), ..with_dir() },
                r#"--run-index "2": needs --sim-name: it numbers a Simulation's runs"#,
            ),
            (ScenarioArgs { speed: 0.0, ..with_dir() }, r#"--speed "0": must be a number from 0.001 to 10000"#),
            (
                ScenarioArgs { speed: 1e-20, ..with_dir() },
                r#"--speed "0.00000000000000000001": must be a number from 0.001 to 10000"#,
            ),
            (
                ScenarioArgs { ready_timeout: u64::MAX, ..with_dir() },
                r#"--ready-timeout "18446744073709551615": must be from 1 to 86400 seconds"#,
            ),
        ];
        for (a, message) in cases {
            assert_eq!(resolve(&a).map(|_| ()).map_err(|e| e.to_string()), Err(message.to_string()));
        }
    }

    #[test]
    fn names() {
        assert!(is_dns_label("karpenter-test") && !is_dns_label("-a") && !is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c") && !is_dns_subdomain("a..b") && !is_dns_subdomain("A"));
        assert!(is_bucket_name("rehearsal") && !is_bucket_name("ab") && !is_bucket_name("-ab"));
    }
}
