//! The operator's settings as plain data, so the controller does not depend on the command line.

use std::path::PathBuf;
use std::time::Duration;

/// What the controller needs to know about its installation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace of the operator: driver Jobs, Services, Secrets and the CA live there.
    pub namespace: String,
    /// Default driver image.
    pub driver_image: String,
    /// Default service account of the driver pods.
    pub driver_service_account: String,
    /// Simulations running at once.
    pub max_active: usize,
    /// Time a driver may spend on its cleanup; its pod's grace period is longer.
    pub cleanup_timeout: Duration,
    /// Validity of the webhook CA.
    pub ca_validity: Duration,
    /// Validity of a driver's serving certificate.
    pub serving_validity: Duration,
    /// Whether Simulations may run hooks.
    pub allow_hooks: bool,
    /// Directory file traces must be in; None refuses file traces.
    pub trace_file_root: Option<PathBuf>,
    /// PersistentVolumeClaim mounted read-only at the file root in replay Jobs of file traces.
    pub trace_file_claim: Option<String>,
    /// The API server's audit log as driver pods see it (AUDIT_LOG in their Jobs); None: runs
    /// record no audit events and say so.
    pub driver_audit_log: Option<PathBuf>,
}

impl Settings {
    /// Settings for tests and examples: namespace `rehearsal-system`, one active simulation.
    pub fn example() -> Self {
        Settings {
            namespace: "rehearsal-system".into(),
            driver_image: "rehearsal-driver:test".into(),
            driver_service_account: "rehearsal-driver".into(),
            max_active: 1,
            cleanup_timeout: Duration::from_secs(300),
            ca_validity: Duration::from_secs(3650 * 86_400),
            serving_validity: Duration::from_secs(90 * 86_400),
            allow_hooks: true,
            trace_file_root: None,
            trace_file_claim: None,
            driver_audit_log: None,
        }
    }

    /// Termination grace period of a driver pod: its cleanup timeout plus a minute for the
    /// postRun hooks and the final status write.
    pub fn driver_grace_seconds(&self) -> i64 {
        i64::try_from(self.cleanup_timeout.as_secs()).unwrap_or(i64::MAX / 2).saturating_add(60)
    }
}

impl From<&crate::cli::Args> for Settings {
    fn from(a: &crate::cli::Args) -> Self {
        Settings {
            namespace: a.namespace.clone(),
            driver_image: a.driver_image.clone(),
            driver_service_account: a.driver_service_account.clone(),
            max_active: usize::try_from(a.max_active).unwrap_or(1),
            cleanup_timeout: std::time::Duration::from_secs(a.cleanup_timeout),
            ca_validity: std::time::Duration::from_secs(a.ca_validity_days.saturating_mul(86_400)),
            serving_validity: std::time::Duration::from_secs(a.serving_cert_validity_hours.saturating_mul(3600)),
            allow_hooks: a.allow_hooks,
            trace_file_root: a.trace_file_root.clone(),
            trace_file_claim: a.trace_file_claim.clone(),
            driver_audit_log: a.driver_audit_log.clone(),
        }
    }
}
