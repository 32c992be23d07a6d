//! The operator as users run it: installed with `kubectl apply -k config/default`, running as
//! two pods (one leader) on the process runner node, reconciling Simulations into driver Jobs.
//!
//! One test function runs the cases one after the other: they share the operator and its queue
//! (one active Simulation at a time), and the operator is uninstalled at the end whatever
//! happened, so the other end-to-end tests (which run drivers by hand) never meet it. Each case
//! checks that nothing of its Simulations is left.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rehearsal_crds::keys::{OWNED_BY_SIMULATION_LABEL, SIMULATION_LABEL};
use rehearsal_crds::{Phase, Scenario, Simulation, SimulationRoot};
use rehearsal_e2e::{MANAGER, client, delete_and_wait, object, poll_until, sandbox_env, unique, wait_for};
use serde_json::{Value, json};
use tokio::process::Command;

const NS: &str = "rehearsal-system";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

async fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl").args(args).output().await.unwrap_or_else(|e| panic!("run kubectl {args:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `kubectl apply -k config/default`, then waits for a leader.
async fn install(client: &Client) {
    let dir = repo().join("config/default");
    let (ok, out) = kubectl(&["apply", "--server-side", "--force-conflicts", "-k", &dir.to_string_lossy()]).await;
    assert!(ok, "kubectl apply -k config/default failed:\n{out}");
    two_ready_replicas(client).await;
    leader(client).await;
}

/// Waits until the operator Deployment has its two replicas ready.
async fn two_ready_replicas(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    wait_for(
        &deployments,
        "rehearsal-operator",
        Duration::from_secs(120),
        "2 ready replicas",
        |d: Option<&Deployment>| d.and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas) == Some(2),
    )
    .await;
}

/// The pod holding the leader Lease.
async fn leader(client: &Client) -> Pod {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    poll_until(Duration::from_secs(60), "a leader elected", || async {
        let holder = leases.get_opt("rehearsal-operator").await.ok()??.spec?.holder_identity?;
        let pod = pods.get_opt(&holder).await.ok()??;
        (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
    })
    .await
}

/// Removes the operator's Deployment (the CRDs and RBAC stay) and waits for its pods to go.
async fn uninstall(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    if let Err(e) = delete_and_wait(&deployments, "rehearsal-operator", Duration::from_secs(60)).await {
        eprintln!("uninstall: {e}");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    poll_until(Duration::from_secs(60), "operator pods gone", || async {
        let list = pods.list(&ListParams::default().labels("app.kubernetes.io/name=rehearsal-operator")).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
}

fn sims(client: &Client) -> Api<Simulation> {
    Api::all(client.clone())
}

async fn create_sim(client: &Client, name: &str, spec: Value) -> Simulation {
    let sim: Simulation = object(json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation",
        "metadata": {"name": name}, "spec": spec}));
    sims(client).create(&PostParams::default(), &sim).await.unwrap_or_else(|e| panic!("create Simulation {name}: {e}"))
}

fn phase(s: &Simulation) -> Option<Phase> {
    s.status.as_ref().and_then(|st| st.phase)
}

fn condition(s: &Simulation, t: &str) -> Option<(String, String, String)> {
    let c = rehearsal_crds::conditions::find(&s.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_phase(client: &Client, name: &str, want: Phase, deadline: Duration) -> Simulation {
    wait_for(&sims(client), name, deadline, &format!("{want:?}"), move |s: Option<&Simulation>| {
        s.and_then(phase) == Some(want)
    })
    .await
}

/// Deletes a Simulation and checks, within a bound, that nothing of it is left.
async fn delete_sim(client: &Client, name: &str) {
    delete_and_wait(&sims(client), name, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("Simulation {name} was not deleted: {e}"));
    assert_nothing_left(client, name).await;
}

/// No Job, root, virtual namespace, webhook configuration, Service, Secret or ConfigMap of `sim`.
async fn assert_nothing_left(client: &Client, sim: &str) {
    let by_sim = ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={sim}"));
    let mut left = vec![];
    macro_rules! check {
        ($api:expr, $kind:literal) => {
            for o in $api.list(&by_sim).await.unwrap_or_else(|e| panic!("list {}: {e}", $kind)).items {
                left.push(format!("{} {}", $kind, o.name_any()));
            }
        };
    }
    check!(Api::<Job>::namespaced(client.clone(), NS), "Job");
    check!(Api::<Service>::namespaced(client.clone(), NS), "Service");
    check!(Api::<Secret>::namespaced(client.clone(), NS), "Secret");
    check!(Api::<ConfigMap>::namespaced(client.clone(), NS), "ConfigMap");
    check!(Api::<SimulationRoot>::all(client.clone()), "SimulationRoot");
    check!(Api::<Namespace>::all(client.clone()), "Namespace");
    check!(Api::<MutatingWebhookConfiguration>::all(client.clone()), "MutatingWebhookConfiguration");
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={sim}")))
        .await
        .expect("list driver pods");
    left.extend(pods.items.iter().map(|p| format!("Pod {}", p.name_any())));
    assert!(left.is_empty(), "Simulation {sim} left: {left:?}");
}

/// A ConfigMap in `namespace` holding the example trace under key `shop-burst.json`.
async fn trace_config_map(client: &Client, namespace: &str) {
    let trace = std::fs::read_to_string(repo().join("examples/traces/shop-burst.json")).expect("example trace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm: ConfigMap = object(json!({"metadata": {"name": "shop-burst"}, "data": {"shop-burst.json": trace}}));
    cms.patch("shop-burst", &PatchParams::apply(MANAGER).force(), &Patch::Apply(&cm)).await.expect("trace ConfigMap");
}

fn trace_spec(namespace: &str, speed: f64, repetitions: i32) -> Value {
    json!({"source": {"trace": {"configMapRef": {"namespace": namespace, "name": "shop-burst", "key": "shop-burst.json"}}},
        "speed": speed, "repetitions": repetitions})
}

/// A namespace for the test's own objects (trace ConfigMaps), removed afterwards.
async fn scratch_namespace(client: &Client) -> String {
    let name = unique("op-e2e");
    let ns: Namespace = object(json!({"metadata": {"name": name, "labels": {"rehearsal.dev/e2e": "true"}}}));
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("scratch namespace");
    name
}

/// The process id the runner started for a pod's first container.
fn pid_of(pod: &Pod) -> Option<i32> {
    let id = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.container_id.clone()?;
    id.strip_prefix("rehearsal-runner://")?.parse().ok()
}

async fn driver_pod(client: &Client, sim: &str, run: u32) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let job = format!("{sim}-run-{run}");
    poll_until(Duration::from_secs(60), &format!("the driver pod of {job} running"), || async {
        let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.ok()?;
        list.items
            .into_iter()
            .find(|p| pid_of(p).is_some() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await
}

/// The kstatus verdict of a live Simulation, by sigs.k8s.io/cli-utils itself (the Go command
/// that e2e/gitops/build.sh builds): "InProgress", "Current", "Failed", ...
async fn kstatus(name: &str) -> String {
    let build = repo().join("e2e/gitops/build.sh");
    let out = Command::new(&build).output().await.unwrap_or_else(|e| panic!("{}: {e}", build.display()));
    assert!(out.status.success(), "e2e/gitops/build.sh: {}", String::from_utf8_lossy(&out.stderr));
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (ok, json) = kubectl(&["get", "simulation", name, "-o", "json"]).await;
    assert!(ok, "{json}");
    let mut child = Command::new(&bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(json.as_bytes()).await.expect("write the object to kstatus");
    }
    let out = child.wait_with_output().await.expect("kstatus");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split(':').next().unwrap_or_default().trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// A trace Simulation with repetitions 2: two Jobs, two runs, Succeeded, Ready, columns filled,
/// pods mutated through the Service-referenced webhook.
async fn trace_with_two_repetitions(client: Client) {
    let scratch = scratch_namespace(&client).await;
    trace_config_map(&client, &scratch).await;
    let name = unique("two-runs");
    create_sim(&client, &name, trace_spec(&scratch, 4.0, 2)).await;

    // While it runs: the configuration refers to the Service, and the run's pods are mutated.
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mwc = poll_until(Duration::from_secs(60), "the run's webhook configuration", || async {
        mwcs.get_opt(&format!("rehearsal-{name}-run-0")).await.ok()?
    })
    .await;
    let hook = &mwc.webhooks.as_ref().expect("webhooks")[0];
    assert_eq!(hook.client_config.url, None, "the operator's configuration uses a service reference");
    let svc = hook.client_config.service.as_ref().expect("service reference");
    assert_eq!((svc.namespace.as_str(), svc.name.as_str()), (NS, format!("rehearsal-{name}").as_str()));
    let bundle = String::from_utf8_lossy(&hook.client_config.ca_bundle.as_ref().expect("caBundle").0).to_string();
    assert!(bundle.starts_with("-----BEGIN CERTIFICATE-----"), "caBundle holds PEM: {bundle:.60}");
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "virtual-shop");
    let mutated = poll_until(Duration::from_secs(90), "a replayed pod mutated and on a virtual node", || async {
        let list = pods.list(&ListParams::default().labels(&format!("{SIMULATION_LABEL}={name}"))).await.ok()?;
        list.items
            .into_iter()
            .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| n.starts_with("kwok-node-")))
    })
    .await;
    let spec = mutated.spec.as_ref().expect("pod spec");
    assert_eq!(spec.node_selector.as_ref().and_then(|s| s.get("type")).map(String::as_str), Some("virtual"));
    assert_eq!(kstatus(&name).await, "InProgress", "kstatus while running");

    let done = wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(180)).await;
    let st = done.status.clone().expect("status");
    assert_eq!(st.observed_generation, done.metadata.generation);
    assert_eq!((st.completed_runs, st.runs_summary.as_deref()), (Some(2), Some("2/2")));
    assert_eq!(st.runs.len(), 2, "{:?}", st.runs);
    for (i, run) in st.runs.iter().enumerate() {
        assert_eq!(run.index, i as i32);
        assert_eq!(run.phase.as_deref(), Some("Succeeded"), "{run:?}");
        assert_eq!(run.job_name.as_deref(), Some(format!("{name}-run-{i}").as_str()));
        assert!(run.start_time.is_some() && run.completion_time.is_some(), "{run:?}");
        assert!(run.summary.as_deref().is_some_and(|s| s.contains("replayed 5 of 5 events")), "{run:?}");
    }
    assert!(st.runs[1].start_time >= st.runs[0].completion_time, "run 2 starts after run 1 ends");
    assert_eq!(condition(&done, "Ready").map(|c| c.0), Some("True".into()));
    assert_eq!(condition(&done, "Stalled").map(|c| c.0), Some("False".into()));
    assert_eq!(condition(&done, "Reconciling").map(|c| c.0), Some("False".into()));
    assert_eq!(condition(&done, "Replay").map(|c| c.0), Some("True".into()), "the driver's stage conditions stay");
    assert_eq!(kstatus(&name).await, "Current", "kstatus once succeeded");
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let list =
        jobs.list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={name}"))).await.expect("jobs");
    assert_eq!(list.items.len(), 2, "one Job per run");

    // The printer columns show real values.
    let (ok, table) = kubectl(&["get", "simulation", &name]).await;
    assert!(ok, "{table}");
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    assert!(row.contains("Succeeded") && row.contains("2/2") && row.contains("5/5 events"), "{table}");
    // Events, as kubectl describe shows them.
    let (_, described) = kubectl(&["describe", "simulation", &name]).await;
    for reason in ["RunStarted", "RunSucceeded", "Succeeded"] {
        assert!(described.contains(reason), "describe shows no {reason} event:\n{described}");
    }
    delete_sim(&client, &name).await;
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

/// An s3:// trace with credentials from a Secret, and an http:// trace served by the test.
async fn s3_and_http_sources(client: Client) {
    let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
    let trace = std::fs::read(repo().join("examples/traces/shop-burst.json")).expect("example trace");
    let key = format!("{}/shop-burst.json", unique("op-traces"));
    rehearsal_e2e::s3_client()
        .await
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(trace.clone().into())
        .send()
        .await
        .expect("upload the trace to MinIO");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret_name = unique("s3-creds");
    let secret: Secret = object(json!({"metadata": {"name": secret_name}, "stringData": {
        "AWS_ACCESS_KEY_ID": sandbox_env("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": sandbox_env("AWS_SECRET_ACCESS_KEY")}}));
    secrets.create(&PostParams::default(), &secret).await.expect("credentials Secret");
    let name = unique("s3-trace");
    create_sim(
        &client,
        &name,
        json!({"source": {"trace": {"uri": format!("s3://{bucket}/{key}")}}, "speed": 8,
        "artifacts": {"bucket": bucket, "endpoint": sandbox_env("AWS_ENDPOINT_URL"), "region": "us-east-1",
                      "credentialsSecret": {"name": secret_name}}}),
    )
    .await;
    let done = wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(120)).await;
    assert_eq!(done.status.as_ref().and_then(|s| s.completed_runs), Some(1));
    delete_sim(&client, &name).await;
    let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;

    // http://: a one-shot server on loopback that the driver pod (a process here) reaches.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", trace.len());
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&trace).await;
        }
    });
    let name = unique("http-trace");
    create_sim(
        &client,
        &name,
        json!({"source": {"trace": {"uri": format!("http://{addr}/shop-burst.json")}}, "speed": 8}),
    )
    .await;
    wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(120)).await;
    server.abort();
    delete_sim(&client, &name).await;
}

/// A trace of almost 1 MiB (the most a ConfigMap holds) through `configMapRef`: copied into the
/// operator's namespace, mounted into the driver Job, replayed.
async fn one_mib_config_map_trace(client: Client) {
    let scratch = scratch_namespace(&client).await;
    let objects: Vec<Value> = (0..10)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("blob-{i}"), "namespace": "big"}, "data": {"blob": "x".repeat(100_000)}})
        })
        .collect();
    let trace = json!({"version": 2, "config": {"trackedObjects": {}}, "events": [
        {"ts": 1_767_225_600, "applied_objs": objects, "deleted_objs": []}]});
    let text = serde_json::to_string(&trace).expect("trace JSON");
    assert!(text.len() > 1_000_000 && text.len() < 1_048_576, "{} bytes", text.len());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &scratch);
    let cm: ConfigMap = object(json!({"metadata": {"name": "big"}, "data": {"big.json": text}}));
    cms.create(&PostParams::default(), &cm).await.expect("a ConfigMap of almost 1 MiB");
    let name = unique("one-mib");
    create_sim(&client, &name, json!({"source": {"trace": {"configMapRef": {"namespace": scratch, "name": "big", "key": "big.json"}}}, "speed": 10})).await;
    let done = wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(120)).await;
    let summary = done.status.and_then(|s| s.runs.first().and_then(|r| r.summary.clone())).unwrap_or_default();
    assert!(summary.contains("10 objects applied"), "{summary}");
    delete_sim(&client, &name).await;
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

fn scenario_object(name: &str, namespace: &str, replicas: i32) -> Scenario {
    object(json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Scenario", "metadata": {"name": name},
        "spec": {"timestep": 2, "namespace": namespace, "runId": name,
            "manifests": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}],
            "steps": [
                {"name": "1", "actions": [{"type": "K8S_SCALE", "data": {"name": "web", "replicas": replicas}}]},
                {"name": "2", "actions": [{"type": "K8S_SCALE", "data": {"name": "web", "replicas": 1}}]}]}}))
}

/// A Scenario Simulation waits (Stalled) for a missing Scenario, runs once it exists and is
/// valid, and an invalid Scenario's first problem is named.
async fn scenarios(client: Client) {
    let scenarios: Api<Scenario> = Api::all(client.clone());
    let scn = unique("burst");
    let name = unique("scn-sim");
    create_sim(&client, &name, json!({"source": {"scenarioRef": {"name": scn}}, "speed": 4})).await;
    let stalled =
        wait_for(&sims(&client), &name, Duration::from_secs(30), "Stalled (no Scenario)", |s: Option<&Simulation>| {
            s.and_then(|s| condition(s, "Stalled")).is_some_and(|c| c.0 == "True" && c.1 == "ScenarioNotFound")
        })
        .await;
    let msg = condition(&stalled, "Stalled").map(|c| c.2).unwrap_or_default();
    assert!(msg.contains("spec.source.scenarioRef.name") && msg.contains(&scn), "{msg}");

    // An invalid Scenario (a scale of a Deployment it does not create): the problem is named.
    let mut bad = scenario_object(&scn, &format!("{scn}-ns"), 3);
    bad.spec.steps[0].actions[0].data.as_mut().expect("data").name = Some("nope".into());
    scenarios.create(&PostParams::default(), &bad).await.expect("create the invalid Scenario");
    let stalled = wait_for(
        &sims(&client),
        &name,
        Duration::from_secs(30),
        "Stalled (invalid Scenario)",
        |s: Option<&Simulation>| s.and_then(|s| condition(s, "Stalled")).is_some_and(|c| c.1 == "ScenarioInvalid"),
    )
    .await;
    let msg = condition(&stalled, "Stalled").map(|c| c.2).unwrap_or_default();
    assert!(msg.contains("nope"), "the Scenario's problem is named: {msg}");
    let (_, table) = kubectl(&["get", "scenario", &scn]).await;
    assert!(table.lines().nth(1).unwrap_or_default().contains("False"), "Valid column: {table}");

    // Fixed: the Simulation runs without being touched.
    let fixed = scenario_object(&scn, &format!("{scn}-ns"), 3);
    scenarios.patch(&scn, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&fixed)).await.expect("fix the Scenario");
    let done = wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(120)).await;
    assert_eq!(condition(&done, "Ready").map(|c| c.0), Some("True".into()));
    let (_, table) = kubectl(&["get", "scenario", &scn]).await;
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    assert!(row.contains("True") && row.contains(" 2 ") && row.contains("2s"), "Valid/Steps/Duration columns: {table}");
    delete_sim(&client, &name).await;
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&format!("{scn}-ns"))
            .await
            .expect("get")
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
    );
    let _ = scenarios.delete(&scn, &DeleteParams::default()).await;
}

/// The status and message of a Scenario's Valid condition.
fn valid(s: &Scenario) -> Option<(String, String)> {
    let c = s.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Valid")?;
    Some((c.status.clone(), c.message.clone()))
}

/// Waits until the Scenario's Valid condition has `status` for its current generation.
async fn wait_valid(scenarios: &Api<Scenario>, name: &str, status: &'static str) -> Scenario {
    wait_for(scenarios, name, Duration::from_secs(60), &format!("Valid={status}"), move |s: Option<&Scenario>| {
        s.is_some_and(|s| {
            let current = s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation;
            current && valid(s).is_some_and(|(st, _)| st == status)
        })
    })
    .await
}

/// A Scenario the size of a production export (1,000 actions in one step, 10,000 in all) is
/// judged by the operator: one bad action is named in Valid by its step, action and field, and
/// fixing it makes the Scenario valid. Each rule moved out of the schema (what an action's type
/// needs) is named in Valid too.
async fn big_and_invalid_scenarios(client: Client) {
    use rehearsal_crds::testdata::{BIG_STEPS, big_scenario, invalid_actions};
    let scenarios: Api<Scenario> = Api::all(client.clone());
    let name = unique("big-scn");
    let mut bad = big_scenario(&name);
    bad.pointer_mut("/spec/steps/0/actions/517/data")
        .and_then(Value::as_object_mut)
        .expect("action 517")
        .remove("replicas");
    scenarios.create(&PostParams::default(), &object(bad)).await.expect("create the big Scenario");
    let judged = wait_valid(&scenarios, &name, "False").await;
    assert_eq!(
        valid(&judged).map(|v| v.1).unwrap_or_default(),
        r#"spec.steps[0].actions[517] (step "1", K8S_SCALE): data.replicas is missing"#
    );
    assert_eq!(judged.status.as_ref().and_then(|s| s.steps), Some(BIG_STEPS as i64));
    let (_, table) = kubectl(&["get", "scenario", &name]).await;
    assert!(table.lines().nth(1).unwrap_or_default().contains("False"), "Valid column: {table}");

    let fixed: Scenario = object(big_scenario(&name));
    scenarios
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&fixed))
        .await
        .expect("fix the big Scenario");
    let judged = wait_valid(&scenarios, &name, "True").await;
    assert_eq!(valid(&judged).map(|v| v.1).unwrap_or_default(), "the scenario passed validation");
    let _ = scenarios.delete(&name, &DeleteParams::default()).await;

    let mut wrong = vec![];
    for case in invalid_actions() {
        let name = unique("invalid-action");
        let mut scenario: Scenario = object(case.object.clone());
        scenario.metadata.name = Some(name.clone());
        if let Err(e) = scenarios.create(&PostParams::default(), &scenario).await {
            wrong.push(format!("{}: refused: {e}", case.name));
            continue;
        }
        let judged = wait_valid(&scenarios, &name, "False").await;
        let message = valid(&judged).map(|v| v.1).unwrap_or_default();
        if message != case.valid {
            wrong.push(format!("{}: Valid says {message:?}, want {:?}", case.name, case.valid));
        }
        let _ = scenarios.delete(&name, &DeleteParams::default()).await;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Two Simulations at once: the second is Queued behind the first, then runs.
async fn queue_of_two(client: Client) {
    let scratch = scratch_namespace(&client).await;
    trace_config_map(&client, &scratch).await;
    let first = unique("first");
    let second = unique("second");
    create_sim(&client, &first, trace_spec(&scratch, 4.0, 1)).await;
    wait_for(&sims(&client), &first, Duration::from_secs(30), "holding a slot", |s: Option<&Simulation>| {
        matches!(s.and_then(phase), Some(Phase::Initializing | Phase::Running))
    })
    .await;
    create_sim(&client, &second, trace_spec(&scratch, 4.0, 1)).await;
    let queued = wait_phase(&client, &second, Phase::Queued, Duration::from_secs(30)).await;
    let msg = condition(&queued, "Reconciling").map(|c| c.2).unwrap_or_default();
    assert!(msg.contains(&first), "the message names the Simulation ahead: {msg}");
    assert_eq!(kstatus(&second).await, "InProgress", "kstatus while queued");
    let done_first = wait_phase(&client, &first, Phase::Succeeded, Duration::from_secs(120)).await;
    let done_second = wait_phase(&client, &second, Phase::Succeeded, Duration::from_secs(120)).await;
    let end_first = done_first.status.and_then(|s| s.completion_time).expect("first completion");
    let start_second = done_second.status.and_then(|s| s.start_time).expect("second start");
    assert!(start_second >= end_first, "the second started after the first finished");
    delete_sim(&client, &first).await;
    delete_sim(&client, &second).await;
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

/// Deleting a Simulation mid-run leaves nothing, within a bound.
async fn delete_mid_run(client: Client) {
    let scratch = scratch_namespace(&client).await;
    trace_config_map(&client, &scratch).await;
    let name = unique("deleted");
    create_sim(&client, &name, trace_spec(&scratch, 1.0, 1)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "virtual-shop");
    poll_until(Duration::from_secs(90), "replayed pods running", || async {
        let list = pods.list(&ListParams::default().labels(&format!("{SIMULATION_LABEL}={name}"))).await.ok()?;
        (!list.items.is_empty()).then_some(())
    })
    .await;
    let started = Instant::now();
    delete_sim(&client, &name).await;
    eprintln!("delete mid-run: everything gone {:.1} s after the delete", started.elapsed().as_secs_f64());
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

/// A driver killed with SIGKILL, and separately a driver pod deleted: the run is Failed with the
/// reason, the operator cleans up what the driver left, the Simulation is Failed and Stalled.
async fn driver_dies(client: Client) {
    let scratch = scratch_namespace(&client).await;
    trace_config_map(&client, &scratch).await;
    for how in ["kill", "delete-pod"] {
        let name = unique(&format!("dies-{how}"));
        create_sim(&client, &name, trace_spec(&scratch, 1.0, 2)).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "virtual-shop");
        poll_until(Duration::from_secs(90), "replayed pods exist", || async {
            let list = pods.list(&ListParams::default().labels(&format!("{SIMULATION_LABEL}={name}"))).await.ok()?;
            (!list.items.is_empty()).then_some(())
        })
        .await;
        let driver = driver_pod(&client, &name, 0).await;
        match how {
            "kill" => {
                let pid = pid_of(&driver).expect("driver pid");
                let (ok, out) = (
                    Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                        .await
                        .map(|s| s.success())
                        .unwrap_or(false),
                    String::new(),
                );
                assert!(ok, "kill -9 {pid} {out}");
            }
            _ => {
                Api::<Pod>::namespaced(client.clone(), NS)
                    .delete(&driver.name_any(), &DeleteParams::default())
                    .await
                    .expect("delete the driver pod");
            }
        }
        let failed = wait_phase(&client, &name, Phase::Failed, Duration::from_secs(120)).await;
        let st = failed.status.clone().expect("status");
        let run = &st.runs[0];
        assert_eq!(run.phase.as_deref(), Some("Failed"), "{run:?}");
        let summary = run.summary.clone().unwrap_or_default();
        let expected = if how == "kill" { "SIGKILL" } else { "driver pod" };
        assert!(summary.contains(expected), "{how}: the reason is named: {summary}");
        assert_eq!(st.runs.len(), 1, "no second run after a failure: {:?}", st.runs);
        let stalled = condition(&failed, "Stalled").expect("Stalled");
        assert_eq!((stalled.0.as_str(), stalled.1.as_str()), ("True", "RunFailed"));
        assert_eq!(kstatus(&name).await, "Failed", "kstatus once failed");
        // The operator's cleanup: no root, no virtual namespace, no webhook configuration now.
        let roots: Api<SimulationRoot> = Api::all(client.clone());
        assert!(
            roots
                .list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={name}")))
                .await
                .expect("roots")
                .items
                .is_empty()
        );
        let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        assert!(
            mwcs.list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={name}")))
                .await
                .expect("mwcs")
                .items
                .is_empty()
        );
        let (_, described) = kubectl(&["describe", "simulation", &name]).await;
        assert!(described.contains("RunFailed"), "{described}");
        delete_sim(&client, &name).await;
    }
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

/// The leader killed mid-run: the standby takes over and the run completes once.
async fn leader_killed_mid_run(client: Client) {
    let scratch = scratch_namespace(&client).await;
    trace_config_map(&client, &scratch).await;
    let name = unique("leader");
    let before = leader(&client).await;
    // Exactly one replica says it leads.
    let mut leading = 0;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for p in
        pods.list(&ListParams::default().labels("app.kubernetes.io/name=rehearsal-operator")).await.expect("pods").items
    {
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("pod ip");
        let body = reqwest_get(&format!("http://{ip}:8080/metrics")).await;
        if body.lines().any(|l| l.trim() == "rehearsal_leader 1") {
            leading += 1;
        }
    }
    assert_eq!(leading, 1, "exactly one replica leads");

    create_sim(&client, &name, trace_spec(&scratch, 2.0, 1)).await;
    driver_pod(&client, &name, 0).await;
    let pid = pid_of(&before).expect("leader pid");
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status().await.expect("kill");
    assert!(status.success());
    let killed_at = Instant::now();
    let after = poll_until(Duration::from_secs(60), "another replica leads", || async {
        let l = leader(&client).await;
        (l.name_any() != before.name_any()).then_some(l)
    })
    .await;
    eprintln!(
        "leader {} killed; {} leads after {:.1} s",
        before.name_any(),
        after.name_any(),
        killed_at.elapsed().as_secs_f64()
    );
    let done = wait_phase(&client, &name, Phase::Succeeded, Duration::from_secs(120)).await;
    let st = done.status.expect("status");
    assert_eq!((st.runs.len(), st.completed_runs), (1, Some(1)), "{:?}", st.runs);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let list =
        jobs.list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={name}"))).await.expect("jobs");
    assert_eq!(list.items.len(), 1, "no duplicate Job");
    delete_sim(&client, &name).await;
    // The Deployment brings the killed replica back as a standby.
    two_ready_replicas(&client).await;
    // A graceful stop (the pod deleted: SIGTERM) releases the Lease, so the standby takes over at
    // once instead of after the lease expires.
    let current = leader(&client).await;
    let stopped_at = Instant::now();
    pods.delete(&current.name_any(), &DeleteParams::default()).await.expect("delete the leader pod");
    let next = poll_until(Duration::from_secs(15), "the standby leads after a graceful stop", || async {
        let l = leader(&client).await;
        (l.name_any() != current.name_any()).then_some(l)
    })
    .await;
    eprintln!(
        "leader {} stopped (SIGTERM); {} leads after {:.1} s",
        current.name_any(),
        next.name_any(),
        stopped_at.elapsed().as_secs_f64()
    );
    two_ready_replicas(&client).await;
    let _ = delete_and_wait(&Api::<Namespace>::all(client.clone()), &scratch, Duration::from_secs(60)).await;
}

async fn reqwest_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).expect("path");
    let mut sock = tokio::net::TcpStream::connect(host).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
    sock.write_all(format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut body = String::new();
    sock.read_to_string(&mut body).await.expect("read");
    body
}

/// Bad Simulations get clear status messages; the spec cannot change except `suspend`.
async fn bad_simulations_and_spec_edits(client: Client) {
    let name = unique("no-secret");
    create_sim(
        &client,
        &name,
        json!({"source": {"trace": {"uri": "s3://b/t"}},
        "artifacts": {"bucket": "bucket", "credentialsSecret": {"name": "missing-secret"}}}),
    )
    .await;
    let stalled = wait_for(&sims(&client), &name, Duration::from_secs(30), "Stalled", |s: Option<&Simulation>| {
        s.and_then(|s| condition(s, "Stalled")).is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, reason, msg) = condition(&stalled, "Stalled").expect("stalled");
    assert_eq!(reason, "SecretNotFound");
    assert!(msg.contains("spec.artifacts.credentialsSecret.name") && msg.contains("missing-secret"), "{msg}");
    assert_eq!(phase(&stalled), Some(Phase::Pending));
    let (_, described) = kubectl(&["describe", "simulation", &name]).await;
    assert!(described.contains("SecretNotFound"), "the stall is an Event too:\n{described}");

    // The spec is immutable: a changed speed is refused with a message that says what to do.
    let err = sims(&client)
        .patch(&name, &PatchParams::apply(MANAGER), &Patch::Merge(json!({"spec": {"speed": 3}})))
        .await
        .expect_err("spec edit refused");
    assert!(err.to_string().contains("create a new Simulation"), "{err}");
    // suspend may change.
    sims(&client)
        .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
        .await
        .expect("suspend is allowed");
    let suspended = wait_for(&sims(&client), &name, Duration::from_secs(30), "Suspended", |s: Option<&Simulation>| {
        s.and_then(|s| condition(s, "Reconciling")).is_some_and(|c| c.1 == "Suspended")
    })
    .await;
    assert_eq!(condition(&suspended, "Stalled").map(|c| c.0), Some("False".into()));
    delete_sim(&client, &name).await;

    // A file trace, with no --trace-file-root: refused before any Job, naming the field.
    let name = unique("file-trace");
    create_sim(&client, &name, json!({"source": {"trace": {"uri": "file:///etc/passwd"}}})).await;
    let stalled = wait_for(&sims(&client), &name, Duration::from_secs(30), "Stalled", |s: Option<&Simulation>| {
        s.and_then(|s| condition(s, "Stalled")).is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, reason, msg) = condition(&stalled, "Stalled").expect("stalled");
    assert_eq!(reason, "FileTracesDisabled");
    assert!(msg.contains("spec.source.trace.uri") && msg.contains("--trace-file-root"), "{msg}");
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let made =
        jobs.list(&ListParams::default().labels(&format!("{OWNED_BY_SIMULATION_LABEL}={name}"))).await.expect("jobs");
    assert!(made.items.is_empty(), "a Job was made for a refused file trace");
    delete_sim(&client, &name).await;
}

/// Least privilege, checked by the API server itself.
async fn rbac(_client: Client) {
    let driver = "system:serviceaccount:rehearsal-system:rehearsal-driver";
    let operator = "system:serviceaccount:rehearsal-system:rehearsal-operator";
    for (who, args, want) in [
        (driver, vec!["get", "secrets", "-n", "kube-system"], "no"),
        (driver, vec!["get", "secrets", "-n", NS], "no"),
        (driver, vec!["create", "rolebindings", "-n", "virtual-x"], "no"),
        (driver, vec!["create", "clusterroles"], "no"),
        (driver, vec!["create", "deployments", "-n", "virtual-x"], "yes"),
        (driver, vec!["patch", "simulations", "--subresource=status"], "yes"),
        (driver, vec!["update", "simulations"], "no"),
        (operator, vec!["create", "clusterrolebindings"], "no"),
        (operator, vec!["get", "secrets", "-n", "kube-system"], "no"),
        (operator, vec!["create", "jobs", "-n", NS], "yes"),
        (operator, vec!["create", "jobs", "-n", "default"], "no"),
    ] {
        let mut a = vec!["auth", "can-i", "--as", who];
        a.extend(args.iter().copied());
        let (_, out) = kubectl(&a).await;
        // stderr may add a warning (e.g. "not namespace scoped"); the answer is its own line.
        let answer = out.lines().map(str::trim).find(|l| *l == "yes" || *l == "no");
        assert_eq!(answer, Some(want), "kubectl {}: {out}", a.join(" "));
    }
    // RBAC cannot deny, so the policy does: the driver cannot write in kube-system.
    // A new policy takes effect a moment after it is created (the API server loads it).
    let out = poll_until(Duration::from_secs(30), "the driver's namespace policy in effect", || async {
        let (ok, out) =
            kubectl(&["create", "configmap", "probe", "-n", "kube-system", "--dry-run=server", "--as", driver]).await;
        (!ok).then_some(out)
    })
    .await;
    assert!(out.contains("may not write in namespace kube-system"), "{out}");
    // ...and a virtual namespace stays writable.
    let (ok, out) = kubectl(&["create", "namespace", "virtual-rbac-probe", "--dry-run=server", "--as", driver]).await;
    assert!(ok, "{out}");
    // Nobody is bound to cluster-admin by the install.
    let (_, out) = kubectl(&[
        "get",
        "clusterrolebindings",
        "-o",
        "jsonpath={range .items[?(@.roleRef.name==\"cluster-admin\")]}{.subjects[*].name}{\"\\n\"}{end}",
    ])
    .await;
    assert!(!out.contains("rehearsal"), "{out}");
}

// ---------------------------------------------------------------------------------------------

async fn case<F, Fut>(failures: &mut Vec<String>, name: &str, client: &Client, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    eprintln!("operator case {name}: start");
    match AssertUnwindSafe(body(client.clone())).catch_unwind().await {
        Ok(()) => eprintln!("operator case {name}: ok ({:.1} s)", started.elapsed().as_secs_f64()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("operator case {name}: FAILED: {msg}");
            failures.push(format!("{name}: {msg}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_end_to_end() {
    let client = client().await;
    let installed = AssertUnwindSafe(install(&client)).catch_unwind().await;
    let mut failures = vec![];
    if installed.is_ok() {
        case(&mut failures, "rbac", &client, rbac).await;
        case(&mut failures, "trace_with_two_repetitions", &client, trace_with_two_repetitions).await;
        case(&mut failures, "scenarios", &client, scenarios).await;
        case(&mut failures, "big_and_invalid_scenarios", &client, big_and_invalid_scenarios).await;
        case(&mut failures, "queue_of_two", &client, queue_of_two).await;
        case(&mut failures, "bad_simulations_and_spec_edits", &client, bad_simulations_and_spec_edits).await;
        case(&mut failures, "s3_and_http_sources", &client, s3_and_http_sources).await;
        case(&mut failures, "one_mib_config_map_trace", &client, one_mib_config_map_trace).await;
        case(&mut failures, "delete_mid_run", &client, delete_mid_run).await;
        case(&mut failures, "driver_dies", &client, driver_dies).await;
        case(&mut failures, "leader_killed_mid_run", &client, leader_killed_mid_run).await;
    } else {
        failures.push("install: kubectl apply -k config/default did not bring up the operator".into());
    }
    // Whatever happened: no Simulation of these tests, and no operator, stays.
    for s in sims(&client).list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        let _ = sims(&client).delete(&s.name_any(), &DeleteParams::default()).await;
    }
    // Not poll_until: a timeout here must still uninstall, and name what stayed.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = sims(&client).list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        if left.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let names: Vec<String> = left
                .iter()
                .map(|s| {
                    let finalizers = s.metadata.finalizers.clone().unwrap_or_default().join(",");
                    let phase = s.status.as_ref().and_then(|st| st.phase);
                    format!("{} (finalizers [{finalizers}], phase {phase:?})", s.name_any())
                })
                .collect();
            failures.push(format!("Simulations not deleted within 120 s: {}", names.join("; ")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    uninstall(&client).await;
    assert!(failures.is_empty(), "{} operator case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
