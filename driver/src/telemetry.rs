//! Logging setup.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `verbosity` (a level or an EnvFilter expression); a bad value falls back
/// to "info" with a warning rather than failing the run.
pub fn init(verbosity: &str) {
    let (filter, bad) = match EnvFilter::try_new(verbosity) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Some(e) = bad {
        tracing::warn!("--verbosity {verbosity:?} is not a level or filter ({e}); logging at info");
    }
}
