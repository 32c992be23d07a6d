//! The Kubernetes client of every driver command: kube's, over HTTP/2 when the API server offers
//! it (as client-go does).
//!
//! kube 5 speaks HTTP/1.1 only, so N requests in flight need N TLS connections, opened when the
//! requests are: a replay's burst of objects due at the same second waited for the handshakes,
//! then for the connections to free up. Over HTTP/2 one connection carries every request and
//! every watch; it is opened (and kept alive with pings) before the first deadline.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// How often an idle HTTP/2 connection is pinged, and how long an answer may take: a dead
/// connection (API server restarted, network gone) is noticed and replaced within this, where
/// HTTP/1.1 relied on read timeouts.
const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(10));

/// Builds a client from a ':'-separated kubeconfig list, or in-cluster / ~/.kube/config.
pub async fn build(kubeconfig: Option<&str>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("cannot find a cluster (no KUBECONFIG, not in a pod, no ~/.kube/config): {e}"))?,
        Some(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(paths) {
                let read = Kubeconfig::read_from(&path)
                    .map_err(|e| format!("--kubeconfig (or KUBECONFIG) {}: {e}", path.display()))?;
                merged = Some(match merged {
                    None => read,
                    Some(m) => m.merge(read).map_err(|e| format!("--kubeconfig (or KUBECONFIG) {paths}: {e}"))?,
                });
            }
            let merged = merged.ok_or_else(|| format!("--kubeconfig (or KUBECONFIG) {paths:?} names no file"))?;
            kube::Config::from_custom_kubeconfig(merged, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("--kubeconfig (or KUBECONFIG) {paths}: {e}"))?
        }
    };
    from_config(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

/// A client for `config`: HTTP/2 negotiated by ALPN (HTTP/1.1 when the server offers only that).
/// A kubeconfig with a proxy or a TLS server name override gets kube's own HTTP/1.1 client,
/// which knows how to use them. Tokens (files, exec plugins, OIDC) are refreshed by kube's auth
/// layer, used here as in kube's client.
pub fn from_config(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return kube::Client::try_from(config);
    }
    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Small requests: sent at once, not held back to fill a segment.
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let (interval, timeout) = KEEP_ALIVE;
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        // HTTP/2 pings and the pool's idle timeout need a timer.
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(interval)
        .http2_keep_alive_timeout(timeout)
        .http2_keep_alive_while_idle(true)
        .build(https);
    // The layers of kube's own client, in its order (its tracing layer left out).
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local HTTPS server (axum, ALPN h2 and http/1.1) answering with the HTTP version it saw.
    async fn version_server() -> (String, Vec<u8>, axum_server::Handle<std::net::SocketAddr>) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            cert.cert.pem().into_bytes(),
            cert.signing_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("tls config");
        let app = axum::Router::new().route(
            "/version",
            axum::routing::get(|req: axum::extract::Request| async move { format!("{:?}", req.version()) }),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls).expect("server").handle(handle.clone());
        tokio::spawn(server.serve(app.into_make_service()));
        (format!("https://{addr}"), cert.cert.der().to_vec(), handle)
    }

    async fn version(client: &kube::Client) -> String {
        let req = axum::http::Request::get("/version").body(vec![]).expect("request");
        client.request_text(req).await.expect("answer")
    }

    #[tokio::test]
    async fn speaks_http2_to_a_server_that_offers_it_and_keeps_one_connection() {
        let (url, ca, handle) = version_server().await;
        let mut config = kube::Config::new(url.parse().expect("url"));
        config.root_cert = Some(vec![ca]);
        let client = from_config(config).expect("client");
        // Many requests at once, as a replay's burst: all over HTTP/2.
        let answers = futures::future::join_all((0..50).map(|_| version(&client))).await;
        assert!(answers.iter().all(|v| v == "HTTP/2.0"), "{answers:?}");
        assert_eq!(handle.connection_count(), 1, "one connection carries every request");
        handle.shutdown();
    }

    #[tokio::test]
    async fn a_kubeconfig_with_a_proxy_gets_kubes_own_client() {
        let (url, ca, handle) = version_server().await;
        let mut config = kube::Config::new(url.parse().expect("url"));
        config.root_cert = Some(vec![ca]);
        config.tls_server_name = Some("127.0.0.1".into());
        let client = from_config(config).expect("client");
        assert_eq!(version(&client).await, "HTTP/1.1");
        handle.shutdown();
    }
}
