//! Helpers for the end-to-end tests: a client for the local control plane, throwaway
//! namespaces that are removed whether the test passes or fails, CRD installation, and
//! waiting on conditions with deadlines.
//!
//! The tests expect the environment written by `e2e/cluster/sandbox.sh` (`make e2e` sources
//! it through `e2e/run-with-sandbox.sh`).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Field manager of the tests' own writes.
pub const MANAGER: &str = "rehearsal-e2e";

/// Label on every namespace the tests create, so leftovers are easy to find.
pub const E2E_LABEL: &str = "rehearsal.dev/e2e";

/// Reads a variable the sandbox's env file sets, with a hint when it is missing.
pub fn sandbox_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end tests with `make e2e` (or source .sandbox/env after `make sandbox-up`)")
    })
}

/// A client for the sandbox's API server, as its admin.
pub async fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    sandbox_env("KUBECONFIG");
    Client::try_default().await.unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG: {e}"))
}

/// A name unlikely to collide with another test's, in this or a concurrent run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{:x}{:x}", std::process::id() % 10000, nanos % 0xffff, N.fetch_add(1, Ordering::Relaxed))
}

/// Runs `body` with a fresh namespace, then deletes the namespace (waiting until it is gone)
/// even when the body panics; the panic is then resumed.
pub async fn with_namespace<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let client = client().await;
    let name = unique(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {E2E_LABEL: "true"}}
    }))
    .expect("namespace literal");
    namespaces.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("create namespace {name}: {e}"));

    let outcome = AssertUnwindSafe(body(client.clone(), name.clone())).catch_unwind().await;

    let deleted = delete_and_wait(&namespaces, &name, Duration::from_secs(120)).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Err(e) = deleted {
        panic!("namespace {name} was not cleaned up: {e}");
    }
}

/// Deletes an object (foreground) and waits until it is gone.
pub async fn delete_and_wait<K>(api: &Api<K>, name: &str, deadline: Duration) -> Result<(), String>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let uid = match api.get_opt(name).await {
        Ok(Some(obj)) => obj.meta().uid.clone().unwrap_or_default(),
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("get {name}: {e}")),
    };
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(format!("delete {name}: {e}")),
    }
    tokio::time::timeout(deadline, await_condition(api.clone(), name, conditions::is_deleted(&uid)))
        .await
        .map_err(|_| format!("{name} still exists after {deadline:?}"))?
        .map_err(|e| format!("watching {name}: {e}"))?;
    Ok(())
}

/// Waits until `cond` holds for the named object; panics naming the object and the deadline.
pub async fn wait_for<K>(api: &Api<K>, name: &str, deadline: Duration, what: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let found = tokio::time::timeout(deadline, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: not {what} within {deadline:?}"))
        .unwrap_or_else(|e| panic!("{name}: watch failed while waiting for {what}: {e}"));
    found.unwrap_or_else(|| panic!("{name}: deleted while waiting for {what}"))
}

/// Waits until the object with `uid` is gone (deleted, or replaced by a new one).
pub async fn wait_gone<K>(api: &Api<K>, name: &str, uid: &str, deadline: Duration)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::time::timeout(deadline, await_condition(api.clone(), name, conditions::is_deleted(uid)))
        .await
        .unwrap_or_else(|_| panic!("{name}: still there after {deadline:?}"))
        .unwrap_or_else(|e| panic!("{name}: watch failed while waiting for deletion: {e}"));
}

/// Calls `check` until it returns `Some`, or panics with `what` after `deadline`. For states
/// spread over many objects, where one watch does not fit; the interval is short.
pub async fn poll_until<T, Fut>(deadline: Duration, what: &str, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("not {what} within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies the generated CRDs (server-side) and waits until each is Established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in rehearsal_crds::manifests::crds() {
        let name = crd.metadata.name.clone().expect("generated CRDs are named");
        crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        wait_for(&crds, &name, Duration::from_secs(30), "Established", conditions::is_crd_established()).await;
    }
}

/// Builds a typed object from JSON, panicking with the JSON on a mistake in the test itself.
pub fn object<K: DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("test object does not parse ({e}): {value}"))
}

/// The toleration and node selector that put a pod on the virtual (KWOK) nodes.
pub fn virtual_placement() -> serde_json::Value {
    serde_json::json!({
        "tolerations": [{"key": "kwok-provider", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"type": "virtual"}
    })
}

/// An S3 client for the sandbox's MinIO, set up as the driver's: the standard credential
/// chain, AWS_ENDPOINT_URL, path-style addressing.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    sandbox_env("AWS_ENDPOINT_URL");
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Waits until the controller-manager turns a Deployment into a pod again, in a throwaway
/// namespace (removed after). Right after an API server restart its watches are still backing
/// off from the "forbidden" answers the new server gave while its RBAC warmed up, and for up to
/// ~30 s no Deployment gets pods: a test that needs them waits here first.
pub async fn controllers_make_pods(deadline: Duration) {
    with_namespace("probe", |client, ns| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let probe: Deployment = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "probe"}},
                "template": {"metadata": {"labels": {"app": "probe"}},
                    "spec": {"containers": [{"name": "c", "image": "probe"}]}}}
        }));
        deployments.create(&PostParams::default(), &probe).await.expect("create the probe Deployment");
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let start = Instant::now();
        poll_until(deadline, "the probe Deployment's pod made (the controller-manager working)", || {
            let pods = pods.clone();
            async move { pods.list(&ListParams::default()).await.ok().filter(|l| !l.items.is_empty()).map(|_| ()) }
        })
        .await;
        println!("the controller-manager made the probe's pod in {:.1} s", start.elapsed().as_secs_f64());
    })
    .await;
}

/// Kills the sandbox's kube-apiserver (SIGKILL, no graceful shutdown) and starts it again with
/// `sandbox.sh up`, which restarts dead components while etcd keeps the cluster state. Returns
/// once the new API server answers. Tests calling it must not share the sandbox with others.
pub async fn restart_apiserver() {
    let dir = sandbox_env("REHEARSAL_SANDBOX_DIR");
    let pid_file = format!("{dir}/pids/kube-apiserver.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("{pid_file}: {e}"));
    let pid = pid.trim().to_string();
    let killed = tokio::process::Command::new("kill").args(["-KILL", &pid]).status().await.expect("run kill");
    assert!(killed.success(), "kill -KILL {pid} failed");
    poll_until(Duration::from_secs(30), "the killed kube-apiserver gone", || {
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        async move { gone.then_some(()) }
    })
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster/sandbox.sh");
    let up = tokio::time::timeout(Duration::from_secs(120), tokio::process::Command::new(script).arg("up").output())
        .await
        .expect("sandbox.sh up within 120 s")
        .expect("run sandbox.sh up");
    assert!(
        up.status.success(),
        "sandbox.sh up failed:\n{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
}
