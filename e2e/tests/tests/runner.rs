//! Jobs on the process runner's node run the project's binaries as local processes.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::conditions;
use rehearsal_e2e::{object, poll_until, wait_for, with_namespace};
use serde_json::json;

fn job(name: &str, command: serde_json::Value, image: &str) -> Job {
    object(json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"rehearsal.dev/runner": "true"},
                "tolerations": [{"key": "rehearsal.dev/runner", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "main", "image": image, "command": command}]
            }}
        }
    }))
}

#[tokio::test]
async fn driver_version_job_completes() {
    with_namespace("e2e-job-ok", |client, ns| async move {
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let j = job(
            "driver-version",
            json!(["rehearsal-driver", "--version"]),
            "ghcr.io/rehearsal-dev/rehearsal-driver:dev",
        );
        jobs.create(&PostParams::default(), &j).await.expect("create job");
        wait_for(&jobs, "driver-version", Duration::from_secs(90), "complete", conditions::is_job_completed()).await;
        let done = jobs.get("driver-version").await.expect("job");
        assert_eq!(done.status.and_then(|s| s.succeeded), Some(1));
    })
    .await;
}

#[tokio::test]
async fn failing_job_shows_exit_code() {
    with_namespace("e2e-job-fail", |client, ns| async move {
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        jobs.create(&PostParams::default(), &job("exit-three", json!(["sh", "-c", "echo failing; exit 3"]), "busybox"))
            .await
            .expect("create job");
        wait_for(&jobs, "exit-three", Duration::from_secs(90), "failed", |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
        })
        .await;
        let code = poll_until(Duration::from_secs(30), "the pod's exit code", || async {
            let list = pods.list(&ListParams::default().labels("job-name=exit-three")).await.ok()?;
            let pod = list.items.into_iter().next()?;
            let status = pod.status?;
            (status.phase.as_deref() == Some("Failed")).then_some(())?;
            status.container_statuses?.first()?.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
        })
        .await;
        assert_eq!(code, 3);
    })
    .await;
}
