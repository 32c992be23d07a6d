//! The controller's errors, typed by what to do about them: a permanent error needs a change
//! from the user (the Simulation is `Stalled` and retried slowly), a transient one is retried
//! with backoff, and waiting is not an error at all but keeps a finalizer in place.

use std::time::Duration;

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Simulation cannot run as written; `reason` is a condition reason, `message` names
    /// the object and field.
    #[error("{reason}: {message}")]
    Permanent {
        /// CamelCase reason for the Stalled condition (ScenarioNotFound, SecretNotFound, ...).
        reason: &'static str,
        /// What is wrong and where.
        message: String,
    },
    /// The API server refused or failed a request; retried with backoff.
    #[error("{action}: {source}")]
    Kube {
        /// What was attempted, naming the object.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Something the operator needs could not be built (a certificate, a manifest); retried.
    #[error("{0}")]
    Internal(String),
    /// Waiting for deletions to finish; retried soon.
    #[error("waiting: {0}")]
    Waiting(String),
}

/// A reconcile's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A permanent error.
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Permanent { reason, message: message.into() }
    }

    /// Wraps a client error with what was attempted.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube { action: action.into(), source }
    }

    /// Short name for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Permanent { .. } => "permanent",
            Error::Kube { .. } => "kube",
            Error::Internal(_) => "internal",
            Error::Waiting(_) => "waiting",
        }
    }

    /// How long to wait before the next attempt, given how many attempts failed in a row.
    pub fn retry_after(&self, failures: u32) -> Duration {
        match self {
            // Fixed by the user, or by the missing object appearing (watched where possible).
            Error::Permanent { .. } => Duration::from_secs(60),
            Error::Waiting(_) => Duration::from_secs(1),
            Error::Kube { .. } | Error::Internal(_) => backoff(failures),
        }
    }
}

/// Exponential backoff from 1 s, doubling, capped at 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64.checked_shl(failures.min(16)).unwrap_or(u64::MAX).min(300);
    Duration::from_secs(secs)
}

/// Adds what was attempted to a client error.
pub trait Context<T> {
    /// Maps a kube error into [`Error::Kube`] with `action` as its context.
    fn context(self, action: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, kube::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::kube(action(), e))
    }
}

/// True for a 404 from the API server.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// True for a 409 AlreadyExists or Conflict from the API server.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(300));
        assert_eq!(Error::permanent("X", "y").retry_after(0), Duration::from_secs(60));
        assert_eq!(Error::permanent("ScenarioNotFound", "m").to_string(), "ScenarioNotFound: m");
    }
}
