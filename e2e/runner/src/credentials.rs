//! A pod's own service-account credentials: a bound token from the TokenRequest API, written
//! to a token file, and a kubeconfig that points at the admin kubeconfig's API server and CA
//! but authenticates with that token file, so the pod's process has its service account's RBAC.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Pod, ServiceAccount},
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::PostParams,
    config::{AuthInfo, Cluster, Context, Kubeconfig, KubeconfigError, NamedAuthInfo, NamedCluster, NamedContext},
};

/// How long a minted token is valid; it is re-minted at 80% of that, as kubelet does.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;
/// Mode of the token and kubeconfig files: readable by the runner's user (the pod's processes)
/// only.
pub const CREDENTIAL_MODE: u32 = 0o600;

/// Errors reading the admin kubeconfig or writing a pod's credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The admin kubeconfig could not be read or parsed.
    #[error("reading admin kubeconfig {path}: {source}")]
    ReadKubeconfig {
        /// Path of the admin kubeconfig.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: KubeconfigError,
    },
    /// The admin kubeconfig names no usable cluster.
    #[error("admin kubeconfig {0} has no cluster for its current context")]
    NoCluster(PathBuf),
    /// Rendering the pod kubeconfig failed.
    #[error("rendering kubeconfig: {0}")]
    Render(String),
    /// Writing a credentials file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The API server refused or failed the token request.
    #[error("requesting a token for service account {namespace}/{service_account}: {source}")]
    TokenRequest {
        /// Namespace of the service account.
        namespace: String,
        /// The service account.
        service_account: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The API server answered without a token.
    #[error("the token request for {0} returned no token")]
    EmptyToken(String),
}

/// The API server and CA pod kubeconfigs point at: the admin kubeconfig's current cluster.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    cluster: Cluster,
}

impl ApiTarget {
    /// Reads the cluster of the admin kubeconfig's current context (or its only cluster).
    pub fn from_kubeconfig(path: &Path) -> Result<Self, CredentialsError> {
        let config = Kubeconfig::read_from(path)
            .map_err(|source| CredentialsError::ReadKubeconfig { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_parsed(&config, base).ok_or_else(|| CredentialsError::NoCluster(path.to_owned()))
    }

    /// The current cluster of a parsed kubeconfig; a relative CA path is made absolute from `base`
    /// because pod kubeconfigs live elsewhere.
    pub fn from_parsed(config: &Kubeconfig, base: &Path) -> Option<Self> {
        let current = config.current_context.as_deref();
        let cluster_name = config
            .contexts
            .iter()
            .find(|c| Some(c.name.as_str()) == current)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone());
        let named = match cluster_name {
            Some(name) => config.clusters.iter().find(|c| c.name == name),
            None => config.clusters.first(),
        }?;
        let mut cluster = named.cluster.clone()?;
        cluster.server.as_ref()?;
        if let Some(ca) = &cluster.certificate_authority
            && Path::new(ca).is_relative()
        {
            cluster.certificate_authority = Some(base.join(ca).to_string_lossy().into_owned());
        }
        Some(Self { cluster })
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        self.cluster.server.as_deref().unwrap_or_default()
    }
}

/// A kubeconfig for one pod: the target cluster, the token file as credentials, the pod's
/// namespace as default namespace.
pub fn render_kubeconfig(
    target: &ApiTarget,
    token_file: &Path,
    namespace: &str,
    service_account: &str,
) -> Result<String, CredentialsError> {
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let config = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "rehearsal".into(),
            cluster: Some(target.cluster.clone()),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo {
                token_file: Some(token_file.to_string_lossy().into_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "pod".into(),
            context: Some(Context {
                cluster: "rehearsal".into(),
                user: Some(user),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("pod".into()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Default::default()
    };
    serde_saphyr::to_string(&config).map_err(|e| CredentialsError::Render(e.to_string()))
}

/// Whether the pod gets credentials: the pod's `automountServiceAccountToken`, else its
/// service account's, else yes. A service account that cannot be read counts as "yes".
pub async fn automount(client: &Client, pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    if let Some(choice) = spec.and_then(|s| s.automount_service_account_token) {
        return choice;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    match accounts.get_opt(&service_account(pod)).await {
        Ok(Some(account)) => account.automount_service_account_token.unwrap_or(true),
        _ => true,
    }
}

/// The pod's service account name (`default` when unset).
pub fn service_account(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into())
}

/// A token and when it expires.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The bearer token.
    pub token: String,
    /// Expiry reported by the API server (or computed from the requested expiration).
    pub expires_at: Timestamp,
}

impl MintedToken {
    /// When to mint the next one: at 80% of the token's life.
    pub fn refresh_at(&self, minted_at: Timestamp) -> Timestamp {
        let life = self.expires_at.duration_since(minted_at);
        minted_at + life * 4 / 5
    }
}

/// Mints a token for the pod's service account, bound to the pod (invalid once it is deleted).
pub async fn mint(client: &Client, pod: &Pod, audiences: Option<Vec<String>>) -> Result<MintedToken, CredentialsError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let account = service_account(pod);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
        }),
        ..Default::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let requested_at = Timestamp::now();
    let response: TokenRequest =
        accounts.create_subresource("token", &account, &PostParams::default(), &request).await.map_err(|source| {
            CredentialsError::TokenRequest { namespace: namespace.clone(), service_account: account.clone(), source }
        })?;
    let status = response.status.unwrap_or_default();
    let Some(token) = status.token.filter(|t| !t.is_empty()) else {
        return Err(CredentialsError::EmptyToken(format!("{namespace}/{account}")));
    };
    let fallback = requested_at + k8s_openapi::jiff::SignedDuration::from_secs(TOKEN_EXPIRATION_SECONDS);
    let expires_at = status.expiration_timestamp.map(|t| t.0).filter(|t| *t > requested_at).unwrap_or(fallback);
    Ok(MintedToken { token, expires_at })
}

/// The files [`write_pod_credentials`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The token file, rewritten on refresh.
    pub token: PathBuf,
    /// The kubeconfig reading it.
    pub kubeconfig: PathBuf,
}

/// Writes a pod's `token` and `kubeconfig` (both 0600) into its folder `dir`.
pub fn write_pod_credentials(
    dir: &Path,
    target: &ApiTarget,
    token: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Written, CredentialsError> {
    let written = Written { token: dir.join("token"), kubeconfig: dir.join("kubeconfig") };
    write_atomically(&written.token, token.as_bytes(), CREDENTIAL_MODE)?;
    let text = render_kubeconfig(target, &written.token, namespace, service_account)?;
    write_atomically(&written.kubeconfig, text.as_bytes(), CREDENTIAL_MODE)?;
    Ok(written)
}

/// Writes a file with `mode` through a temporary sibling and a rename, so readers (kube clients
/// reloading their token file) never see a half-written file. The mode is set on the open file
/// before anything is written, whatever the umask or a leftover temporary file had.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CredentialsError> {
    let write = |path: &Path| -> std::io::Result<()> {
        use std::{
            io::Write,
            os::unix::fs::{OpenOptionsExt, PermissionsExt},
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        std::fs::rename(&tmp, path)
    };
    write(path).map_err(|source| CredentialsError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
- name: sandbox
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: pki/ca.crt
contexts:
- name: admin
  context:
    cluster: sandbox
    user: admin
current-context: admin
users:
- name: admin
  user:
    client-certificate: pki/admin.crt
    client-key: pki/admin.key
"#;

    #[test]
    fn target_is_the_current_cluster_with_an_absolute_ca() {
        let config = Kubeconfig::from_yaml(ADMIN).expect("parse");
        let target = ApiTarget::from_parsed(&config, Path::new("/sandbox")).expect("cluster");
        assert_eq!(target.server(), "https://127.0.0.1:6443");
        assert_eq!(target.cluster.certificate_authority.as_deref(), Some("/sandbox/pki/ca.crt"));
    }

    #[test]
    fn rendered_kubeconfig_uses_the_token_file_and_no_admin_credentials() {
        let config = Kubeconfig::from_yaml(ADMIN).expect("parse");
        let target = ApiTarget::from_parsed(&config, Path::new("/sandbox")).expect("cluster");
        let text = render_kubeconfig(&target, Path::new("/state/pods/ns_p_u/token"), "ns", "driver").expect("render");
        assert!(!text.contains("admin"), "{text}");
        let parsed = Kubeconfig::from_yaml(&text).expect("reparse");
        assert_eq!(parsed.current_context.as_deref(), Some("pod"));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority.as_deref(), Some("/sandbox/pki/ca.crt"));
        let user = &parsed.auth_infos[0];
        assert_eq!(user.name, "system:serviceaccount:ns:driver");
        let auth = user.auth_info.as_ref().expect("auth");
        assert_eq!(auth.token_file.as_deref(), Some("/state/pods/ns_p_u/token"));
        assert!(auth.client_certificate.is_none() && auth.client_key.is_none());
        let context = parsed.contexts[0].context.as_ref().expect("context");
        assert_eq!(context.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn kubeconfig_with_inline_ca_keeps_it() {
        let text = ADMIN.replace("certificate-authority: pki/ca.crt", "certificate-authority-data: Q0E=");
        let config = Kubeconfig::from_yaml(&text).expect("parse");
        let target = ApiTarget::from_parsed(&config, Path::new("/x")).expect("cluster");
        let rendered = render_kubeconfig(&target, Path::new("/t"), "ns", "sa").expect("render");
        assert!(rendered.contains("certificate-authority-data: Q0E="), "{rendered}");
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn credentials_files_are_private_and_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("rehearsal-runner-cred-{}", std::process::id()));
        crate::poddir::create_private(&dir).expect("dir");
        let path = dir.join("token");
        write_atomically(&path, b"first", CREDENTIAL_MODE).expect("write");
        write_atomically(&path, b"second", CREDENTIAL_MODE).expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        assert_eq!(mode(&path), 0o600);
        // A refreshed projected token keeps its volume's mode.
        write_atomically(&path, b"third", 0o440).expect("rewrite with a mode");
        assert_eq!(mode(&path), 0o440);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pod_token_and_kubeconfig_are_0600_in_a_0700_folder() {
        let root = std::env::temp_dir().join(format!("rehearsal-runner-podcred-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("pods").join("ns_p_uid");
        crate::poddir::create_private(&dir).expect("pod dir");
        let config = Kubeconfig::from_yaml(ADMIN).expect("parse");
        let target = ApiTarget::from_parsed(&config, Path::new("/sandbox")).expect("cluster");
        let written = write_pod_credentials(&dir, &target, "TOKEN", "ns", "sa").expect("write");
        assert_eq!(std::fs::read_to_string(&written.token).expect("token"), "TOKEN");
        let kubeconfig = std::fs::read_to_string(&written.kubeconfig).expect("kubeconfig");
        assert!(kubeconfig.contains(&written.token.to_string_lossy().into_owned()), "{kubeconfig}");
        assert_eq!((mode(&written.token), mode(&written.kubeconfig)), (0o600, 0o600));
        assert_eq!((mode(&root.join("pods")), mode(&dir)), (0o700, 0o700));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn refresh_happens_at_four_fifths_of_the_life() {
        let minted_at = Timestamp::from_second(1_000_000).expect("ts");
        let token = MintedToken {
            token: "t".into(),
            expires_at: minted_at + k8s_openapi::jiff::SignedDuration::from_secs(3600),
        };
        assert_eq!(token.refresh_at(minted_at), minted_at + k8s_openapi::jiff::SignedDuration::from_secs(2880));
    }
}
