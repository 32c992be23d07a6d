//! The API server killed (SIGKILL) and restarted while a replay's cleanup is under way: the
//! driver retries until the server is back and the cleanup completes, leaving nothing, and its
//! collectors lose nothing (every pod created has its deletion in `pods.jsonl`, as many pods as
//! the API server's audit log shows created). In a test
//! binary of its own, so no other test shares the sandbox while its API server is down (test
//! binaries run one after another).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use rehearsal_crds::{Simulation, SimulationRoot};
use rehearsal_e2e::{client, install_crds, object, poll_until, restart_apiserver, unique};
use serde_json::json;
use tokio::process::Command;

fn driver_bin() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/rehearsal-driver"))
}

#[tokio::test]
async fn replay_cleanup_survives_an_api_server_restart() {
    let client = client().await;
    install_crds(&client).await;
    // The trace's pods must be made: after an earlier restart the controller-manager may not be.
    rehearsal_e2e::controllers_make_pods(Duration::from_secs(120)).await;
    let sims: Api<Simulation> = Api::all(client.clone());
    let sim_name = unique("restart");
    let prefix = format!("r{}", sim_name.replace('-', "").chars().rev().take(8).collect::<String>());
    let trace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/traces/shop-burst.json"))
        .canonicalize()
        .expect("trace");
    let trace = format!("file://{}", trace.display());
    let sim: Simulation = object(json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": sim_name},
        "spec": {"source": {"trace": {"uri": trace}}, "speed": 10, "virtualNamespacePrefix": prefix}
    }));
    sims.create(&PostParams::default(), &sim).await.expect("create simulation");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, cert.cert.pem()).expect("write cert");
    std::fs::write(&key, cert.signing_key.serialize_pem()).expect("write key");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let driver = Command::new(driver_bin())
        .args(["replay", "--sim-name", &sim_name, "--controller-ns", "default"])
        .args(["--cert-path", &crt.display().to_string(), "--key-path", &key.display().to_string()])
        .args(["--trace-path", &trace, "--admission-webhook-port", &port.to_string()])
        .args(["--listen-address", "127.0.0.1", "--webhook-url", &format!("https://127.0.0.1:{port}/mutate")])
        .args(["--cleanup-timeout", "240"])
        .env("LOG_DIR", dir.path())
        .env("AUDIT_LOG", rehearsal_e2e::sandbox_env("REHEARSAL_AUDIT_LOG"))
        .kill_on_drop(true)
        .output();
    let namespace = format!("{prefix}-shop");
    let meddle = async {
        // A ConfigMap with a finalizer holds the run's namespace (and so its root) in deletion:
        // the cleanup is surely under way when the API server goes.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let created = await_condition(namespaces, &namespace, |n: Option<&Namespace>| n.is_some());
        tokio::time::timeout(Duration::from_secs(60), created)
            .await
            .expect("the replay made its namespace")
            .expect("watch");
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let blocker: ConfigMap = object(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "blocker", "finalizers": ["e2e.rehearsal.dev/hold"]}
        }));
        configmaps.create(&PostParams::default(), &blocker).await.expect("create the blocker");
        // The cleanup deletes the run's namespaces first (the root once they are gone).
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let deleting = await_condition(namespaces, &namespace, |n: Option<&Namespace>| {
            n.is_some_and(|n| n.metadata.deletion_timestamp.is_some())
        });
        tokio::time::timeout(Duration::from_secs(120), deleting).await.expect("the cleanup started").expect("watch");
        restart_apiserver().await;
        let client = rehearsal_e2e::client().await;
        let configmaps: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let release = json!({"metadata": {"finalizers": null}});
        poll_until(Duration::from_secs(60), "the blocker released", || {
            let (configmaps, release) = (configmaps.clone(), release.clone());
            async move { configmaps.patch("blocker", &PatchParams::default(), &Patch::Merge(&release)).await.ok() }
        })
        .await;
    };
    let (out, ()) = tokio::join!(async { tokio::time::timeout(Duration::from_secs(400), driver).await }, meddle);
    let out = out.expect("the driver finished within 400 s").expect("the driver ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let client = rehearsal_e2e::client().await;
    let sims: Api<Simulation> = Api::all(client.clone());
    let after = sims.get(&sim_name).await.expect("simulation");
    let _ = sims.delete(&sim_name, &DeleteParams::default()).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cleanup: retrying"), "the cleanup never saw the API server go: {stderr}");
    let cleanup =
        after.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Cleanup")).expect("Cleanup");
    assert_eq!((cleanup.status.as_str(), cleanup.reason.as_str()), ("True", "Deleted"), "{}", cleanup.message);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.expect("read").is_none(), "namespace {namespace} left");
    let roots: Api<SimulationRoot> = Api::all(client.clone());
    let label = ListParams::default().labels(&format!("rehearsal.dev/simulation={sim_name}"));
    assert!(roots.list(&label).await.expect("roots").items.is_empty(), "a root is left");
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client);
    assert!(mwcs.list(&label).await.expect("webhooks").items.is_empty(), "a webhook configuration is left");

    // The collectors' watches lost nothing across the restart, and said so.
    assert!(stderr.contains("watch lost; retrying with backoff"), "no watch saw the API server go: {stderr}");
    // A watch not heard from again before the stop (its backoff outlasted the cleanup, or it
    // resumed from its resourceVersion and had nothing more to deliver) is brought up to date by
    // the list at stop instead: either way it says so.
    let (resumed, at_stop) = (
        stderr.matches("watch resumed").count(),
        stderr.matches("watch not heard from since it was lost; the list at stop").count(),
    );
    assert!(resumed + at_stop > 0, "no watch said it came back: {stderr}");
    println!("watches back: {resumed} resumed during the run, {at_stop} brought up to date by the list at stop");
    let folder = dir.path().join(&sim_name).join("0");
    let read = |file: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(folder.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        text.lines().map(|l| serde_json::from_str(l).expect("a whole JSON line")).collect()
    };
    let pods = read("pods.jsonl");
    let uids = |change: &str| -> std::collections::BTreeSet<String> {
        pods.iter().filter(|r| r["change"] == change).filter_map(|r| r["uid"].as_str().map(String::from)).collect()
    };
    let (created, deleted) = (uids("created"), uids("deleted"));
    assert!(!created.is_empty(), "no pods recorded");
    assert_eq!(created, deleted, "every pod created was seen deleted, across the restart");
    let audit = read("audit.jsonl");
    let creates = audit
        .iter()
        .filter(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "pods" && e["code"] == 201)
        .filter(|e| e["objectRef"].get("subresource").is_none())
        // The driver's probe that the webhook is called is a dry-run create: no pod.
        .filter(|e| !e["requestURI"].as_str().unwrap_or("").contains("dryRun"))
        .count();
    assert_eq!(created.len(), creates, "pods.jsonl and the API server's audit log count the same pods");
    let relisted = pods.iter().filter(|r| r.get("relisted").is_some()).count();
    println!(
        "{} pods recorded, created and deleted, across the API server's restart; {relisted} lines found by a list",
        created.len()
    );
}
