//! Reporting the run's stage conditions and progress on its Simulation.
//!
//! Written with server-side apply under the driver's own field manager. Server-side apply
//! removes list-map entries a manager stops sending, so every write carries all the conditions
//! this driver has set so far.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use rehearsal_crds::conditions::{Status, condition};
use rehearsal_crds::keys::DRIVER_MANAGER;
use rehearsal_crds::{Progress, Simulation};
use serde_json::json;

/// How often progress alone is written; stage changes are written at once.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Inner {
    conditions: Vec<Condition>,
    progress: Option<Progress>,
    last_write: Option<Instant>,
}

/// Writes this run's part of a Simulation's status.
pub struct Reporter {
    api: Option<Api<Simulation>>,
    name: String,
    generation: Option<i64>,
    inner: Mutex<Inner>,
}

impl Reporter {
    /// A reporter for Simulation `name`; with `api` None it only logs (used in unit tests).
    pub fn new(api: Option<Api<Simulation>>, name: &str, generation: Option<i64>) -> Self {
        Reporter { api, name: name.to_string(), generation, inner: Mutex::new(Inner::default()) }
    }

    /// The condition `type_` as last set, for tests.
    #[cfg(test)]
    pub fn condition(&self, type_: &str) -> Option<Condition> {
        self.inner.lock().ok()?.conditions.iter().find(|c| c.type_ == type_).cloned()
    }

    /// Sets one stage condition and writes the status now.
    pub async fn stage(&self, type_: &str, status: Status, reason: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(stage = type_, status = status.as_str(), reason, "{message}");
        if let Ok(mut inner) = self.inner.lock() {
            let c = condition(type_, status, reason, message, self.generation, &inner.conditions);
            inner.conditions.retain(|old| old.type_ != type_);
            inner.conditions.push(c);
        }
        self.write().await;
    }

    /// Records progress; written when the last write is older than the interval, or when `force`.
    pub async fn progress(&self, done: i64, total: i64, unit: &str, force: bool) {
        let due = match self.inner.lock() {
            Ok(mut inner) => {
                inner.progress =
                    Some(Progress { done, total, unit: unit.to_string(), summary: format!("{done}/{total} {unit}") });
                force || inner.last_write.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL)
            }
            Err(_) => false,
        };
        if due {
            self.write().await;
        }
    }

    async fn write(&self) {
        let Some(api) = &self.api else { return };
        let body = match self.inner.lock() {
            Ok(mut inner) => {
                inner.last_write = Some(Instant::now());
                json!({
                    "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation",
                    "status": {"conditions": inner.conditions, "progress": inner.progress}
                })
            }
            Err(_) => return,
        };
        // Status is informational: a failed write is logged, never fails the run.
        if let Err(e) =
            api.patch_status(&self.name, &PatchParams::apply(DRIVER_MANAGER).force(), &Patch::Apply(&body)).await
        {
            tracing::warn!(simulation = %self.name, error = %e, "cannot write the simulation's status");
        }
    }
}
