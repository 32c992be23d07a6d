//! Where a run's files go: one layout for trace replays and scenario plays.
//!
//! A run of a Simulation: `LOG_DIR/<simulation>/<run index>/` locally and
//! `s3://<bucket>/<prefix>/<simulation>/<run index>/` when uploaded (the prefix is
//! `spec.artifacts.prefix`, possibly empty). A scenario played from a directory without a
//! Simulation keeps the Karpenter driver's `<run_id>/<start time>/`.

use std::path::{Path, PathBuf};

/// A run folder: where its files are written, and the key prefix they are uploaded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    /// The local folder.
    pub dir: PathBuf,
    /// Its key prefix in the bucket, without a leading or trailing '/'.
    pub key_prefix: String,
}

/// The key prefix of run `index` of `simulation` under `prefix`.
pub fn simulation_key(prefix: Option<&str>, simulation: &str, index: u32) -> String {
    let prefix = prefix.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
    match prefix {
        Some(p) => format!("{p}/{simulation}/{index}"),
        None => format!("{simulation}/{index}"),
    }
}

/// The folder of run `index` of `simulation` under `log_dir`.
pub fn simulation_run(log_dir: &Path, prefix: Option<&str>, simulation: &str, index: u32) -> RunFolder {
    RunFolder {
        dir: log_dir.join(simulation).join(index.to_string()),
        key_prefix: simulation_key(prefix, simulation, index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_runs_go_under_prefix_simulation_index() {
        let f = simulation_run(Path::new("/logs"), Some("team-a/"), "shop", 2);
        assert_eq!(f.dir, PathBuf::from("/logs/shop/2"));
        assert_eq!(f.key_prefix, "team-a/shop/2");
        assert_eq!(simulation_key(None, "shop", 0), "shop/0");
        assert_eq!(simulation_key(Some(""), "shop", 0), "shop/0");
        assert_eq!(simulation_key(Some("/a/b/"), "shop", 1), "a/b/shop/1");
    }
}
