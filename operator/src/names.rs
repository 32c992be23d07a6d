//! Names and labels of what the operator creates for a Simulation, in one place so the
//! reconcile, the cleanup and the tests agree on them.
//!
//! A Simulation's name is a DNS label of at most 50 characters (the CRD checks it), so every
//! name here fits its kind's limit: Jobs and their `job-name` pod label (63), Services (a DNS
//! label starting with a letter, hence the `rehearsal-` prefix).

use std::collections::BTreeMap;

use rehearsal_crds::keys::{OWNED_BY_SIMULATION_LABEL, RUN_LABEL};

/// Label on everything the operator creates: who manages it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "rehearsal-operator";
/// Label on driver pods, selected by the run's Service.
pub const ROLE_LABEL: &str = "rehearsal.dev/role";
/// Value of [`ROLE_LABEL`] on driver pods.
pub const DRIVER_ROLE: &str = "driver";
/// The finalizer that guarantees a Simulation's cleanup.
pub const FINALIZER: &str = "rehearsal.dev/cleanup";
/// Secret holding the operator's webhook CA.
pub const CA_SECRET: &str = "rehearsal-webhook-ca";
/// Port of the driver's Service.
pub const SERVICE_PORT: i32 = 8443;

/// Driver Job of run `index` (0-based).
pub fn job(simulation: &str, index: u32) -> String {
    format!("{simulation}-run-{index}")
}

/// SimulationRoot of run `index`, as the driver names it.
pub fn root(simulation: &str, index: u32) -> String {
    rehearsal_driver::replay::root::root_name(simulation, index)
}

/// MutatingWebhookConfiguration of run `index`, as the driver names its own.
pub fn webhook_configuration(simulation: &str, index: u32) -> String {
    rehearsal_driver::webhook::register::configuration_name(simulation, index)
}

/// Service in front of the simulation's driver pod.
pub fn service(simulation: &str) -> String {
    format!("rehearsal-{simulation}")
}

/// Secret with the driver's serving certificate.
pub fn serving_secret(simulation: &str) -> String {
    format!("rehearsal-{simulation}-webhook-tls")
}

/// ConfigMap holding a copy of the trace of a `configMapRef` source.
pub fn trace_config_map(simulation: &str) -> String {
    format!("rehearsal-{simulation}-trace")
}

/// Labels of everything made for `simulation` (Jobs, Services, Secrets, ConfigMaps).
pub fn labels(simulation: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (OWNED_BY_SIMULATION_LABEL.to_string(), simulation.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

/// Labels of the driver pod of run `index`.
pub fn driver_pod_labels(simulation: &str, index: u32) -> BTreeMap<String, String> {
    let mut l = labels(simulation);
    l.insert(RUN_LABEL.to_string(), index.to_string());
    l.insert(ROLE_LABEL.to_string(), DRIVER_ROLE.to_string());
    l
}

/// Label selector matching everything made for `simulation`.
pub fn selector(simulation: &str) -> String {
    format!("{OWNED_BY_SIMULATION_LABEL}={simulation},{MANAGED_BY_LABEL}={MANAGED_BY}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_names_fit() {
        let sim = "a".repeat(50);
        assert!(job(&sim, 999_999).len() <= 63, "job-name label");
        assert!(service(&sim).len() <= 63 && service("0abc").starts_with('r'), "DNS-1035 label");
        assert_eq!(root("s", 2), "s-run-2");
        assert_eq!(webhook_configuration("s", 2), "rehearsal-s-run-2");
    }
}
