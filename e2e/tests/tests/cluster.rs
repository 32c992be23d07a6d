//! The local control plane behaves like a cluster: virtual nodes run pods through KWOK, the
//! lifetime annotation completes pods, garbage collection follows owner references, and the
//! audit log records the tests' own requests.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use rehearsal_e2e::{MANAGER, object, poll_until, virtual_placement, wait_for, wait_gone, with_namespace};
use serde_json::json;

fn pods_of(pods: &[Pod]) -> (usize, usize) {
    let running = pods.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
    let on_kwok = pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| n.starts_with("kwok-node-")))
        .count();
    (running, on_kwok)
}

#[tokio::test]
async fn deployment_of_50_runs_on_virtual_nodes_and_scales_to_zero() {
    with_namespace("e2e-deploy", |client, ns| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut pod_spec = virtual_placement();
        pod_spec["containers"] = json!([{"name": "web", "image": "nginx:latest"}]);
        let deploy: Deployment = object(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 50,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}
            }
        }));
        let start = Instant::now();
        deployments.create(&PostParams::default(), &deploy).await.expect("create deployment");
        let lp = ListParams::default().labels("app=web");
        poll_until(Duration::from_secs(120), "50 pods Running on kwok nodes", || async {
            let list = pods.list(&lp).await.ok()?;
            let (running, on_kwok) = pods_of(&list.items);
            (list.items.len() == 50 && running == 50 && on_kwok == 50).then_some(())
        })
        .await;
        eprintln!("50 pods Running on kwok nodes after {:?}", start.elapsed());

        deployments
            .patch(
                "web",
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 0}
                })),
            )
            .await
            .expect("scale to 0");
        poll_until(Duration::from_secs(120), "every pod gone after scaling to 0", || async {
            pods.list(&lp).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn lifetime_annotation_completes_the_pod() {
    with_namespace("e2e-lifetime", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut spec = virtual_placement();
        spec["containers"] = json!([{"name": "job", "image": "busybox"}]);
        let pod: Pod = object(json!({
            "metadata": {"name": "short", "annotations": {"simkube.io/lifetime-seconds": "2"}},
            "spec": spec
        }));
        // Watch before creating, so the Running and Succeeded moments are seen as they happen.
        let wc = watcher::Config::default().fields("metadata.name=short");
        let mut phases = Box::pin(watcher(pods.clone(), wc).applied_objects());
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
        let mut running_at = None;
        let succeeded_at = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(p) = phases.try_next().await.expect("watch pod") {
                match p.status.and_then(|s| s.phase).as_deref() {
                    Some("Running") if running_at.is_none() => running_at = Some(Instant::now()),
                    Some("Succeeded") => return Instant::now(),
                    Some("Failed") => panic!("pod failed instead of completing"),
                    _ => {}
                }
            }
            panic!("watch ended")
        })
        .await
        .expect("pod Succeeded within 60 s");
        let running_at = running_at.expect("pod was seen Running before Succeeded");
        let lifetime = succeeded_at - running_at;
        eprintln!("Running -> Succeeded in {lifetime:?}");
        assert!(
            lifetime >= Duration::from_millis(1500) && lifetime <= Duration::from_secs(5),
            "lifetime {lifetime:?}, expected about 2 s"
        );
    })
    .await;
}

#[tokio::test]
async fn pod_without_lifetime_keeps_running() {
    with_namespace("e2e-forever", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut spec = virtual_placement();
        spec["containers"] = json!([{"name": "web", "image": "nginx"}]);
        pods.create(&PostParams::default(), &object(json!({"metadata": {"name": "web"}, "spec": spec})))
            .await
            .expect("create");
        wait_for(&pods, "web", Duration::from_secs(60), "Running", |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await;
        // Watching for longer than a lifetime-annotated pod takes to complete, it never ends.
        let started = Instant::now();
        let terminal = |p: Option<&Pod>| {
            matches!(p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
        };
        let watched =
            tokio::time::timeout(Duration::from_secs(4), await_condition(pods.clone(), "web", terminal)).await;
        assert!(watched.is_err(), "pod without a lifetime ended after {:?}", started.elapsed());
    })
    .await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents() {
    with_namespace("e2e-gc", |client, ns| async move {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let owner =
            cms.create(&PostParams::default(), &object(json!({"metadata": {"name": "owner"}}))).await.expect("owner");
        let uid = owner.metadata.uid.clone().expect("uid");
        let mut uids = vec![];
        for i in 0..3 {
            let dep: ConfigMap = object(json!({"metadata": {"name": format!("dep-{i}"), "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ]}}));
            let created = cms.create(&PostParams::default(), &dep).await.expect("dependent");
            uids.push(created.metadata.uid.clone().expect("uid"));
        }
        cms.delete("owner", &DeleteParams::background()).await.expect("delete owner");
        for (i, dep_uid) in uids.iter().enumerate() {
            wait_gone(&cms, &format!("dep-{i}"), dep_uid, Duration::from_secs(60)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn audit_log_records_our_create_and_delete() {
    let path = rehearsal_e2e::sandbox_env("REHEARSAL_AUDIT_LOG");
    let mut ns_name = String::new();
    with_namespace("e2e-audit", |client, ns| {
        ns_name = ns.clone();
        async move {
            let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
            cms.create(&PostParams::default(), &object(json!({"metadata": {"name": "audited"}})))
                .await
                .expect("create");
            cms.delete("audited", &DeleteParams::default()).await.expect("delete");
        }
    })
    .await;
    // The log backend writes synchronously, but the delete of the namespace is asynchronous:
    // wait for both of our requests and the namespace delete to be in the file.
    let found = poll_until(Duration::from_secs(30), "audit events for our requests", || {
        let path = path.clone();
        let ns = ns_name.clone();
        async move {
            let text = tokio::fs::read_to_string(&path).await.ok()?;
            let mut verbs = vec![];
            for line in text.lines().filter(|l| l.contains(&ns)) {
                let ev: serde_json::Value = serde_json::from_str(line).ok()?;
                let r = &ev["objectRef"];
                if ev["stage"] == "ResponseComplete" && r["namespace"] == ns.as_str() && r["name"] == "audited" {
                    verbs.push(ev["verb"].as_str().unwrap_or_default().to_string());
                }
                if ev["stage"] == "ResponseComplete" && r["resource"] == "namespaces" && r["name"] == ns.as_str() {
                    verbs.push(format!("namespace-{}", ev["verb"].as_str().unwrap_or_default()));
                }
            }
            let want = ["create", "delete", "namespace-create", "namespace-delete"];
            want.iter().all(|w| verbs.iter().any(|v| v == w)).then_some(verbs)
        }
    })
    .await;
    eprintln!("audit verbs seen: {found:?}");
}

/// The audit log's entries (ResponseComplete) for pods in `ns`, not their subresources, from the
/// current file and the rotated ones beside it: (user, verb, name, code).
async fn pod_audit(path: &str, ns: &str) -> Vec<(String, String, String, i64)> {
    let path = std::path::Path::new(path);
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut files = vec![path.to_path_buf()];
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("audit-") && name.ends_with(".log") {
                files.push(dir.join(name));
            }
        }
    }
    let mut rows = vec![];
    for f in files {
        let Ok(text) = tokio::fs::read_to_string(&f).await else { continue };
        for line in text.lines().filter(|l| l.contains(ns)) {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let r = &ev["objectRef"];
            let whole = r.get("subresource").is_none();
            if ev["stage"] == "ResponseComplete" && r["namespace"] == ns && r["resource"] == "pods" && whole {
                let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                rows.push((
                    s(&ev["user"]["username"]),
                    s(&ev["verb"]),
                    s(&r["name"]),
                    ev["responseStatus"]["code"].as_i64().unwrap_or(0),
                ));
            }
        }
    }
    rows
}

#[tokio::test]
async fn kwok_deletes_only_pods_deleted_gracefully() {
    // A delete at grace 0 writes deletionTimestamp (grace 0) and then removes the pod in the same
    // request. kwok's pod-delete stage must leave such pods alone: deleting them again only gives
    // the API server requests answered 404 (as many as the cleanup's own at 10,000 pods).
    let path = rehearsal_e2e::sandbox_env("REHEARSAL_AUDIT_LOG");
    with_namespace("e2e-kwok-delete", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut spec = virtual_placement();
        spec["containers"] = json!([{"name": "web", "image": "nginx"}]);
        let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        for name in &names {
            let pod: Pod = object(json!({"metadata": {"name": name, "labels": {"app": "kd"}}, "spec": spec}));
            pods.create(&PostParams::default(), &pod).await.expect("create pod");
        }
        let lp = ListParams::default().labels("app=kd");
        poll_until(Duration::from_secs(60), "10 pods Running on kwok nodes", || async {
            let list = pods.list(&lp).await.ok()?;
            let (running, on_kwok) = pods_of(&list.items);
            (running == 10 && on_kwok == 10).then_some(())
        })
        .await;
        // The immediate deletes first: kwok handles its watch's events in order, so once its
        // deletes of the graceful ones are logged, any reaction to the earlier ones is too.
        let (now, graceful) = names.split_at(5);
        for name in now {
            pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
                .await
                .expect("delete at grace 0");
        }
        for name in graceful {
            pods.delete(name, &DeleteParams::default()).await.expect("graceful delete");
        }
        poll_until(Duration::from_secs(60), "every pod gone", || async {
            pods.list(&lp).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
        })
        .await;
        let rows =
            poll_until(Duration::from_secs(30), "kwok's deletes of the 5 graceful pods in the audit log", || {
                let (path, ns) = (path.clone(), ns.clone());
                async move {
                    let rows = pod_audit(&path, &ns).await;
                    let by_kwok =
                        rows.iter().filter(|r| r.0 == "kwok-controller" && r.1 == "delete" && r.3 == 200).count();
                    (by_kwok >= graceful.len()).then_some(rows)
                }
            })
            .await;
        let kwok: Vec<_> = rows.iter().filter(|r| r.0 == "kwok-controller" && r.1 == "delete").collect();
        eprintln!("kwok's pod deletes: {kwok:?}");
        let mut deleted: Vec<&str> = kwok.iter().filter(|r| r.3 == 200).map(|r| r.2.as_str()).collect();
        deleted.sort_unstable();
        assert_eq!(
            deleted,
            graceful.iter().map(String::as_str).collect::<Vec<_>>(),
            "kwok deleted the graceful pods, once each"
        );
        let refused: Vec<_> = kwok.iter().filter(|r| r.3 != 200).collect();
        assert!(refused.is_empty(), "kwok sent deletes for pods already gone: {refused:?}");
    })
    .await;
}

#[tokio::test]
async fn emptying_removes_pods_and_events_and_no_owner_makes_a_pod_again() {
    // The cleanup's emptying (driver/src/emptying.rs) of a namespace where a Deployment, a
    // StatefulSet and a Job run pods on kwok nodes: the owners go first, so no pod is made again;
    // the pods and the Events there before are gone when it returns (the Job's pods once the Job
    // controller lifts its tracking finalizer), the owners soon after.
    let path = rehearsal_e2e::sandbox_env("REHEARSAL_AUDIT_LOG");
    with_namespace("e2e-emptying", |client, ns| async move {
        let uid = Api::<Namespace>::all(client.clone()).get(&ns).await.expect("read namespace").metadata.uid;
        let uid = uid.expect("namespace uid");
        let mut spec = virtual_placement();
        spec["containers"] = json!([{"name": "app", "image": "pause"}]);
        let template =
            |app: &str, spec: &serde_json::Value| json!({"metadata": {"labels": {"app": app}}, "spec": spec});
        let selector = |app: &str| json!({"matchLabels": {"app": app}});
        let made = PostParams::default();
        let deployment: Deployment = object(json!({"metadata": {"name": "web"},
            "spec": {"replicas": 20, "selector": selector("web"), "template": template("web", &spec)}}));
        Api::<Deployment>::namespaced(client.clone(), &ns).create(&made, &deployment).await.expect("deployment");
        let set: StatefulSet = object(json!({"metadata": {"name": "db"},
            "spec": {"replicas": 3, "serviceName": "db", "podManagementPolicy": "Parallel",
                     "selector": selector("db"), "template": template("db", &spec)}}));
        Api::<StatefulSet>::namespaced(client.clone(), &ns).create(&made, &set).await.expect("statefulset");
        let mut job_spec = spec.clone();
        job_spec["restartPolicy"] = json!("Never");
        let job: Job = object(json!({"metadata": {"name": "batch"},
            "spec": {"parallelism": 3, "completions": 3, "template": template("batch", &job_spec)}}));
        Api::<Job>::namespaced(client.clone(), &ns).create(&made, &job).await.expect("job");
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        poll_until(Duration::from_secs(120), "26 pods Running on kwok nodes", || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            (pods_of(&list.items) == (26, 26) && list.items.len() == 26).then_some(())
        })
        .await;

        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let names = |list: Vec<Event>| list.into_iter().filter_map(|e| e.metadata.name).collect::<Vec<_>>();
        let before = names(events.list(&ListParams::default()).await.expect("events").items);
        assert!(!before.is_empty(), "the scheduler and the controllers recorded no events");

        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        // A namespace of that name that is not the run's (another UID) is left alone.
        rehearsal_driver::emptying::empty(&client, &ns, "not-this-namespace", deadline).await;
        assert_eq!(count::<Pod>(&client, &ns).await, Some(26), "emptied another's namespace");
        assert_eq!(count::<Deployment>(&client, &ns).await, Some(1), "deleted another's Deployment");
        rehearsal_driver::emptying::empty(&client, &ns, &uid, deadline).await;
        let after = names(events.list(&ListParams::default()).await.expect("events").items);
        let kept: Vec<_> = before.iter().filter(|n| after.contains(n)).collect();
        assert!(kept.is_empty(), "{} of {} events left after emptying: {kept:?}", kept.len(), before.len());
        // The Job's pods carry its tracking finalizer: marked at once, gone once the Job
        // controller lifts it.
        poll_until(Duration::from_secs(30), "every pod gone", || async {
            pods.list(&ListParams::default()).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
        })
        .await;
        poll_until(Duration::from_secs(60), "the Deployment, ReplicaSets, StatefulSet and Job gone", || async {
            let counts = [
                count::<Deployment>(&client, &ns).await?,
                count::<ReplicaSet>(&client, &ns).await?,
                count::<StatefulSet>(&client, &ns).await?,
                count::<Job>(&client, &ns).await?,
            ];
            (counts == [0; 4]).then_some(())
        })
        .await;

        let rows = poll_until(Duration::from_secs(30), "the deletes of the 26 pods in the audit log", || {
            let (path, ns) = (path.clone(), ns.clone());
            async move {
                let rows = pod_audit(&path, &ns).await;
                let mut gone: Vec<&str> =
                    rows.iter().filter(|r| r.1 == "delete" && r.3 == 200).map(|r| r.2.as_str()).collect();
                gone.sort_unstable();
                gone.dedup();
                (gone.len() >= 26).then_some(rows)
            }
        })
        .await;
        let mut by: std::collections::BTreeMap<(&str, i64), usize> = Default::default();
        for r in rows.iter().filter(|r| r.1 == "delete") {
            *by.entry((r.0.as_str(), r.3)).or_default() += 1;
        }
        eprintln!("pod deletes by sender and answer: {by:?}");
        let creates = rows.iter().filter(|r| r.1 == "create" && r.3 == 201).count();
        assert_eq!(creates, 26, "a pod was made again while its owner was being deleted");
    })
    .await;
}

/// How many objects of kind `K` namespace `ns` holds; None when they cannot be listed.
async fn count<K>(client: &kube::Client, ns: &str) -> Option<usize>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns).list(&ListParams::default()).await.ok().map(|l| l.items.len())
}
