//! Waiting for the stop signal.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C); returns the signal's name.
pub async fn wait() -> &'static str {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        // Without signal handlers, fall back to Ctrl-C only rather than never stopping.
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
