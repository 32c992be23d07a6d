//! The JSON form of a trace (serde_json of SimKube's `Trace`): the top level is parsed into borrowed
//! `RawValue`s so events stay byte ranges in the buffer, and one event is decoded only when asked.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::{Position, TraceError};
use super::lifecycle::{Lifecycles, PodLifecycle};
use super::{Scanned, TraceEvent, check_object};

#[derive(Deserialize)]
#[serde(expecting = "a trace object")]
struct Top<'a> {
    #[serde(borrow)]
    version: Option<&'a RawValue>,
    #[serde(borrow)]
    config: Option<&'a RawValue>,
    #[serde(borrow)]
    events: Option<&'a RawValue>,
    // `index` is SimKube's bookkeeping: serde skips it (still checking its syntax).
    #[serde(borrow)]
    pod_lifecycles: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(expecting = "an event object")]
struct RawEvent<'a> {
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    applied_objs: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    deleted_objs: Option<Vec<&'a RawValue>>,
}

/// 1-based line and column of a byte offset; only computed on the error path, so the linear scan is fine.
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    Position::LineColumn { line, column: before.len() - line_start + 1 }
}

/// Byte offset of `part` (a slice borrowed from `whole`) within `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// A JSON part of the file being decoded: its text and where it starts in the file.
#[derive(Clone, Copy)]
struct Part<'a> {
    file: &'a [u8],
    text: &'a str,
    base: usize,
    origin: &'a str,
}

impl<'a> Part<'a> {
    fn sub(&self, raw: &'a RawValue) -> Part<'a> {
        Part {
            file: self.file,
            text: raw.get(),
            base: self.base + offset_in(self.text, raw.get()),
            origin: self.origin,
        }
    }

    fn range(&self) -> Range<usize> {
        self.base..self.base + self.text.len()
    }

    fn error(&self, offset: usize, context: impl Into<String>, problem: impl Into<String>) -> TraceError {
        TraceError::Malformed {
            origin: self.origin.to_string(),
            at: line_col(self.file, self.base + offset),
            context: context.into(),
            problem: problem.into(),
        }
    }

    /// Re-anchors a serde_json error (whose line/column count from the part's start) in the whole file.
    fn serde_error(&self, err: &serde_json::Error, context: impl Into<String>) -> TraceError {
        let message = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let problem = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
        let anchor = line_col(self.file, self.base);
        let at = match (anchor, err.line()) {
            (_, 0) => anchor,
            (Position::LineColumn { line, column }, 1) => {
                Position::LineColumn { line, column: column + err.column().saturating_sub(1) }
            }
            (Position::LineColumn { line, .. }, l) => Position::LineColumn { line: line + l - 1, column: err.column() },
            (other, _) => other,
        };
        TraceError::Malformed { origin: self.origin.to_string(), at, context: context.into(), problem }
    }

    fn parse<T: Deserialize<'a>>(&self, context: &str) -> Result<T, TraceError> {
        serde_json::from_str(self.text).map_err(|e| self.serde_error(&e, context))
    }
}

/// Parses the top level: checks the version, decodes config and pod lifecycles, and records each event's
/// byte range without decoding it.
pub(crate) fn scan(bytes: &[u8], origin: &str) -> Result<Scanned, TraceError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TraceError::Malformed {
        origin: origin.to_string(),
        at: line_col(bytes, e.valid_up_to()),
        context: "top level".to_string(),
        problem: "the JSON is not valid UTF-8".to_string(),
    })?;
    let file = Part { file: bytes, text, base: 0, origin };
    let top: Top<'_> = file.parse("top level")?;
    let start = text.len() - text.trim_start().len();
    let missing = |key: &str| file.error(start, "top level", format!("missing field `{key}`"));

    let version = file.sub(top.version.ok_or_else(|| missing("version"))?);
    let value: Value = version.parse("version")?;
    let Some(found) = value.as_i64().map(i128::from).or_else(|| value.as_u64().map(i128::from)) else {
        return Err(version.error(0, "version", format!("expected an integer, found {}", kind_of(&value))));
    };
    if found != 2 {
        return Err(TraceError::UnsupportedVersion { origin: origin.to_string(), version: found });
    }

    let config_part = file.sub(top.config.ok_or_else(|| missing("config"))?);
    let config: Value = config_part.parse("config")?;
    if !config.is_object() {
        return Err(config_part.error(0, "config", format!("expected an object, found {}", kind_of(&config))));
    }

    let events_part = file.sub(top.events.ok_or_else(|| missing("events"))?);
    let raw_events: Vec<&RawValue> = events_part.parse("events")?;
    let events = raw_events.into_iter().map(|raw| events_part.sub(raw).range()).collect();

    let lifecycles = match top.pod_lifecycles {
        Some(raw) => scan_lifecycles(file.sub(raw))?,
        None => Lifecycles::default(),
    };
    Ok(Scanned { version: 2, config, events, lifecycles })
}

/// `pod_lifecycles` keys are [GVK, owner] pairs, which a JSON object cannot hold: SimKube's JSON traces
/// carry `{}`. We also accept an array of `[[GVK, "ns/owner"], {hash: [lifecycle, ...]}]` pairs.
fn scan_lifecycles(part: Part<'_>) -> Result<Lifecycles, TraceError> {
    let mut lifecycles = Lifecycles::default();
    type Pair = ((String, String), BTreeMap<u64, Vec<PodLifecycle>>);
    match part.text.as_bytes().first() {
        Some(b'{') => {
            let map: serde_json::Map<String, Value> = part.parse("pod_lifecycles")?;
            if !map.is_empty() {
                let problem = "keys must be [GVK, \"namespace/name\"] pairs, which a JSON object cannot hold; \
                     write an array of [[GVK, \"namespace/name\"], {hash: [lifecycle, ...]}] pairs instead";
                return Err(part.error(0, "pod_lifecycles", problem));
            }
        }
        Some(b'[') => {
            let pairs: Vec<Pair> = part.parse("pod_lifecycles")?;
            for ((gvk, owner), by_hash) in pairs {
                lifecycles.insert(gvk, owner, by_hash);
            }
        }
        _ => return Err(part.error(0, "pod_lifecycles", "expected an object or an array")),
    }
    Ok(lifecycles)
}

/// Decodes event `index` from its byte range, checking every field and object.
pub(crate) fn decode_event(
    bytes: &[u8],
    range: Range<usize>,
    index: usize,
    origin: &str,
) -> Result<TraceEvent, TraceError> {
    let context = format!("events[{index}]");
    let base = range.start;
    // The whole file was checked to be UTF-8 by `scan` and ranges end on value boundaries: this cannot fail
    // for a range from the index, but an error beats a panic if it ever does.
    let text = std::str::from_utf8(&bytes[range]).map_err(|e| TraceError::Malformed {
        origin: origin.to_string(),
        at: line_col(bytes, base + e.valid_up_to()),
        context: context.clone(),
        problem: "not UTF-8".to_string(),
    })?;
    let part = Part { file: bytes, text, base, origin };
    let raw: RawEvent<'_> = part.parse(&context)?;
    let missing = |key: &str| part.error(0, &context, format!("missing field `{key}`"));

    let ts_part = part.sub(raw.ts.ok_or_else(|| missing("ts"))?);
    let ts: i64 = ts_part.parse(&format!("{context}.ts"))?;
    let applied =
        decode_objects(part, raw.applied_objs.ok_or_else(|| missing("applied_objs"))?, &context, "applied_objs")?;
    let deleted =
        decode_objects(part, raw.deleted_objs.ok_or_else(|| missing("deleted_objs"))?, &context, "deleted_objs")?;
    Ok(TraceEvent { ts, applied, deleted })
}

fn decode_objects(part: Part<'_>, raws: Vec<&RawValue>, event: &str, field: &str) -> Result<Vec<Value>, TraceError> {
    let mut objects = Vec::with_capacity(raws.len());
    for (k, raw) in raws.into_iter().enumerate() {
        let context = format!("{event}.{field}[{k}]");
        let object_part = part.sub(raw);
        let object: Value = object_part.parse(&context)?;
        check_object(&object).map_err(|problem| object_part.error(0, &context, problem))?;
        objects.push(object);
    }
    Ok(objects)
}

/// What a JSON value is, for error messages ("an object", "a string", ...).
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = b"ab\ncd\n";
        assert_eq!(line_col(text, 0), Position::LineColumn { line: 1, column: 1 });
        assert_eq!(line_col(text, 1), Position::LineColumn { line: 1, column: 2 });
        assert_eq!(line_col(text, 3), Position::LineColumn { line: 2, column: 1 });
        assert_eq!(line_col(text, 4), Position::LineColumn { line: 2, column: 2 });
    }

    #[test]
    fn errors_inside_parts_are_placed_in_the_whole_file() {
        let text = "{\n  \"version\": 2, \"config\": {},\n  \"events\": [\n    {\"ts\": 1,\n     \"applied_objs\": 7, \
                    \"deleted_objs\": []}\n  ]\n}\n";
        let scanned = scan(text.as_bytes(), "t.json").unwrap();
        let err = decode_event(text.as_bytes(), scanned.events[0].clone(), 0, "t.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.json: line 5, column 22: events[0]: invalid type: integer `7`, expected a sequence"
        );
    }
}
