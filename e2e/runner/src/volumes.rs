//! Pod volumes as local directories.
//!
//! A process cannot see a container's absolute `mountPath` (there is no mount namespace), so
//! each volume becomes `<pod dir>/volumes/<volume name>/`: Secret and ConfigMap keys are written
//! there as files, downward-API and projected volumes likewise (a projected service-account
//! token is a freshly minted token), emptyDir is a fresh directory and hostPath is the host path
//! itself. The process learns the directory from `REHEARSAL_VOLUME_<NAME>` and from its args
//! and env values, where a value starting with a mountPath gets the local directory instead.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use crate::{
    env::{self, Sources},
    poddir,
};

/// Prefix of the env vars naming volume directories.
pub const ENV_PREFIX: &str = "REHEARSAL_VOLUME_";

/// Default file mode of volume files, as the API defaults `defaultMode`.
const DEFAULT_MODE: u32 = 0o644;

/// Why a volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A non-optional Secret does not exist.
    #[error("volume {volume:?}: secret {name:?} not found")]
    MissingSecret {
        /// The volume.
        volume: String,
        /// The Secret.
        name: String,
    },
    /// A non-optional ConfigMap does not exist.
    #[error("volume {volume:?}: configmap {name:?} not found")]
    MissingConfigMap {
        /// The volume.
        volume: String,
        /// The ConfigMap.
        name: String,
    },
    /// An item names a key the object does not have.
    #[error("volume {volume:?}: key {key:?} not found in {object}")]
    MissingKey {
        /// The volume.
        volume: String,
        /// `secret NAME` or `configmap NAME`.
        object: String,
        /// The key.
        key: String,
    },
    /// A volume type the runner cannot provide (PVCs, CSI, …).
    #[error(
        "volume {0:?} has a type the runner does not support (only secret, configMap, emptyDir, hostPath, downwardAPI, projected)"
    )]
    Unsupported(String),
    /// A file path that would escape the volume directory.
    #[error("volume {volume:?}: invalid path {path:?}")]
    InvalidPath {
        /// The volume.
        volume: String,
        /// The offending path.
        path: String,
    },
    /// A downward-API item the runner cannot serve.
    #[error("volume {volume:?}: {source}")]
    Field {
        /// The volume.
        volume: String,
        /// What went wrong.
        #[source]
        source: env::EnvError,
    },
    /// Writing the directory failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// What a volume becomes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Files (relative path, contents, mode) written into a fresh directory.
    Files(Vec<File>),
    /// The host's own path (hostPath volumes).
    Host(PathBuf),
}

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the volume directory.
    pub path: String,
    /// File contents.
    pub contents: String,
    /// Unix mode bits.
    pub mode: u32,
    /// Whether this file holds the pod's default-audience token, rewritten on refresh.
    pub default_token: bool,
}

/// Objects and tokens the pod's volumes read.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Secrets and ConfigMaps that exist.
    pub sources: Sources,
    /// Tokens by audience (`None` = the API server's default audience).
    pub tokens: BTreeMap<Option<String>, String>,
    /// The pod's own address, for downward-API items (the API admits only metadata fields in
    /// volumes today; passing it keeps volumes and env agreeing should that change).
    pub pod_ip: Option<Ipv4Addr>,
}

/// Secrets, ConfigMaps and token audiences the pod's volumes need.
pub fn referenced(pod: &Pod) -> (env::References, BTreeSet<Option<String>>) {
    let mut refs = env::References::default();
    let mut audiences = BTreeSet::new();
    for volume in pod_volumes(pod) {
        if let Some(secret) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(secret);
        }
        if let Some(config_map) = &volume.config_map {
            refs.config_maps.insert(config_map.name.clone());
        }
        for projection in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(secret) = &projection.secret {
                refs.secrets.insert(secret.name.clone());
            }
            if let Some(config_map) = &projection.config_map {
                refs.config_maps.insert(config_map.name.clone());
            }
            if let Some(token) = &projection.service_account_token {
                audiences.insert(token.audience.clone().filter(|a| !a.is_empty()));
            }
        }
    }
    (refs, audiences)
}

fn pod_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten())
}

/// What each of the pod's volumes contains, by volume name.
pub fn plan(pod: &Pod, inputs: &Inputs) -> Result<BTreeMap<String, Content>, VolumeError> {
    let mut planned = BTreeMap::new();
    for volume in pod_volumes(pod) {
        planned.insert(volume.name.clone(), plan_volume(pod, volume, inputs)?);
    }
    Ok(planned)
}

fn plan_volume(pod: &Pod, volume: &Volume, inputs: &Inputs) -> Result<Content, VolumeError> {
    let name = &volume.name;
    let mut files = Vec::new();
    if let Some(secret) = &volume.secret {
        let object = secret.secret_name.clone().unwrap_or_default();
        let mode = mode_or_default(secret.default_mode);
        match inputs.sources.secrets.get(&object) {
            Some(data) => {
                key_files(name, &format!("secret {object}"), data, secret.items.as_deref(), mode, &mut files)?
            }
            None if secret.optional == Some(true) => {}
            None => return Err(VolumeError::MissingSecret { volume: name.clone(), name: object }),
        }
    } else if let Some(config_map) = &volume.config_map {
        let object = &config_map.name;
        let mode = mode_or_default(config_map.default_mode);
        match inputs.sources.config_maps.get(object) {
            Some(data) => {
                key_files(name, &format!("configmap {object}"), data, config_map.items.as_deref(), mode, &mut files)?
            }
            None if config_map.optional == Some(true) => {}
            None => return Err(VolumeError::MissingConfigMap { volume: name.clone(), name: object.clone() }),
        }
    } else if volume.empty_dir.is_some() {
    } else if let Some(host) = &volume.host_path {
        return Ok(Content::Host(PathBuf::from(&host.path)));
    } else if let Some(downward) = &volume.downward_api {
        let mode = mode_or_default(downward.default_mode);
        downward_files(pod, inputs.pod_ip, name, downward.items.as_deref(), mode, &mut files)?;
    } else if let Some(projected) = &volume.projected {
        let mode = mode_or_default(projected.default_mode);
        for projection in projected.sources.iter().flatten() {
            if let Some(secret) = &projection.secret {
                match inputs.sources.secrets.get(&secret.name) {
                    Some(data) => key_files(
                        name,
                        &format!("secret {}", secret.name),
                        data,
                        secret.items.as_deref(),
                        mode,
                        &mut files,
                    )?,
                    None if secret.optional == Some(true) => {}
                    None => return Err(VolumeError::MissingSecret { volume: name.clone(), name: secret.name.clone() }),
                }
            } else if let Some(config_map) = &projection.config_map {
                match inputs.sources.config_maps.get(&config_map.name) {
                    Some(data) => key_files(
                        name,
                        &format!("configmap {}", config_map.name),
                        data,
                        config_map.items.as_deref(),
                        mode,
                        &mut files,
                    )?,
                    None if config_map.optional == Some(true) => {}
                    None => {
                        return Err(VolumeError::MissingConfigMap {
                            volume: name.clone(),
                            name: config_map.name.clone(),
                        });
                    }
                }
            } else if let Some(downward) = &projection.downward_api {
                downward_files(pod, inputs.pod_ip, name, downward.items.as_deref(), mode, &mut files)?;
            } else if let Some(token) = &projection.service_account_token {
                let audience = token.audience.clone().filter(|a| !a.is_empty());
                let contents = inputs.tokens.get(&audience).cloned().unwrap_or_default();
                check_path(name, &token.path)?;
                files.push(File { path: token.path.clone(), contents, mode, default_token: audience.is_none() });
            } else {
                return Err(VolumeError::Unsupported(name.clone()));
            }
        }
    } else {
        return Err(VolumeError::Unsupported(name.clone()));
    }
    Ok(Content::Files(files))
}

fn mode_or_default(mode: Option<i32>) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(DEFAULT_MODE)
}

fn key_files(
    volume: &str,
    object: &str,
    data: &BTreeMap<String, String>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    files: &mut Vec<File>,
) -> Result<(), VolumeError> {
    match items {
        None => {
            for (key, contents) in data {
                check_path(volume, key)?;
                files.push(File { path: key.clone(), contents: contents.clone(), mode, default_token: false });
            }
        }
        Some(items) => {
            for item in items {
                let contents = data.get(&item.key).ok_or_else(|| VolumeError::MissingKey {
                    volume: volume.to_owned(),
                    object: object.to_owned(),
                    key: item.key.clone(),
                })?;
                check_path(volume, &item.path)?;
                files.push(File {
                    path: item.path.clone(),
                    contents: contents.clone(),
                    mode: item.mode.map_or(mode, |m| mode_or_default(Some(m))),
                    default_token: false,
                });
            }
        }
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    pod_ip: Option<Ipv4Addr>,
    volume: &str,
    items: Option<&[k8s_openapi::api::core::v1::DownwardAPIVolumeFile]>,
    mode: u32,
    files: &mut Vec<File>,
) -> Result<(), VolumeError> {
    for item in items.into_iter().flatten() {
        let Some(field) = &item.field_ref else {
            return Err(VolumeError::Field {
                volume: volume.to_owned(),
                source: env::EnvError::UnsupportedSource(item.path.clone()),
            });
        };
        let contents = env::field_value(pod, pod_ip, &field.field_path)
            .map_err(|source| VolumeError::Field { volume: volume.to_owned(), source })?;
        check_path(volume, &item.path)?;
        files.push(File {
            path: item.path.clone(),
            contents,
            mode: item.mode.map_or(mode, |m| mode_or_default(Some(m))),
            default_token: false,
        });
    }
    Ok(())
}

/// Only plain relative paths stay inside the volume directory.
fn check_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    let ok = !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(()) } else { Err(VolumeError::InvalidPath { volume: volume.to_owned(), path: path.to_owned() }) }
}

/// The local directory of each volume after writing, and the files holding the default token.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// Volume name → local directory.
    pub dirs: BTreeMap<String, PathBuf>,
    /// Files to rewrite when the pod's token is refreshed, with their modes.
    pub token_files: Vec<(PathBuf, u32)>,
}

/// Writes the planned volumes under `<pod_dir>/volumes/`: folders 0700 (the pod's Secrets are
/// in there), each file with its own mode (`defaultMode`/`mode`, as kubelet honours them).
pub fn write(pod_dir: &Path, planned: &BTreeMap<String, Content>) -> Result<Written, VolumeError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| VolumeError::Io { path, source }
    };
    let mut written = Written::default();
    for (name, content) in planned {
        let dir = match content {
            Content::Host(path) => path.clone(),
            Content::Files(files) => {
                let dir = pod_dir.join(poddir::VOLUMES).join(name);
                poddir::create_private(&dir).map_err(io(&dir))?;
                for file in files {
                    let path = dir.join(&file.path);
                    if let Some(parent) = path.parent() {
                        poddir::create_private(parent).map_err(io(parent))?;
                    }
                    // Special bits (setuid and the like) have no business on a volume file.
                    let mode = file.mode & 0o777;
                    write_file(&path, file.contents.as_bytes(), mode).map_err(io(&path))?;
                    if file.default_token {
                        written.token_files.push((path, mode));
                    }
                }
                dir
            }
        };
        written.dirs.insert(name.clone(), dir);
    }
    Ok(written)
}

/// Writes a file created with `mode` and set to it, whatever the umask.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)
}

/// A container's mount: where the image would see it, and where it is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMount {
    /// The volume's name.
    pub volume: String,
    /// The container's mountPath, without a trailing slash.
    pub mount_path: String,
    /// The host directory (the volume directory, plus subPath).
    pub local: PathBuf,
}

/// The container's volume mounts mapped to host directories.
pub fn container_mounts(container: &Container, dirs: &BTreeMap<String, PathBuf>) -> Vec<LocalMount> {
    let mut mounts: Vec<LocalMount> = container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|mount| {
            let dir = dirs.get(&mount.name)?;
            let local = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => dir.join(sub),
                None => dir.clone(),
            };
            let trimmed = mount.mount_path.trim_end_matches('/');
            let mount_path = if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() };
            Some(LocalMount { volume: mount.name.clone(), mount_path, local })
        })
        .collect();
    // Longest mountPath first, so nested mounts win over their parents.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.mount_path.len()));
    mounts
}

/// The env var naming a volume's directory: `webhook-tls` → `REHEARSAL_VOLUME_WEBHOOK_TLS`.
pub fn env_name(volume: &str) -> String {
    let snake: String =
        volume.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{ENV_PREFIX}{snake}")
}

/// Replaces mountPaths in an arg or env value with the mounts' host directories. A mountPath
/// is replaced where it stands as a path of its own: at the start of the value or after a space,
/// quote, `=`, `:`, `,`, `<`, `>` or `(`, and followed by the end, `/`, a space, a quote, `;`,
/// `)`, `:` or `,`.
/// So `/etc/tls/tls.crt`, `--cert=/etc/tls/tls.crt` and `sh -c 'cat /etc/tls/tls.crt'` are all
/// rewritten, while `/etc/tlsx` or `http://host/etc/tls` are not. A mount at `/` is never replaced.
pub fn substitute(value: &str, mounts: &[LocalMount]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut previous: Option<char> = None;
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if c == '/'
            && previous.is_none_or(starts_path)
            && let Some(mount) = mounts.iter().find(|m| stands_at(rest, &m.mount_path))
        {
            out.push_str(&mount.local.to_string_lossy());
            rest = &rest[mount.mount_path.len()..];
            previous = mount.mount_path.chars().last();
            continue;
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Characters after which a path may start.
fn starts_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\'' | '"' | '=' | ':' | ',' | '<' | '>' | '(')
}

/// Whether `text` begins with `mount_path` as a whole path component sequence.
fn stands_at(text: &str, mount_path: &str) -> bool {
    if mount_path == "/" {
        return false;
    }
    match text.strip_prefix(mount_path) {
        None => false,
        Some(after) => after
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '/' | '\'' | '"' | ';' | ')' | ':' | ',')),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, ObjectFieldSelector,
        PodSpec, ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, VolumeMount,
        VolumeProjection,
    };
    use kube::api::ObjectMeta;

    use super::*;

    fn mounts() -> Vec<LocalMount> {
        let container = Container {
            name: "driver".into(),
            volume_mounts: Some(vec![
                VolumeMount { name: "tls".into(), mount_path: "/etc/rehearsal/tls".into(), ..Default::default() },
                VolumeMount { name: "etc".into(), mount_path: "/etc/rehearsal/".into(), ..Default::default() },
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/config/app.yaml".into(),
                    sub_path: Some("app.yaml".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let dirs = BTreeMap::from([
            ("tls".to_owned(), PathBuf::from("/s/pods/p/volumes/tls")),
            ("etc".to_owned(), PathBuf::from("/s/pods/p/volumes/etc")),
            ("cfg".to_owned(), PathBuf::from("/s/pods/p/volumes/cfg")),
        ]);
        container_mounts(&container, &dirs)
    }

    #[test]
    fn args_under_a_mount_path_get_the_local_dir() {
        let m = mounts();
        assert_eq!(substitute("/etc/rehearsal/tls/tls.crt", &m), "/s/pods/p/volumes/tls/tls.crt");
        assert_eq!(substitute("/etc/rehearsal/tls", &m), "/s/pods/p/volumes/tls");
        assert_eq!(substitute("/etc/rehearsal/other.yaml", &m), "/s/pods/p/volumes/etc/other.yaml");
        assert_eq!(
            substitute("--cert-path=/etc/rehearsal/tls/tls.crt", &m),
            "--cert-path=/s/pods/p/volumes/tls/tls.crt"
        );
        assert_eq!(substitute("/config/app.yaml", &m), "/s/pods/p/volumes/cfg/app.yaml");
    }

    #[test]
    fn mount_paths_inside_shell_scripts_and_lists_are_replaced() {
        let m = mounts();
        assert_eq!(
            substitute("cat /etc/rehearsal/tls/tls.crt > /etc/rehearsal/out; echo '/config/app.yaml'", &m),
            "cat /s/pods/p/volumes/tls/tls.crt > /s/pods/p/volumes/etc/out; echo '/s/pods/p/volumes/cfg/app.yaml'"
        );
        assert_eq!(
            substitute("A=/etc/rehearsal/tls:/etc/rehearsal", &m),
            "A=/s/pods/p/volumes/tls:/s/pods/p/volumes/etc"
        );
    }

    #[test]
    fn other_args_are_unchanged() {
        let m = mounts();
        for arg in [
            "replay",
            "/etc/rehearsal-other/x",
            "/etc/rehearsalx",
            "--speed=2",
            "etc/rehearsal/tls",
            "http://host/etc/rehearsal/tls",
            "x/etc/rehearsal",
            "",
        ] {
            assert_eq!(substitute(arg, &m), arg);
        }
    }

    #[test]
    fn a_root_mount_is_never_substituted() {
        let root = vec![LocalMount { volume: "r".into(), mount_path: "/".into(), local: PathBuf::from("/x") }];
        assert_eq!(substitute("/etc/passwd", &root), "/etc/passwd");
    }

    #[test]
    fn env_names_are_upper_snake() {
        assert_eq!(env_name("webhook-tls"), "REHEARSAL_VOLUME_WEBHOOK_TLS");
        assert_eq!(env_name("kube-api-access-x7k2p"), "REHEARSAL_VOLUME_KUBE_API_ACCESS_X7K2P");
        assert_eq!(env_name("data.v1"), "REHEARSAL_VOLUME_DATA_V1");
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec { volumes: Some(volumes), ..Default::default() }),
            status: None,
        }
    }

    #[test]
    fn secret_volume_files_and_missing_secret() {
        let volume = Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource { secret_name: Some("webhook-cert".into()), ..Default::default() }),
            ..Default::default()
        };
        let p = pod(vec![volume]);
        assert!(matches!(plan(&p, &Inputs::default()), Err(VolumeError::MissingSecret { .. })));
        let mut inputs = Inputs::default();
        inputs.sources.secrets.insert(
            "webhook-cert".into(),
            BTreeMap::from([("tls.crt".into(), "CERT".into()), ("tls.key".into(), "KEY".into())]),
        );
        let planned = plan(&p, &inputs).expect("plan");
        let Some(Content::Files(files)) = planned.get("tls") else { panic!("{planned:?}") };
        assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["tls.crt", "tls.key"]);
        assert_eq!(files[0].contents, "CERT");
        assert_eq!(files[0].mode, 0o644);
    }

    #[test]
    fn secret_volume_files_keep_their_mode_in_0700_folders() {
        let root = std::env::temp_dir().join(format!("rehearsal-runner-volumes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pod_dir = root.join("ns_p_uid");
        let file = |path: &str, mode: u32, default_token: bool| File {
            path: path.into(),
            contents: "SECRET".into(),
            mode,
            default_token,
        };
        let planned = BTreeMap::from([
            ("tls".to_owned(), Content::Files(vec![file("tls.key", 0o644, false), file("dir/ca.key", 0o400, false)])),
            ("api".to_owned(), Content::Files(vec![file("token", 0o4640, true)])),
        ]);
        let written = write(&pod_dir, &planned).expect("write");
        let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777;
        let tls = &written.dirs["tls"];
        assert_eq!(std::fs::read_to_string(tls.join("tls.key")).expect("read"), "SECRET");
        // defaultMode is honoured as kubelet does; the folders keep everyone else out.
        assert_eq!((mode(&tls.join("tls.key")), mode(&tls.join("dir/ca.key"))), (0o644, 0o400));
        assert_eq!(mode(&written.dirs["api"].join("token")), 0o640, "no setuid bit");
        for dir in [pod_dir.clone(), pod_dir.join("volumes"), tls.clone(), tls.join("dir")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(written.token_files, [(written.dirs["api"].join("token"), 0o640)]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn projected_service_account_volume_gets_token_ca_and_namespace() {
        let volume = Volume {
            name: "kube-api-access-abcde".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            audience: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), mode: None }]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    api_version: None,
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        let p = pod(vec![
            volume,
            Volume { name: "scratch".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
        ]);
        let (refs, audiences) = referenced(&p);
        assert!(refs.config_maps.contains("kube-root-ca.crt"));
        assert_eq!(audiences, BTreeSet::from([None]));
        let mut inputs = Inputs::default();
        inputs.sources.config_maps.insert("kube-root-ca.crt".into(), BTreeMap::from([("ca.crt".into(), "CA".into())]));
        inputs.tokens.insert(None, "TOKEN".into());
        let planned = plan(&p, &inputs).expect("plan");
        let Some(Content::Files(files)) = planned.get("kube-api-access-abcde") else { panic!("{planned:?}") };
        let by_path: BTreeMap<_, _> = files.iter().map(|f| (f.path.as_str(), f.contents.as_str())).collect();
        assert_eq!(by_path, BTreeMap::from([("token", "TOKEN"), ("ca.crt", "CA"), ("namespace", "ns")]));
        assert!(files.iter().any(|f| f.path == "token" && f.default_token));
        assert_eq!(planned.get("scratch"), Some(&Content::Files(vec![])));
    }

    #[test]
    fn unsupported_volumes_and_escaping_paths_are_errors() {
        let p = pod(vec![Volume { name: "data".into(), ..Default::default() }]);
        assert!(matches!(plan(&p, &Inputs::default()), Err(VolumeError::Unsupported(v)) if v == "data"));
        assert!(check_path("v", "../x").is_err());
        assert!(check_path("v", "/abs").is_err());
        assert!(check_path("v", "a/b").is_ok());
    }
}
