//! Following the API server's audit log file from the run's start, as `tail -F` does: lines
//! appended are read as they come (checked every [`POLL`]); when the file is rotated (a new file
//! at the path) the old one is read to its end first, and a truncated file is read again from
//! its start. A line longer than [`MAX_LINE`] is skipped, so memory stays bounded.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::sink::AuditSink;

/// How often the file is checked for new lines.
pub const POLL: Duration = Duration::from_millis(200);
/// Longest line kept (audit events with request and response bodies can be large).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Why the log cannot be followed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the audit log {path}: {source}")]
pub struct FollowError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

/// A file being read line by line from a position.
struct Open {
    reader: BufReader<File>,
    inode: u64,
    pos: u64,
}

fn open(path: &Path, from_end: bool) -> std::io::Result<Open> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let pos = if from_end { file.seek(SeekFrom::End(0))? } else { 0 };
    Ok(Open { reader: BufReader::new(file), inode: meta.ino(), pos })
}

/// The follower; stops when [`Follower::stop`] is called, after reading what is there.
pub struct Follower {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Follower {
    /// Starts following `path` from its current end (events from now on), giving each line to
    /// `sink`. Fails when the file cannot be opened.
    pub fn start(path: &Path, sink: Arc<AuditSink>) -> Result<Self, FollowError> {
        let current = open(path, true).map_err(|source| FollowError { path: path.to_path_buf(), source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || follow(&path, current, &sink, &flag));
        Ok(Follower { stop, task })
    }

    /// Reads what is left and stops; returns how many rotations or truncations it followed.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

/// The line being read: bytes so far, and whether it is an over-long one being skipped.
#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    skipping: bool,
}

/// Reads lines until EOF; a partial last line stays in `line` until its newline comes. Never
/// holds more than [`MAX_LINE`] + 1 bytes of one line.
fn drain(open: &mut Open, line: &mut Line, sink: &AuditSink) {
    loop {
        let room = (MAX_LINE + 1).saturating_sub(line.bytes.len()) as u64;
        let mut limited = (&mut open.reader).take(room);
        match limited.read_until(b'\n', &mut line.bytes) {
            Ok(0) => return,
            Ok(n) => {
                open.pos = open.pos.saturating_add(n as u64);
                if line.bytes.last() == Some(&b'\n') {
                    if !line.skipping {
                        sink.offer_line(&line.bytes);
                    }
                    *line = Line::default();
                } else if line.bytes.len() > MAX_LINE {
                    if !line.skipping {
                        sink.count_error();
                        tracing::warn!(max = MAX_LINE, "audit log: a line longer than the limit is skipped");
                    }
                    line.bytes.clear();
                    line.skipping = true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit log: read failed");
                return;
            }
        }
    }
}

fn follow(path: &Path, mut current: Open, sink: &AuditSink, stop: &AtomicBool) -> u64 {
    let mut line = Line::default();
    let mut reopened = 0u64;
    loop {
        drain(&mut current, &mut line, sink);
        sink.flush();
        let stopping = stop.load(Ordering::Relaxed);
        let reopen = match std::fs::metadata(path) {
            // Rotated: the old file was read to its end above; the new one from its start.
            Ok(meta) if meta.ino() != current.inode => Some("rotated"),
            Ok(meta) if meta.len() < current.pos => Some("truncated"),
            // Missing for a moment while it is being rotated: checked again next time.
            _ => None,
        };
        if let Some(what) = reopen
            && let Ok(next) = open(path, false)
        {
            tracing::info!(path = %path.display(), "audit log {what}; reading the file at the path from its start");
            current = next;
            line = Line::default();
            reopened = reopened.saturating_add(1);
            continue;
        }
        if stopping {
            return reopened;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::audit::filter::AuditScope;

    fn line(id: &str) -> String {
        format!(
            "{{\"auditID\":\"{id}\",\"stage\":\"ResponseComplete\",\"verb\":\"create\",\"objectRef\":{{\"resource\":\"pods\",\"namespace\":\"ns\"}},\"requestReceivedTimestamp\":\"t\",\"stageTimestamp\":\"t\"}}\n"
        )
    }

    fn ids(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["auditID"].as_str().unwrap().to_string())
            .collect()
    }

    async fn wait_for(path: &Path, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ids(path).len() < n {
            assert!(std::time::Instant::now() < deadline, "only {:?}", ids(path));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn follows_appends_rotation_and_truncation_from_the_start_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let out = dir.path().join("audit.jsonl");
        std::fs::write(&log, line("before")).unwrap();
        let scope = AuditScope { namespaces: vec!["ns".into()], namespace_prefix: None, simulation: None };
        let sink = Arc::new(AuditSink::create(&out, scope).unwrap());
        let follower = Follower::start(&log, sink.clone()).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        // A line written in two parts is read once, whole.
        let l1 = line("1");
        f.write_all(&l1.as_bytes()[..10]).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(POLL * 2).await;
        f.write_all(&l1.as_bytes()[10..]).unwrap();
        f.write_all(b"not json\n").unwrap();
        f.write_all(b"{\"objectRef\":{\"namespace\":\"ns\"}, truncated\n").unwrap();
        f.write_all(line("2").as_bytes()).unwrap();
        wait_for(&out, 2).await;
        // Rotation: what is appended to the old file before the new one appears is not lost.
        f.write_all(line("3").as_bytes()).unwrap();
        std::fs::rename(&log, dir.path().join("audit.log.1")).unwrap();
        std::fs::write(&log, line("4") + &line("4b")).unwrap();
        wait_for(&out, 5).await;
        // Truncation: read again from the start.
        std::fs::write(&log, line("5")).unwrap();
        wait_for(&out, 6).await;
        let reopened = follower.stop().await;
        assert_eq!(ids(&out), ["1", "2", "3", "4", "4b", "5"]);
        assert_eq!(reopened, 2);
        let counts = sink.counts();
        // "not json" cannot be the run's (skipped unparsed); the truncated line of the run's
        // namespace is parsed and counted unreadable.
        assert_eq!((counts.kept, counts.errors, counts.seen), (6, 1, 7));
    }

    #[tokio::test]
    async fn a_missing_log_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let scope = AuditScope { namespaces: vec![], namespace_prefix: None, simulation: None };
        let sink = Arc::new(AuditSink::create(&dir.path().join("a.jsonl"), scope).unwrap());
        let err = Follower::start(&dir.path().join("nope.log"), sink).err().unwrap();
        assert!(err.to_string().starts_with("cannot read the audit log "), "{err}");
    }
}
