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
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

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

/// Largest AdmissionReview accepted: a pod is at most ~1.5 MiB in etcd, its review a little more.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Reviews answered at once; more wait (the API server gives each call its timeout, 10 s).
pub const MAX_IN_FLIGHT: usize = 256;

/// The routes, without TLS (tests drive them directly): `/mutate`, and `/` as SimKube's
/// controller registers it; bodies over [`MAX_BODY`] get 413, and at most [`MAX_IN_FLIGHT`]
/// reviews run at once.
pub fn router<L: ObjectLookup + 'static>(state: Arc<State<L>>) -> Router {
    Router::new()
        .route("/mutate", post(mutate::<L>))
        .route("/", post(mutate::<L>))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(limit_in_flight))
        .with_state(state)
}

/// Holds a permit of a process-wide semaphore for the length of a request.
async fn limit_in_flight(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_IN_FLIGHT);
    match PERMITS.acquire().await {
        Ok(_permit) => next.run(req).await,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the webhook is shutting down").into_response(),
    }
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
    // TCP_NODELAY: on a new connection the server writes its TLS 1.3 session tickets, then the
    // first answer; with Nagle the answer, shorter than a segment, waits for the client's
    // delayed ACK of the tickets, 40 ms on Linux (the webhook bench's max was 43-80 ms).
    let acceptor = RustlsAcceptor::new(tls).acceptor(NoDelayAcceptor::new());
    let server =
        axum_server::from_tcp(std_listener).map_err(|source| ServeError::Bind { addr, source })?.acceptor(acceptor);
    let app = router(state);
    let task = tokio::spawn(server.handle(handle.clone()).serve(app.into_make_service()));
    Ok(Listener { handle, task, local_addr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::tests::NoLookup;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends one plain-HTTP POST to the router and returns the status line.
    async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("head");
        // A server refusing a large body may close before reading it all.
        let _ = s.write_all(body).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn serves_root_and_mutate_and_refuses_huge_bodies() {
        let state = Arc::new(State::new("sim", "virtual", NoLookup));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(axum::serve(listener, router(state).into_make_service()).into_future());
        // Both paths answer a review (here a malformed one: 400 from the handler, not 404).
        assert!(post(addr, "/mutate", b"{}").await.contains("400"));
        assert!(post(addr, "/", b"{}").await.contains("400"));
        assert!(post(addr, "/other", b"{}").await.contains("404"));
        let huge = vec![b' '; MAX_BODY + 1];
        assert!(post(addr, "/mutate", &huge).await.contains("413"), "bodies over the limit are refused");
        server.abort();
    }
}
