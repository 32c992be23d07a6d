//! `SimulationRoot`: the anchor every object of a run is owned by, so that deleting it cleans
//! the run up through garbage collection.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A SimulationRoot has no settings: it exists to be an owner.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "rehearsal.dev",
    version = "v1alpha1",
    kind = "SimulationRoot",
    plural = "simulationroots",
    shortname = "simroot",
    category = "rehearsal",
    doc = "Anchor of one run: every object the run creates is owned by it, so deleting it cleans the run up.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct SimulationRootSpec {}
