//! The operator's plain-HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for the
//! kubelet's probes.
//!
//! It serves nothing a client could change and no secrets, so it has no TLS; NetworkPolicy or
//! the pod's port exposure decide who may scrape it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The content type of OpenMetrics text, as Prometheus asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long [`WebServer::shutdown`] waits for open connections before dropping them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Why the web server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address is in use, not local, or not allowed.
    #[error("cannot listen on {addr} for /metrics, /healthz and /readyz: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// Readiness as `/readyz` reports it: not ready, with a reason, until `set_ready(true)`.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    reason: Mutex<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Not ready yet, with the reason "starting".
    pub fn new() -> Health {
        Health { ready: AtomicBool::new(false), reason: Mutex::new("starting".to_owned()) }
    }

    /// Marks the process ready (200 on `/readyz`) or not (503 with the last reason).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Sets the reason `/readyz` gives while not ready; newlines become spaces to keep one line.
    pub fn set_reason(&self, reason: &str) {
        let one_line = reason.split(['\r', '\n']).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
        *self.reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = one_line;
    }

    /// Marks the process not ready, for `reason`.
    pub fn set_not_ready(&self, reason: &str) {
        self.set_reason(reason);
        self.set_ready(false);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The reason given while not ready.
    pub fn reason(&self) -> String {
        // A panic while holding the lock cannot leave a String half-written, so a poisoned
        // lock still holds a usable reason.
        self.reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// A running server; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug)]
pub struct WebServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl WebServer {
    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish for up to 5 s, then drops what is left.
    pub async fn shutdown(self) {
        let WebServer { local_addr, stop, mut task } = self;
        // An error means the server already stopped on its own; awaiting the task reports why.
        let _ = stop.send(());
        match tokio::time::timeout(SHUTDOWN_WAIT, &mut task).await {
            Ok(Ok(Ok(()))) => tracing::debug!(%local_addr, "web server stopped"),
            Ok(Ok(Err(err))) => tracing::warn!(%local_addr, error = %err, "web server had failed"),
            Ok(Err(err)) => tracing::warn!(%local_addr, error = %err, "web server task panicked or was cancelled"),
            Err(_) => {
                tracing::warn!(%local_addr, "web server connections still open after {SHUTDOWN_WAIT:?}; dropping them");
                task.abort();
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds `addr` (before returning, so a port in use is reported here) and serves in a task.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, health: Arc<Health>) -> Result<WebServer, WebError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| WebError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(|source| WebError::Bind { addr, source })?;
    let app = router(AppState { metrics, health });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A dropped handle stops the server too, rather than leaving it unreachable to stop.
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%local_addr, "serving /metrics, /healthz and /readyz");
    Ok(WebServer { local_addr, stop, task })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {err}\n")).into_response()
        }
    }
}

// Liveness only says the process still answers: restarting it would not cure anything
// readiness reports (a missing API server, a lost lease).
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.health.is_ready() {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", state.health.reason())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Status, content type and body of `GET path`, over a one-request HTTP/1.1 connection.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("reads");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut head_lines = head.lines();
        let status = head_lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status");
        let content_type = head_lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    }

    async fn start() -> (WebServer, Arc<Metrics>, Arc<Health>) {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new());
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let server = serve(addr, metrics.clone(), health.clone()).await.expect("binds");
        (server, metrics, health)
    }

    #[tokio::test]
    async fn serves_metrics_and_probes() {
        let (server, metrics, health) = start().await;
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        metrics.set_queue_length(3);
        let (status, content_type, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
        assert!(body.contains("rehearsal_queue_length 3\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        assert_eq!(get(addr, "/healthz").await, (200, "text/plain; charset=utf-8".into(), "ok\n".into()));

        assert_eq!(get(addr, "/readyz").await.0, 503);
        assert_eq!(get(addr, "/readyz").await.2, "not ready: starting\n");
        health.set_reason("waiting for the API server\nat https://10.0.0.1");
        assert_eq!(get(addr, "/readyz").await.2, "not ready: waiting for the API server at https://10.0.0.1\n");
        health.set_ready(true);
        assert_eq!(get(addr, "/readyz").await, (200, "text/plain; charset=utf-8".into(), "ok\n".into()));
        health.set_not_ready("lost the API server");
        assert_eq!(
            get(addr, "/readyz").await,
            (503, "text/plain; charset=utf-8".into(), "not ready: lost the API server\n".into())
        );

        assert_eq!(get(addr, "/nope").await.0, 404);
        // Still alive and answering after all that.
        assert_eq!(get(addr, "/healthz").await.0, 200);

        server.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening on {addr} after shutdown");
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error_naming_the_address() {
        let (server, metrics, health) = start().await;
        let addr = server.local_addr();
        let err = serve(addr, metrics, health).await.expect_err("second bind fails");
        let message = err.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(
            matches!(&err, WebError::Bind { addr: a, source } if *a == addr
            && source.kind() == std::io::ErrorKind::AddrInUse),
            "{err:?}"
        );
        server.shutdown().await;
    }
}
