//! The HTTPS listener serving `/mutate` and `/healthz`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use super::State;
use super::owners::ObjectLookup;

/// Why the listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key could not be read or used.
    #[error("cannot load the webhook certificate {cert} and key {key}: {source}")]
    Tls {
        /// Certificate path.
        cert: String,
        /// Key path.
        key: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// A running listener; dropping it does not stop it, [`Listener::shutdown`] does.
pub struct Listener {
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
}

impl Listener {
    /// Stops accepting, lets requests in flight finish (up to `grace`), and waits for the task.
    pub async fn shutdown(self, grace: Duration) -> std::io::Result<()> {
        self.handle.graceful_shutdown(Some(grace));
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

async fn mutate<L: ObjectLookup + 'static>(Extract(state): Extract<Arc<State<L>>>, body: Bytes) -> Response {
    match state.review(&body).await {
        Ok(review) => Json(review).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The routes, without TLS (tests drive them directly).
pub fn router<L: ObjectLookup + 'static>(state: Arc<State<L>>) -> Router {
    Router::new().route("/mutate", post(mutate::<L>)).route("/healthz", get(|| async { "ok" })).with_state(state)
}

/// Starts serving HTTPS on `addr` with the PEM certificate and key.
pub async fn serve<L: ObjectLookup + 'static>(
    addr: SocketAddr,
    cert: &Path,
    key: &Path,
    state: Arc<State<L>>,
) -> Result<Listener, ServeError> {
    let tls = RustlsConfig::from_pem_file(cert, key).await.map_err(|source| ServeError::Tls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    })?;
    // Bind here, not inside the server task, so a port in use is reported before anything runs.
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    std_listener.set_nonblocking(true).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = std_listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(std_listener, tls).map_err(|source| ServeError::Bind { addr, source })?;
    let app = router(state);
    let task = tokio::spawn(server.handle(handle.clone()).serve(app.into_make_service()));
    Ok(Listener { handle, task, local_addr })
}
