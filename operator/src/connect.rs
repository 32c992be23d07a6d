//! Connecting to the API server.

use kube::Client;

/// Why the operator could not reach its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No kubeconfig and not in a cluster, or a malformed kubeconfig.
    #[error("cannot load a Kubernetes client configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Config(#[source] kube::Error),
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server at {url}: {source}")]
    Unreachable {
        /// Where the client tried.
        url: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// Builds a client from the environment and checks the API server answers.
pub async fn connect() -> Result<Client, ConnectError> {
    let config = kube::Config::infer().await.map_err(|e| ConnectError::Config(kube::Error::InferConfig(e)))?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(ConnectError::Config)?;
    let version =
        client.apiserver_version().await.map_err(|source| ConnectError::Unreachable { url: url.clone(), source })?;
    tracing::info!(%url, version = %version.git_version, "connected to the API server");
    Ok(client)
}
