//! A pod's folder on disk, `<state>/pods/<namespace>_<name>_<uid>/`, and how long its parts live.
//!
//! The folder holds the pod's service-account token and kubeconfig and its Secret volumes, so
//! it and every folder the runner makes for pods are 0700 (files inside keep their own modes:
//! credentials 0600, volume files their `defaultMode`/`mode`, as kubelet writes them). When the
//! pod ends, its credentials and volumes are removed at once: nothing runs that may use them,
//! and a bound token would stay valid for up to an hour. The container logs stay, for
//! post-mortems, until the pod object is deleted; then the whole folder goes.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::Path,
};

/// Mode of every folder the runner creates for pods: only the runner's user may look inside.
pub const DIR_MODE: u32 = 0o700;
/// Name of a pod folder's volume subfolder.
pub const VOLUMES: &str = "volumes";
/// A pod folder's credential files, with the temporary siblings they are written through.
const CREDENTIAL_FILES: [&str; 4] = ["token", "kubeconfig", "token.tmp", "kubeconfig.tmp"];

/// Creates `path` and its missing parents with mode 0700, and sets `path` itself to 0700 when
/// it existed already (a wider umask or an older runner may have made it).
pub fn create_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)?;
    make_private(path)
}

/// Sets an existing folder's mode to 0700.
pub fn make_private(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

/// Removes a pod's credentials and volumes and keeps the rest (its container logs); what is
/// gone already is fine. Symlinks a pod's process left in an emptyDir are removed, not followed.
pub fn remove_secrets(dir: &Path) -> io::Result<()> {
    for name in CREDENTIAL_FILES {
        ignore_missing(fs::remove_file(dir.join(name)))?;
    }
    ignore_missing(fs::remove_dir_all(dir.join(VOLUMES)))
}

/// Removes a pod's whole folder; a missing one is fine.
pub fn remove(dir: &Path) -> io::Result<()> {
    ignore_missing(fs::remove_dir_all(dir))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The pod uid in a pod folder's name `<namespace>_<name>_<uid>`; names and namespaces cannot
/// contain `_`, so anything else is not a pod folder.
pub fn uid_of(folder: &str) -> Option<&str> {
    let mut parts = folder.split('_');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), Some(uid), None)
            if !namespace.is_empty() && !name.is_empty() && !uid.is_empty() =>
        {
            Some(uid)
        }
        _ => None,
    }
}

/// What becomes of a pod folder found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its pod runs here: leave it alone.
    Keep,
    /// Its pod exists but does not run here (ended, or started by an earlier runner): remove its
    /// credentials and volumes, keep its logs.
    RemoveSecrets,
    /// Its pod is gone: remove the folder.
    Remove,
}

/// Applies `fate(uid)` to every pod folder in `pods_dir`, so folders of pods that ended or were
/// deleted while no runner watched do not keep their credentials. Failures are logged; folders
/// with other names are left alone.
pub fn sweep(pods_dir: &Path, fate: impl Fn(&str) -> Fate) {
    let entries = match fs::read_dir(pods_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %pods_dir.display(), %error, "listing pod folders failed");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(uid) = name.to_str().and_then(uid_of) else { continue };
        let path = entry.path();
        let result = match fate(uid) {
            Fate::Keep => Ok(()),
            Fate::RemoveSecrets => remove_secrets(&path),
            Fate::Remove => {
                tracing::info!(dir = %path.display(), "removing the folder of a deleted pod");
                remove(&path)
            }
        };
        if let Err(error) = result {
            tracing::warn!(dir = %path.display(), %error, "cleaning a pod folder failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh folder under the system temp dir, unique to the test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rehearsal-runner-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    /// A pod folder as a running pod leaves it: credentials, a volume, a log.
    fn populated(dir: &Path) {
        create_private(&dir.join(VOLUMES).join("tls")).expect("volume dir");
        for (file, text) in [("token", "T"), ("kubeconfig", "K"), ("volumes/tls/tls.key", "KEY"), ("main.log", "L")] {
            fs::write(dir.join(file), text).expect("write");
        }
    }

    #[test]
    fn private_folders_are_0700_even_when_they_existed() {
        let root = scratch("poddir-private");
        let nested = root.join("a").join("b");
        create_private(&nested).expect("create");
        assert_eq!((mode(&root.join("a")), mode(&nested)), (0o700, 0o700));
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o755)).expect("widen");
        create_private(&nested).expect("again");
        assert_eq!(mode(&nested), 0o700);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn ending_a_pod_removes_credentials_and_volumes_but_keeps_logs() {
        let root = scratch("poddir-secrets");
        let dir = root.join("ns_p_uid-1");
        populated(&dir);
        remove_secrets(&dir).expect("remove secrets");
        let left: Vec<_> = fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, ["main.log"]);
        remove_secrets(&dir).expect("twice is fine");
        remove(&dir).expect("remove");
        assert!(!dir.exists());
        remove(&dir).expect("a missing folder is fine");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn folder_names_give_the_uid() {
        assert_eq!(uid_of("rehearsal-system_run-0-abc_6f1c-22"), Some("6f1c-22"));
        for other in ["", "a_b", "a_b_c_d", "_b_c", "a__c", "lost+found"] {
            assert_eq!(uid_of(other), None, "{other}");
        }
    }

    #[test]
    fn sweep_applies_each_fate_and_leaves_other_folders() {
        let root = scratch("poddir-sweep");
        for name in ["ns_running_u1", "ns_ended_u2", "ns_deleted_u3", "not-a-pod"] {
            populated(&root.join(name));
        }
        sweep(&root, |uid| match uid {
            "u1" => Fate::Keep,
            "u2" => Fate::RemoveSecrets,
            _ => Fate::Remove,
        });
        assert!(root.join("ns_running_u1/token").exists());
        assert!(!root.join("ns_ended_u2/token").exists() && root.join("ns_ended_u2/main.log").exists());
        assert!(!root.join("ns_deleted_u3").exists());
        assert!(root.join("not-a-pod/token").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
