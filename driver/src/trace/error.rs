//! Errors of reading and parsing traces; each message starts with the trace's location so a user
//! running several simulations knows which trace is at fault.

use std::fmt;

/// Where in a trace a problem is: a byte offset (msgpack) or a line and column (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Offset from the start of the file, 0-based.
    Byte(usize),
    /// Line and column (in bytes), both 1-based, as editors show them.
    LineColumn { line: usize, column: usize },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Byte(offset) => write!(f, "byte {offset}"),
            Position::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
        }
    }
}

/// Why a trace could not be read or parsed; every message names the trace's location or origin.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file, bucket or key does not exist.
    #[error("{location}: not found: {detail}")]
    NotFound { location: String, detail: String },
    /// The file or object exists but we may not read it.
    #[error("{location}: permission denied: {detail}")]
    PermissionDenied { location: String, detail: String },
    /// No connection to the server holding the trace.
    #[error("{location}: unreachable: {detail}")]
    Unreachable { location: String, detail: String },
    /// The HTTP server answered with a non-2xx status.
    #[error("{location}: HTTP status {status}")]
    HttpStatus { location: String, status: String },
    /// The location's scheme is not one we can read from.
    #[error("{location}: unsupported trace location scheme '{scheme}' (use file://, s3://, http:// or https://)")]
    UnsupportedScheme { location: String, scheme: String },
    /// The location is malformed (e.g. an s3:// URL without a key).
    #[error("{location}: invalid trace location: {detail}")]
    InvalidLocation { location: String, detail: String },
    /// Any other failure while reading the bytes.
    #[error("{location}: cannot read the trace: {detail}")]
    Read { location: String, detail: String },
    /// The file holds nothing but (possibly) whitespace.
    #[error("{origin}: the trace is empty")]
    Empty { origin: String },
    /// The first byte is neither a JSON object nor a msgpack map.
    #[error("{origin}: not a trace: expected a msgpack map or a JSON object, but the first bytes are {first_bytes}")]
    UnknownFormat { origin: String, first_bytes: String },
    /// A well-formed trace of a format version this driver does not read.
    #[error("{origin} is trace format version {version}; this driver reads version 2")]
    UnsupportedVersion { origin: String, version: i128 },
    /// The trace is truncated, corrupt or does not have the expected structure.
    #[error("{origin}: {at}: {context}: {problem}")]
    Malformed { origin: String, at: Position, context: String, problem: String },
    /// `Trace::event` was asked for an event past the end.
    #[error("{origin}: there is no event {index}; the trace has {count} events")]
    NoSuchEvent { origin: String, index: usize, count: usize },
}

/// Up to 8 bytes in hex plus a printable rendering, so users can tell a gzip or HTML file at a glance.
pub(crate) fn describe_first_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(8)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
    format!("{} ({text:?})", hex.join(" "))
}
