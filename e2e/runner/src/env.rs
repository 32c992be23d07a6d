//! A container's environment: literal values, downward-API `fieldRef`s, Secret and ConfigMap
//! keys (`valueFrom` and `envFrom`), and `$(VAR)` expansion, resolved the way kubelet does.
//!
//! Resolution is split in two so the rules are testable without a cluster: [`referenced`] names
//! the objects a container needs, [`fetch`] reads them through the API, and [`resolve`] is pure.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

/// The address the runner reports as host IP (and the node's address): everything runs on
/// loopback. Pods get addresses of their own (see `ips`).
pub const LOOPBACK: &str = "127.0.0.1";

/// Why a container's environment could not be built (kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A non-optional Secret does not exist.
    #[error("secret {0:?} not found")]
    MissingSecret(String),
    /// A non-optional key is missing from a Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    MissingSecretKey {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A non-optional ConfigMap does not exist.
    #[error("configmap {0:?} not found")]
    MissingConfigMap(String),
    /// A non-optional key is missing from a ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    MissingConfigMapKey {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `fieldRef` path the runner does not serve.
    #[error("unsupported fieldRef path {0:?}")]
    UnsupportedField(String),
    /// An env source other than value, fieldRef, secretKeyRef and configMapKeyRef.
    #[error("env var {0:?} uses a source the runner does not support (resourceFieldRef, fileKeyRef)")]
    UnsupportedSource(String),
}

/// Secrets and ConfigMaps a container's environment reads, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// Names of Secrets.
    pub secrets: BTreeSet<String>,
    /// Names of ConfigMaps.
    pub config_maps: BTreeSet<String>,
}

/// The objects named by [`References`] that exist, with their data as strings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Existing Secrets' data.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Existing ConfigMaps' data (and binaryData).
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// The Secrets and ConfigMaps a container's `env` and `envFrom` read.
pub fn referenced(container: &Container) -> References {
    let mut refs = References::default();
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else { continue };
        if let Some(key_ref) = &from.secret_key_ref {
            refs.secrets.insert(key_ref.name.clone());
        }
        if let Some(key_ref) = &from.config_map_key_ref {
            refs.config_maps.insert(key_ref.name.clone());
        }
    }
    for source in container.env_from.iter().flatten() {
        if let Some(secret) = &source.secret_ref {
            refs.secrets.insert(secret.name.clone());
        }
        if let Some(config_map) = &source.config_map_ref {
            refs.config_maps.insert(config_map.name.clone());
        }
    }
    refs
}

/// Reads the referenced objects; ones that do not exist are left out (not an error here).
pub async fn fetch(client: &Client, namespace: &str, refs: &References) -> Result<Sources, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut sources = Sources::default();
    for name in &refs.secrets {
        if let Some(secret) = secrets.get_opt(name).await? {
            sources.secrets.insert(name.clone(), secret_data(&secret));
        }
    }
    for name in &refs.config_maps {
        if let Some(config_map) = config_maps.get_opt(name).await? {
            sources.config_maps.insert(name.clone(), config_map_data(&config_map));
        }
    }
    Ok(sources)
}

/// A Secret's data as text (lossy: environment variables and the runner's files are text).
pub fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, bytes)| (key.clone(), String::from_utf8_lossy(&bytes.0).into_owned()))
        .collect();
    // stringData is write-only on a real server, but objects built in tests may carry it.
    for (key, value) in secret.string_data.iter().flatten() {
        data.entry(key.clone()).or_insert_with(|| value.clone());
    }
    data
}

/// A ConfigMap's data and binaryData as text.
pub fn config_map_data(config_map: &ConfigMap) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = config_map.data.clone().unwrap_or_default();
    for (key, bytes) in config_map.binary_data.iter().flatten() {
        data.entry(key.clone()).or_insert_with(|| String::from_utf8_lossy(&bytes.0).into_owned());
    }
    data
}

/// The container's environment in kubelet's order: `envFrom` first, then `env`, later entries
/// overriding earlier ones, `$(VAR)` in `env` values expanded against what came before.
/// `pod_ip` is the address the runner gave the pod (`status.podIP`).
pub fn resolve(
    pod: &Pod,
    pod_ip: Option<Ipv4Addr>,
    container: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        let data = if let Some(secret) = &source.secret_ref {
            match sources.secrets.get(&secret.name) {
                Some(data) => data,
                None if secret.optional == Some(true) => continue,
                None => return Err(EnvError::MissingSecret(secret.name.clone())),
            }
        } else if let Some(config_map) = &source.config_map_ref {
            match sources.config_maps.get(&config_map.name) {
                Some(data) => data,
                None if config_map.optional == Some(true) => continue,
                None => return Err(EnvError::MissingConfigMap(config_map.name.clone())),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            set(&mut env, format!("{prefix}{key}"), value.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, pod_ip, &field.field_path)?
                } else if let Some(key_ref) = &from.secret_key_ref {
                    let optional = key_ref.optional == Some(true);
                    match sources.secrets.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(EnvError::MissingSecret(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(value) => value.clone(),
                            None if optional => continue,
                            None => {
                                return Err(EnvError::MissingSecretKey {
                                    namespace: namespace.to_owned(),
                                    name: key_ref.name.clone(),
                                    key: key_ref.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(key_ref) = &from.config_map_key_ref {
                    let optional = key_ref.optional == Some(true);
                    match sources.config_maps.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(EnvError::MissingConfigMap(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(value) => value.clone(),
                            None if optional => continue,
                            None => {
                                return Err(EnvError::MissingConfigMapKey {
                                    namespace: namespace.to_owned(),
                                    name: key_ref.name.clone(),
                                    key: key_ref.key.clone(),
                                });
                            }
                        },
                    }
                } else {
                    return Err(EnvError::UnsupportedSource(var.name.clone()));
                }
            }
            (Some(value), None) => expand(value, &env),
            (None, None) => String::new(),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// A downward-API field of the pod, as kubelet serves it to `fieldRef`; `pod_ip` is the
/// address the runner gave the pod (the field is empty without one).
pub fn field_value(pod: &Pod, pod_ip: Option<Ipv4Addr>, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        // Kubelet renders the lists comma-separated; the runner gives each pod one address.
        "status.podIP" | "status.podIPs" => pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => LOOPBACK.to_owned(),
        _ => {
            if let Some(key) = subscript(path, "metadata.labels") {
                meta.labels.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                meta.annotations.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
            } else {
                return Err(EnvError::UnsupportedField(path.to_owned()));
            }
        }
    };
    Ok(value)
}

/// `metadata.labels['app']` → `app` for the given prefix.
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")
}

/// Downward-API rendering of a whole map: `key="value"` lines, sorted.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(existing, _)| *existing == name) {
        Some(entry) => entry.1 = value,
        None => env.push((name, value)),
    }
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes a `$`, and an
/// undefined reference is left as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, SecretEnvSource, SecretKeySelector,
    };
    use kube::api::ObjectMeta;

    use super::*;

    const POD_IP: Option<Ipv4Addr> = Some(Ipv4Addr::new(127, 1, 0, 7));

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("driver-0-abcde".into()),
                namespace: Some("rehearsal-system".into()),
                uid: Some("1234-5678".into()),
                labels: Some(BTreeMap::from([("app".into(), "driver".into()), ("run".into(), "0".into())])),
                annotations: Some(BTreeMap::from([("note".into(), "hello".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("rehearsal-runner".into()),
                service_account_name: Some("rehearsal-driver".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
                ..Default::default()
            }),
        }
    }

    fn secret_key(name: &str, secret: &str, key: &str, optional: Option<bool>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional }),
                ..Default::default()
            }),
        }
    }

    fn container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> Container {
        Container { name: "main".into(), env: Some(env), env_from: Some(env_from), ..Default::default() }
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn field_refs_resolve_from_the_pod() {
        let c = container(
            vec![
                field("POD_NAME", "metadata.name"),
                field("POD_NAMESPACE", "metadata.namespace"),
                field("POD_UID", "metadata.uid"),
                field("APP", "metadata.labels['app']"),
                field("MISSING", "metadata.labels['nope']"),
                field("NOTE", "metadata.annotations['note']"),
                field("NODE", "spec.nodeName"),
                field("SA", "spec.serviceAccountName"),
                field("POD_IP", "status.podIP"),
                field("POD_IPS", "status.podIPs"),
                field("HOST_IP", "status.hostIP"),
                field("HOST_IPS", "status.hostIPs"),
            ],
            vec![],
        );
        let env = resolve(&pod(), POD_IP, &c, &Sources::default()).unwrap_or_default();
        assert_eq!(get(&env, "POD_NAME"), Some("driver-0-abcde"));
        assert_eq!(get(&env, "POD_NAMESPACE"), Some("rehearsal-system"));
        assert_eq!(get(&env, "POD_UID"), Some("1234-5678"));
        assert_eq!(get(&env, "APP"), Some("driver"));
        assert_eq!(get(&env, "MISSING"), Some(""));
        assert_eq!(get(&env, "NOTE"), Some("hello"));
        assert_eq!(get(&env, "NODE"), Some("rehearsal-runner"));
        assert_eq!(get(&env, "SA"), Some("rehearsal-driver"));
        assert_eq!(get(&env, "POD_IP"), Some("127.1.0.7"), "the pod's own address");
        assert_eq!(get(&env, "POD_IPS"), Some("127.1.0.7"));
        assert_eq!(get(&env, "HOST_IP"), Some("127.0.0.1"), "the host stays on 127.0.0.1");
        assert_eq!(get(&env, "HOST_IPS"), Some("127.0.0.1"));
    }

    #[test]
    fn pod_ip_follows_the_allocated_address() {
        let other = Some(Ipv4Addr::new(127, 1, 3, 4));
        assert_eq!(field_value(&pod(), other, "status.podIP"), Ok("127.1.3.4".into()));
        assert_eq!(field_value(&pod(), None, "status.podIP"), Ok(String::new()));
        assert_eq!(field_value(&pod(), None, "status.hostIP"), Ok("127.0.0.1".into()));
        let c = container(vec![field("POD_IP", "status.podIP"), literal("ADDR", "$(POD_IP):8443")], vec![]);
        let env = resolve(&pod(), other, &c, &Sources::default()).unwrap_or_default();
        assert_eq!(get(&env, "ADDR"), Some("127.1.3.4:8443"));
    }

    #[test]
    fn whole_label_map_renders_like_the_downward_api() {
        assert_eq!(field_value(&pod(), POD_IP, "metadata.labels"), Ok("app=\"driver\"\nrun=\"0\"".into()));
    }

    #[test]
    fn unsupported_field_and_source_are_errors() {
        let c = container(vec![field("X", "spec.containers[0].name")], vec![]);
        assert_eq!(
            resolve(&pod(), POD_IP, &c, &Sources::default()),
            Err(EnvError::UnsupportedField("spec.containers[0].name".into()))
        );
        let resource = EnvVar {
            name: "CPU".into(),
            value: None,
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector { resource: "limits.cpu".into(), ..Default::default() }),
                ..Default::default()
            }),
        };
        let c = container(vec![resource], vec![]);
        assert_eq!(resolve(&pod(), POD_IP, &c, &Sources::default()), Err(EnvError::UnsupportedSource("CPU".into())));
    }

    #[test]
    fn secret_and_config_map_keys_and_env_from() {
        let sources = Sources {
            secrets: BTreeMap::from([(
                "creds".into(),
                BTreeMap::from([("AWS_ACCESS_KEY_ID".into(), "minio".into()), ("token".into(), "s3cr3t".into())]),
            )]),
            config_maps: BTreeMap::from([("settings".into(), BTreeMap::from([("LEVEL".into(), "debug".into())]))]),
        };
        let c = container(
            vec![
                secret_key("TOKEN", "creds", "token", None),
                EnvVar {
                    name: "LOG".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".into(),
                            key: "LEVEL".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                },
                secret_key("OPTIONAL", "absent", "x", Some(true)),
                // env overrides envFrom.
                literal("CFG_LEVEL", "overridden"),
            ],
            vec![
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource { name: "creds".into(), optional: None }),
                    ..Default::default()
                },
                EnvFromSource {
                    prefix: Some("CFG_".into()),
                    config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
                    ..Default::default()
                },
            ],
        );
        let env = resolve(&pod(), POD_IP, &c, &sources).unwrap_or_default();
        assert_eq!(get(&env, "TOKEN"), Some("s3cr3t"));
        assert_eq!(get(&env, "LOG"), Some("debug"));
        assert_eq!(get(&env, "AWS_ACCESS_KEY_ID"), Some("minio"));
        assert_eq!(get(&env, "CFG_LEVEL"), Some("overridden"));
        assert_eq!(get(&env, "OPTIONAL"), None);
        assert_eq!(env.iter().filter(|(k, _)| k == "CFG_LEVEL").count(), 1);
    }

    #[test]
    fn missing_non_optional_sources_are_errors() {
        let c = container(vec![secret_key("T", "absent", "k", None)], vec![]);
        assert_eq!(resolve(&pod(), POD_IP, &c, &Sources::default()), Err(EnvError::MissingSecret("absent".into())));

        let sources =
            Sources { secrets: BTreeMap::from([("present".into(), BTreeMap::new())]), config_maps: BTreeMap::new() };
        let c = container(vec![secret_key("T", "present", "k", None)], vec![]);
        let err = resolve(&pod(), POD_IP, &c, &sources);
        assert_eq!(
            err,
            Err(EnvError::MissingSecretKey {
                namespace: "rehearsal-system".into(),
                name: "present".into(),
                key: "k".into()
            })
        );

        let c = container(
            vec![],
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "gone".into(), optional: None }),
                ..Default::default()
            }],
        );
        assert_eq!(resolve(&pod(), POD_IP, &c, &Sources::default()), Err(EnvError::MissingConfigMap("gone".into())));
    }

    #[test]
    fn references_name_all_sources() {
        let c = container(
            vec![secret_key("A", "s1", "k", None)],
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "c1".into(), optional: None }),
                ..Default::default()
            }],
        );
        let refs = referenced(&c);
        assert_eq!(refs.secrets, BTreeSet::from(["s1".to_owned()]));
        assert_eq!(refs.config_maps, BTreeSet::from(["c1".to_owned()]));
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = vec![("NAME".to_owned(), "x".to_owned()), ("NS".to_owned(), "ns".to_owned())];
        assert_eq!(expand("$(NAME).$(NS)", &env), "x.ns");
        assert_eq!(expand("$$(NAME)", &env), "$(NAME)");
        assert_eq!(expand("$(UNSET)", &env), "$(UNSET)");
        assert_eq!(expand("cost $5", &env), "cost $5");
        assert_eq!(expand("$(unterminated", &env), "$(unterminated");

        let c = container(vec![field("POD", "metadata.name"), literal("URL", "http://$(POD):8888")], vec![]);
        let env = resolve(&pod(), POD_IP, &c, &Sources::default()).unwrap_or_default();
        assert_eq!(get(&env, "URL"), Some("http://driver-0-abcde:8888"));
    }
}
