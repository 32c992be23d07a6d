//! How late the replay is so far, while it runs: every request's lateness goes into a small
//! histogram shared by the request tasks, so the dispatch loop can say in the Simulation's
//! `Replay` condition how far behind the API server has left it (p99 so far) without holding
//! or sorting every figure. The exact quantiles are still computed at the end from all of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per doubling: a quantile is reported within 19 % of the true figure (2^(1/4)).
const PER_DOUBLING: f64 = 4.0;
/// Buckets: 1 ms · 2^(95/4) ≈ 14 hours is the last bound; later lateness lands in the last one.
const BUCKETS: usize = 96;

/// A p99 so far at or above this means the replay is falling behind its trace.
pub const BEHIND: Duration = Duration::from_millis(100);

/// Lateness of the requests made so far, in buckets growing by 2^(1/4) from 1 ms.
#[derive(Debug)]
pub struct LateMeter {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LateMeter {
    fn default() -> Self {
        LateMeter { buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl LateMeter {
    /// Counts one request that started `late` after its deadline.
    pub fn record(&self, late: Duration) {
        let ms = late.as_secs_f64() * 1000.0;
        let index = if ms <= 1.0 { 0 } else { (ms.log2() * PER_DOUBLING).ceil() as usize };
        if let Some(b) = self.buckets.get(index.min(BUCKETS - 1)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).fold(0u64, u64::saturating_add)
    }

    /// The `q` quantile so far (0..=1), as its bucket's upper bound; None before any request.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total = counts.iter().copied().fold(0u64, u64::saturating_add);
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based, at least the first request.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, n) in counts.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if seen >= rank {
                let ms = if i == 0 { 1.0 } else { 2f64.powf(i as f64 / PER_DOUBLING) };
                return Duration::try_from_secs_f64(ms / 1000.0).ok();
            }
        }
        None
    }

    /// What the `Replay` condition says while the replay is behind its trace (p99 so far at or
    /// over [`BEHIND`]), else None.
    pub fn behind(&self) -> Option<String> {
        let p99 = self.quantile(0.99).filter(|p| *p >= BEHIND)?;
        Some(format!(
            "behind the trace: requests start up to {} late (p99 so far, {} requests): the API server is not keeping up",
            human(p99),
            self.count()
        ))
    }
}

/// "140 ms", "2.4 s", "3 min".
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let m = LateMeter::default();
        assert_eq!(m.quantile(0.99), None);
        assert_eq!(m.behind(), None);
        for ms in 1..=1000u64 {
            m.record(Duration::from_millis(ms));
        }
        assert_eq!(m.count(), 1000);
        let p99 = m.quantile(0.99).unwrap().as_secs_f64() * 1000.0;
        assert!((990.0..=990.0 * 1.19).contains(&p99), "{p99}");
        let p50 = m.quantile(0.5).unwrap().as_secs_f64() * 1000.0;
        assert!((500.0..=500.0 * 1.19).contains(&p50), "{p50}");
        assert_eq!(m.quantile(0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_replay_that_keeps_up_is_not_behind_and_one_that_lags_says_by_how_much() {
        let m = LateMeter::default();
        for _ in 0..1000 {
            m.record(Duration::from_micros(300));
        }
        for _ in 0..5 {
            m.record(Duration::from_secs(3));
        }
        assert_eq!(m.behind(), None, "p99 is under a millisecond");
        for _ in 0..20 {
            m.record(Duration::from_millis(2500));
        }
        let says = m.behind().unwrap();
        assert!(says.contains("s late (p99 so far, 1025 requests)"), "{says}");
        assert!(says.starts_with("behind the trace: requests start up to 2."), "{says}");
    }

    #[test]
    fn absurd_lateness_lands_in_the_last_bucket() {
        let m = LateMeter::default();
        m.record(Duration::MAX);
        m.record(Duration::ZERO);
        assert_eq!(m.count(), 2);
        assert!(m.quantile(1.0).unwrap() > Duration::from_secs(3600));
        assert!(m.behind().unwrap().contains("min late"));
        assert_eq!(human(Duration::from_millis(140)), "140 ms");
    }
}
