//! Reading a run folder's JSON lines one line at a time: a run of hours leaves files larger
//! than the memory a report should take, and a collector killed mid-write leaves a truncated
//! last line that must cost that line only. Every line that does not parse is counted with its
//! file and line number, and the rest is still read.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest line read; a longer one counts as a bad line (a corrupt file without newlines must
/// not be read into memory whole).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Bad lines kept with their text, per folder; the others are only counted.
pub const MAX_BAD_LINES_KEPT: usize = 50;

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BadLine {
    /// The file, relative to the run folder.
    pub file: String,
    /// Line number, from 1.
    pub line: u64,
    /// Why it could not be read.
    pub error: String,
}

/// What was read of one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct FileRead {
    /// The file, relative to the run folder.
    pub file: String,
    /// Whether the folder has it.
    pub present: bool,
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Records read.
    pub records: u64,
    /// Lines that could not be read.
    pub bad_lines: u64,
}

/// Bad lines of a whole folder: all counted, the first [`MAX_BAD_LINES_KEPT`] kept.
#[derive(Debug, Default)]
pub struct BadLines {
    /// The first ones.
    pub kept: Vec<BadLine>,
    /// How many in all.
    pub total: u64,
}

impl BadLines {
    fn push(&mut self, bad: BadLine) {
        self.total = self.total.saturating_add(1);
        if self.kept.len() < MAX_BAD_LINES_KEPT {
            self.kept.push(bad);
        }
    }
}

/// Reads `dir/file` line by line, calling `each` with every record that parses as `T`. A missing
/// file is not an error (collection may have been off): it reads as absent. An I/O error other
/// than "not found" ends the file there and is counted as a bad line.
pub fn each_line<T: DeserializeOwned>(dir: &Path, file: &str, bad: &mut BadLines, mut each: impl FnMut(T)) -> FileRead {
    let mut read = FileRead { file: file.to_string(), ..FileRead::default() };
    let f = match File::open(dir.join(file)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return read,
        Err(e) => {
            read.present = true;
            read.bad_lines = 1;
            bad.push(BadLine { file: file.to_string(), line: 0, error: format!("cannot open: {e}") });
            return read;
        }
    };
    read.present = true;
    let mut reader = BufReader::with_capacity(64 * 1024, f);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let (n, too_long) = match read_line(&mut reader, &mut buf) {
            Ok(r) => r,
            Err(e) => {
                read.bad_lines = read.bad_lines.saturating_add(1);
                bad.push(BadLine { file: file.to_string(), line: read.lines.saturating_add(1), error: e.to_string() });
                break;
            }
        };
        if n == 0 {
            break;
        }
        read.lines = read.lines.saturating_add(1);
        let mut fail = |error: String| {
            read.bad_lines = read.bad_lines.saturating_add(1);
            bad.push(BadLine { file: file.to_string(), line: read.lines, error });
        };
        if too_long {
            fail(format!("line longer than {MAX_LINE_BYTES} bytes"));
            continue;
        }
        let line = trim(&buf);
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(record) => {
                read.records = read.records.saturating_add(1);
                each(record);
            }
            Err(e) => fail(e.to_string()),
        }
    }
    read
}

/// Reads one line into `buf` (without more than [`MAX_LINE_BYTES`] of it); returns the bytes
/// consumed and whether the line was cut.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if buf.len() <= MAX_LINE_BYTES || buf.last() == Some(&b'\n') {
        return Ok((n, false));
    }
    // Skip the rest of the long line.
    let mut rest = n;
    loop {
        let (done, used) = {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                (true, 0)
            } else {
                match available.iter().position(|&b| b == b'\n') {
                    Some(i) => (true, i.saturating_add(1)),
                    None => (false, available.len()),
                }
            }
        };
        reader.consume(used);
        rest = rest.saturating_add(used);
        if done {
            return Ok((rest, true));
        }
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i.saturating_add(1));
    line.get(start..end).unwrap_or_default()
}

/// Microseconds since the Unix epoch of an RFC 3339 time, or None when it does not parse.
pub fn micros(rfc3339: &str) -> Option<i64> {
    rfc3339.parse::<Timestamp>().ok().map(|t| t.as_microsecond())
}

/// [`micros`] of an optional time.
pub fn micros_opt(rfc3339: Option<&str>) -> Option<i64> {
    rfc3339.and_then(micros)
}

/// RFC 3339 (UTC, milliseconds) of microseconds since the epoch.
pub fn rfc3339(us: i64) -> String {
    match Timestamp::from_microsecond(us) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => us.to_string(),
    }
}

/// Milliseconds from `from` to `to` (microseconds), negative clamped to 0.
pub fn ms_between(from: i64, to: i64) -> f64 {
    let d = to.saturating_sub(from).max(0);
    // Whole microseconds, so the ms figure keeps three decimals exactly.
    d as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct R {
        n: i32,
    }

    #[test]
    fn reads_good_lines_and_counts_bad_ones_with_their_number() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.jsonl"), "{\"n\":1}\n\n{\"n\":\n{\"n\":3}\r\n{\"n\":4}").unwrap();
        let mut bad = BadLines::default();
        let mut seen = vec![];
        let read = each_line::<R>(tmp.path(), "x.jsonl", &mut bad, |r| seen.push(r.n));
        assert_eq!(seen, [1, 3, 4]);
        assert_eq!((read.present, read.lines, read.records, read.bad_lines), (true, 5, 3, 1));
        assert_eq!(bad.total, 1);
        assert_eq!((bad.kept[0].file.as_str(), bad.kept[0].line), ("x.jsonl", 3));
        assert!(bad.kept[0].error.contains("EOF"), "{}", bad.kept[0].error);

        let missing = each_line::<R>(tmp.path(), "none.jsonl", &mut bad, |_| {});
        assert_eq!((missing.present, missing.lines), (false, 0));
    }

    #[test]
    fn an_endless_line_is_cut_and_the_next_one_read() {
        let tmp = tempfile::tempdir().unwrap();
        let mut body = vec![b'x'; MAX_LINE_BYTES + 10];
        body.extend_from_slice(b"\n{\"n\":2}\n");
        std::fs::write(tmp.path().join("x.jsonl"), body).unwrap();
        let mut bad = BadLines::default();
        let mut seen = vec![];
        let read = each_line::<R>(tmp.path(), "x.jsonl", &mut bad, |r| seen.push(r.n));
        assert_eq!(seen, [2]);
        assert_eq!((read.lines, read.bad_lines), (2, 1));
        assert!(bad.kept[0].error.contains("longer than"));
    }

    #[test]
    fn times() {
        assert_eq!(micros("2026-12-02T10:00:01.5Z"), Some(1_796_205_601_500_000));
        assert_eq!(micros("yesterday"), None);
        assert_eq!(ms_between(1_000, 3_500), 2.5);
        assert_eq!(ms_between(3_500, 1_000), 0.0);
        assert_eq!(rfc3339(1_796_205_601_500_000), "2026-12-02T10:00:01.500Z");
    }
}
