//! What a run records while it runs: watch-based collectors streaming JSON lines to the run's
//! folder ([`records`] holds their formats).

pub mod records;
