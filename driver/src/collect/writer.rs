//! One JSON-lines file of a run, written by one task: the watches feeding it send whole lines
//! over a bounded channel (a slow disk slows the watches rather than growing memory), the task
//! buffers them and flushes every second and at the end, so a run killed mid-way leaves at most
//! the last second unwritten and every line on disk whole up to the last flush.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::watch::ERROR_SAMPLES;

/// How often buffered lines go to the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Lines waiting for the writer before the watches feeding it wait.
pub const CHANNEL_LINES: usize = 4096;

/// How writing one file went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Lines handed to the file.
    pub records: u64,
    /// Writes or flushes that failed.
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

impl FileStats {
    fn error(&mut self, path: &Path, what: &str, e: &std::io::Error) {
        if self.errors == 0 {
            tracing::warn!(file = %path.display(), error = %e, "cannot {what} a collector file; its records may be lost");
        }
        self.errors = self.errors.saturating_add(1);
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(format!("{}: cannot {what}: {e}", path.display()));
        }
    }
}

/// Opens (creates, or appends to) the file at `path`.
pub async fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path).await
}

/// Writes each line received to `file` (a newline added), flushing every `flush_every` and
/// when every sender is gone; then closes the file.
pub async fn run(path: PathBuf, file: File, mut lines: mpsc::Receiver<String>, flush_every: Duration) -> FileStats {
    let mut out = BufWriter::new(file);
    let mut stats = FileStats::default();
    let mut dirty = false;
    let mut ticker = tokio::time::interval(flush_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(mut line) = line else { break };
                line.push('\n');
                match out.write_all(line.as_bytes()).await {
                    Ok(()) => {
                        stats.records = stats.records.saturating_add(1);
                        dirty = true;
                    }
                    Err(e) => stats.error(&path, "write", &e),
                }
            }
            _ = ticker.tick() => {
                if dirty {
                    dirty = false;
                    if let Err(e) = out.flush().await {
                        stats.error(&path, "flush", &e);
                    }
                }
            }
        }
    }
    if let Err(e) = out.flush().await {
        stats.error(&path, "flush", &e);
    }
    if let Err(e) = out.into_inner().sync_all().await {
        stats.error(&path, "sync", &e);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::records::{WorkloadRecord, files};

    fn record(i: i32) -> String {
        let r = WorkloadRecord {
            t: "2026-12-02T10:00:00.000001Z".into(),
            kind: "Deployment".into(),
            namespace: "ns".into(),
            name: format!("web \"{i}\"\nx"),
            desired: i,
            ready: 0,
            available: 0,
            deleted: false,
        };
        serde_json::to_string(&r).unwrap()
    }

    #[tokio::test]
    async fn every_line_is_one_whole_json_object_and_files_are_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::WORKLOADS);
        for round in 0..2 {
            let (tx, rx) = mpsc::channel(8);
            let task = tokio::spawn(run(path.clone(), open(&path).await.unwrap(), rx, FLUSH_EVERY));
            for i in 0..100 {
                tx.send(record(i)).await.unwrap();
            }
            drop(tx);
            let stats = task.await.unwrap();
            assert_eq!(stats, FileStats { records: 100, ..Default::default() }, "round {round}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 200);
        for (n, line) in lines.iter().enumerate() {
            let back: WorkloadRecord = serde_json::from_str(line).unwrap();
            assert_eq!(back.desired, (n % 100) as i32);
        }
    }

    #[tokio::test]
    async fn lines_reach_the_disk_while_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::PODS);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(run(path.clone(), open(&path).await.unwrap(), rx, Duration::from_millis(20)));
        tx.send(record(1)).await.unwrap();
        let mut on_disk = String::new();
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            on_disk = std::fs::read_to_string(&path).unwrap();
            if !on_disk.is_empty() {
                break;
            }
        }
        assert_eq!(on_disk, format!("{}\n", record(1)), "flushed before the end");
        drop(tx);
        assert_eq!(task.await.unwrap().records, 1);
    }

    #[tokio::test]
    async fn a_folder_that_is_not_there_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open(&dir.path().join("missing").join(files::EVENTS)).await.is_err());
    }
}
