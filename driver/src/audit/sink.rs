//! `audit.jsonl`: the run's audit events, appended as they come from either source.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use super::filter::{AuditEvent, AuditScope, LineFilter, to_record};

/// Writes the run's audit events, one JSON line each; shared by the file follower and the
/// webhook receiver.
pub struct AuditSink {
    scope: AuditScope,
    filter: LineFilter,
    out: Mutex<Counted>,
}

struct Counted {
    out: BufWriter<File>,
    kept: u64,
    seen: u64,
    errors: u64,
}

/// What the sink did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Events read from the sources.
    pub seen: u64,
    /// Events kept (the run's).
    pub kept: u64,
    /// Lines that could not be read or written.
    pub errors: u64,
}

impl AuditSink {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path, scope: AuditScope) -> std::io::Result<Self> {
        let out = BufWriter::new(File::create(path)?);
        Ok(AuditSink {
            filter: scope.line_filter(),
            scope,
            out: Mutex::new(Counted { out, kept: 0, seen: 0, errors: 0 }),
        })
    }

    /// Keeps `event` if it is the run's.
    pub fn offer(&self, event: AuditEvent) {
        let keep = self.scope.keeps(&event);
        let mut c = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.seen = c.seen.saturating_add(1);
        if !keep {
            return;
        }
        let written = serde_json::to_writer(&mut c.out, &to_record(event)).map_err(std::io::Error::from);
        match written.and_then(|()| c.out.write_all(b"\n")) {
            Ok(()) => c.kept = c.kept.saturating_add(1),
            Err(e) => {
                c.errors = c.errors.saturating_add(1);
                tracing::warn!(error = %e, "audit.jsonl: cannot write");
            }
        }
    }

    /// Parses one line of an audit log and offers it; a line that is not an event is counted.
    /// Lines that cannot be the run's are counted as seen and not parsed.
    pub fn offer_line(&self, line: &[u8]) {
        if !self.filter.may_keep(line) {
            let mut c = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            c.seen = c.seen.saturating_add(1);
            return;
        }
        match serde_json::from_slice::<AuditEvent>(line) {
            Ok(event) => self.offer(event),
            Err(_) => self.count_error(),
        }
    }

    /// Counts an unreadable input.
    pub fn count_error(&self) {
        let mut c = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.errors = c.errors.saturating_add(1);
    }

    /// Flushes what is buffered.
    pub fn flush(&self) {
        let mut c = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = c.out.flush() {
            tracing::warn!(error = %e, "audit.jsonl: cannot flush");
        }
    }

    /// What it did so far.
    pub fn counts(&self) -> SinkCounts {
        let c = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        SinkCounts { seen: c.seen, kept: c.kept, errors: c.errors }
    }
}
