//! API server audit events of a run, into `audit.jsonl`, from whichever source the cluster
//! offers: the API server's audit log file ([`follow`], like `tail -F`: it survives rotation and
//! truncation) or its audit webhook backend posting `EventList` batches to the driver
//! ([`receiver`]). Only the run's events are kept ([`filter`]): requests on its namespaces, on
//! nodes, and on its Simulation and SimulationRoot. Managed clusters expose neither source
//! inside the cluster; the run then says so once and records everything else.

pub mod filter;
pub mod follow;
pub mod receiver;
pub mod sink;

pub use filter::{AuditScope, to_record};
pub use sink::AuditSink;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a run's audit events come from, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The run folder (`audit.jsonl` is written there).
    pub dir: PathBuf,
    /// The run, for picking its events.
    pub scope: AuditScope,
    /// The API server's audit log, when the driver can read it.
    pub log_file: Option<PathBuf>,
    /// Where to receive the API server's audit webhook batches.
    pub webhook_listen: Option<SocketAddr>,
}

/// The running audit collection.
pub struct AuditCollector {
    sink: Arc<AuditSink>,
    follower: Option<follow::Follower>,
    receiver: Option<receiver::Receiver>,
    /// Which sources feed it, for the log and the summary.
    pub sources: Vec<String>,
}

/// What audit collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOutcome {
    /// The sources used.
    pub sources: Vec<String>,
    /// Events read, kept, unreadable.
    pub counts: sink::SinkCounts,
    /// Rotations and truncations of the log file followed.
    pub reopened: u64,
}

/// Why no audit events are collected: said once in the run's conditions and summary.
#[derive(Debug, thiserror::Error)]
pub enum AuditUnavailable {
    /// Neither a log file nor a webhook address was given.
    #[error(
        "no audit events: this cluster's audit log is not readable by the driver and no audit webhook is configured (give --audit-log or --audit-webhook-listen; managed clusters keep audit events outside the cluster)"
    )]
    NoSource,
    /// The sources given could not be used.
    #[error("no audit events: {0}")]
    Failed(String),
}

impl AuditCollector {
    /// Starts every source given; an error when none can be used (the run goes on without).
    pub async fn start(settings: &AuditSettings) -> Result<Self, AuditUnavailable> {
        if settings.log_file.is_none() && settings.webhook_listen.is_none() {
            return Err(AuditUnavailable::NoSource);
        }
        let path = settings.dir.join(crate::collect::records::files::AUDIT);
        let sink = AuditSink::create(&path, settings.scope.clone())
            .map_err(|e| AuditUnavailable::Failed(format!("cannot write {}: {e}", path.display())))?;
        let sink = Arc::new(sink);
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        let follower = match &settings.log_file {
            Some(file) => match follow::Follower::start(file, sink.clone()) {
                Ok(f) => {
                    sources.push(format!("log file {}", file.display()));
                    Some(f)
                }
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            },
            None => None,
        };
        let receiver = match settings.webhook_listen {
            Some(addr) => match receiver::Receiver::start(addr, sink.clone()).await {
                Ok(r) => {
                    sources.push(format!("webhook http://{}/audit", r.addr));
                    Some(r)
                }
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            },
            None => None,
        };
        if sources.is_empty() {
            return Err(AuditUnavailable::Failed(problems.join("; ")));
        }
        for p in &problems {
            tracing::warn!("audit: {p}");
        }
        Ok(AuditCollector { sink, follower, receiver, sources })
    }

    /// Stops the sources, after what they have read, and flushes `audit.jsonl`.
    pub async fn stop(self) -> AuditOutcome {
        let reopened = match self.follower {
            Some(f) => f.stop().await,
            None => 0,
        };
        if let Some(r) = self.receiver {
            r.stop().await;
        }
        self.sink.flush();
        AuditOutcome { sources: self.sources, counts: self.sink.counts(), reopened }
    }
}
