//! The CustomResourceDefinitions as YAML, as committed under `config/crd/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Scenario, Simulation, SimulationRoot};

/// Why a CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the {kind} CRD as YAML: {source}")]
pub struct RenderError {
    kind: &'static str,
    #[source]
    source: serde_saphyr::SerializeError,
}

/// Every CRD of the API, with the file name it is committed under.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("rehearsal.dev_simulations.yaml", Simulation::crd()),
        ("rehearsal.dev_scenarios.yaml", Scenario::crd()),
        ("rehearsal.dev_simulationroots.yaml", SimulationRoot::crd()),
    ]
}

/// Every CRD rendered as YAML: (file name, content).
pub fn render() -> Result<Vec<(&'static str, String)>, RenderError> {
    crds()
        .into_iter()
        .map(|(file, crd)| {
            let yaml = serde_saphyr::to_string(&crd).map_err(|source| RenderError { kind: file, source })?;
            Ok((file, format!("# Generated from the Rust types in crds/ by `make crds`; do not edit.\n{yaml}")))
        })
        .collect()
}
