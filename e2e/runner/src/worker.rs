//! One pod's run, start to end: credentials, volumes, init containers in order, main containers
//! together, status after every change, and termination (SIGTERM, grace period, SIGKILL) when
//! the pod is deleted or the runner stops.

use std::{
    collections::BTreeMap,
    io::{Read, Seek, SeekFrom},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::{Container as SpecContainer, Pod},
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{
    context::Context,
    credentials::{self, MintedToken},
    env, images,
    ips::IpError,
    node::is_not_found,
    poddir,
    process::{self, Exit},
    retry::Backoff,
    status::{self, PodRecord, State, Terminated},
    volumes,
};

/// How long a missing Secret or ConfigMap is waited for before the container fails with
/// `CreateContainerConfigError` (kubelet waits forever; tests want an answer).
const CONFIG_WAIT: Duration = Duration::from_secs(30);
/// The grace period when the pod names none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Kubelet's floor on grace periods, so even a forced deletion lets SIGTERM handlers run.
const MINIMUM_GRACE: Duration = Duration::from_secs(2);
/// Most bytes of a failed container's log quoted in its termination message.
const LOG_TAIL_BYTES: u64 = 1024;
/// Reason of a pod failed because every pod IP was in use.
pub const POD_IPS_EXHAUSTED: &str = "PodIPsExhausted";

/// Why a running pod must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The pod has a deletionTimestamp: stop, report, delete the object (kubelet's part).
    Deleted {
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
    /// The pod object is gone: stop; there is nothing left to report to.
    Gone {
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
    /// The runner is shutting down: stop and report the pod Failed.
    Shutdown {
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
}

impl StopReason {
    fn grace(self) -> Duration {
        match self {
            StopReason::Deleted { grace } | StopReason::Gone { grace } | StopReason::Shutdown { grace } => grace,
        }
    }
}

/// The grace period for stopping a pod: the deletion's, else the spec's, else 30 s; at least 2 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds));
    let grace = seconds.and_then(|s| u64::try_from(s).ok()).map_or(DEFAULT_GRACE, Duration::from_secs);
    grace.max(MINIMUM_GRACE)
}

/// Where a container sits in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Init(usize),
    Main(usize),
}

/// Why the normal course of a pod was left.
enum Interrupt {
    /// A stop was requested.
    Stop(StopReason),
    /// The pod cannot run; the failure is already recorded and reported.
    Fail,
}

/// A container ready to start.
struct Prepared {
    invocation: images::Invocation,
    env: Vec<(String, String)>,
}

/// Credentials written for the pod, for refreshing.
struct TokenState {
    path: PathBuf,
    refresh_at: Instant,
}

/// The task running one pod.
pub struct Worker {
    ctx: Arc<Context>,
    pod: Pod,
    namespace: String,
    name: String,
    uid: String,
    dir: PathBuf,
    record: PodRecord,
    stop: watch::Receiver<Option<StopReason>>,
    exit_tx: mpsc::UnboundedSender<(Slot, Exit, Timestamp)>,
    exit_rx: mpsc::UnboundedReceiver<(Slot, Exit, Timestamp)>,
    running: Vec<(Slot, i32)>,
    token: Option<TokenState>,
    kubeconfig: Option<PathBuf>,
    volume_dirs: BTreeMap<String, PathBuf>,
    token_files: Vec<(PathBuf, u32)>,
    /// The default-audience token, reused for projected service-account volumes.
    default_token: Option<String>,
    /// Attempts per status update before giving up.
    report_attempts: u32,
    gone: bool,
    /// Why the pod got no IP: it fails before anything runs.
    ip_error: Option<IpError>,
}

impl Worker {
    /// A worker for `pod` with the address allocated to it (or why there was none), told to
    /// stop through `stop`.
    pub fn new(
        ctx: Arc<Context>,
        pod: Pod,
        pod_ip: Result<Ipv4Addr, IpError>,
        stop: watch::Receiver<Option<StopReason>>,
    ) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = ctx.pod_dir(&namespace, &name, &uid);
        let mut record = PodRecord::new(&pod, Timestamp::now());
        let (pod_ip, ip_error) = match pod_ip {
            Ok(ip) => (Some(ip), None),
            Err(error) => (None, Some(error)),
        };
        record.pod_ip = pod_ip;
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        Worker {
            ctx,
            pod,
            namespace,
            name,
            uid,
            dir,
            record,
            stop,
            exit_tx,
            exit_rx,
            running: Vec::new(),
            token: None,
            kubeconfig: None,
            volume_dirs: BTreeMap::new(),
            token_files: Vec::new(),
            default_token: None,
            report_attempts: 10,
            gone: false,
            ip_error,
        }
    }

    /// Runs the pod to its end, or until told to stop.
    pub async fn run(mut self) {
        let ip = self.record.pod_ip.map(|ip| ip.to_string()).unwrap_or_default();
        tracing::info!(pod = %self.key(), dir = %self.dir.display(), pod_ip = %ip, "starting pod");
        let outcome = self.execute().await;
        let reason = match outcome {
            Ok(()) | Err(Interrupt::Fail) => None,
            Err(Interrupt::Stop(reason)) => Some(reason),
        };
        // Sidecars (and anything else still running) end with the pod.
        let grace = reason.map_or_else(|| grace_period(&self.pod), StopReason::grace);
        self.terminate_all(grace).await;
        // Nothing of the pod runs any more: its credentials and Secret volumes go now (a bound
        // token would stay valid for up to an hour); its logs stay until the pod is deleted.
        self.token = None;
        if let Err(error) = poddir::remove_secrets(&self.dir) {
            tracing::warn!(pod = %self.key(), %error, "removing the pod's credentials and volumes failed");
        }
        match reason {
            // Reported already, but sidecars may have ended since.
            None => self.report().await,
            Some(StopReason::Gone { .. }) => self.gone = true,
            Some(StopReason::Deleted { .. }) => {
                self.finish_unfinished("Terminated", "the pod was deleted before its containers completed");
                self.report().await;
                self.delete_object().await;
            }
            Some(StopReason::Shutdown { .. }) => {
                self.finish_unfinished("RunnerShutdown", "rehearsal-runner stopped and terminated the pod's processes");
                // Best effort: the runner is exiting, possibly because the API server went away.
                self.report_attempts = 2;
                self.report().await;
            }
        }
        tracing::info!(pod = %self.key(), phase = self.record.phase(), "pod done");
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Marks a stopped pod Failed with `reason` unless its containers already decided its phase.
    fn finish_unfinished(&mut self, reason: &str, message: &str) {
        if !status::is_terminal(Some(self.record.phase())) {
            self.record.failure = Some((reason.to_owned(), message.to_owned()));
        }
    }

    async fn execute(&mut self) -> Result<(), Interrupt> {
        // Without an address of its own the pod would collide with others; fail it visibly.
        if let Some(error) = self.ip_error.take() {
            return self.fail_pod(POD_IPS_EXHAUSTED, error.to_string()).await;
        }
        // 0700: the pod's token, kubeconfig and Secret volumes go in here.
        if let Err(error) = poddir::create_private(&self.dir) {
            return self.fail_pod("RunnerError", format!("creating {}: {error}", self.dir.display())).await;
        }
        self.report().await;
        self.check_stop()?;
        self.setup_credentials().await?;
        self.setup_volumes().await?;

        let spec = self.pod.spec.clone().unwrap_or_default();
        for (i, container) in spec.init_containers.iter().flatten().enumerate() {
            let slot = Slot::Init(i);
            let prepared = self.prepare(slot, container).await?;
            self.start(slot, container, prepared);
            self.report().await;
            if self.record.init[i].sidecar {
                continue;
            }
            while !matches!(self.record.init[i].state, State::Terminated(_)) {
                self.next_event().await?;
            }
            if status::is_terminal(Some(self.record.phase())) {
                return Ok(());
            }
        }

        let mut prepared = Vec::with_capacity(spec.containers.len());
        for (i, container) in spec.containers.iter().enumerate() {
            prepared.push(self.prepare(Slot::Main(i), container).await?);
        }
        for (i, (container, prepared)) in spec.containers.iter().zip(prepared).enumerate() {
            self.start(Slot::Main(i), container, prepared);
        }
        self.report().await;
        while !self.record.main.iter().all(|c| matches!(c.state, State::Terminated(_))) {
            self.next_event().await?;
        }
        Ok(())
    }

    /// Records a pod-level failure, reports it and leaves the normal course.
    async fn fail_pod(&mut self, reason: &str, message: String) -> Result<(), Interrupt> {
        tracing::warn!(pod = %self.key(), reason, %message, "pod failed");
        self.record.failure = Some((reason.to_owned(), message));
        self.report().await;
        Err(Interrupt::Fail)
    }

    /// Fails one container before it started, and with it the pod.
    async fn fail_container(&mut self, slot: Slot, reason: &str, message: String) -> Interrupt {
        let container = match slot {
            Slot::Init(i) => &mut self.record.init[i],
            Slot::Main(i) => &mut self.record.main[i],
        };
        container.state = State::Terminated(Terminated::not_started(reason, message.clone(), Timestamp::now()));
        let message = format!("container {}: {message}", container.name);
        match self.fail_pod(reason, message).await {
            Ok(()) | Err(Interrupt::Fail) => Interrupt::Fail,
            Err(stop) => stop,
        }
    }

    fn check_stop(&self) -> Result<(), Interrupt> {
        match *self.stop.borrow() {
            Some(reason) => Err(Interrupt::Stop(reason)),
            None => Ok(()),
        }
    }

    /// Sleeps unless a stop is requested first.
    async fn pause(&mut self, delay: Duration) -> Result<(), Interrupt> {
        tokio::select! {
            reason = stop_requested(&mut self.stop, self.ctx.shutdown_grace) => Err(Interrupt::Stop(reason)),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Waits for the next container exit (or a token refresh); a stop request interrupts.
    async fn next_event(&mut self) -> Result<(), Interrupt> {
        let refresh_at = self.token.as_ref().map(|t| t.refresh_at);
        tokio::select! {
            reason = stop_requested(&mut self.stop, self.ctx.shutdown_grace) => Err(Interrupt::Stop(reason)),
            Some((slot, exit, at)) = self.exit_rx.recv() => {
                self.on_exit(slot, exit, at);
                self.report().await;
                if self.gone {
                    return Err(Interrupt::Stop(StopReason::Gone { grace: grace_period(&self.pod) }));
                }
                Ok(())
            }
            () = sleep_until_opt(refresh_at) => {
                self.refresh_token().await;
                Ok(())
            }
        }
    }

    /// Mints the pod's token and writes token file and kubeconfig, unless automount is off.
    async fn setup_credentials(&mut self) -> Result<(), Interrupt> {
        if !credentials::automount(&self.ctx.client, &self.pod).await {
            return Ok(());
        }
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        let minted = loop {
            match credentials::mint(&self.ctx.client, &self.pod, None).await {
                Ok(minted) => break minted,
                Err(error) => {
                    // Kubelet waits for the service account too; the pod stays ContainerCreating.
                    tracing::warn!(pod = %self.key(), %error, "minting service-account token failed; retrying");
                    self.note_waiting(&error.to_string()).await;
                    let delay = backoff.next_delay();
                    self.pause(delay).await?;
                }
            }
        };
        let account = credentials::service_account(&self.pod);
        let written =
            credentials::write_pod_credentials(&self.dir, &self.ctx.target, &minted.token, &self.namespace, &account);
        let written = match written {
            Ok(written) => written,
            Err(error) => return self.fail_pod("RunnerError", error.to_string()).await,
        };
        self.token = Some(TokenState { path: written.token, refresh_at: refresh_instant(&minted) });
        self.kubeconfig = Some(written.kubeconfig);
        self.default_token = Some(minted.token);
        Ok(())
    }

    /// Shows why the pod is still waiting on its waiting containers; reports only a change.
    async fn note_waiting(&mut self, message: &str) {
        let mut changed = false;
        for container in self.record.init.iter_mut().chain(self.record.main.iter_mut()) {
            if let State::Waiting { message: shown, .. } = &mut container.state
                && shown.as_deref() != Some(message)
            {
                *shown = Some(message.to_owned());
                changed = true;
            }
        }
        if changed {
            self.report().await;
        }
    }

    async fn refresh_token(&mut self) {
        let Some(token) = &self.token else { return };
        let path = token.path.clone();
        match credentials::mint(&self.ctx.client, &self.pod, None).await {
            Ok(minted) => {
                let token = minted.token.as_bytes();
                let mut result = credentials::write_atomically(&path, token, credentials::CREDENTIAL_MODE);
                for (file, mode) in &self.token_files {
                    result = result.and(credentials::write_atomically(file, token, *mode));
                }
                if let Err(error) = result {
                    tracing::warn!(pod = %self.key(), %error, "writing refreshed token failed");
                }
                self.token = Some(TokenState { path, refresh_at: refresh_instant(&minted) });
                tracing::debug!(pod = %self.key(), "service-account token refreshed");
            }
            Err(error) => {
                tracing::warn!(pod = %self.key(), %error, "refreshing service-account token failed; retrying in 30 s");
                self.token = Some(TokenState { path, refresh_at: Instant::now() + Duration::from_secs(30) });
            }
        }
    }

    /// Fetches what the volumes need and writes them under the pod directory.
    async fn setup_volumes(&mut self) -> Result<(), Interrupt> {
        let (refs, audiences) = volumes::referenced(&self.pod);
        if self.pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_none_or(Vec::is_empty) {
            return Ok(());
        }
        let deadline = Instant::now() + CONFIG_WAIT;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        loop {
            let mut inputs = volumes::Inputs { pod_ip: self.record.pod_ip, ..Default::default() };
            let fetched = match env::fetch(&self.ctx.client, &self.namespace, &refs).await {
                Ok(sources) => {
                    inputs.sources = sources;
                    self.mint_for_audiences(&audiences, &mut inputs).await
                }
                Err(error) => Err(error.to_string()),
            };
            let planned = match fetched {
                // Transient API trouble: keep trying, as kubelet would.
                Err(error) => {
                    tracing::warn!(pod = %self.key(), %error, "reading volume sources failed; retrying");
                    None
                }
                Ok(()) => match volumes::plan(&self.pod, &inputs) {
                    Ok(planned) => Some(planned),
                    Err(
                        error @ (volumes::VolumeError::MissingSecret { .. }
                        | volumes::VolumeError::MissingConfigMap { .. }
                        | volumes::VolumeError::MissingKey { .. }),
                    ) => {
                        if Instant::now() >= deadline {
                            return self.fail_pod("CreateContainerConfigError", error.to_string()).await;
                        }
                        self.note_waiting(&error.to_string()).await;
                        None
                    }
                    Err(error) => return self.fail_pod("CreateContainerConfigError", error.to_string()).await,
                },
            };
            if let Some(planned) = planned {
                match volumes::write(&self.dir, &planned) {
                    Ok(written) => {
                        self.volume_dirs = written.dirs;
                        self.token_files = written.token_files;
                        return Ok(());
                    }
                    Err(error) => return self.fail_pod("RunnerError", error.to_string()).await,
                }
            }
            let delay = backoff.next_delay();
            self.pause(delay).await?;
        }
    }

    async fn mint_for_audiences(
        &self,
        audiences: &std::collections::BTreeSet<Option<String>>,
        inputs: &mut volumes::Inputs,
    ) -> Result<(), String> {
        for audience in audiences {
            let token = match (audience, &self.default_token) {
                (None, Some(token)) => token.clone(),
                _ => {
                    let audiences = audience.clone().map(|a| vec![a]);
                    credentials::mint(&self.ctx.client, &self.pod, audiences).await.map_err(|e| e.to_string())?.token
                }
            };
            inputs.tokens.insert(audience.clone(), token);
        }
        Ok(())
    }

    /// Resolves a container's environment, command and executable.
    async fn prepare(&mut self, slot: Slot, container: &SpecContainer) -> Result<Prepared, Interrupt> {
        let refs = env::referenced(container);
        let deadline = Instant::now() + CONFIG_WAIT;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let pod_env = loop {
            let sources = match env::fetch(&self.ctx.client, &self.namespace, &refs).await {
                Ok(sources) => sources,
                Err(error) => {
                    tracing::warn!(pod = %self.key(), %error, "reading env sources failed; retrying");
                    let delay = backoff.next_delay();
                    self.pause(delay).await?;
                    continue;
                }
            };
            match env::resolve(&self.pod, self.record.pod_ip, container, &sources) {
                Ok(env) => break env,
                Err(
                    error @ (env::EnvError::MissingSecret(_)
                    | env::EnvError::MissingSecretKey { .. }
                    | env::EnvError::MissingConfigMap(_)
                    | env::EnvError::MissingConfigMapKey { .. }),
                ) if Instant::now() < deadline => {
                    self.note_waiting(&error.to_string()).await;
                    let delay = backoff.next_delay();
                    self.pause(delay).await?;
                }
                Err(error) => {
                    return Err(self.fail_container(slot, "CreateContainerConfigError", error.to_string()).await);
                }
            }
        };

        let mounts = volumes::container_mounts(container, &self.volume_dirs);
        let mut full_env: Vec<(String, String)> = vec![
            ("PATH".into(), self.ctx.path_env.clone()),
            ("HOME".into(), self.dir.to_string_lossy().into_owned()),
            ("HOSTNAME".into(), self.name.clone()),
        ];
        if let Some(kubeconfig) = &self.kubeconfig {
            full_env.push(("KUBECONFIG".into(), kubeconfig.to_string_lossy().into_owned()));
        }
        // The volume's directory (not a subPath inside it), once per mounted volume.
        let mut named = std::collections::BTreeSet::new();
        for mount in &mounts {
            if let Some(dir) = self.volume_dirs.get(&mount.volume)
                && named.insert(mount.volume.as_str())
            {
                full_env.push((volumes::env_name(&mount.volume), dir.to_string_lossy().into_owned()));
            }
        }
        for (key, value) in pod_env {
            let value = volumes::substitute(&value, &mounts);
            match full_env.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => full_env.push((key, value)),
            }
        }
        let expand = |items: &Option<Vec<String>>| -> Vec<String> {
            items.iter().flatten().map(|item| volumes::substitute(&env::expand(item, &full_env), &mounts)).collect()
        };
        let command = expand(&container.command);
        let args = expand(&container.args);
        let image = container.image.clone().unwrap_or_default();
        match images::resolve(&image, &command, &args, &self.ctx.bin_dir) {
            Ok(invocation) => Ok(Prepared { invocation, env: full_env }),
            Err(error) => Err(self.fail_container(slot, "ImageNotRunnable", error.to_string()).await),
        }
    }

    /// Starts a prepared container; a failure to exec is a `StartError` termination.
    fn start(&mut self, slot: Slot, container: &SpecContainer, prepared: Prepared) {
        let log = self.dir.join(format!("{}.log", container.name));
        let spec = process::Spec {
            program: &prepared.invocation.program,
            args: &prepared.invocation.args,
            env: &prepared.env,
            cwd: &self.dir,
            log: &log,
        };
        let now = Timestamp::now();
        let record = match slot {
            Slot::Init(i) => &mut self.record.init[i],
            Slot::Main(i) => &mut self.record.main[i],
        };
        record.image_id = format!("file://{}", prepared.invocation.program.display());
        match process::spawn(&spec) {
            Ok(process::Spawned { mut child, pgid }) => {
                tracing::info!(
                    pod = %format!("{}/{}", self.namespace, self.name),
                    container = %container.name,
                    pid = pgid,
                    program = %prepared.invocation.program.display(),
                    "container started"
                );
                record.state = State::Running { started_at: now };
                record.pid = Some(pgid);
                self.running.push((slot, pgid));
                let guard = self.ctx.guard.clone();
                if let Some(guard) = &guard {
                    guard.watch(pgid);
                }
                let exits = self.exit_tx.clone();
                tokio::spawn(async move {
                    let exit = match child.wait().await {
                        Ok(status) => Exit::from_status(status),
                        Err(error) => {
                            tracing::warn!(%error, pgid, "waiting for container process failed");
                            Exit::signalled(libc::SIGKILL)
                        }
                    };
                    // Whatever the container left behind in its group ends with it, as a cgroup would.
                    process::signal_group(pgid, libc::SIGKILL);
                    if let Some(guard) = guard {
                        guard.forget(pgid);
                    }
                    let _ = exits.send((slot, exit, Timestamp::now()));
                });
            }
            Err(error) => {
                tracing::warn!(container = %container.name, %error, "container failed to start");
                record.state = State::Terminated(Terminated::not_started("StartError", error.to_string(), now));
            }
        }
    }

    fn on_exit(&mut self, slot: Slot, exit: Exit, at: Timestamp) {
        self.running.retain(|(s, _)| *s != slot);
        let record = match slot {
            Slot::Init(i) => &mut self.record.init[i],
            Slot::Main(i) => &mut self.record.main[i],
        };
        let started_at = match record.state {
            State::Running { started_at } => started_at,
            _ => at,
        };
        let log = self.dir.join(format!("{}.log", record.name));
        let message = (exit.code != 0).then(|| failure_message(exit, &log));
        tracing::info!(pod = %format!("{}/{}", self.namespace, self.name), container = %record.name, code = exit.code, "container exited");
        record.state = State::Terminated(Terminated::exited(exit, started_at, at, message));
    }

    /// SIGTERM to every running container's group, SIGKILL to what is left after `grace`.
    async fn terminate_all(&mut self, grace: Duration) {
        if self.running.is_empty() {
            return;
        }
        tracing::info!(pod = %self.key(), grace_seconds = grace.as_secs(), "stopping containers");
        for (_, pgid) in &self.running {
            process::signal_group(*pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while !self.running.is_empty() {
            tokio::select! {
                Some((slot, exit, at)) = self.exit_rx.recv() => self.on_exit(slot, exit, at),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if self.running.is_empty() {
            return;
        }
        tracing::warn!(pod = %self.key(), "grace period over; killing containers");
        for (_, pgid) in &self.running {
            process::signal_group(*pgid, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.running.is_empty() {
            tokio::select! {
                Some((slot, exit, at)) = self.exit_rx.recv() => self.on_exit(slot, exit, at),
                () = tokio::time::sleep_until(deadline) => {
                    tracing::error!(pod = %self.key(), "container processes did not die after SIGKILL");
                    return;
                }
            }
        }
    }

    /// Patches the pod's status (strategic merge, as kubelet does), retrying transient errors.
    async fn report(&mut self) {
        if self.gone {
            return;
        }
        let body = status::status_patch(&self.record.status(Timestamp::now()));
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        for attempt in 1..=self.report_attempts {
            match pods.patch_status(&self.name, &PatchParams::default(), &Patch::Strategic(&body)).await {
                Ok(updated) if updated.metadata.uid.as_deref() == Some(self.uid.as_str()) => return,
                Ok(_) => {
                    // Same name, different pod: ours is gone.
                    self.gone = true;
                    return;
                }
                Err(error) if is_not_found(&error) => {
                    self.gone = true;
                    return;
                }
                Err(kube::Error::Api(response)) if response.code == 422 => {
                    tracing::error!(pod = %self.key(), message = %response.message, "status rejected");
                    return;
                }
                Err(error) => {
                    tracing::warn!(pod = %self.key(), attempt, %error, "status update failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        tracing::error!(pod = %self.key(), "giving up on this status update");
    }

    async fn delete_object(&self) {
        delete_pod(&self.ctx.client, &self.namespace, &self.name, &self.uid).await;
    }
}

/// Deletes a pod object with grace 0 once its processes are gone (kubelet's last step); the
/// uid precondition keeps a new pod of the same name safe.
pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str, uid: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
        ..Default::default()
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=10 {
        match pods.delete(name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), "pod object deleted");
                return;
            }
            // Gone already, or the name now belongs to another pod.
            Err(kube::Error::Api(response)) if matches!(response.code, 404 | 409) => return,
            Err(error) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), attempt, %error, "deleting pod failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Resolves when a stop is requested; a dropped sender counts as runner shutdown.
async fn stop_requested(stop: &mut watch::Receiver<Option<StopReason>>, shutdown_grace: Duration) -> StopReason {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.unwrap_or(StopReason::Shutdown { grace: shutdown_grace }),
        Err(_) => StopReason::Shutdown { grace: shutdown_grace },
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn refresh_instant(token: &MintedToken) -> Instant {
    let now = Timestamp::now();
    let wait = token.refresh_at(now).duration_since(now);
    let wait = Duration::try_from(wait).unwrap_or(Duration::from_secs(60)).max(Duration::from_secs(10));
    Instant::now() + wait
}

/// The termination message of a failed container: its exit and the tail of its log.
fn failure_message(exit: Exit, log: &Path) -> String {
    let head = match exit.signal {
        Some(signal) => format!("killed by signal {signal} (exit code {})", exit.code),
        None => format!("exited with code {}", exit.code),
    };
    match log_tail(log, LOG_TAIL_BYTES) {
        Some(tail) if !tail.trim().is_empty() => format!("{head}; last output:\n{}", tail.trim_end()),
        _ => format!("{head}; log: {}", log.display()),
    }
}

fn log_tail(path: &Path, max: u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    use super::*;

    #[test]
    fn grace_period_prefers_deletion_then_spec_then_default_with_floor() {
        let mut pod = Pod { metadata: ObjectMeta::default(), spec: Some(PodSpec::default()), status: None };
        assert_eq!(grace_period(&pod), DEFAULT_GRACE);
        if let Some(spec) = pod.spec.as_mut() {
            spec.termination_grace_period_seconds = Some(5);
        }
        assert_eq!(grace_period(&pod), Duration::from_secs(5));
        pod.metadata.deletion_grace_period_seconds = Some(0);
        assert_eq!(grace_period(&pod), MINIMUM_GRACE);
    }

    #[test]
    fn failure_message_quotes_the_log_tail() {
        let dir = std::env::temp_dir().join(format!("rehearsal-runner-worker-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join("c.log");
        let _ = std::fs::write(&log, format!("{}\nfatal: boom\n", "x".repeat(5000)));
        let message = failure_message(Exit { code: 3, signal: None }, &log);
        assert!(message.starts_with("exited with code 3; last output:\n"), "{message}");
        assert!(message.ends_with("fatal: boom"), "{message}");
        assert!(message.len() < 1200);
        let missing = failure_message(Exit::signalled(9), &dir.join("none.log"));
        assert!(missing.starts_with("killed by signal 9 (exit code 137); log: "), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
