//! `rehearsal-driver scenario` run as a process against the local control plane, on the
//! Karpenter fixture `kubernetes_scenario_1753908801` as it was written: the Deployments follow
//! the steps, their PDBs exist, the pods run on the virtual nodes, the node pools are skipped
//! with a warning, the logs reach MinIO intact, and nothing is left. Also: an invalid scenario
//! applies nothing, the same scenario runs again on the same namespace, every action type
//! plays, a failed one being logged without stopping the run, and a directory shaped like a
//! production export (a deployment listed twice, a step of 150 actions) plays with one warning.
//!
//! The tests run one at a time (they share the fixture's run label and put ~100 pods on the
//! nodes); build the driver first (`cargo build -p rehearsal-driver`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use rehearsal_crds::{Scenario, Simulation};
use rehearsal_e2e::{
    client, install_crds, object, poll_until, restart_apiserver, s3_client, sandbox_env, unique, with_namespace,
};
use serde_json::Value;
use tokio::process::Command;

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/karpenter-scenarios/kubernetes_scenario_1753908801");

/// The fixture's run_id: the run label's value and the first folder of its logs.
const RUN_ID: &str = "k8s_scenario_1753908801";
const RUN_LABEL: &str = "rehearsal.dev/scenario-run";
const PLAY_LABEL: &str = "rehearsal.dev/play";
const DEPLOYMENTS: [&str; 3] = ["deploy-if", "deploy-ov", "deploy-h0"];

/// One scenario play at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn driver_bin() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/rehearsal-driver"))
}

fn fixture() -> PathBuf {
    Path::new(FIXTURE).canonicalize().unwrap_or_else(|e| panic!("fixture {FIXTURE}: {e}"))
}

/// A writable copy of the fixture (its files are read-only, so they are rewritten, not copied).
fn copy_fixture() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("read fixture") {
            let path = entry.expect("fixture entry").path();
            let target = to.join(path.file_name().expect("file name"));
            if path.is_dir() {
                std::fs::create_dir(&target).expect("mkdir");
                copy_dir(&path, &target);
            } else {
                std::fs::write(&target, std::fs::read(&path).expect("read")).expect("write");
            }
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(), tmp.path());
    tmp
}

/// Replaces the first `from` of `file` with `to`.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn explain(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the driver with only the given Karpenter-driver variables set (the others removed, so
/// the caller's environment cannot leak in); KUBECONFIG and AWS_* come from the sandbox.
async fn run_driver(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(driver_bin());
    cmd.arg("scenario").args(args).args(["-v", "info"]);
    for var in ["SCENARIO", "NAMESPACE", "LOG_DIR", "S3_BUCKET", "S3_REGION"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(400), cmd.output())
        .await
        .expect("the driver finished within 400 s")
        .unwrap_or_else(|e| panic!("cannot run {} (build it first): {e}", driver_bin().display()));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// A K8S_SCALE action of steps.yml.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    step: usize,
    name: String,
    replicas: i64,
}

/// The fixture's steps: how many, and every scale in order, read straight from steps.yml.
fn scales(dir: &Path) -> (usize, Vec<Scale>) {
    let text = std::fs::read_to_string(dir.join("steps.yml")).expect("steps.yml");
    let doc: Value = serde_saphyr::from_str(&text).expect("steps.yml parses");
    let steps = doc["scenario"].as_array().expect("scenario: list");
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        for a in s["step"]["actions"].as_array().into_iter().flatten() {
            let a = &a["action"];
            assert_eq!(a["action_type"], "K8S_SCALE", "the fixture only scales");
            let data = a["action_data"].as_str().expect("action_data");
            let pairs: BTreeMap<&str, &str> = data.split(',').filter_map(|p| p.split_once('=')).collect();
            out.push(Scale {
                step: i + 1,
                name: pairs["name"].to_string(),
                replicas: pairs["replicas"].parse().expect("replicas"),
            });
        }
    }
    (steps.len(), out)
}

/// Replicas of `deployment` after step `step`: the last scale at or before it, else the
/// manifest's 1.
fn expected_replicas(scales: &[Scale], deployment: &str, step: usize) -> i64 {
    scales.iter().rev().find(|s| s.step <= step && s.name == deployment).map_or(1, |s| s.replicas)
}

/// The one log folder of a run under LOG_DIR: `<run id>/<start time>`.
fn log_folders(log_dir: &Path) -> Vec<PathBuf> {
    let run = log_dir.join(RUN_ID);
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&run) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The step files of a log folder, in play order.
fn step_files(folder: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(folder.join("steps")).expect("steps/").filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    paths.iter().map(|p| read_json(p)).collect()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").filter_map(Result::ok) {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("inside").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Checks the per-step files against the steps: spec.replicas of each Deployment as the steps
/// asked, the three PDBs present, every scheduled pod on a virtual node. Returns how many pod
/// placements were seen.
fn check_steps(folder: &Path, scales: &[Scale], played: usize) -> usize {
    let steps = step_files(folder);
    assert_eq!(steps.len(), played, "one file per step played");
    let mut placed = 0;
    for (i, snap) in steps.iter().enumerate() {
        let k = i + 1;
        assert_eq!(snap["step"], k, "{snap}");
        assert!(snap.get("errors").is_none(), "step {k}: list errors {}", snap["errors"]);
        let replicas: BTreeMap<&str, i64> = snap["deployments"]
            .as_array()
            .expect("deployments")
            .iter()
            .map(|d| (d["name"].as_str().unwrap_or(""), d["spec_replicas"].as_i64().unwrap_or(-1)))
            .collect();
        for d in DEPLOYMENTS {
            assert_eq!(replicas.get(d).copied(), Some(expected_replicas(scales, d, k)), "step {k}, {d}: {replicas:?}");
        }
        let pdbs: BTreeSet<&str> =
            snap["pdbs"].as_array().expect("pdbs").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(pdbs, BTreeSet::from(["deploy-h0-pdb", "deploy-if-pdb", "deploy-ov-pdb"]), "step {k}");
        for pod in snap["pods"].as_array().expect("pods") {
            if let Some(node) = pod["node"].as_str() {
                assert!(node.starts_with("kwok-node-"), "step {k}: pod {} on {node}", pod["name"]);
                placed += 1;
            }
        }
        let virtual_nodes = snap["nodes"].as_array().expect("nodes").iter().filter(|n| n["type"] == "virtual").count();
        assert!(virtual_nodes >= 1, "step {k}: no virtual node listed");
    }
    placed
}

/// Nothing of the run is left: the namespace is gone and no object carries the run label.
async fn assert_nothing_left(client: &kube::Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(namespace).await.expect("read namespace").is_none(), "namespace {namespace} is left");
    let label = ListParams::default().labels(&format!("{RUN_LABEL}={RUN_ID}"));
    let deployments: Api<Deployment> = Api::all(client.clone());
    let pdbs: Api<PodDisruptionBudget> = Api::all(client.clone());
    assert!(deployments.list(&label).await.expect("deployments").items.is_empty(), "labelled Deployments are left");
    assert!(pdbs.list(&label).await.expect("pdbs").items.is_empty(), "labelled PDBs are left");
    assert!(namespaces.list(&label).await.expect("namespaces").items.is_empty(), "labelled namespaces are left");
}

/// No play holds a Lease in `namespace` any more.
async fn assert_no_leases(client: &kube::Client, namespace: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let left = leases.list(&ListParams::default().labels(PLAY_LABEL)).await.expect("list leases");
    assert!(
        left.items.is_empty(),
        "play leases left in {namespace}: {:?}",
        left.items.iter().map(|l| l.metadata.name.clone()).collect::<Vec<_>>()
    );
}

/// Records every change to namespace `name` (is it ever created?).
fn watch_namespace(client: kube::Client, name: String) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let api: Api<Namespace> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
        while let Some(Ok(ns)) = stream.next().await {
            out.lock().expect("seen lock").push(ns.metadata.name.unwrap_or_default());
        }
    });
    (seen, task)
}

/// Writes `text` to `file` under `dir`, making its folders.
fn write_file(dir: &std::path::Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[tokio::test]
async fn karpenter_fixture_plays_on_virtual_nodes_and_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
    let namespace = unique("scn");
    let logs = tempfile::tempdir().expect("tempdir");
    let dir = fixture();
    // Audit events through the webhook: the sandbox's API server posts its batches there.
    let audit_webhook = sandbox_env("REHEARSAL_AUDIT_WEBHOOK_LISTEN");
    let run = run_driver(
        &["--scenario", &dir.display().to_string(), "--speed", "15"],
        &[
            ("NAMESPACE", &namespace),
            ("LOG_DIR", &logs.path().display().to_string()),
            ("S3_BUCKET", &bucket),
            ("S3_REGION", "us-east-1"),
            ("AUDIT_WEBHOOK_LISTEN", &audit_webhook),
        ],
    )
    .await;
    println!("driver run took {:.1} s", run.took.as_secs_f64());
    assert_eq!(run.code, Some(0), "{}", run.explain());

    // The node pools: one warning line per kind, naming the file and why.
    let nodepool = "NodePool (karpenter.sh/v1) is not served by this cluster: skipped nodepools/default.yaml; install Karpenter to use it";
    let nodeclass =
        "KWOKNodeClass (karpenter.kwok.sh/v1alpha1) is not served by this cluster: skipped nodepools/default.yaml";
    for warning in [nodepool, nodeclass] {
        assert_eq!(run.stderr.lines().filter(|l| l.contains(warning)).count(), 1, "{warning}\n{}", run.explain());
    }

    let folders = log_folders(logs.path());
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = &folders[0];
    let (n_steps, scales) = scales(&dir);
    assert_eq!(n_steps, 60);

    // actions.jsonl: every scale of steps.yml, in order, done.
    let text = std::fs::read_to_string(folder.join("actions.jsonl")).expect("actions.jsonl");
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(records.len(), scales.len());
    for (r, s) in records.iter().zip(&scales) {
        assert_eq!((r["step"].as_u64(), r["type"].as_str()), (Some(s.step as u64), Some("K8S_SCALE")), "{r}");
        assert_eq!(
            (r["data"]["name"].as_str(), r["data"]["replicas"].as_i64()),
            (Some(s.name.as_str()), Some(s.replicas))
        );
        assert_eq!(r["result"], "ok", "{r}");
        assert!(r["lateness_ms"].as_f64().is_some() && r["duration_ms"].as_f64().is_some(), "{r}");
        assert!(r["due"].as_str().is_some_and(|d| d.ends_with('Z')), "{r}");
    }

    // Per step: replicas as asked, PDBs, pods on virtual nodes.
    let placed = check_steps(folder, &scales, 60);
    assert!(placed > 1000, "only {placed} pod placements seen over 60 steps");
    let summary = read_json(&folder.join("summary.json"));
    // summary.json: the report's figures, the player's own under run.details.
    assert_eq!(summary["run"]["details"]["steps"]["played"], 60);
    assert_eq!(summary["run"]["details"]["actions"]["failed"], 0);
    assert_eq!(summary["run"]["result"], "succeeded");
    assert_eq!(summary["verdict"]["status"], "passed", "{}", summary["verdict"]);
    assert_eq!(summary["scenario"]["steps_played"], 60);
    println!("step lateness (ms): {}", summary["lateness_ms"]);
    // The evidence every run leaves, beside the steps.
    for file in ["pods.jsonl", "nodes.jsonl", "workloads.jsonl", "events.jsonl", "report.html", "manifest.json"] {
        assert!(folder.join(file).is_file(), "{file} missing in {}", folder.display());
    }
    let audit = std::fs::read_to_string(folder.join("audit.jsonl")).expect("audit.jsonl");
    let scales = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|e| e["objectRef"]["namespace"] == namespace.as_str() && e["objectRef"]["subresource"] == "scale")
        .count();
    assert!(scales >= 10, "the steps' scale requests, received by the audit webhook: {scales}");

    // The upload: every file under s3://bucket/<run id>/<start>/, one read back byte for byte.
    let relative = folder.strip_prefix(logs.path()).expect("inside LOG_DIR").display().to_string();
    let uri = format!("s3://{bucket}/{relative}/");
    assert!(run.stdout.lines().any(|l| l == format!("uploaded: {uri}")), "{}", run.explain());
    let s3 = s3_client().await;
    let prefix = format!("{relative}/");
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(&bucket).prefix(&prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("list the uploaded logs");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(|k| k.trim_start_matches(&prefix).to_string())));
    }
    keys.sort();
    assert_eq!(keys, files_under(folder), "uploaded keys");
    for file in ["actions.jsonl", "steps/030-30.json"] {
        let object = s3.get_object().bucket(&bucket).key(format!("{prefix}{file}")).send().await.expect("get_object");
        let bytes = object.body.collect().await.expect("read body").into_bytes();
        let local = std::fs::read(folder.join(file)).expect("local copy");
        assert!(bytes.as_ref() == local.as_slice(), "{file} differs in S3");
    }
    for key in keys {
        let _ = s3.delete_object().bucket(&bucket).key(format!("{prefix}{key}")).send().await;
    }

    assert_nothing_left(&client, &namespace).await;
}

#[tokio::test]
async fn scenario_with_a_bad_action_applies_nothing() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let dir = copy_fixture();
    edit(
        dir.path(),
        "steps.yml",
        "action_data: name=deploy-h0,replicas=17",
        "action_data: name=deploy-h0,replicas=1x7",
    );
    let namespace = unique("scn-bad");
    let (seen, watch) = watch_namespace(client.clone(), namespace.clone());
    tokio::time::sleep(Duration::from_millis(500)).await; // the watch is established
    let logs = tempfile::tempdir().expect("tempdir");
    let run = run_driver(
        &["--scenario", &dir.path().display().to_string()],
        &[("NAMESPACE", &namespace), ("LOG_DIR", &logs.path().display().to_string())],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    assert_eq!(run.code, Some(2), "{}", run.explain());
    let expected = r#"steps.yml: step 3 ("3"), action 1 (K8S_SCALE): action_data "name=deploy-h0,replicas=1x7": replicas "1x7" is not a non-negative integer"#;
    assert!(run.stderr.lines().any(|l| l == expected), "{}", run.explain());
    assert!(run.stderr.contains("is invalid; nothing was applied"), "{}", run.explain());
    assert!(seen.lock().expect("seen lock").is_empty(), "namespace {namespace} was created");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.expect("read namespace").is_none());
    assert!(log_folders(logs.path()).is_empty(), "a log folder was made");
}

#[tokio::test]
async fn same_scenario_runs_again_on_the_same_namespace() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let dir = copy_fixture();
    edit(dir.path(), "config.yml", "limit: 60", "limit: 6");
    let (_, scales) = scales(dir.path());
    let namespace = unique("scn-again");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_dir = logs.path().display().to_string();
    let scenario = dir.path().display().to_string();
    let env = [("NAMESPACE", namespace.as_str()), ("LOG_DIR", log_dir.as_str())];
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);

    // 1: a whole run, cleaned up. 2: the same, kept. 3 and 4: over what 2 left (below). Speed
    // 20, not 60: a step's snapshot is read off the timeline, and at 0.25 s a step it can
    // already see the next step's scale.
    let first = run_driver(&["--scenario", &scenario, "--speed", "20"], &env).await;
    assert_eq!(first.code, Some(0), "first run: {}", first.explain());
    assert_nothing_left(&client, &namespace).await;

    let kept = run_driver(&["--scenario", &scenario, "--speed", "20", "--keep"], &env).await;
    assert_eq!(kept.code, Some(0), "kept run: {}", kept.explain());
    let left = deployments.list(&ListParams::default().labels(&format!("{RUN_LABEL}={RUN_ID}"))).await.expect("list");
    let replicas: BTreeMap<String, i32> = left
        .items
        .iter()
        .map(|d| (d.metadata.name.clone().unwrap_or_default(), d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)))
        .collect();
    for d in DEPLOYMENTS {
        assert_eq!(replicas.get(d).map(|r| i64::from(*r)), Some(expected_replicas(&scales, d, 6)), "{replicas:?}");
    }

    // 3: what 2 kept is not this play's: refused, named, unchanged; nothing applied.
    let before = versions(&deployments).await;
    let refused = run_driver(&["--scenario", &scenario, "--speed", "60"], &env).await;
    assert_eq!(refused.code, Some(1), "run over the kept objects: {}", refused.explain());
    for d in DEPLOYMENTS {
        assert!(refused.stderr.contains(&format!("Deployment {d} (it exists, left by play ")), "{}", refused.explain());
    }
    assert!(refused.stderr.contains("nothing was applied"), "{}", refused.explain());
    let after = versions(&deployments).await;
    assert_eq!(before, after, "the refused play changed the kept Deployments");
    assert_no_leases(&client, &namespace).await;

    // 4: --adopt takes them (and the namespace an ended play made) over, and cleans up all.
    let again = run_driver(&["--scenario", &scenario, "--speed", "20", "--adopt"], &env).await;
    assert_eq!(again.code, Some(0), "run adopting the kept objects: {}", again.explain());
    assert!(again.stderr.contains("adopted (--adopt)"), "{}", again.explain());
    println!(
        "runs took {:.1} s, {:.1} s, {:.1} s (refused) and {:.1} s",
        first.took.as_secs_f64(),
        kept.took.as_secs_f64(),
        refused.took.as_secs_f64(),
        again.took.as_secs_f64()
    );

    let folders = log_folders(logs.path());
    assert_eq!(folders.len(), 4, "each run has its own log folder: {folders:?}");
    for (i, folder) in folders.iter().enumerate() {
        let result = read_json(&folder.join("summary.json"))["run"]["result"].clone();
        if result == "failed" {
            assert_eq!(i, 2, "only the third run fails");
            continue;
        }
        check_steps(folder, &scales, 6);
        assert_eq!(result, "succeeded");
    }
    assert_nothing_left(&client, &namespace).await;
}

#[tokio::test]
async fn every_action_type_plays_and_a_failed_action_does_not_stop_the_run() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |file: &str, text: &str| write_file(dir.path(), file, text);
    write(
        "config.yml",
        "simulator:\n  run_id: e2e_action_types\n  timestep: 1\n  deployments_directory: deployments\n  deployments: [web]\n",
    );
    write(
        "deployments/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: nginx}]\n",
    );
    write("extra/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: burst}\n");
    write(
        "steps.yml",
        r#"scenario:
- step:
    name: apply
    actions:
    - action: {action_type: APPLY, action_data: file=extra/settings.yaml}
    - action: {action_type: K8S_SCALE, action_data: "name=web,replicas=2"}
- step:
    name: wait
    actions:
    - action: {action_type: WAIT_AVAILABLE, action_data: "name=web,timeoutSeconds=60"}
- step:
    name: delete
    actions:
    - action: {action_type: DELETE, action_data: "apiVersion=v1,kind=ConfigMap,name=settings"}
    - action: {action_type: DELETE, action_data: "apiVersion=apps/v1,kind=Deployment,name=web"}
- step:
    name: scale-gone
    actions:
    - action: {comment: "fails: the Deployment is gone", action_type: SCALE, action_data: "name=web,desiredCount=3"}
- step:
    name: idle
    actions: []
"#,
    );
    let namespace = unique("scn-types");
    let logs = tempfile::tempdir().expect("tempdir");
    let run = run_driver(
        &["--scenario", &dir.path().display().to_string(), "--speed", "4"],
        &[("NAMESPACE", &namespace), ("LOG_DIR", &logs.path().display().to_string())],
    )
    .await;
    assert_eq!(run.code, Some(1), "one action failed: {}", run.explain());
    let failure =
        format!(r#"step 4 ("scale-gone"), action 1 (SCALE): deployment "web" not found in namespace {namespace}"#);
    assert!(run.stderr.lines().any(|l| l.ends_with(&failure)), "{}", run.explain());

    let run_dir = logs.path().join("e2e_action_types");
    let folder = std::fs::read_dir(&run_dir).expect("log folder").filter_map(Result::ok).map(|e| e.path()).next();
    let folder = folder.expect("one log folder");
    let text = std::fs::read_to_string(folder.join("actions.jsonl")).expect("actions.jsonl");
    let seen: Vec<(u64, String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|r| {
            (
                r["step"].as_u64().unwrap_or(0),
                r["type"].as_str().unwrap_or("").to_string(),
                r["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        (1, "APPLY", "ok"),
        (1, "K8S_SCALE", "ok"),
        (2, "WAIT_AVAILABLE", "ok"),
        (3, "DELETE", "ok"),
        (3, "DELETE", "ok"),
        (4, "SCALE", "error"),
    ];
    let expected: Vec<(u64, String, String)> =
        expected.iter().map(|(s, t, r)| (*s, t.to_string(), r.to_string())).collect();
    assert_eq!(seen, expected);
    // The play went on after the failure: the last step has its file too.
    let steps = step_files(&folder);
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[1]["deployments"][0]["available"], 2, "WAIT_AVAILABLE returned before web was available");
    assert_eq!(steps[2]["deployments"].as_array().map(Vec::len), Some(0), "web was deleted at step 3");
    let summary = read_json(&folder.join("summary.json"));
    let actions = &summary["run"]["details"]["actions"];
    assert_eq!((actions["ok"].as_u64(), actions["failed"].as_u64()), (Some(5), Some(1)));
    assert_eq!(summary["run"]["result"], "failed");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.expect("read namespace").is_none(), "namespace left");
}

/// A directory shaped like a production export: 120 Deployments, one listed twice in
/// `config.yml`, and a step of 150 actions (more than the 100 a step once held). The repeated
/// name is one warning in the log and its Deployment is applied once; every action plays.
#[tokio::test]
async fn an_export_with_a_repeated_deployment_and_a_big_step_plays() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |file: &str, text: &str| write_file(dir.path(), file, text);
    let names: Vec<String> = (0..120).map(|i| format!("svc-{i:03}")).collect();
    for name in &names {
        // No replicas: the play is about the number of objects and actions, not pods.
        write(
            &format!("deployments/{name}.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: c, image: nginx}}]\n"
            ),
        );
    }
    let mut config = String::from(
        "simulator:\n  run_id: e2e_export\n  timestep: 1\n  deployments_directory: deployments\n  deployments:\n",
    );
    for name in names.iter().chain([&names[7]]) {
        config.push_str(&format!("  - {name}\n"));
    }
    write("config.yml", &config);
    let mut steps = String::from("scenario:\n- step:\n    name: burst\n    actions:\n");
    for i in 0..150 {
        steps.push_str(&format!(
            "    - action: {{action_type: K8S_SCALE, action_data: \"name={},replicas=0\"}}\n",
            names[i % names.len()]
        ));
    }
    steps.push_str("- step:\n    name: last\n    actions:\n    - action: {action_type: K8S_SCALE, action_data: \"name=svc-007,replicas=0\"}\n");
    write("steps.yml", &steps);

    let namespace = unique("scn-export");
    let logs = tempfile::tempdir().expect("tempdir");
    let run = run_driver(
        &["--scenario", &dir.path().display().to_string(), "--speed", "4"],
        &[("NAMESPACE", &namespace), ("LOG_DIR", &logs.path().display().to_string())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.explain());
    let warning = r#"config.yml: deployment "svc-007" is listed 2 times; it is applied once"#;
    let warned = run.stderr.lines().filter(|l| l.contains(warning)).count();
    assert_eq!(warned, 1, "the warning is logged once: {}", run.explain());
    // " applied " is the message of the line logged per object applied (fields follow it).
    let applied = |name: &str| {
        run.stderr.lines().filter(|l| l.contains(" applied ") && l.contains(&format!("Deployment {name}"))).count()
    };
    assert_eq!(applied("svc-007"), 1, "svc-007 is applied once: {}", run.explain());
    assert_eq!(applied("svc-119"), 1, "{}", run.explain());

    let folder = std::fs::read_dir(logs.path().join("e2e_export"))
        .expect("log folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("one log folder");
    let text = std::fs::read_to_string(folder.join("actions.jsonl")).expect("actions.jsonl");
    let mut per_step = BTreeMap::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(r["result"], "ok", "{line}");
        *per_step.entry(r["step"].as_u64().unwrap_or(0)).or_insert(0) += 1;
    }
    assert_eq!(per_step, BTreeMap::from([(1, 150), (2, 1)]));
    let summary = read_json(&folder.join("summary.json"));
    let actions = &summary["run"]["details"]["actions"];
    assert_eq!((actions["ok"].as_u64(), actions["failed"].as_u64()), (Some(151), Some(0)));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.expect("read namespace").is_none(), "namespace left");
}

#[tokio::test]
async fn scenario_object_reports_on_its_simulation_and_a_failed_upload_fails_the_run() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    install_crds(&client).await;
    let dir = copy_fixture();
    edit(dir.path(), "config.yml", "limit: 60", "limit: 3");
    let name = unique("scn-ref");
    let namespace = unique("scn-ref-ns");

    // The directory as a Scenario object, through `scenario convert`.
    let convert = Command::new(driver_bin())
        .args(["scenario", "convert", &dir.path().display().to_string(), "--name", &name, "--namespace", &namespace])
        .output()
        .await
        .expect("convert ran");
    assert!(convert.status.success(), "{}", String::from_utf8_lossy(&convert.stderr));
    let yaml = String::from_utf8_lossy(&convert.stdout);
    let scn: Scenario = serde_saphyr::from_str(&yaml).expect("convert prints a Scenario");
    let scenarios: Api<Scenario> = Api::all(client.clone());
    scenarios.create(&PostParams::default(), &scn).await.expect("create the Scenario");
    let sims: Api<Simulation> = Api::all(client.clone());
    let sim: Simulation = object(serde_json::json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": name},
        "spec": {"source": {"scenarioRef": {"name": name}}, "speed": 60}
    }));
    sims.create(&PostParams::default(), &sim).await.expect("create the Simulation");

    // A play reporting on its Simulation.
    let logs = tempfile::tempdir().expect("tempdir");
    let run = run_driver(
        &["--scenario-ref", &name, "--sim-name", &name, "--speed", "60"],
        &[("LOG_DIR", &logs.path().display().to_string())],
    )
    .await;
    let after = sims.get(&name).await.expect("read the Simulation");
    assert_eq!(run.code, Some(0), "{}", run.explain());
    let status = after.status.clone().expect("the driver wrote a status");
    let condition = |st: &rehearsal_crds::SimulationStatus, t: &str| {
        st.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()))
    };
    assert_eq!(condition(&status, "Replay"), Some(("True".to_string(), "Completed".to_string())));
    assert_eq!(condition(&status, "Cleanup"), Some(("True".to_string(), "Deleted".to_string())));
    let progress = status.progress.expect("progress");
    assert_eq!((progress.done, progress.total, progress.unit.as_str()), (3, 3, "steps"));
    // It played in the Scenario's namespace.
    let folders = log_folders(logs.path());
    assert_eq!(folders.len(), 1);
    assert_eq!(read_json(&folders[0].join("summary.json"))["run"]["details"]["namespace"], namespace.as_str());
    assert_nothing_left(&client, &namespace).await;

    // A bucket it cannot write to: refused before the first action, nothing applied.
    let logs = tempfile::tempdir().expect("tempdir");
    let run = run_driver(
        &["--scenario-ref", &name, "--sim-name", &name, "--speed", "60"],
        &[
            ("LOG_DIR", &logs.path().display().to_string()),
            ("S3_BUCKET", "no-such-bucket-for-rehearsal"),
            ("S3_REGION", "us-east-1"),
        ],
    )
    .await;
    let after = sims.get(&name).await.expect("read the Simulation");
    let _ = sims.delete(&name, &DeleteParams::default()).await;
    let _ = scenarios.delete(&name, &DeleteParams::default()).await;
    assert_ne!(run.code, Some(0), "{}", run.explain());
    assert!(
        run.stderr.lines().any(|l| l.contains("cannot write to s3://no-such-bucket-for-rehearsal/")),
        "{}",
        run.explain()
    );
    let status = after.status.expect("the driver wrote a status");
    assert_eq!(condition(&status, "ArtifactsUploaded"), Some(("False".to_string(), "NotWritable".to_string())));
    assert_eq!(condition(&status, "Replay"), None, "nothing was played");
    assert_nothing_left(&client, &namespace).await;
}

/// A cluster-scoped kind standing in for Karpenter's NodePool (the sandbox serves no Karpenter):
/// `Pool` of `e2e.rehearsal.dev`, installed once and kept with the sandbox like the project's CRDs.
async fn install_pool_crd(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = object(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.e2e.rehearsal.dev"},
        "spec": {
            "group": "e2e.rehearsal.dev", "scope": "Cluster",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }));
    crds.patch("pools.e2e.rehearsal.dev", &PatchParams::apply("rehearsal-e2e").force(), &Patch::Apply(&crd))
        .await
        .expect("apply the Pool CRD");
    let established = await_condition(crds, "pools.e2e.rehearsal.dev", conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .expect("Pool CRD established in 30 s")
        .expect("watch");
    let gvk = GroupVersionKind::gvk("e2e.rehearsal.dev", "v1", "Pool");
    // Established is not yet served by discovery, which the driver reads first.
    poll_until(Duration::from_secs(30), "Pool served by discovery", || {
        let (client, gvk) = (client.clone(), gvk.clone());
        async move { kube::discovery::pinned_kind(&client, &gvk).await.ok().map(|_| ()) }
    })
    .await;
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// A scenario directory: Deployment `web` and the cluster-scoped Pool `pool` in its manifests,
/// and `steps` steps scaling web, one every `timestep` seconds.
fn pool_scenario(run_id: &str, pool: &str, steps: usize, timestep: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |file: &str, text: &str| write_file(dir.path(), file, text);
    write(
        "config.yml",
        &format!(
            "simulator:\n  run_id: {run_id}\n  timestep: {timestep}\n  deployments_directory: deployments\n  deployments: [web]\n"
        ),
    );
    write(
        "deployments/web.yaml",
        &format!(
            "apiVersion: e2e.rehearsal.dev/v1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec: {{limit: 10}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: nginx}}]\n"
        ),
    );
    let mut steps_yml = String::from("scenario:\n");
    for k in 0..steps {
        steps_yml.push_str(&format!(
            "- step:\n    name: s{k}\n    actions:\n    - action: {{action_type: K8S_SCALE, action_data: \"name=web,replicas={}\"}}\n",
            k % 3 + 1
        ));
    }
    write("steps.yml", &steps_yml);
    dir
}

/// Every Deployment of `api` by name, with what a play could change of it.
async fn versions(api: &Api<Deployment>) -> BTreeMap<String, (String, i64, String)> {
    let list = api.list(&ListParams::default()).await.expect("list");
    list.items.iter().map(|d| (d.metadata.name.clone().unwrap_or_default(), version(d))).collect()
}

/// What a play could change of an object: its UID, generation (bumped by any spec change) and
/// labels. Not the resourceVersion: controllers write status.
fn version<K: kube::Resource>(object: &K) -> (String, i64, String) {
    let m = object.meta();
    (m.uid.clone().unwrap_or_default(), m.generation.unwrap_or(0), format!("{:?}", m.labels))
}

#[tokio::test]
async fn objects_the_play_did_not_create_are_refused_and_left_unchanged() {
    let _serial = SERIAL.lock().await;
    let pools = install_pool_crd(&client().await).await;
    with_namespace("scn-own", |client, namespace| async move {
        let pool = unique("pool");
        let dir = pool_scenario("e2e_ownership", &pool, 2, 1);
        // Someone's Pool and Deployment, with the scenario's names, in someone's namespace.
        let theirs: DynamicObject = object(serde_json::json!({
            "apiVersion": "e2e.rehearsal.dev/v1", "kind": "Pool", "metadata": {"name": pool}, "spec": {"limit": 99}
        }));
        let their_pool = pools.create(&PostParams::default(), &theirs).await.expect("create their Pool");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
        let web: Deployment = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "theirs"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "theirs"}},
                "template": {"metadata": {"labels": {"app": "theirs"}}, "spec": {"containers": [{"name": "c", "image": "theirs"}]}}}
        }));
        let their_web = deployments.create(&PostParams::default(), &web).await.expect("create their Deployment");

        let logs = tempfile::tempdir().expect("tempdir");
        let env = [("NAMESPACE", namespace.as_str()), ("LOG_DIR", &*logs.path().display().to_string())];
        let scenario = dir.path().display().to_string();
        let run = run_driver(&["--scenario", &scenario, "--speed", "10"], &env).await;
        assert_eq!(run.code, Some(1), "{}", run.explain());
        let expected = format!(
            "2 already exist and are not this play's: Pool {pool} (it exists and was not created by a rehearsal play), Deployment web (it exists and was not created by a rehearsal play); nothing was applied"
        );
        assert!(run.stderr.contains(&expected), "{}", run.explain());
        let pool_after = pools.get(&pool).await.expect("their Pool is still there");
        assert_eq!(version(&pool_after), version(&their_pool), "their Pool was changed");
        assert_eq!(pool_after.data["spec"]["limit"], 99);
        let web_after = deployments.get("web").await.expect("their Deployment is still there");
        assert_eq!(version(&web_after), version(&their_web), "their Deployment was changed");
        assert_no_leases(&client, &namespace).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = namespaces.get(&namespace).await.expect("their namespace is still there");
        assert!(!ns.labels().contains_key(PLAY_LABEL), "their namespace was relabelled");

        // Without them the play runs, and deletes what it made, not their namespace.
        pools.delete(&pool, &DeleteParams::default()).await.expect("delete their Pool");
        deployments.delete("web", &DeleteParams::default()).await.expect("delete their Deployment");
        let web_uid = version(&their_web).0;
        let gone = await_condition(deployments.clone(), "web", conditions::is_deleted(&web_uid));
        tokio::time::timeout(Duration::from_secs(60), gone).await.expect("their Deployment gone").expect("watch");
        let run = run_driver(&["--scenario", &scenario, "--speed", "10"], &env).await;
        assert_eq!(run.code, Some(0), "{}", run.explain());
        assert!(pools.get_opt(&pool).await.expect("read Pool").is_none(), "the play's Pool is left");
        assert!(deployments.get_opt("web").await.expect("read web").is_none(), "the play's Deployment is left");
        assert!(namespaces.get_opt(&namespace).await.expect("read ns").is_some(), "their namespace was deleted");
        assert_no_leases(&client, &namespace).await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_plays_of_one_scenario_keep_to_their_own() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let pools = install_pool_crd(&client).await;
    let pool = unique("pool");
    let (ns_a, ns_b) = (unique("scn-a"), unique("scn-b"));
    let (id_a, id_b, id_c) = (unique("ci-a"), unique("ci-b"), unique("ci-c"));
    // A: ~8 s of steps. B: the same scenario into A's namespace. C: into its own namespace,
    // but the cluster-scoped Pool is A's.
    let dir = pool_scenario("e2e_concurrent", &pool, 9, 1);
    let scenario = dir.path().display().to_string();
    let logs = tempfile::tempdir().expect("tempdir");
    let log_dir = logs.path().display().to_string();
    let play = |ns: &str, id: &str| {
        let args: Vec<String> = ["--scenario", &scenario, "--play-id", id].iter().map(|s| s.to_string()).collect();
        let env = [("NAMESPACE".to_string(), ns.to_string()), ("LOG_DIR".to_string(), log_dir.clone())];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_driver(&args, &env).await
        }
    };
    let a = play(&ns_a, &id_a);
    let others = async {
        // Once A holds its Lease (it runs), B and C start.
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns_a);
        let lease = format!("rehearsal-play-{id_a}");
        let held = await_condition(leases, &lease, |l: Option<&Lease>| l.is_some());
        tokio::time::timeout(Duration::from_secs(60), held).await.expect("A took its Lease").expect("watch");
        // And its Deployment: the Lease comes before the objects.
        let web_a: Api<Deployment> = Api::namespaced(client.clone(), &ns_a);
        let made = await_condition(web_a.clone(), "web", |d: Option<&Deployment>| d.is_some());
        tokio::time::timeout(Duration::from_secs(60), made).await.expect("A made its Deployment").expect("watch");
        let before = web_a.get_opt("web").await.expect("read A's web").map(|d| version(&d).0);
        let b = play(&ns_a, &id_b).await;
        let c = play(&ns_b, &id_c).await;
        let after = web_a.get_opt("web").await.expect("read A's web").map(|d| version(&d).0);
        (b, c, before, after)
    };
    let (a, (b, c, before, after)) = tokio::join!(a, others);
    assert_eq!(a.code, Some(0), "A: {}", a.explain());
    assert_eq!(b.code, Some(1), "B: {}", b.explain());
    assert!(
        b.stderr.contains(&format!("namespace {ns_a}: play {id_a} created it and is still running")),
        "B: {}",
        b.explain()
    );
    assert_eq!(c.code, Some(1), "C: {}", c.explain());
    // Refused at the look-up before anything is created, or, when A created the Pool between
    // C's look-up and C's create, at the create (409, decided again on what won): either way
    // naming the Pool and the running play.
    let live = format!("belongs to play {id_a}, which is still running");
    assert!(
        c.stderr.contains(&format!("Pool {pool} (it {live}")) || c.stderr.contains(&format!("Pool {pool}: it {live}")),
        "C: {}",
        c.explain()
    );
    assert!(before.is_some() && before == after, "A's Deployment was replaced while B and C ran");
    // A played every step with its Deployment (B and C deleted nothing of it).
    let folder = std::fs::read_dir(logs.path().join("e2e_concurrent"))
        .expect("logs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| read_json(&p.join("summary.json"))["run"]["details"]["play_id"] == id_a.as_str())
        .expect("A's log folder");
    let summary = read_json(&folder.join("summary.json"));
    assert_eq!(
        (summary["run"]["details"]["actions"]["failed"].as_u64(), summary["run"]["result"].as_str()),
        (Some(0), Some("succeeded")),
        "{summary}"
    );
    // Nothing of the three is left.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&ns_a, &ns_b] {
        assert!(namespaces.get_opt(ns).await.expect("read ns").is_none(), "namespace {ns} is left");
    }
    assert!(pools.get_opt(&pool).await.expect("read Pool").is_none(), "the Pool is left");
    let leases: Api<Lease> = Api::all(client.clone());
    for id in [&id_a, &id_b, &id_c] {
        let left = leases.list(&ListParams::default().labels(&format!("{PLAY_LABEL}={id}"))).await.expect("leases");
        assert!(left.items.is_empty(), "a Lease of play {id} is left");
    }
}

#[tokio::test]
async fn cleanup_survives_an_api_server_restart() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let dir = copy_fixture();
    edit(dir.path(), "config.yml", "limit: 60", "limit: 2");
    let namespace = unique("scn-restart");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_dir = logs.path().display().to_string();
    let scenario = dir.path().display().to_string();
    let args = ["--scenario", scenario.as_str(), "--speed", "15"];
    let env = [("NAMESPACE", namespace.as_str()), ("LOG_DIR", log_dir.as_str())];
    let play = run_driver(&args, &env);
    let meddle = async {
        // A ConfigMap with a finalizer in the play's namespace holds the namespace in
        // Terminating: the cleanup is surely under way when the API server goes.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let created = await_condition(namespaces.clone(), &namespace, |n: Option<&Namespace>| n.is_some());
        tokio::time::timeout(Duration::from_secs(60), created)
            .await
            .expect("the play made its namespace")
            .expect("watch");
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let blocker: ConfigMap = object(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "blocker", "finalizers": ["e2e.rehearsal.dev/hold"]}
        }));
        configmaps.create(&PostParams::default(), &blocker).await.expect("create the blocker");
        let terminating = await_condition(namespaces, &namespace, |n: Option<&Namespace>| {
            n.is_some_and(|n| n.metadata.deletion_timestamp.is_some())
        });
        tokio::time::timeout(Duration::from_secs(120), terminating).await.expect("the cleanup started").expect("watch");
        restart_apiserver().await;
        // A fresh client: the old one's connections died with the server.
        let client = rehearsal_e2e::client().await;
        let configmaps: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let release = serde_json::json!({"metadata": {"finalizers": null}});
        poll_until(Duration::from_secs(60), "the blocker released", || {
            let configmaps = configmaps.clone();
            let release = release.clone();
            async move { configmaps.patch("blocker", &PatchParams::default(), &Patch::Merge(&release)).await.ok() }
        })
        .await;
    };
    let (run, ()) = tokio::join!(play, meddle);
    assert_eq!(run.code, Some(0), "{}", run.explain());
    assert!(run.stderr.contains("cleanup: retrying"), "the cleanup never saw the API server go: {}", run.explain());
    let folders = log_folders(logs.path());
    let summary = read_json(&folders[0].join("summary.json"));
    assert!(
        summary["run"]["cleanup"].as_str().is_some_and(|c| c.starts_with(&format!("deleted namespace {namespace}"))),
        "{summary}"
    );
    let fresh = rehearsal_e2e::client().await;
    assert_nothing_left(&fresh, &namespace).await;
    assert_no_leases(&fresh, &namespace).await;
}

#[tokio::test]
async fn a_killed_play_has_left_its_steps_and_actions_in_s3() {
    let _serial = SERIAL.lock().await;
    with_namespace("scn-killed", |_client, namespace| async move {
        let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
        let logs = tempfile::tempdir().expect("tempdir");
        let dir = fixture();
        // One step a second; the driver is killed (SIGKILL: no cleanup, no final upload) once
        // step 12 is in S3, past the first periodic upload of actions.jsonl (every 10 s).
        let mut child = Command::new(driver_bin())
            .args(["scenario", "--scenario", &dir.display().to_string(), "--speed", "15"])
            .env("NAMESPACE", &namespace)
            .env("LOG_DIR", logs.path())
            .env("S3_BUCKET", &bucket)
            .env("S3_REGION", "us-east-1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the driver");
        let s3 = s3_client().await;
        let keys = |prefix: String| {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                let mut keys = Vec::new();
                let mut pages = s3.list_objects_v2().bucket(&bucket).prefix(&prefix).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let Ok(page) = page else { return Vec::new() };
                    keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
                }
                keys
            }
        };
        let seen = poll_until(Duration::from_secs(120), "step 12 and actions.jsonl in S3", || {
            let keys = keys(format!("{RUN_ID}/"));
            async move {
                let keys = keys.await;
                let step12 = keys.iter().any(|k| k.contains("/steps/012-"));
                let actions = keys.iter().any(|k| k.ends_with("/actions.jsonl"));
                (step12 && actions).then_some(keys)
            }
        })
        .await;
        child.start_kill().expect("kill the driver");
        let status = child.wait().await.expect("the driver ended");
        assert_eq!(status.code(), None, "killed by a signal");
        let folder =
            seen.iter().find_map(|k| k.split_once("/steps/").map(|(f, _)| f.to_string())).expect("a run folder");
        let keys = keys(format!("{folder}/")).await;
        for k in 1..=12 {
            assert!(keys.iter().any(|key| key.contains(&format!("/steps/{k:03}-"))), "step {k} not in S3: {keys:?}");
        }
        assert!(keys.iter().any(|key| key.ends_with("/scenario.yaml")), "{keys:?}");
        let object = s3.get_object().bucket(&bucket).key(format!("{folder}/actions.jsonl")).send().await.expect("get");
        let bytes = object.body.collect().await.expect("read").into_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a whole JSON line")).collect();
        assert!(records.iter().any(|r| r["step"] == 1), "{text}");
        println!("in S3 after the kill: {} files, {} action records", keys.len(), records.len());
        for key in keys {
            let _ = s3.delete_object().bucket(&bucket).key(key).send().await;
        }
    })
    .await;
}
