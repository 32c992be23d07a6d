//! When each action is due: absolute deadlines on a monotonic clock.
//!
//! Every deadline is computed from the run's start (`start + offset / speed`), never by adding
//! up sleeps, so lateness in one step does not push the following ones back.

use std::time::Duration;

use tokio::time::Instant;

/// The time source of a run; tests substitute a manual one.
pub trait Clock: Send + Sync {
    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
    /// Returns at `deadline` or as soon after as it can.
    fn sleep_until(&self, deadline: Instant) -> impl std::future::Future<Output = ()> + Send;
}

/// The real clock: tokio's timer (millisecond wheel) for the bulk of a wait, then yielding
/// for the last stretch so actions start within a fraction of a millisecond of their deadline.
#[derive(Clone, Copy, Debug, Default)]
pub struct PreciseClock;

/// How long before a deadline the timer hands over to yielding.
const SPIN: Duration = Duration::from_millis(2);

impl Clock for PreciseClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        if let Some(early) = deadline.checked_sub(SPIN)
            && Instant::now() < early
        {
            tokio::time::sleep_until(early).await;
        }
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }
}

/// Offset of a recorded moment from the first one, at `speed` (2.0 = twice as fast).
/// Timestamps before the first one are due at once.
pub fn offset(first_ts: i64, ts: i64, speed: f64) -> Duration {
    let seconds = (ts.saturating_sub(first_ts)) as f64 / speed;
    if seconds.is_finite() && seconds > 0.0 { Duration::from_secs_f64(seconds) } else { Duration::ZERO }
}

/// Lateness of an action that started at `actual` for a `deadline` (zero when early).
pub fn lateness(deadline: Instant, actual: Instant) -> Duration {
    actual.saturating_duration_since(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_exact_and_scaled() {
        assert_eq!(offset(100, 100, 1.0), Duration::ZERO);
        assert_eq!(offset(100, 160, 1.0), Duration::from_secs(60));
        assert_eq!(offset(100, 160, 10.0), Duration::from_secs(6));
        // Sub-second results are kept, not rounded to whole seconds.
        assert_eq!(offset(0, 1, 4.0), Duration::from_millis(250));
        assert_eq!(offset(0, 1, 3.0).as_nanos(), 333_333_333);
        assert_eq!(offset(0, 205, 1000.0), Duration::from_millis(205));
    }

    #[test]
    fn earlier_timestamps_are_due_at_once() {
        assert_eq!(offset(100, 90, 1.0), Duration::ZERO);
        assert_eq!(offset(i64::MAX, i64::MIN, 1.0), Duration::ZERO);
    }

    #[test]
    fn deadlines_are_absolute_from_the_start() {
        let start = Instant::now();
        // Events one second apart at speed 4: every deadline is start + k/4 s exactly.
        let deadlines: Vec<_> = (0..5).map(|k| start + offset(1000, 1000 + k, 4.0)).collect();
        for (k, d) in deadlines.iter().enumerate() {
            assert_eq!(d.duration_since(start), Duration::from_millis(250 * k as u64));
        }
    }

    #[test]
    fn lateness_is_never_negative() {
        let d = Instant::now();
        assert_eq!(lateness(d + Duration::from_millis(5), d), Duration::ZERO);
        assert_eq!(lateness(d, d + Duration::from_micros(300)), Duration::from_micros(300));
    }

    #[tokio::test]
    async fn precise_clock_never_wakes_early() {
        // Never early; how late is measured by `make bench`, not asserted here.
        let clock = PreciseClock;
        for wait in [0, 1, 3, 7] {
            let deadline = clock.now() + Duration::from_millis(wait);
            clock.sleep_until(deadline).await;
            assert!(clock.now() >= deadline);
        }
    }
}
