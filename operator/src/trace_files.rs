//! Trace files: which `file://` locations (and plain paths) a Simulation may name, and the flag and
//! volume that let its replay Job read them.
//!
//! The Simulation's author picks the path, but the driver reads it with the driver pod's own
//! mounts (its serving key, its service-account token): so the operator offers file traces only
//! inside a directory its administrator chose (`--trace-file-root`), and refuses the rest before
//! any Job exists. The driver, which can resolve symlinks in its own file system, confines the
//! same path again (`--trace-file-root` of `rehearsal-driver replay`).

use std::path::{Component, Path, PathBuf};

use rehearsal_driver::trace::guard;

use crate::error::{Error, Result};
use crate::settings::Settings;

/// Stalled reason of a file trace when the operator offers none.
pub const FILE_TRACES_DISABLED: &str = "FileTracesDisabled";
/// Stalled reason of a file trace outside the offered directory.
pub const FILE_TRACE_OUTSIDE_ROOT: &str = "FileTraceOutsideRoot";
/// Name of the volume holding `--trace-file-claim` in a replay Job.
pub const VOLUME: &str = "trace-files";

/// The field a file trace is written in.
const FIELD: &str = "spec.source.trace.uri";

/// Driver mounts a file root must neither contain nor sit in: the run's serving key and trace
/// copy, and the pod's service-account token (`/var/run` is usually a link to `/run`).
const PRIVATE_DIRS: [&str; 3] = ["/etc/rehearsal", "/var/run/secrets", "/run/secrets"];

/// The file a trace location names, if any: `Ok(None)` for locations that are not files (s3,
/// http(s), other schemes the driver reports itself), `Ok(Some(path))` for a file inside the
/// operator's trace directory, and a permanent error naming `simulation`, the field and the
/// flag for any other file.
pub fn allowed_file<'a>(simulation: &str, location: &'a str, settings: &Settings) -> Result<Option<&'a Path>> {
    let Some(raw) = guard::file_path(location) else { return Ok(None) };
    let Some(root) = &settings.trace_file_root else {
        return Err(Error::permanent(
            FILE_TRACES_DISABLED,
            format!(
                "Simulation {simulation}: {FIELD}: {location:?} is a file in the driver's container, and this operator \
                 offers no trace files; its administrators enable them with --trace-file-root DIR (and \
                 --trace-file-claim NAME to mount a volume there); meanwhile use s3://, http(s):// or \
                 spec.source.trace.configMapRef"
            ),
        ));
    };
    let path = Path::new(raw);
    let outside = |why: &str| {
        Error::permanent(
            FILE_TRACE_OUTSIDE_ROOT,
            format!(
                "Simulation {simulation}: {FIELD}: {location:?}: the path {raw} {why}; this operator reads trace \
                 files only inside {} (--trace-file-root)",
                root.display()
            ),
        )
    };
    // The path lives in the Job's volume, which the operator cannot see: `..` cannot be resolved
    // here, so it is refused rather than guessed at.
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(outside("has a \"..\" component, which is refused; name the file without it"));
    }
    if !path.is_absolute() {
        return Err(outside("is not absolute"));
    }
    // Component-wise, so /traces-other/t is not inside /traces.
    if path == root.as_path() {
        return Err(outside("is that directory itself, not a file in it"));
    }
    if !path.starts_with(root) {
        return Err(outside("is outside that directory"));
    }
    Ok(Some(path))
}

/// Checks `--trace-file-root`: absolute, no `..`, not `/`, and clear of the driver's private
/// mounts (a root containing them would offer the driver's key or token as a "trace").
pub fn parse_root(value: &str) -> Result<PathBuf, String> {
    let path = Path::new(value);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{value:?} is not an absolute path without \"..\""));
    }
    // Collecting the components drops a trailing '/' and '.' parts: /traces/ and /traces/. are /traces.
    let root: PathBuf = path.components().collect();
    if root == Path::new("/") {
        return Err("\"/\" would offer every file of the driver's container".into());
    }
    if let Some(private) = PRIVATE_DIRS.iter().map(Path::new).find(|p| p.starts_with(&root) || root.starts_with(p)) {
        return Err(format!("{value:?} overlaps {}, which holds the driver's own secrets", private.display()));
    }
    Ok(root)
}

/// Checks `--trace-file-claim`: a PersistentVolumeClaim name (a DNS subdomain).
pub fn parse_claim(value: &str) -> Result<String, String> {
    let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = value.len() <= 253
        && edges_ok(value.chars().next())
        && edges_ok(value.chars().next_back())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a PersistentVolumeClaim name (lowercase letters, digits, '-' and '.')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(root: Option<&str>) -> Settings {
        Settings { trace_file_root: root.map(PathBuf::from), ..Settings::example() }
    }

    fn refusal(location: &str, root: Option<&str>) -> (&'static str, String) {
        match allowed_file("shop", location, &settings(root)) {
            Err(Error::Permanent { reason, message }) => (reason, message),
            other => panic!("{location}: not refused: {other:?}"),
        }
    }

    #[test]
    fn without_a_root_every_file_is_refused() {
        for location in ["file:///traces/t.sktrace", "/traces/t.sktrace", "t.json", "file://localhost/t"] {
            let (reason, message) = refusal(location, None);
            assert_eq!(reason, FILE_TRACES_DISABLED);
            assert!(message.starts_with(&format!("Simulation shop: spec.source.trace.uri: {location:?}")), "{message}");
            assert!(message.contains("--trace-file-root DIR"), "{message}");
        }
    }

    #[test]
    fn with_a_root_only_files_inside_it_pass() {
        let root = Some("/traces");
        let ok = allowed_file("shop", "file:///traces/team/t.sktrace", &settings(root)).expect("inside");
        assert_eq!(ok, Some(Path::new("/traces/team/t.sktrace")));
        let bare = allowed_file("shop", "/traces/t.json", &settings(root)).expect("inside");
        assert_eq!(bare, Some(Path::new("/traces/t.json")));

        let (reason, message) = refusal("file:///etc/passwd", root);
        assert_eq!(reason, FILE_TRACE_OUTSIDE_ROOT);
        assert_eq!(
            message,
            "Simulation shop: spec.source.trace.uri: \"file:///etc/passwd\": the path /etc/passwd is outside that \
             directory; this operator reads trace files only inside /traces (--trace-file-root)"
        );
        let (reason, message) = refusal("file:///traces/../etc/passwd", root);
        assert_eq!(reason, FILE_TRACE_OUTSIDE_ROOT);
        assert!(message.contains("the path /traces/../etc/passwd has a \"..\" component"), "{message}");
        assert!(message.contains("only inside /traces (--trace-file-root)"), "{message}");
        for (location, why) in [
            ("/traces/a/../../etc/passwd", "has a \"..\""),
            ("/traces-other/t.json", "is outside"),
            ("/traces", "directory itself"),
            ("file:///traces/", "directory itself"),
            ("traces/t.json", "is not absolute"),
        ] {
            let (reason, message) = refusal(location, root);
            assert_eq!(reason, FILE_TRACE_OUTSIDE_ROOT, "{location}");
            assert!(message.contains(why), "{location}: {message}");
        }
    }

    #[test]
    fn other_sources_are_not_files() {
        for location in ["s3://bucket/t.sktrace", "https://example.com/t", "http://127.0.0.1:9000/t"] {
            assert_eq!(allowed_file("shop", location, &settings(None)).expect("not a file"), None, "{location}");
        }
    }

    #[test]
    fn roots_and_claims() {
        assert_eq!(parse_root("/traces/"), Ok(PathBuf::from("/traces")));
        assert_eq!(parse_root("/srv/./traces"), Ok(PathBuf::from("/srv/traces")));
        for bad in ["traces", "", "/", "/srv/../etc", "/etc", "/etc/rehearsal/tls", "/var/run", "/run/secrets/x"] {
            assert!(parse_root(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_claim("trace-files.v1"), Ok("trace-files.v1".into()));
        for bad in ["", "Traces", "-a", "a-", "a_b", &"a".repeat(254)] {
            assert!(parse_claim(bad).is_err(), "{bad:?}");
        }
    }
}
