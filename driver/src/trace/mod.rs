//! Recorded cluster traces (SimKube format version 2): reading, validating, decoding events.
//!
//! A trace is kept as its raw bytes plus an index of event byte ranges; events are decoded one at a
//! time when the replay needs them, so a 100 MB trace does not become gigabytes of JSON values.

mod error;
pub mod guard;
mod json;
pub(crate) use json::kind_of;
mod lifecycle;
mod location;
mod msgpack;
mod synthetic;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use serde_json::Value;

// The public API; re-exports without a caller yet would warn until the replay driver uses them.
#[allow(unused_imports)]
pub use error::{Position, TraceError};
#[allow(unused_imports)]
pub use lifecycle::PodLifecycle;
#[allow(unused_imports)]
pub use location::{read, read_with_policy};
#[allow(unused_imports)]
pub use synthetic::{msgpack_to_json, synthetic, write_synthetic};

use lifecycle::Lifecycles;

/// Which encoding a trace was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// SimKube's native `.sktrace` (rmp_serde, named fields).
    Msgpack,
    /// serde_json of the same structure.
    Json,
}

/// One decoded event: objects applied and deleted at `ts` (Unix seconds), as DynamicObject-shaped JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEvent {
    /// Unix time in seconds.
    pub ts: i64,
    /// Objects created or updated at `ts`.
    pub applied: Vec<Value>,
    /// Objects deleted at `ts`.
    pub deleted: Vec<Value>,
}

/// Where an event lies in the buffer, and its timestamp so schedules need no decoding.
#[derive(Debug, Clone, Copy)]
struct EventSpan {
    ts: i64,
    start: usize,
    end: usize,
}

/// The top level of a trace as the format scanners hand it over, before events are checked.
pub(crate) struct Scanned {
    pub(crate) version: u16,
    pub(crate) config: Value,
    pub(crate) events: Vec<Range<usize>>,
    pub(crate) lifecycles: Lifecycles,
}

/// A validated trace: the raw bytes (one copy) and an index of event byte ranges, not decoded events.
pub struct Trace {
    origin: String,
    format: TraceFormat,
    bytes: Vec<u8>,
    version: u16,
    config: Value,
    events: Vec<EventSpan>,
    object_count: usize,
    kinds: BTreeSet<(String, String)>,
    lifecycles: Lifecycles,
}

impl fmt::Debug for Trace {
    // The bytes are left out: they can be hundreds of megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("origin", &self.origin)
            .field("format", &self.format)
            .field("bytes", &self.bytes.len())
            .field("version", &self.version)
            .field("events", &self.events.len())
            .field("object_count", &self.object_count)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// The timestamp range a trace may use, as messages name it (see `limits`).
const TS_BOUNDS: &str = "-62135596800..=253402300799 (0001-01-01 to 9999-12-31 in Unix seconds)";

/// Is this byte a msgpack map marker (fixmap, map16, map32)?
fn is_msgpack_map(byte: u8) -> bool {
    matches!(byte, 0x80..=0x8f | 0xde | 0xdf)
}

impl Trace {
    /// Parses and fully validates a trace: format detected from the first non-whitespace byte
    /// ('{' = JSON, a msgpack map marker = msgpack; anything else is an error naming the first bytes);
    /// version must be 2 (else "… is trace format version N; this driver reads version 2"); every event is
    /// decoded once to check it (then dropped), so a truncated or corrupt file fails here, before anything is
    /// applied, with the byte offset (msgpack) or line/column (JSON) and which event/field.
    pub fn parse(bytes: Vec<u8>, origin: &str) -> Result<Trace, TraceError> {
        let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
            return Err(TraceError::Empty { origin: origin.to_string() });
        };
        let (format, scanned) = match bytes[start] {
            b'{' => (TraceFormat::Json, json::scan(&bytes, origin)?),
            b if is_msgpack_map(b) => (TraceFormat::Msgpack, msgpack::scan(&bytes, start, origin)?),
            _ => {
                let first_bytes = error::describe_first_bytes(&bytes[start..]);
                return Err(TraceError::UnknownFormat { origin: origin.to_string(), first_bytes });
            }
        };
        let Scanned { version, config, events: ranges, lifecycles } = scanned;
        let ts_range = crate::limits::MIN_TRACE_TS..=crate::limits::MAX_TRACE_TS;
        if let Some((gvk, owner, lifecycle)) = lifecycles.first_outside(ts_range.clone()) {
            // Lifetimes are end - start, divided by the speed: i64 extremes would overflow.
            return Err(TraceError::Malformed {
                origin: origin.to_string(),
                at: match format {
                    TraceFormat::Msgpack => Position::Byte(start),
                    TraceFormat::Json => json::line_col(&bytes, start),
                },
                context: format!("pod_lifecycles[{gvk}, {owner}]"),
                problem: format!("{lifecycle:?} has a timestamp outside {TS_BOUNDS}"),
            });
        }

        let mut trace = Trace {
            origin: origin.to_string(),
            format,
            bytes,
            version,
            config,
            events: Vec::with_capacity(ranges.len()),
            object_count: 0,
            kinds: BTreeSet::new(),
            lifecycles,
        };
        for (i, range) in ranges.into_iter().enumerate() {
            let event = trace.decode(i, range.clone())?;
            if !ts_range.contains(&event.ts) {
                // Offsets are ts - first_ts divided by the speed: i64 extremes would overflow.
                return Err(TraceError::Malformed {
                    origin: trace.origin.clone(),
                    at: trace.position(range.start),
                    context: format!("events[{i}].ts"),
                    problem: format!("timestamp {} is outside {TS_BOUNDS}", event.ts),
                });
            }
            if let Some(previous) = trace.events.last()
                && event.ts < previous.ts
            {
                // Replay schedules events at offsets from the first one; going back in time has no meaning.
                return Err(TraceError::Malformed {
                    origin: trace.origin.clone(),
                    at: trace.position(range.start),
                    context: format!("events[{i}].ts"),
                    problem: format!(
                        "timestamp {} is earlier than the previous event's {}; events must be in time order",
                        event.ts, previous.ts
                    ),
                });
            }
            trace.object_count += event.applied.len() + event.deleted.len();
            for object in event.applied.iter().chain(&event.deleted) {
                // check_object guaranteed both are strings.
                let api_version = object["apiVersion"].as_str().unwrap_or_default();
                let kind = object["kind"].as_str().unwrap_or_default();
                // Few distinct kinds: a linear look before inserting saves two allocations per object.
                if !trace.kinds.iter().any(|(a, k)| a == api_version && k == kind) {
                    trace.kinds.insert((api_version.to_string(), kind.to_string()));
                }
            }
            trace.events.push(EventSpan { ts: event.ts, start: range.start, end: range.end });
        }
        Ok(trace)
    }

    fn decode(&self, index: usize, range: Range<usize>) -> Result<TraceEvent, TraceError> {
        match self.format {
            TraceFormat::Msgpack => msgpack::decode_event(&self.bytes, range, index, &self.origin),
            TraceFormat::Json => json::decode_event(&self.bytes, range, index, &self.origin),
        }
    }

    /// How a byte offset is shown in messages for this trace's format.
    fn position(&self, offset: usize) -> Position {
        match self.format {
            TraceFormat::Msgpack => Position::Byte(offset),
            TraceFormat::Json => json::line_col(&self.bytes, offset),
        }
    }

    /// Where the trace came from, as given to `parse` (used in every error message).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Msgpack or JSON.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// The trace format version (always 2 for a parsed trace).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The tracer config (`trackedObjects` etc.), kept as JSON.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Number of events.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Applied plus deleted objects over all events.
    pub fn object_count(&self) -> usize {
        self.object_count
    }

    /// Timestamp of the first event.
    pub fn first_ts(&self) -> Option<i64> {
        self.events.first().map(|e| e.ts)
    }

    /// Timestamp of the last event.
    pub fn last_ts(&self) -> Option<i64> {
        self.events.last().map(|e| e.ts)
    }

    /// Every event's timestamp in order, from the index (no decoding).
    pub fn event_timestamps(&self) -> impl Iterator<Item = i64> + '_ {
        self.events.iter().map(|e| e.ts)
    }

    /// Decodes event i (0-based) on demand; objects as serde_json::Value (DynamicObject-shaped JSON).
    pub fn event(&self, i: usize) -> Result<TraceEvent, TraceError> {
        let span = self.events.get(i).ok_or_else(|| TraceError::NoSuchEvent {
            origin: self.origin.clone(),
            index: i,
            count: self.events.len(),
        })?;
        self.decode(i, span.start..span.end)
    }

    /// Decodes every event in order, one at a time.
    pub fn events(&self) -> impl Iterator<Item = Result<TraceEvent, TraceError>> + '_ {
        (0..self.events.len()).map(|i| self.event(i))
    }

    /// Every distinct (apiVersion, kind) among applied and deleted objects (collected during parse).
    pub fn kinds(&self) -> &BTreeSet<(String, String)> {
        &self.kinds
    }

    /// Recorded lifecycles of pods owned by an object, by owner GVK string ("batch/v1.CronJob", "v1.Pod") and
    /// "namespace/name" of the owner as recorded (original namespace), flattened in a deterministic order
    /// (inner map keys — the pod-spec hashes — ascending, then list order).
    pub fn lifecycles(&self, owner_gvk: &str, owner: &str) -> &[PodLifecycle] {
        self.lifecycles.get(owner_gvk, owner)
    }

    /// The owner's recorded lifecycles of pods whose stable spec hashed to `pod_spec_hash` (SimKube's
    /// key, see `webhook::spec_hash`), in recorded order; None when the trace has none under that hash.
    pub fn lifecycles_for_hash(&self, owner_gvk: &str, owner: &str, pod_spec_hash: u64) -> Option<&[PodLifecycle]> {
        self.lifecycles.get_for_hash(owner_gvk, owner, pod_spec_hash)
    }

    #[cfg(test)]
    /// Heap held besides the raw bytes: the event index, kinds and lifecycles (an estimate, for tests).
    fn index_heap_bytes(&self) -> usize {
        let kinds: usize = self.kinds.iter().map(|(a, k)| a.len() + k.len() + 48).sum();
        self.events.capacity() * std::mem::size_of::<EventSpan>() + kinds + self.lifecycles.owner_count() * 128
    }
}

/// The GVK string SimKube uses: "apps/v1.Deployment", core group "v1.Pod".
pub fn gvk_string(api_version: &str, kind: &str) -> String {
    format!("{api_version}.{kind}")
}

/// Checks an object has what replay needs to apply or delete it; returns the problem otherwise.
pub(crate) fn check_object(object: &Value) -> Result<(), String> {
    let Some(map) = object.as_object() else {
        return Err("expected an object".to_string());
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => {}
            _ => return Err(format!("object has no `{field}` string")),
        }
    }
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err("object has no `metadata.name` string".to_string()),
    }
}
