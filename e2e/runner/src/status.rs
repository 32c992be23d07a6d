//! Pod status as kubelet reports it, built from what the runner knows about each container:
//! phase from exit codes, the four standard conditions, container states, the pod's own
//! loopback IP and the host's 127.0.0.1.

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::{
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
        HostIP, Pod, PodCondition, PodIP, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};

use crate::{env::LOOPBACK, process::Exit};

/// Pod phase names.
pub mod phase {
    /// Accepted, containers not started.
    pub const PENDING: &str = "Pending";
    /// Containers started.
    pub const RUNNING: &str = "Running";
    /// All containers exited 0.
    pub const SUCCEEDED: &str = "Succeeded";
    /// A container failed or the pod could not run.
    pub const FAILED: &str = "Failed";
}

/// Whether a phase is final.
pub fn is_terminal(phase: Option<&str>) -> bool {
    matches!(phase, Some(phase::SUCCEEDED | phase::FAILED))
}

/// Exit code reported for a container that never started (the container runtimes' convention).
pub const NOT_STARTED_EXIT_CODE: i32 = 128;

/// A container's state as the runner tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started (yet).
    Waiting {
        /// Machine-readable reason, e.g. `ContainerCreating`.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Its process is running.
    Running {
        /// When the process started.
        started_at: Timestamp,
    },
    /// Its process ended, or it could not be started at all.
    Terminated(Terminated),
}

/// A finished container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code (128 + signal for a signal).
    pub exit_code: i32,
    /// The signal that killed the process.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, or why it never started.
    pub reason: String,
    /// Details for failures.
    pub message: Option<String>,
    /// When the process started, if it did.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
}

impl Terminated {
    /// A process that ran and exited: reason `Completed` for 0, `Error` otherwise.
    pub fn exited(exit: Exit, started_at: Timestamp, finished_at: Timestamp, message: Option<String>) -> Self {
        let reason = if exit.code == 0 { "Completed" } else { "Error" };
        Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: reason.to_owned(),
            message: if exit.code == 0 { None } else { message },
            started_at: Some(started_at),
            finished_at,
        }
    }

    /// A container that could not be started, e.g. `ImageNotRunnable`.
    pub fn not_started(reason: &str, message: String, at: Timestamp) -> Self {
        Terminated {
            exit_code: NOT_STARTED_EXIT_CODE,
            signal: None,
            reason: reason.to_owned(),
            message: Some(message),
            started_at: None,
            finished_at: at,
        }
    }
}

/// One container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// What stands in for the image's ID: the executable that ran.
    pub image_id: String,
    /// An init container with `restartPolicy: Always` (a sidecar): started, not waited for.
    pub sidecar: bool,
    /// Process id while it has one, reported as the container ID.
    pub pid: Option<i32>,
    /// Current state.
    pub state: State,
}

impl Container {
    fn waiting(name: &str, image: Option<&str>, sidecar: bool, reason: &str) -> Self {
        Container {
            name: name.to_owned(),
            image: image.unwrap_or_default().to_owned(),
            image_id: String::new(),
            sidecar,
            pid: None,
            state: State::Waiting { reason: reason.to_owned(), message: None },
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn terminated(&self) -> Option<&Terminated> {
        match &self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }

    fn succeeded(&self) -> bool {
        self.terminated().is_some_and(|t| t.exit_code == 0)
    }
}

/// Everything the runner knows about a pod's run; [`PodRecord::status`] turns it into a status.
#[derive(Debug, Clone)]
pub struct PodRecord {
    /// Init containers in spec order.
    pub init: Vec<Container>,
    /// Main containers in spec order.
    pub main: Vec<Container>,
    /// When the runner accepted the pod.
    pub start_time: Timestamp,
    /// When the scheduler bound it (kept as the PodScheduled transition time).
    pub scheduled_at: Timestamp,
    /// A pod-level failure (reason, message): the pod is Failed whatever its containers did.
    pub failure: Option<(String, String)>,
    /// The pod's metadata.generation, echoed as observedGeneration.
    pub generation: Option<i64>,
    /// The pod's own address (from `ips`); none when it could not get one.
    pub pod_ip: Option<Ipv4Addr>,
    transitions: BTreeMap<&'static str, (bool, Timestamp)>,
}

impl PodRecord {
    /// A record for a pod just accepted: every container waiting.
    pub fn new(pod: &Pod, now: Timestamp) -> Self {
        let spec = pod.spec.as_ref();
        let init = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .map(|c| {
                let sidecar = c.restart_policy.as_deref() == Some("Always");
                Container::waiting(&c.name, c.image.as_deref(), sidecar, "PodInitializing")
            })
            .collect::<Vec<_>>();
        let main_reason = if init.is_empty() { "ContainerCreating" } else { "PodInitializing" };
        let main = spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| Container::waiting(&c.name, c.image.as_deref(), false, main_reason))
            .collect();
        let scheduled_at = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(now, |t| t.0);
        PodRecord {
            init,
            main,
            start_time: now,
            scheduled_at,
            failure: None,
            generation: pod.metadata.generation,
            pod_ip: None,
            transitions: BTreeMap::new(),
        }
    }

    /// The pod phase: Failed on a pod-level failure or a failed init container; Succeeded or
    /// Failed once every main container has terminated; Running once one has started.
    pub fn phase(&self) -> &'static str {
        if self.failure.is_some() {
            return phase::FAILED;
        }
        if self.init.iter().any(|c| !c.sidecar && c.terminated().is_some_and(|t| t.exit_code != 0)) {
            return phase::FAILED;
        }
        if !self.main.is_empty() && self.main.iter().all(|c| c.terminated().is_some()) {
            return if self.main.iter().all(Container::succeeded) { phase::SUCCEEDED } else { phase::FAILED };
        }
        if self.main.iter().any(|c| !matches!(c.state, State::Waiting { .. })) {
            return phase::RUNNING;
        }
        phase::PENDING
    }

    /// Whether every init container has completed (sidecars: started).
    pub fn initialized(&self) -> bool {
        self.init.iter().all(|c| if c.sidecar { !matches!(c.state, State::Waiting { .. }) } else { c.succeeded() })
    }

    fn containers_ready(&self) -> bool {
        !self.main.is_empty()
            && self.main.iter().all(Container::running)
            && self.init.iter().filter(|c| c.sidecar).all(Container::running)
    }

    /// The status to report at `now`; condition transition times change only when a condition does.
    pub fn status(&mut self, now: Timestamp) -> PodStatus {
        let phase = self.phase();
        let terminal = is_terminal(Some(phase));
        let initialized = self.initialized();
        let ready = !terminal && self.containers_ready();
        let unready: Vec<&str> = self.main.iter().filter(|c| !c.running()).map(|c| c.name.as_str()).collect::<Vec<_>>();
        let uninitialized: Vec<&str> = self
            .init
            .iter()
            .filter(|c| if c.sidecar { matches!(c.state, State::Waiting { .. }) } else { !c.succeeded() })
            .map(|c| c.name.as_str())
            .collect();
        let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
        let not_ready_message = (!terminal).then(|| format!("containers with unready status: [{}]", unready.join(" ")));

        let mut conditions = vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(self.scheduled_at)),
            ..Default::default()
        }];
        let mut push = |record: &mut BTreeMap<&'static str, (bool, Timestamp)>,
                        type_: &'static str,
                        status: bool,
                        reason: Option<&str>,
                        message: Option<String>| {
            let since = match record.get(type_) {
                Some((previous, since)) if *previous == status => *since,
                _ => {
                    record.insert(type_, (status, now));
                    now
                }
            };
            conditions.push(PodCondition {
                type_: type_.into(),
                status: if status { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(since)),
                reason: if status { None } else { reason.map(str::to_owned) },
                message: if status { None } else { message },
                ..Default::default()
            });
        };
        let transitions = &mut self.transitions;
        push(
            transitions,
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", uninitialized.join(" "))),
        );
        push(transitions, "ContainersReady", ready, Some(not_ready_reason), not_ready_message.clone());
        push(transitions, "Ready", ready, Some(not_ready_reason), not_ready_message);

        let (reason, message) = match &self.failure {
            Some((reason, message)) => (Some(reason.clone()), Some(message.clone())),
            None => (None, None),
        };
        PodStatus {
            phase: Some(phase.to_owned()),
            conditions: Some(conditions),
            host_ip: Some(LOOPBACK.into()),
            host_ips: Some(vec![HostIP { ip: LOOPBACK.into() }]),
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            pod_ips: self.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
            start_time: Some(Time(self.start_time)),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(|c| container_status(c, true)).collect()),
            container_statuses: Some(self.main.iter().map(|c| container_status(c, false)).collect()),
            observed_generation: self.generation,
            reason,
            message,
            ..Default::default()
        }
    }
}

fn container_status(container: &Container, init: bool) -> ContainerStatus {
    let running = container.running();
    // Kubelet reports a completed init container as ready; a sidecar is ready while it runs.
    let ready = if init && !container.sidecar { container.succeeded() } else { running };
    let state = match &container.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: t.started_at.map(Time),
                finished_at: Some(Time(t.finished_at)),
                container_id: container.pid.map(container_id),
            }),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: container.name.clone(),
        image: container.image.clone(),
        image_id: container.image_id.clone(),
        container_id: container.pid.map(container_id),
        ready,
        started: Some(running),
        restart_count: 0,
        state: Some(state),
        ..Default::default()
    }
}

/// The container ID the runner reports: its scheme and the process id.
pub fn container_id(pid: i32) -> String {
    format!("rehearsal-runner://{pid}")
}

/// The body of a strategic-merge patch of the status subresource. Conditions merge by type and
/// keep fields a patch omits, so a condition's absent reason and message are sent as null to
/// clear what an earlier report set.
pub fn status_patch(status: &PodStatus) -> serde_json::Value {
    let mut value = serde_json::json!({ "status": status });
    if let Some(conditions) = value.pointer_mut("/status/conditions").and_then(serde_json::Value::as_array_mut) {
        for condition in conditions.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            for key in ["reason", "message"] {
                condition.entry(key).or_insert(serde_json::Value::Null);
            }
        }
    }
    value
}

/// Reason given to pods a previous runner instance had started: they are failed, not re-run.
pub const RUNNER_RESTARTED: &str = "RunnerRestarted";

/// Whether some runner already started this pod (it reported a start time or container states).
pub fn started_before(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .is_some_and(|s| s.start_time.is_some() || s.container_statuses.as_ref().is_some_and(|c| !c.is_empty()))
}

/// The status marking a pod a previous runner left unfinished as Failed: its processes died
/// with that runner, so every container that was not terminated is reported terminated.
pub fn runner_restarted(pod: &Pod, now: Timestamp) -> PodStatus {
    let message = "rehearsal-runner restarted while this pod was running; its processes are gone and it is not re-run";
    let finish = |statuses: &Option<Vec<ContainerStatus>>| -> Option<Vec<ContainerStatus>> {
        statuses.as_ref().map(|statuses| {
            statuses
                .iter()
                .cloned()
                .map(|mut cs| {
                    let state = cs.state.take().unwrap_or_default();
                    let terminated = match state.terminated {
                        Some(t) => t,
                        None => ContainerStateTerminated {
                            exit_code: 128 + libc::SIGKILL,
                            signal: None,
                            reason: Some(RUNNER_RESTARTED.to_owned()),
                            message: Some(message.to_owned()),
                            started_at: state.running.and_then(|r| r.started_at),
                            finished_at: Some(Time(now)),
                            container_id: cs.container_id.clone(),
                        },
                    };
                    cs.state = Some(ContainerState { terminated: Some(terminated), ..Default::default() });
                    cs.ready = false;
                    cs.started = Some(false);
                    cs
                })
                .collect()
        })
    };
    let old = pod.status.clone().unwrap_or_default();
    let not_ready = |type_: &str| PodCondition {
        type_: type_.to_owned(),
        status: "False".to_owned(),
        reason: Some("PodCompleted".to_owned()),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    };
    PodStatus {
        phase: Some(phase::FAILED.to_owned()),
        reason: Some(RUNNER_RESTARTED.to_owned()),
        message: Some(message.to_owned()),
        conditions: Some(vec![not_ready("ContainersReady"), not_ready("Ready")]),
        container_statuses: finish(&old.container_statuses),
        init_container_statuses: finish(&old.init_container_statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container as SpecContainer, PodSpec};
    use kube::api::ObjectMeta;

    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("timestamp")
    }

    fn pod(init: &[&str], main: &[&str]) -> Pod {
        let container = |name: &&str| SpecContainer {
            name: (*name).to_owned(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), generation: Some(1), ..Default::default() },
            spec: Some(PodSpec {
                init_containers: (!init.is_empty()).then(|| init.iter().map(container).collect()),
                containers: main.iter().map(container).collect(),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn exited(code: i32) -> State {
        State::Terminated(Terminated::exited(Exit { code, signal: None }, ts(1), ts(2), Some("boom".into())))
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status.conditions.iter().flatten().find(|c| c.type_ == type_).expect("condition")
    }

    #[test]
    fn phases_follow_exit_codes() {
        let mut record = PodRecord::new(&pod(&[], &["a", "b"]), ts(0));
        assert_eq!(record.phase(), phase::PENDING);
        record.main[0].state = State::Running { started_at: ts(1) };
        assert_eq!(record.phase(), phase::RUNNING);
        record.main[0].state = exited(0);
        assert_eq!(record.phase(), phase::RUNNING, "b has not run yet, a is done");
        record.main[1].state = exited(0);
        assert_eq!(record.phase(), phase::SUCCEEDED);
        record.main[1].state = exited(3);
        assert_eq!(record.phase(), phase::FAILED);
    }

    #[test]
    fn failed_init_container_fails_the_pod() {
        let mut record = PodRecord::new(&pod(&["setup"], &["main"]), ts(0));
        assert_eq!(record.main[0].state, State::Waiting { reason: "PodInitializing".into(), message: None });
        record.init[0].state = exited(1);
        assert_eq!(record.phase(), phase::FAILED);
        assert!(!record.initialized());
        record.init[0].state = exited(0);
        assert!(record.initialized());
        assert_eq!(record.phase(), phase::PENDING);
    }

    #[test]
    fn pod_level_failure_wins() {
        let mut record = PodRecord::new(&pod(&[], &["a"]), ts(0));
        record.main[0].state =
            State::Terminated(Terminated::not_started("ImageNotRunnable", "image \"nginx\"".into(), ts(1)));
        record.failure = Some(("ImageNotRunnable".into(), "image \"nginx\"".into()));
        assert_eq!(record.phase(), phase::FAILED);
        let status = record.status(ts(1));
        assert_eq!(status.reason.as_deref(), Some("ImageNotRunnable"));
        let terminated = status.container_statuses.as_ref().and_then(|s| s[0].state.as_ref()?.terminated.clone());
        assert_eq!(terminated.map(|t| (t.exit_code, t.reason)), Some((128, Some("ImageNotRunnable".into()))));
    }

    #[test]
    fn signal_exit_is_128_plus_signal() {
        let t = Terminated::exited(Exit::signalled(9), ts(1), ts(2), Some("killed".into()));
        assert_eq!((t.exit_code, t.signal, t.reason.as_str()), (137, Some(9), "Error"));
        let ok = Terminated::exited(Exit { code: 0, signal: None }, ts(1), ts(2), Some("ignored".into()));
        assert_eq!((ok.reason.as_str(), ok.message), ("Completed", None));
    }

    #[test]
    fn status_reports_exit_code_ips_and_conditions() {
        let mut record = PodRecord::new(&pod(&[], &["job"]), ts(0));
        record.pod_ip = Some(Ipv4Addr::new(127, 1, 0, 9));
        record.main[0].state = State::Running { started_at: ts(1) };
        record.main[0].pid = Some(42);
        let running = record.status(ts(1));
        assert_eq!(running.phase.as_deref(), Some("Running"));
        assert_eq!(condition(&running, "Ready").status, "True");
        assert_eq!(condition(&running, "Initialized").status, "True");
        assert_eq!(condition(&running, "PodScheduled").status, "True");
        assert_eq!(running.pod_ip.as_deref(), Some("127.1.0.9"));
        assert_eq!(running.pod_ips, Some(vec![PodIP { ip: "127.1.0.9".into() }]));
        assert_eq!(running.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(running.host_ips, Some(vec![HostIP { ip: "127.0.0.1".into() }]));
        assert_eq!(running.start_time, Some(Time(ts(0))));
        assert_eq!(running.observed_generation, Some(1));
        let cs = &running.container_statuses.as_ref().expect("statuses")[0];
        assert!(cs.ready && cs.started == Some(true) && cs.restart_count == 0);
        assert_eq!(cs.container_id.as_deref(), Some("rehearsal-runner://42"));

        record.main[0].state = exited(3);
        let failed = record.status(ts(5));
        assert_eq!(failed.phase.as_deref(), Some("Failed"));
        let ready = condition(&failed, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodCompleted")));
        assert_eq!(ready.last_transition_time, Some(Time(ts(5))));
        // Initialized did not change, so its transition time did not either.
        assert_eq!(condition(&failed, "Initialized").last_transition_time, Some(Time(ts(1))));
        let cs = &failed.container_statuses.as_ref().expect("statuses")[0];
        let terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref()).expect("terminated");
        assert_eq!(terminated.exit_code, 3);
        assert_eq!(terminated.reason.as_deref(), Some("Error"));
        assert_eq!(terminated.message.as_deref(), Some("boom"));
        assert!(!cs.ready);
        assert!(failed.init_container_statuses.is_none());
    }

    #[test]
    fn pod_without_an_address_reports_none_and_the_patch_carries_the_pods_own() {
        let mut record = PodRecord::new(&pod(&[], &["a"]), ts(0));
        record.failure = Some(("PodIPsExhausted".into(), "no free pod IP".into()));
        let failed = record.status(ts(1));
        assert_eq!((failed.pod_ip, failed.pod_ips), (None, None));
        assert_eq!(failed.host_ip.as_deref(), Some("127.0.0.1"));

        let mut record = PodRecord::new(&pod(&[], &["a"]), ts(0));
        record.pod_ip = Some(Ipv4Addr::new(127, 1, 2, 3));
        let patch = status_patch(&record.status(ts(1)));
        assert_eq!(patch["status"]["podIP"], "127.1.2.3");
        assert_eq!(patch["status"]["podIPs"], serde_json::json!([{ "ip": "127.1.2.3" }]));
        assert_eq!(patch["status"]["hostIP"], "127.0.0.1");
    }

    #[test]
    fn runner_restarted_fails_the_pod_and_terminates_running_containers() {
        let mut p = pod(&[], &["a", "b"]);
        let mut record = PodRecord::new(&p, ts(0));
        record.main[0].state = State::Running { started_at: ts(1) };
        record.main[1].state = exited(0);
        p.status = Some(record.status(ts(1)));
        assert!(started_before(&p));
        assert!(!started_before(&pod(&[], &["a"])));
        let status = runner_restarted(&p, ts(9));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("RunnerRestarted"));
        let statuses = status.container_statuses.expect("statuses");
        let a = statuses[0].state.as_ref().and_then(|s| s.terminated.as_ref()).expect("a terminated");
        assert_eq!((a.exit_code, a.reason.as_deref()), (137, Some("RunnerRestarted")));
        assert_eq!(a.started_at, Some(Time(ts(1))));
        let b = statuses[1].state.as_ref().and_then(|s| s.terminated.as_ref()).expect("b terminated");
        assert_eq!((b.exit_code, b.reason.as_deref()), (0, Some("Completed")));
    }

    #[test]
    fn status_patch_clears_stale_condition_fields() {
        let mut record = PodRecord::new(&pod(&[], &["a"]), ts(0));
        record.main[0].state = exited(0);
        let patch = status_patch(&record.status(ts(1)));
        let conditions = patch["status"]["conditions"].as_array().expect("conditions");
        let ready = conditions.iter().find(|c| c["type"] == "Ready").expect("ready");
        assert_eq!(ready["reason"], "PodCompleted");
        assert!(ready["message"].is_null() && ready.get("message").is_some());
        let initialized = conditions.iter().find(|c| c["type"] == "Initialized").expect("initialized");
        assert!(initialized.get("reason").is_some_and(serde_json::Value::is_null));
        assert_eq!(patch["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
    }

    #[test]
    fn sidecars_do_not_block_initialization_or_decide_the_phase() {
        let mut p = pod(&["proxy"], &["main"]);
        if let Some(init) = p.spec.as_mut().and_then(|s| s.init_containers.as_mut()) {
            init[0].restart_policy = Some("Always".into());
        }
        let mut record = PodRecord::new(&p, ts(0));
        assert!(!record.initialized());
        record.init[0].state = State::Running { started_at: ts(1) };
        assert!(record.initialized());
        record.main[0].state = exited(0);
        record.init[0].state = State::Terminated(Terminated::exited(Exit::signalled(15), ts(1), ts(3), None));
        assert_eq!(record.phase(), phase::SUCCEEDED);
    }
}
