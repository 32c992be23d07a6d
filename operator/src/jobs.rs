//! The driver Job of one run, and what a finished Job says about the run.
//!
//! One Job per run, `backoffLimit: 0` and `restartPolicy: Never` (a driver that failed half-way
//! must not replay again on top of its own leftovers), a pod failure policy that fails the Job
//! at once on a disruption so an eviction is reported as one, and a grace period longer than the
//! driver's cleanup timeout so a stopped driver can still clean up.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};
use rehearsal_crds::Simulation;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::names;
use crate::settings::Settings;
use crate::trace_files;

/// Where the serving certificate is mounted in the driver container.
pub const TLS_DIR: &str = "/etc/rehearsal/tls";
/// Where a ConfigMap trace is mounted.
pub const TRACE_DIR: &str = "/etc/rehearsal/trace";
/// Taint of the local control plane's process-runner node (tolerated by driver pods).
pub const RUNNER_TAINT: &str = "rehearsal.dev/runner";
/// Where a run writes its folder before the upload (an emptyDir).
pub const LOG_DIR: &str = "/var/log/rehearsal";

/// What a run plays.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A trace at a URI the driver reads itself.
    TraceUri(String),
    /// A trace copied into a ConfigMap of the operator's namespace, mounted into the pod.
    TraceConfigMap {
        /// The copy's name.
        config_map: String,
        /// Its key.
        key: String,
    },
    /// A Scenario, by name.
    Scenario(String),
}

impl Source {
    /// True for trace replays, which need the admission webhook.
    pub fn is_trace(&self) -> bool {
        !matches!(self, Source::Scenario(_))
    }
}

/// The driver Job of run `index` of `sim`.
pub fn driver_job(sim: &Simulation, index: u32, source: &Source, settings: &Settings) -> Result<Job> {
    let name = sim.name_any();
    let spec = &sim.spec;
    let driver = spec.driver.clone().unwrap_or_default();
    let image = driver.image.clone().unwrap_or_else(|| settings.driver_image.clone());
    let service_account =
        driver.service_account_name.clone().unwrap_or_else(|| settings.driver_service_account.clone());
    let cleanup = settings.cleanup_timeout.as_secs().to_string();
    let speed = spec.speed.to_string();

    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
    ];
    let mut env_from = vec![];
    let mut file_root = None;
    // The run folder: LOG_DIR/<simulation>/<run>/, uploaded from there.
    let mut volumes = vec![json!({"name": "logs", "emptyDir": {}})];
    let mut mounts = vec![json!({"name": "logs", "mountPath": LOG_DIR})];
    env.push(json!({"name": "LOG_DIR", "value": LOG_DIR}));
    if let Some(path) = &settings.driver_audit_log {
        env.push(json!({"name": "AUDIT_LOG", "value": path.display().to_string()}));
    }
    if let Some(a) = &spec.artifacts {
        if let Some(endpoint) = &a.endpoint {
            env.push(json!({"name": "AWS_ENDPOINT_URL", "value": endpoint}));
        }
        if let Some(region) = &a.region {
            env.push(json!({"name": "AWS_REGION", "value": region}));
            env.push(json!({"name": "S3_REGION", "value": region}));
        }
        if let Some(secret) = &a.credentials_secret {
            env_from.push(json!({"secretRef": {"name": secret.name}}));
        }
    }

    let mut args: Vec<String> = match source {
        Source::TraceUri(_) | Source::TraceConfigMap { .. } => {
            let trace_path = match source {
                Source::TraceConfigMap { config_map, key } => {
                    volumes.push(json!({"name": "trace", "configMap": {"name": config_map}}));
                    mounts.push(json!({"name": "trace", "mountPath": TRACE_DIR, "readOnly": true}));
                    format!("{TRACE_DIR}/{key}")
                }
                Source::TraceUri(uri) => {
                    // Checked again here, so no Job can read a file the operator does not offer.
                    let file = trace_files::allowed_file(&name, uri, settings)?;
                    if let Some(root) = file.and(settings.trace_file_root.as_ref()).map(|r| r.display().to_string()) {
                        if let Some(claim) = &settings.trace_file_claim {
                            let pvc = json!({"claimName": claim, "readOnly": true});
                            volumes.push(json!({"name": trace_files::VOLUME, "persistentVolumeClaim": pvc}));
                            mounts.push(json!({"name": trace_files::VOLUME, "mountPath": root, "readOnly": true}));
                        }
                        file_root = Some(root);
                    }
                    uri.clone()
                }
                Source::Scenario(_) => String::new(),
            };
            volumes.push(json!({"name": "webhook-tls", "secret": {"secretName": names::serving_secret(&name)}}));
            mounts.push(json!({"name": "webhook-tls", "mountPath": TLS_DIR, "readOnly": true}));
            [
                "replay",
                "--sim-name",
                &name,
                "--controller-ns",
                &settings.namespace,
                "--virtual-ns-prefix",
                &spec.virtual_namespace_prefix,
                "--speed",
                &speed,
                "--cert-path",
                &format!("{TLS_DIR}/tls.crt"),
                "--key-path",
                &format!("{TLS_DIR}/tls.key"),
                "--trace-path",
                &trace_path,
                "--run-index",
                &index.to_string(),
                "--listen-address",
                "$(POD_IP)",
                "--admission-webhook-port",
                &driver.port.to_string(),
                "--cleanup-timeout",
                &cleanup,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        }
        Source::Scenario(scenario) => {
            if let Some(a) = &spec.artifacts {
                env.push(json!({"name": "S3_BUCKET", "value": a.bucket}));
                if let Some(prefix) = &a.prefix {
                    env.push(json!({"name": "S3_PREFIX", "value": prefix}));
                }
            }
            [
                "scenario",
                "--scenario-ref",
                scenario,
                "--sim-name",
                &name,
                "--run-index",
                &index.to_string(),
                "--speed",
                &speed,
                "--cleanup-timeout",
                &cleanup,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        }
    };

    if let Some(root) = file_root {
        // The driver confines the path again, this time with symlinks resolved in the volume.
        args.extend(["--trace-file-root".to_string(), root]);
    }

    let mut container = json!({
        "name": "driver",
        "image": image,
        "args": args,
        "env": env,
        "envFrom": env_from,
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
    });
    if source.is_trace() {
        container["ports"] = json!([{"name": "webhook", "containerPort": driver.port}]);
    }
    if let Some(resources) = &driver.resources {
        container["resources"] = serde_json::to_value(resources).map_err(|e| Error::Internal(e.to_string()))?;
    }
    let owner =
        sim.controller_owner_ref(&()).ok_or_else(|| Error::Internal(format!("Simulation {name} has no uid yet")))?;
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": names::job(&name, index),
            "namespace": settings.namespace,
            "labels": names::driver_pod_labels(&name, index),
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": 0,
            "podReplacementPolicy": "Failed",
            // An eviction or a node going away fails the Job at once, with the pod condition
            // named in the Job's message, rather than as an anonymous pod failure.
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
            ]},
            "template": {
                "metadata": {"labels": names::driver_pod_labels(&name, index)},
                "spec": {
                    "restartPolicy": "Never",
                    // The local control plane's process runner node is tainted so that stray pods
                    // stay Pending; driver pods are meant to run there.
                    "tolerations": [{"key": RUNNER_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                    "serviceAccountName": service_account,
                    "terminationGracePeriodSeconds": settings.driver_grace_seconds(),
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                }
            }
        }
    });
    serde_json::from_value(job).map_err(|e| Error::Internal(format!("cannot build the driver Job: {e}")))
}

/// What a Job says about its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pod is not running yet.
    Pending,
    /// The driver runs.
    Running,
    /// The driver exited 0.
    Succeeded,
    /// The driver failed, was killed, evicted or lost; why, in one line.
    Failed(String),
}

/// Reads the outcome of a Job from its conditions (only `status: "True"` counts) and, for a
/// failure, from its pods' termination reasons and conditions.
pub fn outcome(job: &Job, pods: &[Pod]) -> Outcome {
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    let holds = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    if holds("Complete").is_some() {
        return Outcome::Succeeded;
    }
    if let Some(failed) = holds("Failed") {
        let job_reason = format!(
            "driver Job {} failed ({}{})",
            job.name_any(),
            failed.reason.as_deref().unwrap_or("no reason"),
            failed.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
        if let Some(why) = pods.iter().find_map(pod_failure) {
            return Outcome::Failed(why);
        }
        // No pod left to ask: it was deleted (by someone, or with its node) before it finished.
        if pods.is_empty() && status.failed.unwrap_or(0) > 0 {
            return Outcome::Failed(format!(
                "the driver pod of Job {} was deleted before the run finished (by hand, an eviction or a lost node); {job_reason}",
                job.name_any()
            ));
        }
        return Outcome::Failed(job_reason);
    }
    if status.active.unwrap_or(0) > 0
        && pods.iter().any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    {
        return Outcome::Running;
    }
    Outcome::Pending
}

/// Why a driver pod failed, when it says so: eviction, OOM kill, a signal, or an exit code with
/// the driver's last line.
pub fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let name = pod.name_any();
    if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == "DisruptionTarget" && c.status == "True") {
        return Some(format!(
            "driver pod {name} was evicted or disrupted ({}{})",
            c.reason.as_deref().unwrap_or("DisruptionTarget"),
            c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        ));
    }
    let terminated =
        status.container_statuses.iter().flatten().find_map(|cs| cs.state.as_ref()?.terminated.as_ref())?;
    if terminated.exit_code == 0 {
        return None;
    }
    let reason = terminated.reason.as_deref().unwrap_or("Error");
    let last_line =
        terminated.message.as_deref().and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty())).map(str::trim);
    let how = match (reason, terminated.exit_code) {
        ("OOMKilled", _) => "was OOMKilled".to_string(),
        (_, 137) => "was killed (SIGKILL, exit code 137)".to_string(),
        (_, 143) => "was stopped (SIGTERM, exit code 143)".to_string(),
        (_, code) if code > 128 => format!("was killed by signal {} (exit code {code})", code - 128),
        (_, code) => format!("exited with code {code} ({reason})"),
    };
    Some(match last_line {
        Some(line) => format!("driver pod {name} {how}: {line}"),
        None => format!("driver pod {name} {how}"),
    })
}

/// Longest run summary kept in the status: a driver's error can be long, the status is not a log.
pub const MAX_SUMMARY: usize = 400;

/// `text` cut to [`MAX_SUMMARY`] characters (on a character boundary), with "…" when cut.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_SUMMARY) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The one-line summary of a finished run from the driver's own stage conditions: the Replay
/// message on success, the first failed stage otherwise.
pub fn driver_summary(sim: &Simulation) -> Option<String> {
    let conds = &sim.status.as_ref()?.conditions;
    let stages = [
        rehearsal_crds::conditions::PRE_RUN_HOOKS,
        rehearsal_crds::conditions::REPLAY,
        rehearsal_crds::conditions::CLEANUP,
        rehearsal_crds::conditions::POST_RUN_HOOKS,
        rehearsal_crds::conditions::THRESHOLDS_MET,
        rehearsal_crds::conditions::ARTIFACTS_UPLOADED,
    ];
    if let Some(c) =
        stages.iter().filter_map(|t| rehearsal_crds::conditions::find(conds, t)).find(|c| c.status == "False")
    {
        return Some(format!("{} failed ({}): {}", c.type_, c.reason, c.message));
    }
    rehearsal_crds::conditions::find(conds, rehearsal_crds::conditions::REPLAY).map(|c| c.message.clone())
}

/// The artifact URI the driver reported (its ArtifactsUploaded condition), if any.
pub fn driver_artifact_uri(sim: &Simulation) -> Option<String> {
    let conds = &sim.status.as_ref()?.conditions;
    rehearsal_crds::conditions::find(conds, rehearsal_crds::conditions::ARTIFACTS_UPLOADED)
        .filter(|c| c.status == "True" && c.message.starts_with("s3://"))
        .map(|c| c.message.clone())
}

/// The value of an env var in the Job's driver container (tests and diagnostics).
pub fn env_value(job: &Job, name: &str) -> Option<Value> {
    let c = job.spec.as_ref()?.template.spec.as_ref()?.containers.first()?;
    c.env.iter().flatten().find(|e| e.name == name).and_then(|e| serde_json::to_value(e).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(spec: Value) -> Simulation {
        serde_json::from_value(json!({
            "apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation",
            "metadata": {"name": "shop", "uid": "u-1", "generation": 1},
            "spec": spec
        }))
        .expect("simulation literal")
    }

    fn args(job: &Job) -> Vec<String> {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers[0].args.clone().unwrap_or_default())
            .unwrap_or_default()
    }

    #[test]
    fn trace_job_runs_replay_with_the_simkube_flags() {
        let s = sim(json!({"source": {"trace": {"uri": "s3://b/t.sktrace"}}, "speed": 2.5,
            "artifacts": {"bucket": "logs", "endpoint": "http://127.0.0.1:19000", "credentialsSecret": {"name": "s3"}},
            "driver": {"port": 9443, "resources": {"limits": {"memory": "256Mi"}}}}));
        let job = driver_job(&s, 1, &Source::TraceUri("s3://b/t.sktrace".into()), &Settings::example()).expect("job");
        assert_eq!(job.metadata.name.as_deref(), Some("shop-run-1"));
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!((spec.backoff_limit, spec.pod_replacement_policy.as_deref()), (Some(0), Some("Failed")));
        let pod = spec.template.spec.as_ref().expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("rehearsal-driver"));
        assert_eq!(pod.termination_grace_period_seconds, Some(360));
        let a = args(&job).join(" ");
        assert!(
            a.starts_with(
                "replay --sim-name shop --controller-ns rehearsal-system --virtual-ns-prefix virtual --speed 2.5"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "--trace-path s3://b/t.sktrace --run-index 1 --listen-address $(POD_IP) --admission-webhook-port 9443"
            ),
            "{a}"
        );
        assert!(a.contains("--cert-path /etc/rehearsal/tls/tls.crt"), "{a}");
        assert_eq!(
            env_value(&job, "AWS_ENDPOINT_URL").map(|v| v["value"].clone()),
            Some(json!("http://127.0.0.1:19000"))
        );
        let c = &pod.containers[0];
        assert_eq!(
            c.env_from.as_ref().map(|e| e[0].secret_ref.as_ref().map(|s| s.name.clone())),
            Some(Some("s3".into()))
        );
        assert_eq!(c.ports.as_ref().map(|p| p[0].container_port), Some(9443));
        assert!(c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some());
        assert_eq!(job.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()), Some("Simulation"));
        let rules = spec.pod_failure_policy.as_ref().expect("pod failure policy");
        assert_eq!(rules.rules[0].action, "FailJob");
    }

    #[test]
    fn config_map_trace_is_mounted_and_scenario_job_plays() {
        let s = sim(json!({"source": {"trace": {"configMapRef": {"namespace": "n", "name": "c", "key": "t.json"}}}}));
        let src = Source::TraceConfigMap { config_map: "rehearsal-shop-trace".into(), key: "t.json".into() };
        let job = driver_job(&s, 0, &src, &Settings::example()).expect("job");
        assert!(args(&job).join(" ").contains("--trace-path /etc/rehearsal/trace/t.json"));
        let s =
            sim(json!({"source": {"scenarioRef": {"name": "burst"}}, "driver": {"image": "mine/rehearsal-driver:x"}}));
        let job = driver_job(&s, 0, &Source::Scenario("burst".into()), &Settings::example()).expect("job");
        assert!(args(&job).join(" ").starts_with("scenario --scenario-ref burst --sim-name shop"));
        let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
        assert_eq!(pod.containers[0].image.as_deref(), Some("mine/rehearsal-driver:x"));
        assert!(pod.containers[0].ports.is_none(), "a scenario run serves no webhook");
    }

    fn pod_spec(job: &Job) -> &k8s_openapi::api::core::v1::PodSpec {
        job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec")
    }

    fn file_settings(claim: Option<&str>) -> Settings {
        Settings {
            trace_file_root: Some("/traces".into()),
            trace_file_claim: claim.map(String::from),
            ..Settings::example()
        }
    }

    #[test]
    fn file_trace_job_gets_the_root_and_the_claim() {
        let uri = "file:///traces/team/t.sktrace";
        let s = sim(json!({"source": {"trace": {"uri": uri}}}));
        let job =
            driver_job(&s, 0, &Source::TraceUri(uri.into()), &file_settings(Some("rehearsal-traces"))).expect("job");
        let a = args(&job).join(" ");
        assert!(a.contains(&format!("--trace-path {uri} ")), "{a}");
        assert!(a.ends_with("--trace-file-root /traces"), "{a}");
        let pod = pod_spec(&job);
        let volume = pod.volumes.iter().flatten().find(|v| v.name == trace_files::VOLUME).expect("volume");
        let pvc = volume.persistent_volume_claim.as_ref().expect("a claim");
        assert_eq!((pvc.claim_name.as_str(), pvc.read_only), ("rehearsal-traces", Some(true)));
        let mount =
            pod.containers[0].volume_mounts.iter().flatten().find(|m| m.name == trace_files::VOLUME).expect("mount");
        assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/traces", Some(true)));

        // Without a claim the root is a directory of the driver's image: the flag, no volume.
        let bare = "/traces/t.json";
        let s = sim(json!({"source": {"trace": {"uri": bare}}}));
        let job = driver_job(&s, 0, &Source::TraceUri(bare.into()), &file_settings(None)).expect("job");
        let a = args(&job).join(" ");
        assert!(a.contains("--trace-path /traces/t.json ") && a.ends_with("--trace-file-root /traces"), "{a}");
        let pod = pod_spec(&job);
        assert!(pod.volumes.iter().flatten().all(|v| v.name != trace_files::VOLUME));
        assert!(pod.containers[0].volume_mounts.iter().flatten().all(|m| m.name != trace_files::VOLUME));
    }

    #[test]
    fn file_traces_outside_the_root_get_no_job() {
        for (uri, settings, reason) in [
            ("file:///traces/t.sktrace", Settings::example(), trace_files::FILE_TRACES_DISABLED),
            ("/traces/t.sktrace", Settings::example(), trace_files::FILE_TRACES_DISABLED),
            ("file:///etc/passwd", file_settings(Some("c")), trace_files::FILE_TRACE_OUTSIDE_ROOT),
            ("file:///traces/../etc/passwd", file_settings(Some("c")), trace_files::FILE_TRACE_OUTSIDE_ROOT),
            ("/srv/t.json", file_settings(None), trace_files::FILE_TRACE_OUTSIDE_ROOT),
        ] {
            let s = sim(json!({"source": {"trace": {"uri": uri}}}));
            match driver_job(&s, 0, &Source::TraceUri(uri.into()), &settings) {
                Err(Error::Permanent { reason: r, message }) => {
                    assert_eq!(r, reason, "{uri}");
                    assert!(message.starts_with("Simulation shop: spec.source.trace.uri: "), "{message}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_sources_ignore_the_file_root() {
        let settings = file_settings(Some("rehearsal-traces"));
        let cm = Source::TraceConfigMap { config_map: "rehearsal-shop-trace".into(), key: "t.json".into() };
        for source in [
            Source::TraceUri("s3://b/t.sktrace".into()),
            Source::TraceUri("https://example.com/t.sktrace".into()),
            cm,
            Source::Scenario("burst".into()),
        ] {
            let s = sim(json!({"source": {"trace": {"uri": "s3://b/t.sktrace"}}}));
            let job = driver_job(&s, 0, &source, &settings).expect("job");
            assert!(!args(&job).iter().any(|a| a == "--trace-file-root"), "{source:?}");
            let pod = pod_spec(&job);
            assert!(pod.volumes.iter().flatten().all(|v| v.name != trace_files::VOLUME), "{source:?}");
            assert!(
                pod.containers[0].volume_mounts.iter().flatten().all(|m| m.name != trace_files::VOLUME),
                "{source:?}"
            );
        }
    }

    fn job_with(conditions: Value, active: i32) -> Job {
        serde_json::from_value(
            json!({"metadata": {"name": "shop-run-0"}, "status": {"conditions": conditions, "active": active}}),
        )
        .expect("job literal")
    }

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "shop-run-0-abcde"}, "status": status}))
            .expect("pod literal")
    }

    #[test]
    fn outcomes_read_only_true_conditions_and_name_the_reason() {
        let running = pod(json!({"phase": "Running"}));
        assert_eq!(outcome(&job_with(json!([]), 1), std::slice::from_ref(&running)), Outcome::Running);
        assert_eq!(outcome(&job_with(json!([]), 0), &[]), Outcome::Pending);
        let not_yet = json!([{"type": "Complete", "status": "False"}, {"type": "Failed", "status": "False"}]);
        assert_eq!(outcome(&job_with(not_yet, 1), &[running]), Outcome::Running);
        assert_eq!(outcome(&job_with(json!([{"type": "Complete", "status": "True"}]), 0), &[]), Outcome::Succeeded);

        let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]);
        let oom = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "driver", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        );
        assert_eq!(
            outcome(&job_with(failed.clone(), 0), &[oom]),
            Outcome::Failed("driver pod shop-run-0-abcde was OOMKilled".into())
        );
        let err = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "driver", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "starting\nrehearsal-driver: replay of simulation shop: Replay failed: bad trace\n"}}}]}),
        );
        assert_eq!(
            outcome(&job_with(failed.clone(), 0), &[err]),
            Outcome::Failed("driver pod shop-run-0-abcde exited with code 1 (Error): rehearsal-driver: replay of simulation shop: Replay failed: bad trace".into())
        );
        let killed = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "driver", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}),
        );
        assert!(
            matches!(outcome(&job_with(failed.clone(), 0), &[killed]), Outcome::Failed(m) if m.contains("SIGKILL"))
        );
        let evicted = pod(
            json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}),
        );
        assert!(
            matches!(outcome(&job_with(failed.clone(), 0), &[evicted]), Outcome::Failed(m) if m.contains("evicted") && m.contains("EvictionByEvictionAPI"))
        );
        assert_eq!(bounded(&"é".repeat(500)).chars().count(), MAX_SUMMARY + 1);
        assert_eq!(bounded("short"), "short");
        assert_eq!(
            outcome(&job_with(failed, 0), &[]),
            Outcome::Failed(
                "driver Job shop-run-0 failed (BackoffLimitExceeded: Job has reached the specified backoff limit)"
                    .into()
            )
        );
    }
}
