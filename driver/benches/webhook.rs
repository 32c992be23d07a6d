//! Webhook latency under load, as the API server sees it: a fixed rate of AdmissionReviews over
//! loopback TLS, sent by a separate client process that behaves like kube-apiserver's webhook
//! client. Prints `webhook: ...` (p50, p99, max) and `webhook-json: {...}` (rate, seconds,
//! requests, errors, p50/p90/p99/max in ms). `make bench` runs it; nothing is asserted.
//!
//! Usage: cargo bench -p rehearsal-driver --bench webhook -- [rate per second] [seconds] [--http1]
//! [--in-process]
//!
//! The client is this binary started again with `--load-client`, so that it has its own process,
//! threads and TLS stack as the API server has, instead of sharing the server's runtime. Like
//! kube-apiserver (k8s.io/apiserver `util/webhook`), it uses one HTTP/2 connection when the
//! server offers h2 (what it does for a webhook registered by a loopback URL, as the driver
//! registers itself), or with `--http1` reused HTTP/1.1 connections, at most 25 idle (what it
//! does for a webhook behind a Service, as the operator registers it); TCP_NODELAY as Go sets
//! it; and the registration's 10 s `timeoutSeconds` per call, connecting included. A warm-up
//! second at the same rate comes first and is not counted: a running API server has its
//! connections open. `--in-process` runs the same client in the server's runtime, for comparison.
//! Details (connections opened, the cold first request, the client's own lateness) go to stderr.

use std::collections::HashMap;
use std::error::Error;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::http::{Request, Uri, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rehearsal_driver::webhook::owners::{ObjectLookup, TraceObject};
use rehearsal_driver::webhook::{RunInfo, State, server};
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;

/// First argument of the client process.
const CLIENT_ROLE: &str = "--load-client";

/// The webhook registration's `timeoutSeconds`: the API server gives up on a call after it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// client-go's `idleConnsPerHost` for the API server's transports.
const MAX_IDLE_PER_HOST: usize = 25;

/// Pods of the run are bare pods owned by the root, so no API lookups are needed: the figure
/// is the webhook's own cost (parse, ownership, patch, TLS).
struct NoLookup;
impl ObjectLookup for NoLookup {
    async fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Result<Option<Value>, kube::Error> {
        Ok(None)
    }
}

fn review(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "virtual-bench", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-{uid}"), "namespace": "virtual-bench", "labels": {"app": "web"},
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

/// Milliseconds to the microsecond, so the JSON stays readable.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The figures, as printed on the `webhook-json:` line.
#[derive(Serialize, Deserialize)]
struct Summary {
    rate: u64,
    seconds: u64,
    requests: usize,
    errors: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What the client process hands back on its stdout.
#[derive(Serialize, Deserialize)]
struct Report {
    summary: Summary,
    /// From the first request sent to the last answer.
    wall_seconds: f64,
    protocol: String,
    /// The first request of the warm-up, which opened a connection from a cold process.
    cold_connection_ms: f64,
    /// TLS connections opened during the warm-up, and then during the measured seconds.
    warm_connections: usize,
    connections: usize,
    /// Latest a request left after its planned moment (the client's own scheduling).
    max_send_lateness_ms: f64,
    /// The first error met, if any.
    first_error: Option<String>,
}

/// The command line: `[rate] [seconds] [--http1] [--in-process]`; cargo adds `--bench`.
struct Options {
    rate: u64,
    seconds: u64,
    http1: bool,
    in_process: bool,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let numbers: Vec<u64> = args.iter().filter(|a| !a.starts_with("--")).filter_map(|a| a.parse().ok()).collect();
        Options {
            rate: numbers.first().copied().unwrap_or(1000).max(1),
            seconds: numbers.get(1).copied().unwrap_or(10),
            http1: args.iter().any(|a| a == "--http1"),
            in_process: args.iter().any(|a| a == "--in-process"),
        }
    }
}

fn main() -> Result<(), BoxError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((role, rest)) if role == CLIENT_ROLE => {
            // One thread: on two cores, the load generator should take as little CPU and as few
            // wake-ups from the server as it can (a multi-threaded one sent requests later).
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(client_main(rest))
        }
        _ => tokio::runtime::Runtime::new()?.block_on(server_main(Options::parse(&args))),
    }
}

/// Serves the webhook, runs the client (as a child process unless `--in-process`), prints.
async fn server_main(opts: Options) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let (cert_path, key_path, ca_path) =
        (dir.path().join("tls.crt"), dir.path().join("tls.key"), dir.path().join("ca.der"));
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.signing_key.serialize_pem())?;
    std::fs::write(&ca_path, cert.cert.der())?;

    let state = Arc::new(State::new("bench", "virtual", NoLookup));
    let lifetimes: HashMap<TraceObject, Vec<Option<f64>>> = HashMap::new();
    state.set_run(RunInfo { root_uid: "root".into(), lifetimes: Arc::new(lifetimes) });
    let listener = server::serve("127.0.0.1:0".parse()?, &cert_path, &key_path, state).await?;
    let url = format!("https://127.0.0.1:{}/mutate", listener.local_addr.port());

    let report = if opts.in_process {
        let load =
            Load { url, ca_der: cert.cert.der().to_vec(), rate: opts.rate, seconds: opts.seconds, http1: opts.http1 };
        load.run().await?
    } else {
        let mut child = tokio::process::Command::new(std::env::current_exe()?);
        child.arg(CLIENT_ROLE).arg(&url).arg(&ca_path).arg(opts.rate.to_string()).arg(opts.seconds.to_string());
        if opts.http1 {
            child.arg("--http1");
        }
        // Not `output()`: it would capture the client's stderr too.
        let out = child.stdout(Stdio::piped()).kill_on_drop(true).spawn()?.wait_with_output().await?;
        if !out.status.success() {
            return Err(format!("the load client failed: {}", out.status).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        serde_json::from_str::<Report>(line).map_err(|e| format!("the load client's report {line:?}: {e}"))?
    };
    listener.shutdown(Duration::from_secs(2)).await?;

    let s = &report.summary;
    println!(
        "webhook: {} requests at {}/s over {:.1} s: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, errors {}",
        s.requests - s.errors,
        s.rate,
        report.wall_seconds,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.errors
    );
    println!("webhook-json: {}", serde_json::to_string(s)?);
    eprintln!(
        "webhook client: {}{}; first request (opening a connection from a cold process) {:.3} ms; \
         connections opened: {} warming up, {} measured; p90 {:.3} ms; sends up to {:.3} ms late{}",
        report.protocol,
        if opts.in_process { " in the server's process" } else { " from a separate process" },
        report.cold_connection_ms,
        report.warm_connections,
        report.connections,
        s.p90_ms,
        report.max_send_lateness_ms,
        report.first_error.as_deref().map(|e| format!(", first error: {e}")).unwrap_or_default()
    );
    Ok(())
}

/// The client process: `--load-client URL CA_DER_PATH RATE SECONDS [--http1]`; prints a
/// [`Report`] as one JSON line.
async fn client_main(args: &[String]) -> Result<(), BoxError> {
    let [url, ca_path, rate, seconds, ..] = args else {
        return Err(format!("{CLIENT_ROLE} URL CA_DER_PATH RATE SECONDS [--http1]").into());
    };
    let load = Load {
        url: url.clone(),
        ca_der: std::fs::read(ca_path)?,
        rate: rate.parse::<u64>()?.max(1),
        seconds: seconds.parse()?,
        http1: args.iter().any(|a| a == "--http1"),
    };
    println!("{}", serde_json::to_string(&load.run().await?)?);
    Ok(())
}

/// An open-loop load: `rate` reviews a second for `seconds`, after a warm-up second.
struct Load {
    url: String,
    ca_der: Vec<u8>,
    rate: u64,
    seconds: u64,
    http1: bool,
}

/// What one phase of the load saw.
struct Phase {
    /// Answered requests' latencies.
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    /// Latest a request left after its planned moment (the client's own scheduling).
    late: Duration,
    wall: Duration,
}

impl Load {
    async fn run(self) -> Result<Report, BoxError> {
        let client = Arc::new(Client::new(&self.url, self.ca_der.clone(), self.http1)?);
        // A running API server has its connections open and its TLS code warm: the first
        // second is not counted (its first request, which opens the connection, is reported).
        let warm = self.phase(&client, "warm", self.rate as usize).await;
        let cold_connection = warm.latencies.first().copied().unwrap_or_default();
        let warm_connections = client.connections.load(Ordering::Relaxed);
        let total = (self.rate * self.seconds) as usize;
        let measured = self.phase(&client, "u", total).await;
        let mut latencies = measured.latencies;
        latencies.sort_unstable();
        Ok(Report {
            summary: Summary {
                rate: self.rate,
                seconds: self.seconds,
                requests: total,
                errors: measured.errors,
                p50_ms: ms(quantile(&latencies, 0.5)),
                p90_ms: ms(quantile(&latencies, 0.9)),
                p99_ms: ms(quantile(&latencies, 0.99)),
                max_ms: ms(latencies.last().copied().unwrap_or_default()),
            },
            wall_seconds: measured.wall.as_secs_f64(),
            protocol: if self.http1 { "HTTP/1.1" } else { "HTTP/2" }.to_string(),
            cold_connection_ms: ms(cold_connection),
            warm_connections,
            connections: client.connections.load(Ordering::Relaxed) - warm_connections,
            max_send_lateness_ms: ms(measured.late),
            first_error: measured.first_error.or(warm.first_error),
        })
    }

    /// Sends `count` reviews (uids `{prefix}-{i}`) at the rate and waits for every answer.
    async fn phase(&self, client: &Arc<Client>, prefix: &str, count: usize) -> Phase {
        let bodies: Vec<(String, Bytes)> =
            (0..count).map(|i| (format!("{prefix}-{i}"), Bytes::from(review(&format!("{prefix}-{i}"))))).collect();
        let start = Instant::now();
        let mut late = Duration::ZERO;
        let mut tasks = Vec::with_capacity(count);
        for (i, (uid, body)) in bodies.into_iter().enumerate() {
            // Open loop: requests leave on schedule whether or not earlier ones returned.
            let at = start + Duration::from_nanos(i as u64 * 1_000_000_000 / self.rate);
            tokio::time::sleep_until(at).await;
            late = late.max(at.elapsed());
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, client.review(body, &uid)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                };
                (sent.elapsed(), outcome)
            }));
        }
        let mut phase =
            Phase { latencies: Vec::with_capacity(count), errors: 0, first_error: None, late, wall: Duration::ZERO };
        for t in tasks {
            let error = match t.await {
                Ok((d, Ok(()))) => {
                    phase.latencies.push(d);
                    continue;
                }
                Ok((_, Err(e))) => e,
                Err(e) => e.to_string(),
            };
            phase.errors += 1;
            phase.first_error.get_or_insert(error);
        }
        phase.wall = start.elapsed();
        phase
    }
}

/// Connections to the webhook, kept as the API server keeps them.
enum Connections {
    /// One multiplexed connection, opened on first use and again if it closes; requests
    /// wait for the one dial, as with Go's HTTP/2 transport.
    H2(tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>),
    /// Idle keep-alive connections, the last one returned reused first (as Go's transport);
    /// a request finding none opens one.
    H1(Mutex<Vec<http1::SendRequest<Full<Bytes>>>>),
}

struct Client {
    uri: Uri,
    authority: String,
    name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    connections_kept: Connections,
    /// TLS connections opened so far.
    connections: AtomicUsize,
}

impl Client {
    fn new(url: &str, ca_der: Vec<u8>, http1: bool) -> Result<Client, BoxError> {
        let uri: Uri = url.parse()?;
        let host = uri.host().ok_or("the webhook URL has no host")?.to_string();
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(443));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der))?;
        let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        // Go offers h2 and http/1.1 to a loopback webhook URL, only http/1.1 to a Service.
        config.alpn_protocols =
            if http1 { vec![b"http/1.1".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
        let connections_kept = if http1 {
            Connections::H1(Mutex::new(Vec::new()))
        } else {
            Connections::H2(tokio::sync::Mutex::new(None))
        };
        Ok(Client {
            uri,
            authority,
            name: ServerName::try_from(host)?,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            connections_kept,
            connections: AtomicUsize::new(0),
        })
    }

    async fn dial(&self) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, BoxError> {
        let tcp = TcpStream::connect(&self.authority).await?;
        // Go's dialer sets TCP_NODELAY on every TCP connection.
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.name.clone(), tcp).await?;
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(TokioIo::new(tls))
    }

    /// Sends one review and checks the answer is an allowed review of the same uid.
    async fn review(&self, body: Bytes, uid: &str) -> Result<(), BoxError> {
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, */*");
        let answer = match &self.connections_kept {
            Connections::H2(slot) => {
                let mut sender = {
                    let mut slot = slot.lock().await;
                    match slot.as_ref() {
                        Some(s) if !s.is_closed() => s.clone(),
                        _ => {
                            let io = self.dial().await?;
                            if io.inner().get_ref().1.alpn_protocol() != Some(b"h2") {
                                return Err("the webhook did not negotiate h2".into());
                            }
                            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                            tokio::spawn(conn);
                            slot.insert(sender).clone()
                        }
                    }
                };
                sender.ready().await?;
                let response = sender.send_request(request.body(Full::new(body))?).await?;
                let status = response.status();
                (status, response.into_body().collect().await?.to_bytes())
            }
            Connections::H1(idle) => {
                let kept = {
                    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
                    std::iter::from_fn(|| idle.pop()).find(|s| !s.is_closed())
                };
                let mut sender = match kept {
                    Some(s) => s,
                    None => {
                        let (sender, conn) = http1::handshake(self.dial().await?).await?;
                        tokio::spawn(conn);
                        sender
                    }
                };
                sender.ready().await?;
                let request = request.uri(self.uri.path()).header(header::HOST, &self.authority);
                let response = sender.send_request(request.body(Full::new(body))?).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                // Go's transport keeps a connection once its answer is read to the end.
                let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE_PER_HOST {
                    idle.push(sender);
                }
                (status, body)
            }
        };
        let (status, body) = answer;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        let review: Value = serde_json::from_slice(&body)?;
        let response = &review["response"];
        if response["uid"] != uid || response["allowed"] != true {
            return Err(format!("not an allowed review of {uid}: {response}").into());
        }
        Ok(())
    }
}
