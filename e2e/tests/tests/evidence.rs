//! The evidence a run leaves, end to end on the local control plane: a replay of a shared trace
//! writes every file (collectors' JSON lines, audit events from the API server's log, summary,
//! report, manifest), the summary's pod latencies agree with a recomputation from `pods.jsonl`,
//! `nodes.jsonl` holds the virtual nodes, `audit.jsonl` the run's creates and deletes, and what
//! MinIO holds matches `manifest.json` byte for byte. With MinIO stopped before the upload, the
//! run says so (ArtifactsUploaded=False), keeps its folder whole, and `rehearsal-driver upload`
//! sends it later.
//!
//! The tests run one at a time: one of them stops the sandbox's MinIO.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use rehearsal_crds::Simulation;
use rehearsal_e2e::{client, install_crds, object, poll_until, s3_client, sandbox_env, unique};
use serde_json::{Value, json};
use tokio::process::Command;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn driver_bin() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/rehearsal-driver"))
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/simkube-traces")).join(name);
    format!("file://{}", p.canonicalize().expect("fixture").display())
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()))).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("JSON")
}

/// Microseconds since the epoch of an RFC 3339 time.
fn micros(t: &str) -> i64 {
    let ts: k8s_openapi::jiff::Timestamp = t.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
    ts.as_microsecond()
}

/// Nearest-rank quantile, as kube-burner and the report compute it.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

struct Replay {
    status: std::process::ExitStatus,
    stderr: String,
    sim: Simulation,
    folder: PathBuf,
    _logs: tempfile::TempDir,
}

/// Replays `trace` for a fresh Simulation with the sandbox's audit log and bucket; `during`
/// runs once the run's namespace `<prefix>-<first_namespace>` exists.
async fn replay<F: std::future::Future<Output = ()>>(
    trace: &str,
    prefix: &str,
    collect: Value,
    first_namespace: &str,
    during: impl FnOnce(kube::Client, String) -> F,
) -> Replay {
    let client = client().await;
    install_crds(&client).await;
    let sims: Api<Simulation> = Api::all(client.clone());
    let sim_name = unique("evidence");
    let mut sim = json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": sim_name},
        "spec": {"source": {"trace": {"uri": trace}}, "speed": 10, "virtualNamespacePrefix": prefix,
            "artifacts": {"bucket": sandbox_env("REHEARSAL_S3_BUCKET"), "prefix": "e2e-evidence"}}
    });
    if !collect.is_null() {
        sim["spec"]["collect"] = collect;
    }
    let sim: Simulation = object(sim);
    sims.create(&PostParams::default(), &sim).await.expect("create simulation");
    let logs = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let (crt, key) = (logs.path().join("tls.crt"), logs.path().join("tls.key"));
    std::fs::write(&crt, cert.cert.pem()).expect("write cert");
    std::fs::write(&key, cert.signing_key.serialize_pem()).expect("write key");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let driver = Command::new(driver_bin())
        .args(["replay", "--sim-name", &sim_name, "--controller-ns", "default"])
        .args(["--cert-path", &crt.display().to_string(), "--key-path", &key.display().to_string()])
        .args(["--trace-path", trace, "--admission-webhook-port", &port.to_string()])
        .args(["--listen-address", "127.0.0.1", "--webhook-url", &format!("https://127.0.0.1:{port}/mutate")])
        .args(["--cleanup-timeout", "120"])
        .env("LOG_DIR", logs.path().join("runs"))
        .env("AUDIT_LOG", sandbox_env("REHEARSAL_AUDIT_LOG"))
        .kill_on_drop(true)
        .output();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let meddle = async {
        let first = format!("{prefix}-{first_namespace}");
        let created = await_condition(namespaces, &first, |n: Option<&Namespace>| n.is_some());
        if tokio::time::timeout(Duration::from_secs(60), created).await.is_ok() {
            during(client.clone(), sim_name.clone()).await;
        }
    };
    let (out, ()) = tokio::join!(async { tokio::time::timeout(Duration::from_secs(300), driver).await }, meddle);
    let out = out.expect("the driver finished within 300 s").expect("the driver ran");
    let sim = sims.get(&sim_name).await.expect("simulation");
    sims.delete(&sim_name, &DeleteParams::default()).await.expect("delete simulation");
    let folder = logs.path().join("runs").join(&sim_name).join("0");
    Replay { status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned(), sim, folder, _logs: logs }
}

fn condition(sim: &Simulation, type_: &str) -> Option<(String, String, String)> {
    let c = sim.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Every key under `prefix` with its bytes.
async fn bucket_files(prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let s3 = s3_client().await;
    let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
    let mut out = BTreeMap::new();
    let list = s3.list_objects_v2().bucket(&bucket).prefix(prefix).send().await.expect("list the bucket");
    for key in list.contents().iter().filter_map(|o| o.key()) {
        let object = s3.get_object().bucket(&bucket).key(key).send().await.expect("get_object");
        let bytes = object.body.collect().await.expect("read body").into_bytes().to_vec();
        out.insert(key.trim_start_matches(prefix).to_string(), bytes);
    }
    out
}

async fn delete_prefix(prefix: &str) {
    let s3 = s3_client().await;
    let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
    if let Ok(list) = s3.list_objects_v2().bucket(&bucket).prefix(prefix).send().await {
        for key in list.contents().iter().filter_map(|o| o.key()) {
            let _ = s3.delete_object().bucket(&bucket).key(key).send().await;
        }
    }
}

/// The bucket holds exactly what manifest.json lists, byte for byte (sha256), and the manifest.
fn matches_manifest(files: &BTreeMap<String, Vec<u8>>, manifest: &Value) {
    use sha2::{Digest, Sha256};
    let listed = manifest["files"].as_array().expect("files");
    let mut expected: BTreeSet<String> = listed.iter().map(|f| f["path"].as_str().expect("path").to_string()).collect();
    expected.insert("manifest.json".into());
    let got: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(got, expected, "the bucket and manifest.json disagree");
    for f in listed {
        let bytes = &files[f["path"].as_str().expect("path")];
        let sha: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, f["sha256"].as_str().expect("sha256"), "{} differs in the bucket", f["path"]);
        assert_eq!(bytes.len() as u64, f["size"].as_u64().expect("size"));
    }
}

#[tokio::test]
async fn a_replay_leaves_every_file_and_its_summary_agrees_with_its_lines() {
    let _serial = SERIAL.lock().await;
    let run = replay(&fixture("bare-pods.sktrace"), "evbare", Value::Null, "testing", |_, _| async {}).await;
    assert!(run.status.success(), "{}", run.stderr);
    let folder = &run.folder;
    for file in ["pods.jsonl", "nodes.jsonl", "workloads.jsonl", "events.jsonl", "audit.jsonl"] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    for file in ["summary.json", "report.html", "manifest.json"] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    let summary = read_json(&folder.join("summary.json"));
    assert_eq!(summary["run"]["result"], "succeeded", "{}", summary["run"]);
    assert_eq!(summary["inputs"]["bad_lines_total"], 0);

    // Pod latencies recomputed from pods.jsonl: creation to each condition's first True, by the
    // API server's times (`at`, kube-burner's figure) and by the collectors' (`t`).
    let pods = lines(&folder.join("pods.jsonl"));
    // No watch was lost, so the watch delivered every creation and condition (what a list
    // finds, `relisted`, is left out of the watch-time figures; the list at stop may still find
    // a late deletion).
    let listed = |r: &&Value| r.get("relisted").is_some() && r["change"] != "deleted";
    assert_eq!(pods.iter().find(listed), None, "a creation or condition found by a list");
    for (figure, time) in [("latency_ms", "at"), ("observed_latency_ms", "t")] {
        let mut created: BTreeMap<String, i64> = BTreeMap::new();
        let mut reached: BTreeMap<(String, String), i64> = BTreeMap::new();
        for r in &pods {
            let uid = r["uid"].as_str().expect("uid").to_string();
            let when = || micros(r[time].as_str().unwrap_or_else(|| panic!("{time} of {r}")));
            match r["change"].as_str() {
                Some("created") => {
                    created.insert(uid, when());
                }
                Some("scheduled") => {
                    reached.entry((uid, "PodScheduled".into())).or_insert_with(when);
                }
                Some("condition") => {
                    let c = r["condition"].as_str().expect("condition").to_string();
                    reached.entry((uid, c)).or_insert_with(when);
                }
                _ => {}
            }
        }
        assert_eq!(created.len(), 4, "the trace's four pods: {pods:?}");
        for condition in ["PodScheduled", "Ready"] {
            let mut ms: Vec<f64> = created
                .iter()
                .filter_map(|(uid, c)| {
                    reached.get(&(uid.clone(), condition.into())).map(|r| ((r - c).max(0)) as f64 / 1000.0)
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            assert_eq!(ms.len(), 4, "{condition} reached by every pod");
            let entry = summary["pods"][figure]
                .as_array()
                .unwrap_or_else(|| panic!("no {figure} in summary.json"))
                .iter()
                .find(|e| e["condition"] == condition)
                .unwrap_or_else(|| panic!("no {condition} in {figure}"));
            let q = &entry["quantiles"];
            for (name, want) in [("p50", quantile(&ms, 0.5)), ("p99", quantile(&ms, 0.99)), ("max", ms[3])] {
                let got = q[name].as_f64().expect("a figure");
                assert!(
                    (got - want).abs() < 0.01,
                    "{figure} {condition} {name}: summary {got} ms, pods.jsonl {want} ms"
                );
            }
        }
    }

    // The ten virtual nodes.
    let nodes = lines(&folder.join("nodes.jsonl"));
    let virtual_nodes: BTreeSet<&str> = nodes
        .iter()
        .filter(|r| r["change"] == "added" && r["virtual_node"] == true)
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(virtual_nodes.len(), 10, "{virtual_nodes:?}");

    // The run's creates and deletes, as the API server logged them.
    let audit = lines(&folder.join("audit.jsonl"));
    let verbs_in_run = |verb: &str, resource: &str| {
        audit
            .iter()
            .filter(|e| e["verb"] == verb && e["objectRef"]["resource"] == resource)
            .filter(|e| {
                let ns = e["objectRef"]["namespace"].as_str().or(e["objectRef"]["name"].as_str()).unwrap_or("");
                ns.starts_with("evbare-")
            })
            .count()
    };
    assert!(verbs_in_run("create", "pods") >= 4, "pod creates in audit.jsonl");
    assert!(verbs_in_run("delete", "namespaces") >= 1, "the cleanup's namespace delete in audit.jsonl");
    assert!(audit.iter().all(|e| e["requestReceivedTimestamp"].is_string()));
    assert_eq!(summary["audit"]["events"].as_u64(), Some(audit.len() as u64));

    // MinIO holds what manifest.json lists, byte for byte; the status links it.
    let sim_name = run.sim.metadata.name.clone().expect("name");
    let prefix = format!("e2e-evidence/{sim_name}/0/");
    let files = bucket_files(&prefix).await;
    matches_manifest(&files, &read_json(&folder.join("manifest.json")));
    let uploaded = condition(&run.sim, "ArtifactsUploaded").expect("ArtifactsUploaded");
    let uri = format!("s3://{}/{prefix}", sandbox_env("REHEARSAL_S3_BUCKET"));
    assert_eq!((uploaded.0.as_str(), uploaded.2.as_str()), ("True", uri.as_str()));
    assert_eq!(condition(&run.sim, "Evidence").map(|c| c.1), Some("Recording".into()));
    let page = String::from_utf8_lossy(&files["report.html"]);
    assert!(page.contains("<svg") && !page.contains("<script"), "report.html is self-contained with plots");

    // The report rebuilt where it lies, from the JSON lines in the bucket: the same figures.
    let out = Command::new(driver_bin()).args(["report", &uri]).output().await.expect("report ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rebuilt: Value = serde_json::from_slice(&bucket_files(&prefix).await["summary.json"]).expect("summary.json");
    assert_eq!(rebuilt["pods"], summary["pods"], "rebuilt from the bucket, the pod figures are the same");
    assert_eq!(rebuilt["run"]["result"], "succeeded", "the run's facts are kept");
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn with_minio_stopped_the_folder_is_kept_whole_and_uploaded_later() {
    let _serial = SERIAL.lock().await;
    let dir = sandbox_env("REHEARSAL_SANDBOX_DIR");
    let pid_file = format!("{dir}/pids/minio.pid");
    // MinIO goes once the replay has begun (after the S3 check, before the upload).
    let stop_minio = |_: kube::Client, _: String| async move {
        let pid = std::fs::read_to_string(&pid_file).expect("minio pid").trim().to_string();
        let killed = Command::new("kill").args(["-KILL", &pid]).status().await.expect("kill");
        assert!(killed.success());
        poll_until(Duration::from_secs(30), "MinIO gone", || {
            let gone = !Path::new(&format!("/proc/{pid}")).exists();
            async move { gone.then_some(()) }
        })
        .await;
    };
    let run = replay(&fixture("bare-pods.sktrace"), "evnos3", Value::Null, "testing", stop_minio).await;
    // MinIO back (sandbox.sh restarts what died), whatever the assertions below say.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster/sandbox.sh");
    let up = Command::new(script).arg("up").output().await.expect("sandbox.sh up");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    assert!(!run.status.success(), "a run whose evidence did not go up fails: {}", run.stderr);
    let uploaded = condition(&run.sim, "ArtifactsUploaded").expect("ArtifactsUploaded");
    assert_eq!((uploaded.0.as_str(), uploaded.1.as_str()), ("False", "UploadFailed"), "{}", uploaded.2);
    assert_eq!(condition(&run.sim, "Replay").map(|c| c.0), Some("True".into()), "the replay itself succeeded");
    assert_eq!(condition(&run.sim, "Cleanup").map(|c| c.1), Some("Deleted".into()));
    // The folder is whole: the manifest's checksums match the files on disk.
    let manifest = read_json(&run.folder.join("manifest.json"));
    let mut local = BTreeMap::new();
    for f in manifest["files"].as_array().expect("files") {
        let path = f["path"].as_str().expect("path");
        local.insert(path.to_string(), std::fs::read(run.folder.join(path)).expect("a listed file"));
    }
    local.insert("manifest.json".into(), std::fs::read(run.folder.join("manifest.json")).expect("manifest"));
    matches_manifest(&local, &manifest);
    assert!(local.contains_key("summary.json") && local.contains_key("report.html"));

    // Later, by hand: the kept folder goes up.
    let sim_name = run.sim.metadata.name.clone().expect("name");
    let prefix = format!("e2e-evidence/{sim_name}/0/");
    let location = format!("s3://{}/{prefix}", sandbox_env("REHEARSAL_S3_BUCKET"));
    let out = Command::new(driver_bin())
        .args(["upload", &run.folder.display().to_string(), &location])
        .output()
        .await
        .expect("upload ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = bucket_files(&prefix).await;
    matches_manifest(&files, &read_json(&run.folder.join("manifest.json")));
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn a_breached_threshold_fails_the_run_naming_the_figure() {
    let _serial = SERIAL.lock().await;
    // Pod latencies come from the API server's whole-second times (on virtual nodes mostly 0 ms),
    // so no limit is surely breached by a measured figure; a figure that cannot be measured is.
    // A trace of ConfigMaps makes no pods: the Ready p99 limit is breached, unmeasured.
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<Value> = (0..3)
        .map(|i| {
            json!({"ts": 1_700_000_000 + i, "applied_objs": [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i}"), "namespace": "app"}, "data": {"k": "v"}}], "deleted_objs": []})
        })
        .collect();
    let trace =
        json!({"version": 2, "config": {"trackedObjects": {}}, "events": events, "index": {}, "pod_lifecycles": {}});
    let path = dir.path().join("configmaps.json");
    std::fs::write(&path, trace.to_string()).expect("write the trace");
    let collect = json!({"thresholds": [{"condition": "Ready", "metric": "P99", "maxMs": 5000}]});
    let first_ns = |_: kube::Client, _: String| async {};
    let run = replay(&format!("file://{}", path.display()), "evthr", collect, "app", first_ns).await;
    assert!(!run.status.success(), "a breach fails the run: {}", run.stderr);
    let met = condition(&run.sim, "ThresholdsMet").expect("ThresholdsMet");
    assert_eq!((met.0.as_str(), met.1.as_str()), ("False", "Breached"), "{}", met.2);
    assert!(met.2.starts_with("Ready p99 not measured") && met.2.ends_with("limit 5000 ms"), "{}", met.2);
    assert_eq!(condition(&run.sim, "Replay").map(|c| c.0), Some("True".into()), "the replay itself succeeded");
    let summary = read_json(&run.folder.join("summary.json"));
    assert_eq!(summary["verdict"]["status"], "failed");
    assert_eq!(summary["breaches"].as_array().map(Vec::len), Some(1), "{}", summary["breaches"]);
    delete_prefix(&format!("e2e-evidence/{}/0/", run.sim.metadata.name.clone().expect("name"))).await;
}

#[tokio::test]
async fn a_large_file_goes_up_in_parts_intact() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // 40 MiB, over the 32 MiB multipart threshold, not a multiple of the 16 MiB part size.
    let mut big = Vec::with_capacity(40 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while big.len() < (40 << 20) + 12_345 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(dir.path().join("pods.jsonl"), &big).expect("write");
    std::fs::write(dir.path().join("summary.json"), b"{}").expect("write");
    let prefix = format!("e2e-evidence/{}/0/", unique("multipart"));
    let location = format!("s3://{}/{prefix}", sandbox_env("REHEARSAL_S3_BUCKET"));
    let out = Command::new(driver_bin())
        .args(["upload", &dir.path().display().to_string(), &location])
        .output()
        .await
        .expect("upload ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = bucket_files(&prefix).await;
    matches_manifest(&files, &read_json(&dir.path().join("manifest.json")));
    assert_eq!(files["pods.jsonl"].len(), big.len());
    delete_prefix(&prefix).await;
}
