//! Bounds on every number the driver takes from input (a Simulation or Scenario spec, a flag, a
//! trace, a scenario directory), and the checked conversions that enforce them.
//!
//! The bounds are chosen so that every deadline the driver computes from them (`start + offset /
//! speed`, `t0 + k × timestep / speed`, a wait's timeout) fits a `Duration` and an `Instant` with
//! room to spare, so no arithmetic downstream can overflow or panic:
//!
//! | input | bound |
//! |---|---|
//! | speed (`spec.speed`, `--speed`) | 0.001 ≤ speed ≤ 10000 |
//! | `spec.duration` | at most 30 days (720h) |
//! | scenario `timestep` | 0.001 s ≤ timestep ≤ 86400 s (one day) |
//! | scenario `limit` | 1 ≤ limit ≤ 100000 steps, or the number of steps when larger |
//! | scenario `start_step` / `startStep` | 1 ≤ startStep ≤ 2147483647 (it wraps around the step list) |
//! | `WAIT_AVAILABLE` `timeoutSeconds` | 1 ≤ timeoutSeconds ≤ 86400 |
//! | `--ready-timeout`, `--cleanup-timeout` | 1 ≤ seconds ≤ 86400 |
//! | trace timestamps (events, pod lifecycles) | 0001-01-01T00:00:00Z ≤ ts ≤ 9999-12-31T23:59:59Z |
//!
//! The worst case offset is then a trace spanning the whole timestamp range at the slowest speed,
//! about 3.2e14 s: far below `Duration::MAX` (1.8e19 s) and an `Instant`'s range (i64 seconds).

use std::time::Duration;

/// Slowest speed accepted: a thousandth of recorded time.
pub const MIN_SPEED: f64 = 0.001;
/// Fastest speed accepted: ten thousand times recorded time (a day in under 9 s).
pub const MAX_SPEED: f64 = 10_000.0;
/// Longest `spec.duration`: 30 days of trace or scenario time.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Shortest scenario timestep, in seconds.
pub const MIN_TIMESTEP_SECONDS: f64 = 0.001;
/// Longest scenario timestep, in seconds: one day.
pub const MAX_TIMESTEP_SECONDS: f64 = 86_400.0;
/// Most steps one play runs (`limit`, wrapping around the step list), unless the scenario itself
/// holds more (see [`max_limit`]).
pub const MAX_LIMIT: i64 = 100_000;
/// Longest wait of a `WAIT_AVAILABLE` action, and of `--ready-timeout`/`--cleanup-timeout`, in seconds.
pub const MAX_TIMEOUT_SECONDS: i64 = 86_400;
/// Earliest trace timestamp: 0001-01-01T00:00:00Z, the start of RFC 3339's range.
pub const MIN_TRACE_TS: i64 = -62_135_596_800;
/// Latest trace timestamp: 9999-12-31T23:59:59Z, the end of RFC 3339's range.
pub const MAX_TRACE_TS: i64 = 253_402_300_799;

/// The largest `limit` a scenario of `n_steps` steps takes: [`MAX_LIMIT`], or the number of
/// steps when larger. A play of every step is as big as its input, never amplified by one number;
/// the scenario's size is bound only by memory (a directory) or by the object's size (a Scenario).
pub fn max_limit(n_steps: usize) -> i64 {
    MAX_LIMIT.max(i64::try_from(n_steps).unwrap_or(i64::MAX))
}

/// A number from input outside its bounds, or text that is not the number it should be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoundError {
    /// A speed outside [`MIN_SPEED`]..=[`MAX_SPEED`] (or not a number).
    #[error("{field} {value}: must be a number from 0.001 to 10000")]
    Speed {
        /// The field or flag, e.g. `spec.speed` or `--speed`.
        field: String,
        /// The value as given.
        value: String,
    },
    /// A duration that is not Go duration syntax.
    #[error("{field} {value:?}: not a Go duration such as 90s, 5m or 1h30m")]
    DurationSyntax {
        /// The field, e.g. `spec.duration`.
        field: String,
        /// The text as given.
        value: String,
    },
    /// A duration longer than [`MAX_DURATION`].
    #[error("{field} {value:?}: longer than the maximum of 30 days (720h)")]
    DurationTooLong {
        /// The field, e.g. `spec.duration`.
        field: String,
        /// The text as given.
        value: String,
    },
}

/// Checks a speed: finite and within [`MIN_SPEED`]..=[`MAX_SPEED`].
pub fn check_speed(field: &str, value: f64) -> Result<f64, BoundError> {
    if value.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&value) {
        Ok(value)
    } else {
        Err(BoundError::Speed { field: field.to_string(), value: value.to_string() })
    }
}

/// Parses a Go-style duration ("90s", "5m", "1h30m", "250ms", "1.5m"; the units the CRD's schema
/// allows) of at most [`MAX_DURATION`]. `field` names it in errors.
pub fn parse_duration(field: &str, s: &str) -> Result<Duration, BoundError> {
    let bad = || BoundError::DurationSyntax { field: field.to_string(), value: s.to_string() };
    let too_long = || BoundError::DurationTooLong { field: field.to_string(), value: s.to_string() };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        // 20 digits parse fine as f64 (1e20); the total is checked against the maximum below.
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        total += value * unit;
        rest = &rest[len..];
    }
    // Compared in f64 first: an infinite or huge total never reaches the Duration conversion.
    if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
        return Err(too_long());
    }
    Duration::try_from_secs_f64(total).map_err(|_| too_long())
}

/// Offset of trace time `ts` from `first_ts` at `speed`, checked: `None` when the timestamps or
/// the speed are outside their bounds (a parsed trace and a checked speed never are).
pub fn trace_offset(first_ts: i64, ts: i64, speed: f64) -> Option<Duration> {
    let span = ts.checked_sub(first_ts)?.max(0);
    check_speed("speed", speed).ok()?;
    Duration::try_from_secs_f64(span as f64 / speed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration("spec.duration", s);
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(d("720h"), Ok(MAX_DURATION));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "5 m", "m", "-1s", "5d", ".s", "1..2s", "1e9s", "s5"] {
            assert_eq!(
                d(bad).map_err(|e| e.to_string()),
                Err(format!("spec.duration {bad:?}: not a Go duration such as 90s, 5m or 1h30m")),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations_past_the_maximum_are_errors_not_panics() {
        // 20 digits: Duration::from_secs_f64 panicked on this before.
        assert_eq!(
            parse_duration("spec.duration", "99999999999999999999h").map_err(|e| e.to_string()),
            Err(r#"spec.duration "99999999999999999999h": longer than the maximum of 30 days (720h)"#.to_string())
        );
        let huge = format!("{}s", "9".repeat(400)); // parses as f64 infinity
        assert!(matches!(parse_duration("d", &huge), Err(BoundError::DurationTooLong { .. })));
        assert!(matches!(parse_duration("d", "720h1ms"), Err(BoundError::DurationTooLong { .. })));
        assert!(matches!(parse_duration("d", "719h60m0.001s"), Err(BoundError::DurationTooLong { .. })));
    }

    #[test]
    fn speeds() {
        assert_eq!(check_speed("spec.speed", 1.0), Ok(1.0));
        assert_eq!(check_speed("spec.speed", MIN_SPEED), Ok(MIN_SPEED));
        assert_eq!(check_speed("spec.speed", MAX_SPEED), Ok(MAX_SPEED));
        assert_eq!(
            check_speed("spec.speed", 1e-20).map_err(|e| e.to_string()),
            Err("spec.speed 0.00000000000000000001: must be a number from 0.001 to 10000".to_string())
        );
        for bad in [0.0, -1.0, 10_000.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert!(check_speed("--speed", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_at_the_extremes_do_not_overflow() {
        assert_eq!(trace_offset(0, 10, 2.0), Some(Duration::from_secs(5)));
        assert_eq!(trace_offset(10, 0, 2.0), Some(Duration::ZERO));
        // i64 bounds: the subtraction overflows, reported as None rather than a panic.
        assert_eq!(trace_offset(i64::MIN, i64::MAX, 1.0), None);
        assert_eq!(trace_offset(i64::MAX, i64::MIN, 1.0), None);
        assert_eq!(trace_offset(0, 1, 1e-20), None);
        // The widest span the bounds allow, at the slowest speed, fits an Instant.
        let widest = trace_offset(MIN_TRACE_TS, MAX_TRACE_TS, MIN_SPEED).expect("fits a Duration");
        assert!(std::time::Instant::now().checked_add(widest).is_some());
        assert!(tokio::time::Instant::now().checked_add(widest).is_some());
    }
}
