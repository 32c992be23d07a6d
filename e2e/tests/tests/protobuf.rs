//! The collectors read the built-in kinds in protobuf (driver/src/collect/proto.rs): on the
//! live API server, every view read through protobuf is the view read through JSON, field for
//! field, for pods (running and completed), Deployments, ReplicaSets, StatefulSets, Jobs, Events
//! and nodes; and a protobuf watch delivers the changes as they happen.

use std::fmt::Debug;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use rehearsal_driver::collect::proto::Protobuf;
use rehearsal_driver::collect::proto_watch::{self, ProtoApi};
use rehearsal_driver::collect::view::{EventView, NodeView, PodView, WorkloadView};
use rehearsal_e2e::{MANAGER, object, poll_until, virtual_placement, with_namespace};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Lists `json` and `pb` until both hold the same objects at the same resourceVersions (the
/// objects may change between the two lists), then asserts each pair of views is equal; the
/// number of objects compared.
async fn same_views<K>(json: Api<K>, pb: ProtoApi<K>, what: &str) -> usize
where
    K: Resource<DynamicType = ()> + Protobuf + DeserializeOwned + Clone + Debug + Send + 'static,
{
    let versions = |items: &[K]| {
        let mut v: Vec<(String, String)> = items
            .iter()
            .map(|o| (o.meta().uid.clone().unwrap_or_default(), o.meta().resource_version.clone().unwrap_or_default()))
            .collect();
        v.sort();
        v
    };
    let (mut from_json, mut from_pb) =
        poll_until(Duration::from_secs(30), &format!("{what}: one state in both lists"), || async {
            let from_json =
                json.list(&ListParams::default()).await.map_err(|e| eprintln!("{what}: JSON list: {e}")).ok()?.items;
            let (from_pb, _) = pb
                .list(&proto_watch::list_params(&watcher::Config::default(), None))
                .await
                .map_err(|e| eprintln!("{what}: protobuf list: {e}"))
                .ok()?;
            (versions(&from_json) == versions(&from_pb)).then_some((from_json, from_pb))
        })
        .await;
    let uid = |o: &K| o.meta().uid.clone().unwrap_or_default();
    from_json.sort_by_key(uid);
    from_pb.sort_by_key(uid);
    for (j, p) in from_json.iter().zip(&from_pb) {
        assert_eq!(format!("{p:#?}"), format!("{j:#?}"), "{what}: the protobuf view (left) differs from the JSON view");
    }
    from_json.len()
}

/// [`same_views`] of kind `K` in namespace `ns`, named `what`.
async fn same_in<'a, K>(client: &kube::Client, ns: &str, what: &'a str) -> (&'a str, usize)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Protobuf
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + 'static,
{
    (what, same_views(Api::<K>::namespaced(client.clone(), ns), ProtoApi::namespaced(client.clone(), ns), what).await)
}

#[tokio::test]
async fn protobuf_views_match_json() {
    with_namespace("e2e-pb", |client, ns| async move {
        let mut spec = virtual_placement();
        spec["containers"] = json!([{"name": "web", "image": "nginx"}]);
        let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": spec.clone()});
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let deploy: Deployment = object(json!({
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}
        }));
        deployments.create(&PostParams::default(), &deploy).await.expect("create deployment");
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let set: StatefulSet = object(json!({
            "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}
        }));
        sets.create(&PostParams::default(), &set).await.expect("create statefulset");
        // A Job whose pod ends by its lifetime: a terminated container and a Succeeded phase.
        let mut job_spec = spec.clone();
        job_spec["restartPolicy"] = json!("Never");
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let job: Job = object(json!({
            "metadata": {"name": "once"},
            "spec": {"template": {"metadata": {"annotations": {"simkube.io/lifetime-seconds": "1"}}, "spec": job_spec}}
        }));
        jobs.create(&PostParams::default(), &job).await.expect("create job");

        let pods: Api<PodView> = Api::namespaced(client.clone(), &ns);
        poll_until(Duration::from_secs(90), "5 pods Running and the Job's pod Succeeded", || async {
            let list = pods.list(&ListParams::default()).await.ok()?.items;
            let phase = |p: &PodView| p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            let running = list.iter().filter(|p| phase(p) == "Running").count();
            let done = list.iter().filter(|p| phase(p) == "Succeeded").count();
            (running == 5 && done == 1).then_some(())
        })
        .await;

        let counted = [
            same_in::<PodView>(&client, &ns, "pods").await,
            same_in::<WorkloadView<Deployment>>(&client, &ns, "deployments").await,
            same_in::<WorkloadView<ReplicaSet>>(&client, &ns, "replicasets").await,
            same_in::<WorkloadView<StatefulSet>>(&client, &ns, "statefulsets").await,
            same_in::<WorkloadView<Job>>(&client, &ns, "jobs").await,
            same_in::<EventView>(&client, &ns, "events").await,
            ("nodes", same_views(Api::<NodeView>::all(client.clone()), ProtoApi::all(client.clone()), "nodes").await),
        ];
        eprintln!("views equal in protobuf and JSON: {counted:?}");
        let count = |name: &str| counted.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
        assert_eq!((count("pods"), count("deployments"), count("statefulsets"), count("jobs")), (6, 1, 1, 1));
        assert!(count("replicasets") >= 1 && count("events") >= 10 && count("nodes") >= 10, "{counted:?}");

        // A protobuf watch from the list's resourceVersion sees the Deployment scaled.
        let mut stream = Box::pin(proto_watch::watcher(
            ProtoApi::<WorkloadView<Deployment>>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
        ));
        let mut listed = false;
        let scaled = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(event) = stream.try_next().await.expect("protobuf watch") {
                match event {
                    Event::InitDone => {
                        listed = true;
                        let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
                        deployments
                            .patch("web", &PatchParams::apply(MANAGER).force(), &Patch::Apply(scale))
                            .await
                            .expect("scale to 4");
                    }
                    Event::Apply(d) if listed && d.counts().ready == 4 => return d,
                    _ => {}
                }
            }
            panic!("the watch ended")
        })
        .await
        .expect("the watch shows 4 ready replicas within 60 s");
        assert_eq!(scaled.counts().desired, 4);
    })
    .await;
}
