//! The rehearsal.dev API: `Simulation`, `Scenario` and `SimulationRoot` (all cluster-scoped,
//! version `v1alpha1`), their conditions, and the label and annotation keys the parts share.

pub mod conditions;
pub mod keys;
pub mod manifests;
pub mod root;
pub mod scenario;
pub mod simulation;
#[cfg(feature = "testdata")]
pub mod testdata;

pub use root::{SimulationRoot, SimulationRootSpec};
pub use scenario::{Action, ActionData, ActionType, EmbeddedObject, Scenario, ScenarioSpec, ScenarioStatus, Step};
pub use simulation::{
    Artifacts, Collect, DriverConfig, Hook, Hooks, Phase, Progress, RunStatus, ScenarioRef, Simulation,
    SimulationSource, SimulationSpec, SimulationStatus, TraceSource,
};
