//! Webhook latency under load: a fixed rate of AdmissionReviews over loopback TLS, as the API
//! server sends them. Prints p50, p99 and max. `make bench` runs it; nothing is asserted.
//!
//! Usage: cargo bench -p rehearsal-driver --bench webhook -- [rate per second] [seconds]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rehearsal_driver::webhook::owners::{ObjectLookup, TraceObject};
use rehearsal_driver::webhook::{RunInfo, State, server};
use serde_json::{Value, json};

/// Pods of the run are bare pods owned by the root, so no API lookups are needed: the figure
/// is the webhook's own cost (parse, ownership, patch, TLS).
struct NoLookup;
impl ObjectLookup for NoLookup {
    async fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Result<Option<Value>, kube::Error> {
        Ok(None)
    }
}

fn review(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("u-{i}"), "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "virtual-bench", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-{i}"), "namespace": "virtual-bench", "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": "root"}]},
                "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]}},
            "dryRun": false
        }
    }))
    .unwrap_or_default()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let rate: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);

    let dir = tempfile::tempdir()?;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.signing_key.serialize_pem())?;

    let state = Arc::new(State::new("bench", "virtual", NoLookup));
    let lifetimes: HashMap<TraceObject, Vec<Option<f64>>> = HashMap::new();
    state.set_run(RunInfo { root_uid: "root".into(), lifetimes: Arc::new(lifetimes) });
    let listener = server::serve("127.0.0.1:0".parse()?, &cert_path, &key_path, state).await?;
    let url = format!("https://127.0.0.1:{}/mutate", listener.local_addr.port());
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes())?)
        .build()?;

    let total = (rate * seconds) as usize;
    let bodies: Vec<Vec<u8>> = (0..total).map(review).collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (i, body) in bodies.into_iter().enumerate() {
        // Open-loop: requests leave on schedule whether or not earlier ones returned.
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let resp = client.post(&url).header("content-type", "application/json").body(body).send().await;
            let ok = match resp {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((d, true)) => latencies.push(d),
            _ => errors += 1,
        }
    }
    let wall = start.elapsed();
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "webhook: {} requests at {rate}/s over {:.1} s: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, errors {errors}",
        latencies.len(),
        wall.as_secs_f64(),
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    listener.shutdown(Duration::from_secs(2)).await?;
    Ok(())
}
