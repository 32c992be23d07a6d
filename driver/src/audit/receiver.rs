//! The audit webhook receiver: the API server's webhook backend (`--audit-webhook-config-file`,
//! a kubeconfig whose server is `http://<address>/audit`) posts `audit.k8s.io/v1` `EventList`
//! batches here while the run lasts. Plain HTTP on the address given (loopback on the local
//! control plane); the API server retries a batch that fails, so a body that cannot be read is
//! answered 400 and counted, never half-kept.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

use super::filter::AuditEvent;
use super::sink::AuditSink;

/// Largest batch accepted (a batch of events with request and response bodies).
pub const MAX_BATCH: usize = 64 * 1024 * 1024;

/// An `EventList`.
#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    items: Vec<AuditEvent>,
}

/// Why the receiver did not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for audit events on {addr}: {source}")]
pub struct ReceiverError {
    /// The address.
    pub addr: SocketAddr,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

/// The running receiver.
pub struct Receiver {
    /// Where it listens (the port resolved when 0 was asked for).
    pub addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(State(sink): State<Arc<AuditSink>>, body: Bytes) -> StatusCode {
    match serde_json::from_slice::<EventList>(&body) {
        Ok(list) => {
            for event in list.items {
                sink.offer(event);
            }
            sink.flush();
            StatusCode::OK
        }
        Err(e) => {
            sink.count_error();
            tracing::warn!(error = %e, "audit webhook: a batch is not an EventList");
            StatusCode::BAD_REQUEST
        }
    }
}

impl Receiver {
    /// Listens on `addr` and gives every posted event to `sink`.
    pub async fn start(addr: SocketAddr, sink: Arc<AuditSink>) -> Result<Self, ReceiverError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| ReceiverError { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| ReceiverError { addr, source })?;
        let bound = listener.local_addr().map_err(|source| ReceiverError { addr, source })?;
        let app = Router::new()
            .route("/audit", post(receive))
            .route("/", post(receive))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH))
            .with_state(sink);
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(listener).map_err(|source| ReceiverError { addr, source })?;
        let server = server.handle(handle.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::warn!(error = %e, "audit webhook receiver stopped");
            }
        });
        tracing::info!(address = %bound, "receiving audit events on /audit");
        Ok(Receiver { addr: bound, handle, task })
    }

    /// Stops listening, after the batches being received.
    pub async fn stop(self) {
        self.handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::filter::AuditScope;

    #[tokio::test]
    async fn posted_batches_of_the_run_are_kept_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("audit.jsonl");
        let scope = AuditScope { namespaces: vec!["ns".into()], namespace_prefix: None, simulation: None };
        let sink = Arc::new(AuditSink::create(&out, scope).unwrap());
        let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), sink.clone()).await.unwrap();
        let url = format!("http://{}/audit", receiver.addr);
        let event = |id: &str, ns: &str| {
            serde_json::json!({"auditID": id, "stage": "ResponseComplete", "verb": "create",
                "objectRef": {"resource": "pods", "namespace": ns}, "requestReceivedTimestamp": "t", "stageTimestamp": "t"})
        };
        let batch = serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
            "items": [event("a", "ns"), event("b", "other"), event("c", "ns")]});
        let http = reqwest::Client::new();
        let ok = http.post(&url).body(batch.to_string()).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        let bad = http.post(&url).body("{not json").send().await.unwrap();
        assert_eq!(bad.status(), 400);
        receiver.stop().await;
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["auditID"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(sink.counts().seen, 3);
        assert_eq!(sink.counts().errors, 1);
    }
}
