//! The msgpack form of a trace (SimKube's `rmp_serde::to_vec_named`): the top level is scanned marker by
//! marker so events stay byte ranges in the buffer, and one event is decoded only when asked.

use std::collections::BTreeMap;
use std::ops::Range;

use rmp::Marker;
use serde_json::Value;

use super::error::{Position, TraceError};
use super::lifecycle::{Lifecycles, PodLifecycle};
use super::{Scanned, TraceEvent, check_object};

/// A problem at a byte offset; the caller adds the origin and which part of the trace it was reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MpError {
    pub(crate) offset: usize,
    pub(crate) problem: String,
}

impl MpError {
    fn into_trace(self, origin: &str, context: impl Into<String>) -> TraceError {
        TraceError::Malformed {
            origin: origin.to_string(),
            at: Position::Byte(self.offset),
            context: context.into(),
            problem: self.problem,
        }
    }
}

/// A read position in a buffer; every read checks bounds so corrupt input yields an error, never a panic.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn truncated(&self) -> MpError {
        MpError { offset: self.buf.len(), problem: "unexpected end of data (the trace is truncated)".to_string() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MpError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// Reads a big-endian unsigned integer of `n` (1, 2, 4 or 8) bytes.
    fn be(&mut self, n: usize) -> Result<u64, MpError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads a marker, returning its offset too so errors can point at the value's start.
    fn marker(&mut self) -> Result<(usize, Marker), MpError> {
        let at = self.pos;
        let byte = self.take(1)?[0];
        Ok((at, Marker::from_u8(byte)))
    }
}

/// What a marker starts, for messages such as "expected a map, found a string".
fn describe(marker: Marker) -> String {
    match marker {
        Marker::FixPos(_) | Marker::FixNeg(_) => "an integer".into(),
        Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => "an integer".into(),
        Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => "an integer".into(),
        Marker::F32 | Marker::F64 => "a float".into(),
        Marker::Null => "nil".into(),
        Marker::True | Marker::False => "a boolean".into(),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "a string".into(),
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "binary data".into(),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "an array".into(),
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "a map".into(),
        Marker::FixExt1 | Marker::FixExt2 | Marker::FixExt4 | Marker::FixExt8 | Marker::FixExt16 => {
            "an extension value".into()
        }
        Marker::Ext8 | Marker::Ext16 | Marker::Ext32 => "an extension value".into(),
        Marker::Reserved => "the reserved marker 0xc1".into(),
    }
}

fn unexpected(at: usize, expected: &str, found: Marker) -> MpError {
    MpError { offset: at, problem: format!("expected {expected}, found {}", describe(found)) }
}

/// Skips one complete value of any depth. Iterative (a count of values still to skip), so hostile
/// nesting cannot overflow the stack, and a declared length larger than the rest of the buffer fails at once.
pub(crate) fn skip_value(cur: &mut Cursor<'_>) -> Result<(), MpError> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let (at, marker) = cur.marker()?;
        let skip = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => 0,
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => cur.be(1)?,
            Marker::Str16 | Marker::Bin16 => cur.be(2)?,
            Marker::Str32 | Marker::Bin32 => cur.be(4)?,
            // Extensions carry a type byte before their data.
            Marker::FixExt1 => 2,
            Marker::FixExt2 => 3,
            Marker::FixExt4 => 5,
            Marker::FixExt8 => 9,
            Marker::FixExt16 => 17,
            Marker::Ext8 => cur.be(1)? + 1,
            Marker::Ext16 => cur.be(2)? + 1,
            Marker::Ext32 => cur.be(4)? + 1,
            Marker::FixArray(n) => {
                pending += u64::from(n);
                0
            }
            Marker::Array16 => {
                pending += cur.be(2)?;
                0
            }
            Marker::Array32 => {
                pending += cur.be(4)?;
                0
            }
            Marker::FixMap(n) => {
                pending += 2 * u64::from(n);
                0
            }
            Marker::Map16 => {
                pending += 2 * cur.be(2)?;
                0
            }
            Marker::Map32 => {
                pending += 2 * cur.be(4)?;
                0
            }
            Marker::Reserved => {
                return Err(MpError { offset: at, problem: "invalid msgpack marker 0xc1".to_string() });
            }
        };
        let skip = usize::try_from(skip).map_err(|_| cur.truncated())?;
        cur.take(skip)?;
        // Every value takes at least one byte: more pending values than bytes left means truncation.
        if pending > cur.remaining() as u64 {
            return Err(cur.truncated());
        }
    }
    Ok(())
}

/// Skips one value and returns its byte range.
fn value_range(cur: &mut Cursor<'_>) -> Result<Range<usize>, MpError> {
    let start = cur.pos();
    skip_value(cur)?;
    Ok(start..cur.pos())
}

pub(crate) fn read_map_len(cur: &mut Cursor<'_>) -> Result<usize, MpError> {
    let (at, marker) = cur.marker()?;
    let len = match marker {
        Marker::FixMap(n) => u64::from(n),
        Marker::Map16 => cur.be(2)?,
        Marker::Map32 => cur.be(4)?,
        other => return Err(unexpected(at, "a map", other)),
    };
    usize::try_from(len).map_err(|_| cur.truncated())
}

pub(crate) fn read_array_len(cur: &mut Cursor<'_>) -> Result<usize, MpError> {
    let (at, marker) = cur.marker()?;
    let len = match marker {
        Marker::FixArray(n) => u64::from(n),
        Marker::Array16 => cur.be(2)?,
        Marker::Array32 => cur.be(4)?,
        other => return Err(unexpected(at, "an array", other)),
    };
    usize::try_from(len).map_err(|_| cur.truncated())
}

pub(crate) fn read_str<'a>(cur: &mut Cursor<'a>) -> Result<&'a str, MpError> {
    let (at, marker) = cur.marker()?;
    let len = match marker {
        Marker::FixStr(n) => u64::from(n),
        Marker::Str8 => cur.be(1)?,
        Marker::Str16 => cur.be(2)?,
        Marker::Str32 => cur.be(4)?,
        other => return Err(unexpected(at, "a string", other)),
    };
    let len = usize::try_from(len).map_err(|_| cur.truncated())?;
    let bytes = cur.take(len)?;
    std::str::from_utf8(bytes).map_err(|e| MpError { offset: at, problem: format!("string is not UTF-8: {e}") })
}

/// Reads any msgpack integer; i128 holds both u64 and i64 so callers decide the range.
pub(crate) fn read_int(cur: &mut Cursor<'_>) -> Result<(usize, i128), MpError> {
    let (at, marker) = cur.marker()?;
    let value = match marker {
        Marker::FixPos(n) => i128::from(n),
        Marker::FixNeg(n) => i128::from(n),
        Marker::U8 => i128::from(cur.be(1)?),
        Marker::U16 => i128::from(cur.be(2)?),
        Marker::U32 => i128::from(cur.be(4)?),
        Marker::U64 => i128::from(cur.be(8)?),
        // Signed values: sign-extend from their width.
        Marker::I8 => i128::from(cur.be(1)? as u8 as i8),
        Marker::I16 => i128::from(cur.be(2)? as u16 as i16),
        Marker::I32 => i128::from(cur.be(4)? as u32 as i32),
        Marker::I64 => i128::from(cur.be(8)? as i64),
        other => return Err(unexpected(at, "an integer", other)),
    };
    Ok((at, value))
}

fn read_i64(cur: &mut Cursor<'_>) -> Result<i64, MpError> {
    let (at, value) = read_int(cur)?;
    i64::try_from(value).map_err(|_| MpError { offset: at, problem: format!("integer {value} does not fit in i64") })
}

fn read_u64(cur: &mut Cursor<'_>) -> Result<u64, MpError> {
    let (at, value) = read_int(cur)?;
    u64::try_from(value).map_err(|_| MpError { offset: at, problem: format!("integer {value} does not fit in u64") })
}

/// Decodes one self-contained value with rmp_serde; its errors carry no offset, so the value's start is used.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], range: Range<usize>) -> Result<T, MpError> {
    let start = range.start;
    rmp_serde::from_slice(&bytes[range]).map_err(|e| MpError { offset: start, problem: e.to_string() })
}

/// Scans the top-level map starting at `start`: checks the version, decodes config and pod lifecycles,
/// and records each event's byte range without decoding it.
pub(crate) fn scan(bytes: &[u8], start: usize, origin: &str) -> Result<Scanned, TraceError> {
    let mut cur = Cursor::new(bytes, start);
    let entries = read_map_len(&mut cur).map_err(|e| e.into_trace(origin, "top level"))?;
    let mut version = None;
    let mut config = None;
    let mut events: Option<Vec<Range<usize>>> = None;
    let mut lifecycles = None;
    let mut seen_index = false;
    for _ in 0..entries {
        let key_at = cur.pos();
        let key = read_str(&mut cur).map_err(|e| e.into_trace(origin, "top-level key"))?;
        let duplicate = match key {
            "version" => version.is_some(),
            "config" => config.is_some(),
            "events" => events.is_some(),
            "index" => seen_index,
            "pod_lifecycles" => lifecycles.is_some(),
            _ => false,
        };
        if duplicate {
            let problem = format!("duplicate key `{key}`");
            return Err(MpError { offset: key_at, problem }.into_trace(origin, "top level"));
        }
        match key {
            "version" => {
                let (_, found) = read_int(&mut cur).map_err(|e| e.into_trace(origin, "version"))?;
                // Checked as soon as it is read: other versions may be laid out differently.
                if found != 2 {
                    return Err(TraceError::UnsupportedVersion { origin: origin.to_string(), version: found });
                }
                version = Some(2u16);
            }
            "config" => {
                let range = value_range(&mut cur).map_err(|e| e.into_trace(origin, "config"))?;
                let at = range.start;
                let value: Value = decode(bytes, range).map_err(|e| e.into_trace(origin, "config"))?;
                if !value.is_object() {
                    let problem = "expected a map".to_string();
                    return Err(MpError { offset: at, problem }.into_trace(origin, "config"));
                }
                config = Some(value);
            }
            "events" => {
                let count = read_array_len(&mut cur).map_err(|e| e.into_trace(origin, "events"))?;
                // Capacity bounded by the bytes left: a corrupt length must not allocate gigabytes.
                let mut ranges = Vec::with_capacity(count.min(cur.remaining()));
                for i in 0..count {
                    let range = value_range(&mut cur).map_err(|e| e.into_trace(origin, format!("events[{i}]")))?;
                    ranges.push(range);
                }
                events = Some(ranges);
            }
            "index" => {
                // The index (object → spec hash) is SimKube's bookkeeping; replay does not need it.
                skip_value(&mut cur).map_err(|e| e.into_trace(origin, "index"))?;
                seen_index = true;
            }
            "pod_lifecycles" => lifecycles = Some(scan_lifecycles(bytes, &mut cur, origin)?),
            other => {
                // Unknown keys are skipped, as serde would, so newer writers' additions do not break us.
                let context = format!("top-level key `{other}`");
                skip_value(&mut cur).map_err(|e| e.into_trace(origin, context))?;
            }
        }
    }
    if cur.pos() != bytes.len() {
        let problem = format!("{} unexpected bytes after the end of the trace", bytes.len() - cur.pos());
        return Err(MpError { offset: cur.pos(), problem }.into_trace(origin, "top level"));
    }
    let missing =
        |key: &str| MpError { offset: start, problem: format!("missing key `{key}`") }.into_trace(origin, "top level");
    Ok(Scanned {
        version: version.ok_or_else(|| missing("version"))?,
        config: config.ok_or_else(|| missing("config"))?,
        events: events.ok_or_else(|| missing("events"))?,
        lifecycles: lifecycles.unwrap_or_default(),
    })
}

/// Decodes `pod_lifecycles`: keys are [GVK, "ns/owner"] arrays, values map pod-spec hash → lifecycles.
fn scan_lifecycles(bytes: &[u8], cur: &mut Cursor<'_>, origin: &str) -> Result<Lifecycles, TraceError> {
    let mut lifecycles = Lifecycles::default();
    let owners = read_map_len(cur).map_err(|e| e.into_trace(origin, "pod_lifecycles"))?;
    for j in 0..owners {
        let context = || format!("pod_lifecycles entry {j}");
        let key_at = cur.pos();
        let len = read_array_len(cur).map_err(|e| e.into_trace(origin, context()))?;
        if len != 2 {
            let problem = format!("key must be a [GVK, \"namespace/name\"] pair, found an array of {len}");
            return Err(MpError { offset: key_at, problem }.into_trace(origin, context()));
        }
        let gvk = read_str(cur).map_err(|e| e.into_trace(origin, context()))?.to_string();
        let owner = read_str(cur).map_err(|e| e.into_trace(origin, context()))?.to_string();
        let context = || format!("pod_lifecycles[{gvk}, {owner}]");
        let hashes = read_map_len(cur).map_err(|e| e.into_trace(origin, context()))?;
        let mut by_hash = BTreeMap::new();
        for _ in 0..hashes {
            let hash = read_u64(cur).map_err(|e| e.into_trace(origin, context()))?;
            let range = value_range(cur).map_err(|e| e.into_trace(origin, context()))?;
            let list: Vec<PodLifecycle> = decode(bytes, range).map_err(|e| e.into_trace(origin, context()))?;
            by_hash.insert(hash, list);
        }
        lifecycles.insert(gvk, owner, by_hash);
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
    // The cursor ends at the event's end, so a bad length inside cannot read into the next event.
    let mut cur = Cursor::new(&bytes[..range.end], range.start);
    let context = || format!("events[{index}]");
    let fields = read_map_len(&mut cur).map_err(|e| e.into_trace(origin, context()))?;
    let mut ts = None;
    let mut applied = None;
    let mut deleted = None;
    for _ in 0..fields {
        let key = read_str(&mut cur).map_err(|e| e.into_trace(origin, context()))?;
        match key {
            "ts" => ts = Some(read_i64(&mut cur).map_err(|e| e.into_trace(origin, format!("events[{index}].ts")))?),
            "applied_objs" | "deleted_objs" => {
                let objects = decode_objects(bytes, &mut cur, origin, &format!("events[{index}].{key}"))?;
                if key == "applied_objs" {
                    applied = Some(objects);
                } else {
                    deleted = Some(objects);
                }
            }
            other => {
                let context = format!("events[{index}].{other}");
                skip_value(&mut cur).map_err(|e| e.into_trace(origin, context))?;
            }
        }
    }
    let missing = |key: &str| {
        MpError { offset: range.start, problem: format!("missing key `{key}`") }.into_trace(origin, context())
    };
    Ok(TraceEvent {
        ts: ts.ok_or_else(|| missing("ts"))?,
        applied: applied.ok_or_else(|| missing("applied_objs"))?,
        deleted: deleted.ok_or_else(|| missing("deleted_objs"))?,
    })
}

fn decode_objects(bytes: &[u8], cur: &mut Cursor<'_>, origin: &str, field: &str) -> Result<Vec<Value>, TraceError> {
    let count = read_array_len(cur).map_err(|e| e.into_trace(origin, field))?;
    let mut objects = Vec::with_capacity(count.min(cur.remaining()));
    for k in 0..count {
        let context = || format!("{field}[{k}]");
        let range = value_range(cur).map_err(|e| e.into_trace(origin, context()))?;
        let at = range.start;
        let object: Value = decode(bytes, range).map_err(|e| e.into_trace(origin, context()))?;
        check_object(&object).map_err(|problem| MpError { offset: at, problem }.into_trace(origin, context()))?;
        objects.push(object);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(bytes: &[u8]) -> Result<usize, MpError> {
        let mut cur = Cursor::new(bytes, 0);
        skip_value(&mut cur)?;
        Ok(cur.pos())
    }

    #[test]
    fn skips_every_kind_of_value() {
        let value = serde_json::json!({
            "s": "x".repeat(40), "long": "y".repeat(300), "n": -5, "big": u64::MAX, "f": 1.5,
            "a": [null, true, false, [[], {}], {"k": [1, 2, 3]}], "i": -100_000i64,
        });
        let mut bytes = rmp_serde::to_vec_named(&value).unwrap();
        let len = bytes.len();
        // A following value must not be consumed.
        bytes.push(0xc0);
        assert_eq!(skip_all(&bytes).unwrap(), len);
        // Binary and extension values.
        let mut more = Vec::new();
        rmp::encode::write_bin(&mut more, &[1, 2, 3]).unwrap();
        assert_eq!(skip_all(&more).unwrap(), more.len());
        let mut ext = Vec::new();
        rmp::encode::write_ext_meta(&mut ext, 4, 7).unwrap();
        ext.extend_from_slice(&[9, 9, 9, 9]);
        assert_eq!(skip_all(&ext).unwrap(), ext.len());
        let mut ext8 = Vec::new();
        rmp::encode::write_ext_meta(&mut ext8, 3, 7).unwrap();
        ext8.extend_from_slice(&[9, 9, 9]);
        assert_eq!(skip_all(&ext8).unwrap(), ext8.len());
    }

    #[test]
    fn truncation_and_bad_markers_are_errors_with_offsets() {
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({"key": ["value", 1, 2]})).unwrap();
        for cut in 0..bytes.len() {
            let err = skip_all(&bytes[..cut]).unwrap_err();
            assert_eq!(err, MpError { offset: cut, problem: "unexpected end of data (the trace is truncated)".into() });
        }
        assert_eq!(
            skip_all(&[0x92, 0x01, 0xc1]).unwrap_err(),
            MpError { offset: 2, problem: "invalid msgpack marker 0xc1".into() }
        );
    }

    #[test]
    fn huge_declared_lengths_fail_fast() {
        // A map32 claiming 4 billion entries in a 5-byte buffer.
        let err = skip_all(&[0xdf, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.offset, 5);
        let err = skip_all(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert_eq!(err.offset, 6);
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let mut bytes = vec![0x91; 1_000_000];
        bytes.push(0xc0);
        assert_eq!(skip_all(&bytes).unwrap(), bytes.len());
    }

    #[test]
    fn integers_of_every_width() {
        for value in [0i64, 5, -1, -32, -33, 127, 128, 255, 256, -129, 65_536, -40_000, i64::MIN, i64::MAX] {
            let mut bytes = Vec::new();
            rmp::encode::write_sint(&mut bytes, value).unwrap();
            assert_eq!(read_i64(&mut Cursor::new(&bytes, 0)).unwrap(), value, "{value}");
        }
        let mut bytes = Vec::new();
        rmp::encode::write_uint(&mut bytes, u64::MAX).unwrap();
        assert_eq!(read_u64(&mut Cursor::new(&bytes, 0)).unwrap(), u64::MAX);
        let err = read_i64(&mut Cursor::new(&bytes, 0)).unwrap_err();
        assert_eq!(err.problem, "integer 18446744073709551615 does not fit in i64");
        let err = read_int(&mut Cursor::new(&[0xa1, b'x'], 0)).unwrap_err();
        assert_eq!(err, MpError { offset: 0, problem: "expected an integer, found a string".into() });
    }
}
