//! What every part of the runner shares: the API client, the node's name and the directories.

use std::{path::PathBuf, sync::Arc, time::Duration};

use kube::Client;

use crate::{credentials::ApiTarget, guard::Guard};

/// Field manager of everything the runner writes.
pub const FIELD_MANAGER: &str = "rehearsal-runner";

/// Shared, read-only runner settings.
#[derive(Clone)]
pub struct Context {
    /// Client authenticated with the admin kubeconfig.
    pub client: Client,
    /// The node this runner plays kubelet for.
    pub node_name: String,
    /// Absolute state directory; pods live in `<state_dir>/pods/`.
    pub state_dir: PathBuf,
    /// Absolute directory holding the project's binaries.
    pub bin_dir: PathBuf,
    /// API server and CA that pod kubeconfigs point at.
    pub target: ApiTarget,
    /// Upper bound on a pod's grace period when the runner itself shuts down.
    pub shutdown_grace: Duration,
    /// `PATH` given to pod processes, so host commands resolve as they do for the runner.
    pub path_env: String,
    /// The orphan guard, when it could be started.
    pub guard: Option<Arc<Guard>>,
}

impl Context {
    /// The directory of one pod: `<state>/pods/<namespace>_<name>_<uid>`.
    pub fn pod_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(format!("{namespace}_{name}_{uid}"))
    }
}
