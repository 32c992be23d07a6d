//! Label, annotation, taint and field-manager names shared by the operator, the driver and KWOK.
//!
//! The `simkube.io/*` keys keep SimKube's spelling so recorded traces and KWOK stages written
//! for SimKube keep working.

/// API group of every rehearsal kind.
pub const GROUP: &str = "rehearsal.dev";

/// Label on every pod a run mutates: the name of the Simulation.
pub const SIMULATION_LABEL: &str = "simkube.io/simulation";

/// Annotation giving a simulated pod's lifetime in seconds; a KWOK stage completes the pod then.
pub const LIFETIME_ANNOTATION: &str = "simkube.io/lifetime-seconds";

/// Label on every object a run creates: the name of the Simulation it belongs to.
pub const OWNED_BY_SIMULATION_LABEL: &str = "rehearsal.dev/simulation";

/// Label on every object a run creates: the run's index (0-based) within its Simulation.
pub const RUN_LABEL: &str = "rehearsal.dev/run";

/// Annotation on every object a run applies: the namespace the trace recorded it in.
pub const ORIGINAL_NAMESPACE_ANNOTATION: &str = "rehearsal.dev/original-namespace";

/// Label marking the node of the process runner in the local control plane.
pub const RUNNER_NODE_LABEL: &str = "rehearsal.dev/runner";

/// Taint key on virtual (KWOK) nodes; simulated pods tolerate it.
pub const VIRTUAL_NODE_TAINT: &str = "kwok-provider";

/// Label key selecting virtual nodes, with [`VIRTUAL_NODE_VALUE`].
pub const VIRTUAL_NODE_LABEL: &str = "type";

/// Label value selecting virtual nodes.
pub const VIRTUAL_NODE_VALUE: &str = "virtual";

/// Label on every object a scenario play applies: its run id, so cleanup and reruns are exact.
pub const SCENARIO_RUN_LABEL: &str = "rehearsal.dev/scenario-run";

/// Label on every object a scenario play creates: the play's own id (two plays of the same
/// scenario share the run id, never the play id), so a play deletes only what it made.
pub const PLAY_LABEL: &str = "rehearsal.dev/play";

/// Server-side-apply field manager of the scenario player's replica changes, separate from the
/// manifests' manager so a re-applied manifest does not fight the steps over `spec.replicas`.
pub const SCALE_MANAGER: &str = "rehearsal-driver-scale";

/// Server-side-apply field manager of the operator.
pub const OPERATOR_MANAGER: &str = "rehearsal-operator";

/// Server-side-apply field manager of the driver.
pub const DRIVER_MANAGER: &str = "rehearsal-driver";
