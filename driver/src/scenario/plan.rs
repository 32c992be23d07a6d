//! The timing of a play, as pure arithmetic: which step comes k-th, and when it is due.
//!
//! The k-th step played (k from 0) is due at `t0 + k × timestep / speed`, computed from k each
//! time rather than by adding up sleeps, so per-step latency never accumulates into drift. There
//! is no wait after the last step (the original driver slept one more timestep).

use std::time::Duration;

/// 0-based index into the step list of the k-th step played (k from 0): the play starts at the
/// 1-based `start_step` and wraps past the last step to the first.
///
/// `start_step` 0 is taken as 1; `n_steps` must not be 0.
pub fn step_at(start_step: u32, k: u64, n_steps: usize) -> usize {
    let n = n_steps as u64;
    // Each term reduced first, so no k overflows.
    (((u64::from(start_step.max(1)) - 1) % n + k % n) % n) as usize
}

/// 0-based indices into the step list of every step a play runs, in order: `limit` of them from
/// the 1-based `start_step`, wrapping around (60 steps, start 50, limit 20: 49..=59 then 0..=8).
///
/// Empty when `limit` or `n_steps` is 0; `start_step` 0 is taken as 1.
pub fn step_sequence(start_step: u32, limit: u32, n_steps: usize) -> Vec<usize> {
    if n_steps == 0 {
        return Vec::new();
    }
    (0..u64::from(limit)).map(|k| step_at(start_step, k, n_steps)).collect()
}

/// When the k-th step played (k from 0) is due, after the start of the play: `k × timestep /
/// speed`, rounded to the nanosecond. Step 0 is due at once.
///
/// Total: a result that is not a number or is negative gives zero, one too large for a
/// `Duration` gives `Duration::MAX`.
pub fn step_offset(k: u64, timestep_seconds: f64, speed: f64) -> Duration {
    let seconds = k as f64 * timestep_seconds / speed;
    if seconds.is_nan() || seconds <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// How long a play of `limit` steps takes, without the actions' own time: the offset of its
/// last step, `(limit - 1) × timestep / speed`.
pub fn expected_duration(limit: u32, timestep_seconds: f64, speed: f64) -> Duration {
    step_offset(u64::from(limit.saturating_sub(1)), timestep_seconds, speed)
}

/// A duration the way Go prints one (and the Scenario's `status.expectedDuration` shows it):
/// "14m45s", "1h0m0s", "59.9s", "1.5ms", "0s".
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let total_secs = d.as_secs();
    let (hours, minutes) = (total_secs / 3600, (total_secs / 60) % 60);
    let seconds = decimal(u128::from(total_secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()), 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` with its fraction, trailing zeros dropped ("1.5", "59.9", "45").
fn decimal(value: u128, unit: u128) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_around() {
        assert_eq!(step_sequence(1, 60, 60), (0..60).collect::<Vec<_>>());
        assert_eq!(step_sequence(1, 90, 60), (0..60).chain(0..30).collect::<Vec<_>>());
        assert_eq!(step_sequence(50, 20, 60), (49..60).chain(0..9).collect::<Vec<_>>());
        assert_eq!(step_sequence(3, 7, 2), vec![0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(step_sequence(1, 0, 60), Vec::<usize>::new());
        assert_eq!(step_sequence(1, 5, 0), Vec::<usize>::new());
        assert_eq!(step_sequence(0, 2, 3), vec![0, 1]);
        assert_eq!(step_at(60, 1, 60), 0);
        assert_eq!(step_at(u32::MAX, u64::MAX, 7), ((u128::from(u32::MAX) - 1 + u128::from(u64::MAX)) % 7) as usize);
    }

    #[test]
    fn offsets_are_exact_and_do_not_accumulate() {
        assert_eq!(step_offset(0, 15.0, 1.0), Duration::ZERO);
        assert_eq!(step_offset(1, 15.0, 1.0), Duration::from_secs(15));
        assert_eq!(step_offset(59, 15.0, 15.0), Duration::from_secs(59));
        // 600 steps of 0.1 s: the last (k = 599) is due at 59.9 s exactly, although adding 0.1
        // 599 times in f64 does not give 59.9.
        assert_eq!(step_offset(599, 0.1, 1.0), Duration::from_millis(59_900));
        assert_ne!((0..599).fold(0.0_f64, |t, _| t + 0.1), 59.9);
        assert_eq!(step_offset(3, 0.3, 1.0), Duration::from_millis(900));
        assert_eq!(step_offset(1, 1.0, 0.0), Duration::MAX);
        assert_eq!(step_offset(1, f64::NAN, 1.0), Duration::ZERO);
        assert_eq!(step_offset(1, -1.0, 1.0), Duration::ZERO);
    }

    #[test]
    fn expected_durations() {
        assert_eq!(expected_duration(60, 15.0, 1.0), Duration::from_secs(885));
        assert_eq!(format_duration(expected_duration(60, 15.0, 1.0)), "14m45s");
        assert_eq!(expected_duration(60, 15.0, 15.0), Duration::from_secs(59));
        assert_eq!(format_duration(expected_duration(60, 15.0, 15.0)), "59s");
        assert_eq!(expected_duration(600, 0.1, 1.0), Duration::from_millis(59_900));
        assert_eq!(format_duration(expected_duration(600, 0.1, 1.0)), "59.9s");
        assert_eq!(expected_duration(1, 15.0, 1.0), Duration::ZERO);
        assert_eq!(expected_duration(0, 15.0, 1.0), Duration::ZERO);
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m0s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(60_250)), "1m0.25s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }
}
