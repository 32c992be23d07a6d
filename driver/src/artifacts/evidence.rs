//! The evidence of one run, from start to upload, the same for a trace replay and a scenario
//! play: the folder and the S3 check before anything is applied ([`Evidence::prepare`]), the
//! collectors and audit events from before the first action ([`Evidence::start`]), files going
//! up while the run goes, a first summary and upload before the (possibly long) cleanup
//! ([`Evidence::checkpoint`]), and after the cleanup the collectors stopped, `summary.json`,
//! `report.html`, `manifest.json` and the final upload ([`Evidence::finish`]).
//!
//! A collector or audit source that cannot start does not stop the run: it is said once (a
//! note in the summary, returned for the run's conditions) and everything else is recorded.
//! An upload that fails keeps the local folder and is reported; the run's result never depends
//! on it being up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::audit::{AuditCollector, AuditScope, AuditSettings};
use crate::collect::records::files;
use crate::collect::{CollectSettings, Collectors, Scope};
use crate::report::{self, RunFacts, Written};

use super::layout::RunFolder;
use super::{manifest, upload};

/// Where the folder goes in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    /// The bucket.
    pub bucket: String,
    /// Its region; None: the standard AWS chain's.
    pub region: Option<String>,
}

/// Everything the evidence of a run needs to know.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// The run folder and its key prefix.
    pub folder: RunFolder,
    /// Upload target; None: the folder stays local.
    pub s3: Option<S3Target>,
    /// What to collect (`spec.collect`).
    pub collect: rehearsal_crds::Collect,
    /// Which namespaces the collectors watch.
    pub scope: Scope,
    /// Which audit events are the run's.
    pub audit_scope: AuditScope,
    /// The API server's audit log, when readable.
    pub audit_log: Option<PathBuf>,
    /// Where to receive the API server's audit webhook.
    pub audit_webhook_listen: Option<SocketAddr>,
}

/// Why the evidence cannot be kept: the run must not start.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The folder cannot be made.
    #[error("cannot create the run folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The bucket cannot be written.
    #[error(transparent)]
    NotWritable(#[from] upload::UploadError),
}

/// Empties `dir` of an earlier attempt's files (a run index replayed again) and creates it.
pub fn fresh_folder(dir: &std::path::Path) -> Result<(), EvidenceError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| EvidenceError::Folder { path: dir.to_path_buf(), source })?;
    }
    std::fs::create_dir_all(dir).map_err(|source| EvidenceError::Folder { path: dir.to_path_buf(), source })
}

/// The evidence of a run being recorded.
pub struct Evidence {
    settings: EvidenceSettings,
    s3: Option<aws_sdk_s3::Client>,
    collectors: Option<Collectors>,
    audit: Option<AuditCollector>,
    streamer: Option<upload::Streamer>,
    /// What could not be recorded, said once.
    notes: Vec<String>,
}

/// How the evidence ended.
#[derive(Debug)]
pub struct Finished {
    /// The summary and report written; None when they could not be (the error is in `notes`).
    pub written: Option<Written>,
    /// Where the folder went (s3://...), when the upload succeeded.
    pub uri: Option<String>,
    /// Why the upload failed, when it did.
    pub upload_error: Option<String>,
    /// What could not be recorded or written.
    pub notes: Vec<String>,
}

impl Evidence {
    /// Makes the folder if missing and checks the bucket is writable: a run whose evidence
    /// cannot be kept is not started. The collectors append: a caller reusing a folder empties
    /// it first ([`fresh_folder`]).
    pub async fn prepare(settings: EvidenceSettings) -> Result<Self, EvidenceError> {
        let dir = &settings.folder.dir;
        std::fs::create_dir_all(dir).map_err(|source| EvidenceError::Folder { path: dir.clone(), source })?;
        let s3 = match &settings.s3 {
            Some(target) => {
                let s3 = crate::s3::client(target.region.as_deref()).await;
                upload::check_writable(&s3, &target.bucket, &settings.folder.key_prefix).await?;
                Some(s3)
            }
            None => None,
        };
        Ok(Evidence { settings, s3, collectors: None, audit: None, streamer: None, notes: Vec::new() })
    }

    /// The run folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.settings.folder.dir
    }

    /// Where the folder goes, when there is a bucket.
    pub fn uri(&self) -> Option<String> {
        self.settings.s3.as_ref().map(|t| upload::s3_uri(&t.bucket, &self.settings.folder.key_prefix))
    }

    /// Starts the collectors, the audit sources and the uploads as the run goes. Returns what
    /// could not be started (also kept for the summary); the run goes on either way.
    pub async fn start(&mut self, client: &kube::Client) -> Vec<String> {
        let mut problems = Vec::new();
        let what = self.settings.collect.clone();
        let collect_any = what.events || what.pods || what.nodes || what.deployments;
        if collect_any {
            let settings = CollectSettings::new(self.dir().to_path_buf(), self.settings.scope.clone(), what.clone());
            match Collectors::start(client.clone(), settings).await {
                Ok(c) => self.collectors = Some(c),
                Err(e) => problems.push(format!("collectors not started: {e}")),
            }
        }
        if what.audit {
            let settings = AuditSettings {
                dir: self.dir().to_path_buf(),
                scope: self.settings.audit_scope.clone(),
                log_file: self.settings.audit_log.clone(),
                webhook_listen: self.settings.audit_webhook_listen,
            };
            match AuditCollector::start(&settings).await {
                Ok(a) => {
                    tracing::info!(sources = %a.sources.join(", "), "collecting audit events");
                    self.audit = Some(a);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if let (Some(s3), Some(target)) = (&self.s3, &self.settings.s3) {
            let to = upload::StreamTarget {
                s3: s3.clone(),
                bucket: target.bucket.clone(),
                prefix: self.settings.folder.key_prefix.clone(),
                dir: self.dir().to_path_buf(),
            };
            let growing = [files::PODS, files::NODES, files::WORKLOADS, files::EVENTS, files::AUDIT, files::ACTIONS]
                .iter()
                .map(PathBuf::from)
                .collect();
            self.streamer = Some(upload::Streamer::start(to, growing, upload::ACTIONS_EVERY));
        }
        for p in &problems {
            tracing::warn!("{p}");
        }
        self.notes.extend(problems.iter().cloned());
        problems
    }

    /// A sender for files the run writes itself (step snapshots), uploaded as they come.
    pub fn stream_sender(&self) -> Option<tokio::sync::mpsc::Sender<PathBuf>> {
        self.streamer.as_ref().map(upload::Streamer::sender)
    }

    /// Before a long cleanup: the summary so far and everything up to now in S3, so a driver
    /// killed during the cleanup has left its evidence.
    pub async fn checkpoint(&mut self, facts: &RunFacts) {
        let facts = self.with_notes(facts);
        if let Err(e) = report::write(self.dir(), &facts) {
            tracing::warn!(error = %e, "summary before the cleanup");
        }
        if let (Some(s3), Some(target)) = (&self.s3, &self.settings.s3) {
            let dir = self.settings.folder.dir.clone();
            let prefix = self.settings.folder.key_prefix.clone();
            if let Err(e) = upload::upload_dir(s3, &target.bucket, &prefix, &dir).await {
                tracing::warn!(error = %e, "upload before the cleanup failed; trying again after it");
            }
        }
    }

    fn with_notes(&self, facts: &RunFacts) -> RunFacts {
        let mut facts = facts.clone();
        for n in &self.notes {
            if !facts.notes.contains(n) {
                facts.notes.push(n.clone());
            }
        }
        if facts.artifact_uri.is_none() {
            facts.artifact_uri = self.uri();
        }
        facts
    }

    /// After the cleanup: stops the collectors and audit sources, writes the summary, the
    /// report and the manifest, and uploads the folder.
    pub async fn finish(mut self, facts: &RunFacts) -> Finished {
        if let Some(c) = self.collectors.take() {
            let report = c.stop().await;
            tracing::info!(%report, "collectors stopped");
            if report.errors() > 0 {
                self.notes.push(format!("collectors: {report}"));
            }
            self.notes.extend(report.notes);
        }
        if let Some(a) = self.audit.take() {
            let outcome = a.stop().await;
            tracing::info!(
                kept = outcome.counts.kept,
                seen = outcome.counts.seen,
                unreadable = outcome.counts.errors,
                "audit events collected"
            );
        }
        if let Some(s) = self.streamer.take() {
            s.finish(Duration::from_secs(60)).await;
        }
        let facts = self.with_notes(facts);
        let mut notes = self.notes.clone();
        let written = match report::write(self.dir(), &facts) {
            Ok(w) => Some(w),
            Err(e) => {
                notes.push(format!("summary and report not written: {e}"));
                None
            }
        };
        if let Err(e) = manifest::write(self.dir()) {
            notes.push(format!("manifest not written: {e}"));
        }
        let (mut uri, mut upload_error) = (None, None);
        if let (Some(s3), Some(target)) = (&self.s3, &self.settings.s3) {
            let dir = &self.settings.folder.dir;
            match upload::upload_dir(s3, &target.bucket, &self.settings.folder.key_prefix, dir).await {
                Ok(n) => {
                    let at = upload::s3_uri(&target.bucket, &self.settings.folder.key_prefix);
                    tracing::info!(files = n, uri = %at, "evidence uploaded");
                    uri = Some(at);
                }
                Err(e) => upload_error = Some(e.to_string()),
            }
        }
        Finished { written, uri, upload_error, notes }
    }
}
