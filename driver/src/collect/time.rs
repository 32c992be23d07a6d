//! The two clocks of a record: `t`, when the collector saw a change (this process's clock,
//! microseconds), and `at`, a time the API server wrote into the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

/// Now, as records write `t`: RFC 3339, UTC, microseconds (`2026-12-02T10:00:00.000001Z`).
pub fn now() -> String {
    stamp(Timestamp::now())
}

/// A time as records write `t`: RFC 3339, UTC, always six fractional digits.
pub fn stamp(t: Timestamp) -> String {
    format!("{t:.6}")
}

/// An API server `Time` as records write `at`: RFC 3339 with only the digits it has (whole
/// seconds for most fields), so nothing looks more precise than the API server made it.
pub fn at(t: &Time) -> String {
    t.0.to_string()
}

/// An API server `MicroTime` (Events' `eventTime`) as records write `at`.
pub fn at_micro(t: &MicroTime) -> String {
    t.0.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_has_microseconds_and_at_keeps_the_servers_precision() {
        let t = Timestamp::new(1_796_205_600, 1_000).unwrap();
        assert_eq!(stamp(t), "2026-12-02T10:00:00.000001Z");
        assert_eq!(stamp(Timestamp::new(1_796_205_600, 0).unwrap()), "2026-12-02T10:00:00.000000Z");
        assert_eq!(at(&Time(Timestamp::new(1_796_205_600, 0).unwrap())), "2026-12-02T10:00:00Z");
        assert_eq!(at_micro(&MicroTime(t)), "2026-12-02T10:00:00.000001Z");
        let n = now();
        assert!(n.parse::<Timestamp>().is_ok(), "{n}");
        assert_eq!(n.len(), "2026-12-02T10:00:00.000001Z".len(), "{n}");
    }
}
