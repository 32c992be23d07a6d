//! `rehearsal-driver replay` run as a process against the local control plane, on the
//! fixtures written elsewhere: the objects appear in their virtual namespaces, the webhook pins
//! their pods to the virtual nodes with their recorded lifetimes, and nothing is left at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rehearsal_crds::{Simulation, SimulationRoot};
use rehearsal_e2e::{client, install_crds, object, unique};
use serde_json::json;
use tokio::process::Command;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/simkube-traces")).join(name);
    let p = p.canonicalize().unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()));
    format!("file://{}", p.display())
}

fn driver_bin() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/rehearsal-driver"))
}

/// A self-signed serving certificate for 127.0.0.1, written to a temporary folder.
fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).expect("certificate");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.cert.pem()).expect("write cert");
    std::fs::write(&k, cert.signing_key.serialize_pem()).expect("write key");
    (c, k)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct Run {
    status: std::process::ExitStatus,
    stderr: String,
}

/// Creates the Simulation, runs the driver for it, and deletes the Simulation afterwards.
async fn run_driver(
    sim_name: &str,
    trace: &str,
    prefix: &str,
    speed: f64,
    extra: serde_json::Value,
) -> (Run, Simulation) {
    run_driver_with(sim_name, trace, prefix, speed, extra, &[]).await
}

/// [`run_driver`] with more driver flags.
async fn run_driver_with(
    sim_name: &str,
    trace: &str,
    prefix: &str,
    speed: f64,
    extra: serde_json::Value,
    flags: &[&str],
) -> (Run, Simulation) {
    let client = client().await;
    install_crds(&client).await;
    let sims: Api<Simulation> = Api::all(client.clone());
    let sim: Simulation = object(json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": sim_name},
        "spec": {"source": {"trace": {"uri": trace}}, "speed": speed, "virtualNamespacePrefix": prefix}
    }));
    let mut sim = serde_json::to_value(&sim).expect("simulation JSON");
    if let (Some(spec), Some(extra)) = (sim["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let sim: Simulation = object(sim);
    sims.create(&PostParams::default(), &sim).await.expect("create simulation");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let port = free_port();
    let out = Command::new(driver_bin())
        .args(["replay", "--sim-name", sim_name, "--controller-ns", "default", "--virtual-ns-prefix", prefix])
        .args(["--cert-path", &cert.display().to_string(), "--key-path", &key.display().to_string()])
        .args(["--trace-path", trace, "--speed", &speed.to_string(), "--admission-webhook-port", &port.to_string()])
        .args(["--listen-address", "127.0.0.1", "--webhook-url", &format!("https://127.0.0.1:{port}/mutate")])
        .args(["--cleanup-timeout", "120", "-v", "info,rehearsal_driver=debug"])
        .args(flags)
        // The run folder in the test's temporary folder, not the working directory.
        .env("LOG_DIR", dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("driver finished in 5 min")
        .expect("driver ran");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let after = sims.get(sim_name).await.expect("simulation still exists");
    sims.delete(sim_name, &DeleteParams::default()).await.expect("delete simulation");
    (Run { status: out.status, stderr }, after)
}

fn condition<'a>(
    sim: &'a Simulation,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    sim.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// Nothing of the run is left: no root, no virtual namespace, no webhook configuration.
async fn assert_nothing_left(client: &kube::Client, sim_name: &str, prefix: &str) {
    let label = format!("rehearsal.dev/simulation={sim_name}");
    let roots: Api<SimulationRoot> = Api::all(client.clone());
    assert!(roots.list(&ListParams::default().labels(&label)).await.expect("roots").items.is_empty(), "a root is left");
    let nss: Api<Namespace> = Api::all(client.clone());
    let left: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "virtual namespaces left: {left:?}");
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(
        mwcs.list(&ListParams::default().labels(&label)).await.expect("webhooks").items.is_empty(),
        "a webhook configuration is left"
    );
}

/// What the test saw of each pod of the run, from a watch over the whole replay.
#[derive(Default, Debug, Clone)]
struct Seen {
    label: Option<String>,
    lifetime: Option<String>,
    tolerates: bool,
    selector: Option<String>,
    node: Option<String>,
    phases: Vec<String>,
}

fn watch_pods(
    client: kube::Client,
    namespace: String,
) -> (Arc<Mutex<BTreeMap<String, Seen>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let mut stream = watcher(pods, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(Ok(p)) = stream.next().await {
            let name = p.metadata.name.clone().unwrap_or_default();
            let mut map = out.lock().expect("seen lock");
            let s = map.entry(name).or_default();
            s.label = p.metadata.labels.as_ref().and_then(|l| l.get("simkube.io/simulation").cloned());
            s.lifetime = p.metadata.annotations.as_ref().and_then(|a| a.get("simkube.io/lifetime-seconds").cloned());
            let spec = p.spec.clone().unwrap_or_default();
            s.tolerates =
                spec.tolerations.unwrap_or_default().iter().any(|t| t.key.as_deref() == Some("kwok-provider"));
            s.selector = spec.node_selector.and_then(|n| n.get("type").cloned());
            if spec.node_name.is_some() {
                s.node = spec.node_name;
            }
            if let Some(phase) = p.status.and_then(|st| st.phase)
                && s.phases.last() != Some(&phase)
            {
                s.phases.push(phase);
            }
        }
    });
    (seen, task)
}

/// Waits until the wall clock is between :48 and :52 of a minute. The cronjob trace lasts 20.5 s
/// at speed 10, so the CronJob (scheduled every minute) then exists from about :50 to :11: it
/// fires at :00 and its pod, with a 3 s lifetime, finishes before the CronJob is deleted. (Cron
/// schedules follow the wall clock, so this waits for a time of day, not for a condition.)
async fn align_to_minute() {
    loop {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() % 60).unwrap_or(0);
        if (48..52).contains(&secs) {
            return;
        }
        let wait = if secs < 48 { 48 - secs } else { 108 - secs };
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

#[tokio::test]
async fn cronjob_trace_at_speed_10() {
    let client = client().await;
    let sim_name = unique("cron");
    let prefix = "virtual";
    let (seen, watch) = watch_pods(client.clone(), format!("{prefix}-default"));
    let cronjob_seen = Arc::new(Mutex::new(false));
    let flag = cronjob_seen.clone();
    let cj_client = client.clone();
    let cj_watch = tokio::spawn(async move {
        let cjs: Api<CronJob> = Api::namespaced(cj_client, "virtual-default");
        let mut s = watcher(cjs, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(Ok(cj)) = s.next().await {
            if cj.metadata.name.as_deref() == Some("hello-simkube") {
                *flag.lock().expect("flag") = true;
            }
        }
    });
    align_to_minute().await;
    let (run, sim) = run_driver(&sim_name, &fixture("cronjob.sktrace"), prefix, 10.0, json!(null)).await;
    watch.abort();
    cj_watch.abort();
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    assert!(*cronjob_seen.lock().expect("flag"), "the CronJob never appeared in virtual-default");

    let pods = seen.lock().expect("seen").clone();
    assert!(!pods.is_empty(), "the CronJob made no pods");
    for (name, s) in &pods {
        assert_eq!(s.label.as_deref(), Some(sim_name.as_str()), "{name}: {s:?}");
        assert_eq!(s.lifetime.as_deref(), Some("3"), "{name}: 30 s recorded / speed 10: {s:?}");
        assert!(s.tolerates, "{name}: {s:?}");
        assert_eq!(s.selector.as_deref(), Some("virtual"), "{name}: {s:?}");
        assert!(s.node.as_deref().is_some_and(|n| n.starts_with("kwok-node-")), "{name}: {s:?}");
        assert!(s.phases.iter().any(|p| p == "Succeeded"), "{name} did not complete: {s:?}");
    }
    assert_eq!(condition(&sim, "Replay").map(|c| c.status.as_str()), Some("True"), "{:?}", sim.status);
    assert_eq!(condition(&sim, "Cleanup").map(|c| c.status.as_str()), Some("True"), "{:?}", sim.status);
    assert_eq!(
        sim.status.as_ref().and_then(|s| s.progress.as_ref()).map(|p| p.summary.clone()),
        Some("3/3 events".into())
    );
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn bare_pods_trace_at_speed_10() {
    let client = client().await;
    let sim_name = unique("bare");
    let prefix = "vbare";
    let (seen, watch) = watch_pods(client.clone(), format!("{prefix}-testing"));
    let (run, sim) = run_driver(&sim_name, &fixture("bare-pods.sktrace"), prefix, 10.0, json!(null)).await;
    watch.abort();
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    let pods = seen.lock().expect("seen").clone();
    assert_eq!(pods.len(), 4, "{pods:?}");
    for (name, s) in &pods {
        assert_eq!(s.label.as_deref(), Some(sim_name.as_str()), "{name}");
        assert!(s.tolerates && s.selector.as_deref() == Some("virtual"), "{name}: {s:?}");
        assert!(s.node.as_deref().is_some_and(|n| n.starts_with("kwok-node-")), "{name}: {s:?}");
    }
    // Three pods finished in the recording (12 s and 30 s lifetimes); the last was still running.
    let finished: Vec<_> = pods.values().filter(|s| s.lifetime.is_some()).collect();
    assert_eq!(finished.len(), 3, "{pods:?}");
    assert_eq!(pods.get("bare-pod-1781282630").and_then(|s| s.lifetime.clone()), None);
    assert_eq!(pods.get("bare-pod-1781282449").and_then(|s| s.lifetime.clone()).as_deref(), Some("1.2"));
    assert!(pods.get("bare-pod-1781282449").is_some_and(|s| s.phases.iter().any(|p| p == "Succeeded")), "{pods:?}");
    assert_eq!(condition(&sim, "Cleanup").map(|c| c.status.as_str()), Some("True"));
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn a_replay_the_api_server_cannot_keep_up_with_says_how_late_it_is() {
    // 300 ConfigMaps due at the same moment, one request at a time: the last ones start hundreds
    // of milliseconds after their deadline, as when an API server cannot keep up.
    let client = client().await;
    let sim_name = unique("behind");
    let prefix = "vbehind";
    let dir = tempfile::tempdir().expect("tempdir");
    let objects: Vec<serde_json::Value> = (0..300)
        .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "default"}, "data": {"k": "v"}}))
        .collect();
    let trace = json!({"version": 2, "config": {"trackedObjects": {}}, "index": {}, "pod_lifecycles": {},
        "events": [{"ts": 1_700_000_000, "applied_objs": objects, "deleted_objs": []}]});
    let path = dir.path().join("burst.json");
    std::fs::write(&path, serde_json::to_vec(&trace).expect("trace")).expect("write trace");
    let uri = format!("file://{}", path.display());
    let (run, sim) = run_driver_with(&sim_name, &uri, prefix, 1.0, json!(null), &["--concurrency", "1"]).await;
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    // While it ran, the Replay condition said so (the driver logs each condition it writes).
    let behind = run.stderr.lines().find(|l| l.contains("FallingBehind")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(behind.contains("behind the trace: requests start up to") && behind.contains("(p99 so far, "), "{behind}");
    // At the end: Completed, with the exact p99, at least the 100 ms that made it say so.
    let replay = condition(&sim, "Replay").expect("Replay condition");
    assert_eq!((replay.status.as_str(), replay.reason.as_str()), ("True", "Completed"));
    let p99: f64 = replay
        .message
        .split("lateness p99 ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", replay.message));
    assert!(p99 >= 100.0, "{}", replay.message);
    eprintln!("while running: {behind}\nat the end: {}", replay.message);
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn json_trace_applies_and_deletes() {
    let client = client().await;
    let sim_name = unique("json");
    let prefix = "vjson";
    let (run, sim) = run_driver(&sim_name, &fixture("trace.json"), prefix, 10.0, json!(null)).await;
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    let replay = condition(&sim, "Replay").expect("Replay condition");
    assert_eq!(replay.status, "True");
    assert!(replay.message.contains("1 objects applied, 1 deleted"), "{}", replay.message);
    assert_nothing_left(&client, &sim_name, prefix).await;
}

/// The cleanup deletes the run's namespaces itself (faster than the root's cascade), and only
/// those its root owns: a namespace carrying the same Simulation label but not owned by the run's
/// root (another run's, or one a user labelled) is left as it was.
#[tokio::test]
async fn the_cleanup_deletes_only_the_namespaces_its_root_owns() {
    let client = client().await;
    let sim_name = unique("nsown");
    let prefix = "vnsown";
    let nss: Api<Namespace> = Api::all(client.clone());
    let bystander = unique("bystander");
    let ns: Namespace = object(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": bystander, "labels": {"rehearsal.dev/simulation": sim_name}}
    }));
    nss.create(&PostParams::default(), &ns).await.expect("create the bystander namespace");
    // What the cleanup empties a run's namespace of (a pod maker, a pod) is here too.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &bystander);
    let deployment: Deployment = object(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "keep"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "keep"}},
                 "template": {"metadata": {"labels": {"app": "keep"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }));
    deployments.create(&PostParams::default(), &deployment).await.expect("create the bystander's Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &bystander);
    // Bound to no node that exists: it stays Pending, and never runs anywhere.
    let pod: Pod = object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keep"},
        "spec": {"nodeSelector": {"e2e.rehearsal.dev/none": "x"}, "containers": [{"name": "c", "image": "x"}]}
    }));
    pods.create(&PostParams::default(), &pod).await.expect("create the bystander's pod");
    let (run, sim) = run_driver(&sim_name, &fixture("trace.json"), prefix, 10.0, json!(null)).await;
    let after = nss.get_opt(&bystander).await.expect("read the bystander namespace");
    let kept = (
        deployments.get_opt("keep").await.expect("read the Deployment"),
        pods.get_opt("keep").await.expect("read the pod"),
    );
    let _ = nss.delete(&bystander, &DeleteParams::default()).await;
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    assert!(
        run.stderr.contains("cleanup: emptying and deleting the run's namespaces"),
        "the driver did not delete its namespace directly: {}",
        run.stderr
    );
    let cleanup = condition(&sim, "Cleanup").expect("Cleanup condition");
    assert_eq!(cleanup.status, "True", "{}", cleanup.message);
    let after = after.expect("the bystander namespace was deleted");
    assert!(after.metadata.deletion_timestamp.is_none(), "the bystander namespace is being deleted");
    let (deployment, pod) = kept;
    assert!(
        deployment.is_some_and(|d| d.metadata.deletion_timestamp.is_none()),
        "the bystander's Deployment was deleted"
    );
    assert!(pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none()), "the bystander's pod was deleted");
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn failing_pre_run_hook_fails_the_run_and_leaves_nothing() {
    let client = client().await;
    let sim_name = unique("hookfail");
    let prefix = "vhook";
    let hooks = json!({"hooks": {"preRun": [{"command": "sh", "args": ["-c", "echo about to fail; exit 7"]}]}});
    let (run, sim) = run_driver(&sim_name, &fixture("cronjob.sktrace"), prefix, 10.0, hooks).await;
    assert!(!run.status.success());
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("PreRunHooks failed: preRun hook 0 (sh -c echo about to fail; exit 7) exited with code 7"),
        "{last}"
    );
    let c = condition(&sim, "PreRunHooks").expect("PreRunHooks condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "HookFailed"));
    assert!(condition(&sim, "Replay").is_none(), "the replay must not start");
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn unreadable_trace_fails_before_anything_is_applied() {
    let client = client().await;
    let sim_name = unique("badtrace");
    let prefix = "vbad";
    let (run, sim) = run_driver(&sim_name, "file:///nonexistent/trace.sktrace", prefix, 1.0, json!(null)).await;
    assert!(!run.status.success());
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("Replay failed") && last.contains("/nonexistent/trace.sktrace"), "{last}");
    let c = condition(&sim, "Replay").expect("Replay condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "BadTrace"));
    assert_eq!(condition(&sim, "Cleanup").map(|c| c.status.as_str()), Some("True"));
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn duration_cuts_the_replay_short() {
    let client = client().await;
    let sim_name = unique("cut");
    let prefix = "vcut";
    // bare-pods events are at +0, +42, +102 and +162 s: a 60 s duration keeps the first two.
    let (run, sim) =
        run_driver(&sim_name, &fixture("bare-pods.sktrace"), prefix, 10.0, json!({"duration": "60s"})).await;
    assert!(run.status.success(), "driver failed: {}", run.stderr);
    let replay = condition(&sim, "Replay").expect("Replay condition");
    assert!(replay.message.contains("replayed 2 of 4 events"), "{}", replay.message);
    assert!(replay.message.contains("2 events after the duration were left out"), "{}", replay.message);
    assert_eq!(
        sim.status.as_ref().and_then(|s| s.progress.as_ref()).map(|p| p.summary.clone()),
        Some("2/4 events".into())
    );
    assert_nothing_left(&client, &sim_name, prefix).await;
}

#[tokio::test]
async fn trace_is_read_from_s3() {
    let bucket = rehearsal_e2e::sandbox_env("REHEARSAL_S3_BUCKET");
    let s3 = rehearsal_e2e::s3_client().await;
    let key = format!("e2e/{}/cronjob.sktrace", unique("trace"));
    let path = fixture("cronjob.sktrace");
    let bytes = std::fs::read(path.trim_start_matches("file://")).expect("fixture");
    s3.put_object().bucket(&bucket).key(&key).body(bytes.into()).send().await.expect("upload trace");

    let ok = Command::new(driver_bin())
        .args(["trace", "check", &format!("s3://{bucket}/{key}")])
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("3 events, 2 objects, spanning 205 s"), "{stdout}");

    let missing = format!("s3://{bucket}/e2e/no-such-trace.sktrace");
    let bad = Command::new(driver_bin()).args(["trace", "check", &missing]).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains(&missing) && stderr.contains("not found"), "{stderr}");
    s3.delete_object().bucket(&bucket).key(&key).send().await.expect("delete trace");
}

/// SIGTERM mid-replay stops it and still cleans up (exit non-zero, `Replay=False Interrupted`,
/// nothing left); a second SIGTERM skips the cleanup but the status says what may remain.
#[tokio::test]
async fn signals_stop_the_replay_and_the_cleanup_still_runs() {
    let client = client().await;
    install_crds(&client).await;
    let sims: Api<Simulation> = Api::all(client.clone());
    for signals in [1, 2] {
        let sim_name = unique(&format!("sig{signals}"));
        let prefix = &format!("g{}", sim_name.replace('-', "").chars().rev().take(8).collect::<String>());
        let sim: Simulation = object(json!({
            "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": sim_name},
            "spec": {"source": {"trace": {"uri": "file:///unused"}}, "speed": 1, "virtualNamespacePrefix": prefix}
        }));
        sims.create(&PostParams::default(), &sim).await.expect("create simulation");
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = certificate(dir.path());
        let port = free_port();
        let trace = format!(
            "file://{}",
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/traces/shop-burst.json"))
                .canonicalize()
                .expect("trace")
                .display()
        );
        // Speed and prefix come from the Simulation: no --speed, no --virtual-ns-prefix.
        let child = Command::new(driver_bin())
            .args(["replay", "--sim-name", &sim_name, "--controller-ns", "default"])
            .args(["--cert-path", &cert.display().to_string(), "--key-path", &key.display().to_string()])
            .args(["--trace-path", &trace, "--admission-webhook-port", &port.to_string()])
            .args(["--listen-address", "127.0.0.1", "--webhook-url", &format!("https://127.0.0.1:{port}/mutate")])
            .args(["--cleanup-timeout", "120"])
            .env("LOG_DIR", dir.path())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("driver starts");
        let pid = child.id().expect("pid");
        // Stderr is read as it comes: the second signal goes once the first was acknowledged
        // (two signals sent at once may reach the process as one, as POSIX allows).
        let mut child = child;
        let (ack_tx, mut ack_rx) = tokio::sync::watch::channel(false);
        let reader = {
            let stderr = child.stderr.take().expect("stderr piped");
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                let mut all = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("stopping the replay") {
                        ack_tx.send_replace(true);
                    }
                    all.push_str(&line);
                    all.push('\n');
                }
                all
            })
        };
        // Wait until the replay has made pods (the trace runs 40 s at speed 1).
        let pods: Api<Pod> = Api::namespaced(client.clone(), &format!("{prefix}-shop"));
        rehearsal_e2e::poll_until(Duration::from_secs(60), "replayed pods", || async {
            let l = pods.list(&ListParams::default()).await.ok()?;
            (!l.items.is_empty()).then_some(())
        })
        .await;
        for n in 0..signals {
            if n > 0 {
                tokio::time::timeout(Duration::from_secs(30), ack_rx.wait_for(|a| *a))
                    .await
                    .expect("the driver acknowledged the first signal")
                    .expect("stderr reader");
            }
            let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.expect("kill");
            assert!(sent.success());
        }
        let status = tokio::time::timeout(Duration::from_secs(180), child.wait())
            .await
            .expect("the driver exits after the signal")
            .expect("driver status");
        let stderr = reader.await.expect("stderr reader");
        assert!(!status.success(), "a stopped run exits non-zero: {stderr}");
        let after = sims.get(&sim_name).await.expect("simulation");
        let replay = condition(&after, "Replay").expect("Replay condition");
        assert_eq!((replay.status.as_str(), replay.reason.as_str()), ("False", "Interrupted"), "{}", replay.message);
        let cleanup = condition(&after, "Cleanup").expect("Cleanup condition");
        if signals == 1 {
            assert_eq!((cleanup.status.as_str(), cleanup.reason.as_str()), ("True", "Deleted"), "{}", cleanup.message);
            sims.delete(&sim_name, &DeleteParams::default()).await.expect("delete simulation");
            assert_nothing_left(&client, &sim_name, prefix).await;
        } else {
            assert_eq!(cleanup.reason, "CleanupSkipped", "{}", cleanup.message);
            assert!(cleanup.message.contains("delete the root"), "{}", cleanup.message);
            // What the status names is what a user deletes by hand.
            let roots: Api<SimulationRoot> = Api::all(client.clone());
            let _ =
                rehearsal_e2e::delete_and_wait(&roots, &format!("{sim_name}-run-0"), Duration::from_secs(120)).await;
            let nss: Api<Namespace> = Api::all(client.clone());
            let _ = rehearsal_e2e::delete_and_wait(&nss, &format!("{prefix}-shop"), Duration::from_secs(120)).await;
            let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let _ = mwcs.delete(&format!("rehearsal-{sim_name}-run-0"), &DeleteParams::default()).await;
            sims.delete(&sim_name, &DeleteParams::default()).await.expect("delete simulation");
            assert_nothing_left(&client, &sim_name, prefix).await;
        }
    }
}
