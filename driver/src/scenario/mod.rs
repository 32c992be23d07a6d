//! Karpenter scenario directories: reading and validating them, converting them to the Scenario
//! API, and the step/action model and timing arithmetic the player uses.
//!
//! # The directory
//!
//! ```text
//! config.yml          simulator: run_id, run_description, associated_scenario, timestep,
//!                     start_step, limit, instance_pool_size, logging, clusters, workloads,
//!                     deployments_directory, deployments (every field kept, unknown keys too)
//! steps.yml           scenario: [- step: {name, actions: [- action: {comment, action_type,
//!                     action_data}]}]
//! <deployments_directory>/<name>.yaml       every document applied (multi-document allowed)
//! <deployments_directory>/<name>-pdb.yaml   its PodDisruptionBudget, if present
//! nodepools/*.yaml|*.yml                    optional manifests (or the KubernetesCluster's
//!                                           nodepool_directory): applied only when the
//!                                           cluster serves their kinds
//! ```
//!
//! # Actions
//!
//! `action_data` is comma-separated `key=value` pairs (whitespace trimmed, no quoting), parsed
//! strictly: a pair without `=`, an empty pair, an unknown or repeated key, a missing required
//! key, and a count that is not a non-negative decimal integer are errors.
//!
//! | action_type | action_data |
//! |---|---|
//! | `K8S_SCALE` | `name=<deployment>,replicas=<n>` |
//! | `SCALE` (legacy) | `name=<deployment>,desiredCount=<n>` (or `replicas=<n>`, not both) |
//! | `APPLY` (rehearsal) | `file=<path relative to the scenario directory>`: one object, applied at that step |
//! | `DELETE` (rehearsal) | `apiVersion=<v>,kind=<k>,name=<n>` |
//! | `WAIT_AVAILABLE` (rehearsal) | `name=<deployment>[,timeoutSeconds=<n>]` (default 300) |
//!
//! Scale and wait actions must name a Deployment the scenario creates: one of its manifests, or
//! one an `APPLY` action applies.
//!
//! # YAML
//!
//! Files are read with serde-saphyr set to YAML 1.2 core booleans (`strict_booleans`), so `n`,
//! `y`, `yes`, `no`, `on`, `off` stay strings (serde-saphyr's default reads them as booleans).
//! Manifests additionally keep YAML 1.1 octals (`0644` is 420), as Kubernetes' own YAML reader
//! does. Unknown keys in `steps.yml` are errors; in `config.yml` they are kept.
//!
//! # Validation
//!
//! [`load`] stops at the first file-level failure (missing directory, `config.yml` or
//! `steps.yml`, YAML that does not parse into the format's shape) and otherwise collects every
//! problem, each naming its file, step, action and offending text, e.g.
//! `steps.yml: step 3 ("3"), action 1 (K8S_SCALE): action_data "name=deploy-if,replicas=twelve":
//! replicas "twelve" is not a non-negative integer`.
//!
//! Size is not a problem: any number of deployments, steps and actions per step is taken (real
//! exports hold hundreds of each), bound only by memory. A deployment listed twice in
//! `config.yml` is a warning ([`ScenarioDir::warnings`], logged once by the player) and is
//! applied once.
//!
//! # Playing
//!
//! The player always works from a Scenario (a directory is converted with
//! [`ScenarioDir::to_scenario`]): [`actions_of`] gives its actions per step, [`plan`] the order
//! and deadline of each step. [`player::play`] runs one play: [`settings`] (flags and their
//! environment fallbacks), [`source`] (validation), [`apply`] and [`placement`] (the manifests
//! into the cluster), [`ownership`] (what the play may touch), [`available`], [`execute`] (the actions), [`snapshot`] and [`logs`] (the
//! log folder), [`summary`], [`cleanup`] and [`upload`].

mod actions;
pub mod apply;
pub mod available;
pub mod cleanup;
mod config;
mod convert;
mod directory;
mod error;
pub mod execute;
pub mod logs;
mod objects;
pub mod ownership;
pub mod placement;
pub mod plan;
pub mod player;
pub mod settings;
pub mod snapshot;
pub mod source;
mod steps;
pub mod summary;
#[cfg(test)]
mod tests;
/// The upload of the log folder (moved to [`crate::artifacts`]; kept here for its old path).
pub use crate::artifacts::upload;

pub use actions::{ActionKind, PlannedAction, SPEC, actions_of};
pub use config::{CONFIG_FILE, Cluster, EcsCluster, KubernetesCluster, SimulatorConfig};
pub use convert::{DEFAULT_NAMESPACE, render_manifest};
pub use directory::{DEFAULT_NODEPOOL_DIRECTORY, ScenarioDir, load};
pub use error::{ActionRef, Problem, ScenarioError, StepRef};
pub use plan::{expected_duration, format_duration, step_at, step_offset, step_sequence};
pub use steps::{ActionArgs, DEFAULT_WAIT_TIMEOUT_SECONDS, STEPS_FILE, ScenarioStep, StepAction, parse_action_data};
