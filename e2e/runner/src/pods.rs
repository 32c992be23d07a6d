//! The watch on the node's pods (field selector `spec.nodeName=<node>`, all namespaces): a
//! worker per new pod, a stop request when a pod is deleted or disappears, deletion of pods
//! that end while terminated, and `RunnerRestarted` for pods a previous runner left running.
//! It also owns the pod IPs (allocated when a pod starts, freed when its worker has ended) and
//! the pod folders' end: a deleted pod's folder is removed once its worker has ended, and after
//! every (re)list folders of pods that are gone are removed and those of pods that do not run
//! here lose their credentials (see `poddir`).

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    context::Context,
    ips::{self, Allocator},
    node::is_not_found,
    poddir::{self, Fate},
    retry::Backoff,
    status,
    worker::{self, StopReason, Worker},
};

/// A running pod's worker.
struct Handle {
    stop: watch::Sender<Option<StopReason>>,
    task: JoinHandle<()>,
    grace: Duration,
    /// The pod's folder, removed once the worker has ended if the pod is gone by then.
    dir: PathBuf,
}

impl Handle {
    /// Asks the worker to stop, unless it already has a reason to.
    fn request_stop(&self, reason: StopReason) {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }
}

/// What the watch loop knows about the node's pods, by uid.
struct Pods {
    ctx: Arc<Context>,
    workers: HashMap<String, Handle>,
    /// Pods whose worker ended (or that were failed as RunnerRestarted): never run again.
    done: HashSet<String>,
    /// Pods a delete was already issued for.
    deleting: HashSet<String>,
    /// Pods deleted while their worker was still registered: (namespace, name) by uid.
    delete_when_finished: HashMap<String, (String, String)>,
    /// Folders of pods that are gone while their worker still ran, removed when it ends.
    remove_when_finished: HashMap<String, PathBuf>,
    /// Uids seen since the watch (re)started listing, until the list is complete.
    relist: Option<HashSet<String>>,
    /// New pods seen while listing, started once the list is complete: by then every address
    /// a previous runner's pods still report is reserved, so none is handed out twice.
    pending: Vec<(String, Pod)>,
    /// Pod IPs, by pod uid.
    ips: Allocator,
    /// Uids whose worker ended, or whose RunnerRestarted mark landed: their IP can be freed.
    finished_tx: mpsc::UnboundedSender<String>,
}

/// Watches the node's pods until `shutdown`, then stops every pod and waits for them.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    // default_backoff: watch errors are retried with exponential backoff instead of ending the stream.
    let mut events = watcher(api, config).default_backoff().boxed();
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let mut pods = Pods::new(ctx, finished_tx);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(uid) = finished_rx.recv() => pods.finished(&uid),
            event = events.next() => match event {
                Some(Ok(event)) => pods.handle(event),
                Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                None => {
                    tracing::error!("pod watch ended");
                    break;
                }
            },
        }
    }
    pods.shutdown().await;
}

impl Pods {
    /// A pod registry for the node of `ctx`, with nothing running yet.
    fn new(ctx: Arc<Context>, finished_tx: mpsc::UnboundedSender<String>) -> Pods {
        Pods {
            ctx,
            workers: HashMap::new(),
            done: HashSet::new(),
            deleting: HashSet::new(),
            delete_when_finished: HashMap::new(),
            remove_when_finished: HashMap::new(),
            relist: None,
            pending: Vec::new(),
            ips: Allocator::new(),
            finished_tx,
        }
    }

    fn handle(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => {
                // A restarted list lists again whatever an interrupted one had deferred.
                self.relist = Some(HashSet::new());
                self.pending.clear();
            }
            watcher::Event::InitApply(pod) => {
                if let (Some(seen), Some(uid)) = (self.relist.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                self.apply(pod);
            }
            watcher::Event::InitDone => self.relisted(),
            watcher::Event::Apply(pod) => self.apply(pod),
            watcher::Event::Delete(pod) => self.deleted(&pod),
        }
    }

    fn apply(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if let Some(handle) = self.workers.get(&uid) {
            if deleting {
                handle.request_stop(StopReason::Deleted { grace: worker::grace_period(&pod) });
                // The worker may already be ending on its own (a container that failed to
                // start), too late to act on the stop; `finished` then issues the delete.
                self.delete_when_finished.insert(uid, (namespace, name));
            }
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = self.done.contains(&uid) || status::is_terminal(phase);
        if deleting || finished {
            // Nothing of it runs here; a deleted pod only needs kubelet's final delete.
            if deleting && self.deleting.insert(uid.clone()) {
                let client = self.ctx.client.clone();
                tokio::spawn(async move { worker::delete_pod(&client, &namespace, &name, &uid).await });
            }
            return;
        }
        if status::started_before(&pod) {
            // A previous runner started it and its processes died with that runner.
            tracing::warn!(pod = %format!("{namespace}/{name}"), "pod was started by a previous runner; marking it failed");
            // Its address stays taken while the pod still reports it as live: clients may still
            // be pointed at it, and without the orphan guard its processes may outlive the old runner.
            if let Some(ip) = ips::reported(&pod).filter(|ip| Allocator::in_range(*ip))
                && !self.ips.reserve(&uid, ip)
            {
                tracing::warn!(pod = %format!("{namespace}/{name}"), %ip, "pod IP reported by a stale pod is already held by another");
            }
            self.done.insert(uid.clone());
            let ctx = self.ctx.clone();
            let finished = self.finished_tx.clone();
            tokio::spawn(async move {
                if mark_runner_restarted(&ctx, &pod).await {
                    let _ = finished.send(uid);
                }
            });
            return;
        }
        if self.relist.is_some() {
            self.pending.push((uid, pod));
            return;
        }
        self.start(uid, pod);
    }

    fn start(&mut self, uid: String, pod: Pod) {
        let (stop, stop_rx) = watch::channel(None);
        let grace = worker::grace_period(&pod);
        // An exhausted range fails this pod (the worker reports why), not the runner.
        let pod_ip = self.ips.allocate(&uid);
        let dir = pod_dir(&self.ctx, &pod);
        let worker = Worker::new(self.ctx.clone(), pod, pod_ip, stop_rx);
        let finished = self.finished_tx.clone();
        let task_uid = uid.clone();
        let task = tokio::spawn(async move {
            // A panicking pod must not take the runner down; the inner task contains it.
            if let Err(error) = tokio::spawn(worker.run()).await {
                tracing::error!(uid = %task_uid, %error, "pod worker failed");
            }
            let _ = finished.send(task_uid);
        });
        self.workers.insert(uid, Handle { stop, task, grace, dir });
    }

    fn deleted(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else { return };
        match self.workers.get(uid) {
            // Its IP and its folder are freed when the worker has ended the pod's processes.
            Some(handle) => {
                handle.request_stop(StopReason::Gone { grace: worker::grace_period(pod) });
                self.remove_when_finished.insert(uid.to_owned(), handle.dir.clone());
            }
            // Nothing of it runs (any more); a stale pod's reserved address is free now, and
            // with the pod object gone nobody will ask for its logs.
            None => {
                self.ips.release(uid);
                remove_dir(&pod_dir(&self.ctx, pod));
            }
        }
        self.pending.retain(|(pending, _)| pending != uid);
        self.done.remove(uid);
        self.deleting.remove(uid);
    }

    /// After a (re)list: pods that vanished while the watch was down are stopped and forgotten.
    fn relisted(&mut self) {
        let Some(seen) = self.relist.take() else { return };
        for (uid, handle) in &self.workers {
            if !seen.contains(uid) {
                handle.request_stop(StopReason::Gone { grace: handle.grace });
                self.remove_when_finished.insert(uid.clone(), handle.dir.clone());
            }
        }
        // Before the pending pods start, so none of their fresh credentials is swept away.
        let workers = &self.workers;
        poddir::sweep(&self.ctx.state_dir.join("pods"), |uid| {
            if workers.contains_key(uid) {
                Fate::Keep
            } else if seen.contains(uid) {
                Fate::RemoveSecrets
            } else {
                Fate::Remove
            }
        });
        self.done.retain(|uid| seen.contains(uid));
        self.deleting.retain(|uid| seen.contains(uid));
        let workers = &self.workers;
        self.ips.retain(|uid| workers.contains_key(uid) || seen.contains(uid));
        for (uid, pod) in std::mem::take(&mut self.pending) {
            if !self.workers.contains_key(&uid) {
                self.start(uid, pod);
            }
        }
    }

    fn finished(&mut self, uid: &str) {
        if self.workers.remove(uid).is_some() {
            self.done.insert(uid.to_owned());
        }
        if let Some(dir) = self.remove_when_finished.remove(uid) {
            remove_dir(&dir);
        }
        // The pod's processes have ended (or, for a stale pod, it is marked Failed): nothing
        // listens on its address any more.
        if let Some(ip) = self.ips.release(uid) {
            tracing::debug!(%uid, %ip, "pod IP released");
        }
        // Deleting twice is harmless (the uid precondition and 404 are handled); never doing
        // it would leave the pod Terminating forever.
        if let Some((namespace, name)) = self.delete_when_finished.remove(uid)
            && self.deleting.insert(uid.to_owned())
        {
            let (client, uid) = (self.ctx.client.clone(), uid.to_owned());
            tokio::spawn(async move { worker::delete_pod(&client, &namespace, &name, &uid).await });
        }
    }

    /// Stops every pod (grace capped by the runner's shutdown grace) and waits for them.
    async fn shutdown(self) {
        let cap = self.ctx.shutdown_grace;
        if !self.workers.is_empty() {
            tracing::info!(pods = self.workers.len(), "stopping pods");
        }
        for handle in self.workers.values() {
            handle.request_stop(StopReason::Shutdown { grace: handle.grace.min(cap) });
        }
        // Generous: grace, then SIGKILL and its own wait, then the final status report.
        let limit = cap + Duration::from_secs(30);
        let tasks = self.workers.into_values().map(|h| h.task);
        if tokio::time::timeout(limit, futures::future::join_all(tasks)).await.is_err() {
            tracing::error!("pods did not stop in time");
        }
    }
}

/// The folder of a pod of this node.
fn pod_dir(ctx: &Context, pod: &Pod) -> PathBuf {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    ctx.pod_dir(namespace, name, pod.metadata.uid.as_deref().unwrap_or_default())
}

/// Removes a deleted pod's folder, logs and all.
fn remove_dir(dir: &std::path::Path) {
    match poddir::remove(dir) {
        Ok(()) => tracing::debug!(dir = %dir.display(), "pod folder removed"),
        Err(error) => tracing::warn!(dir = %dir.display(), %error, "removing a deleted pod's folder failed"),
    }
}

/// Reports a pod a previous runner had started as Failed with reason `RunnerRestarted`; true
/// once it is (or the pod is gone).
async fn mark_runner_restarted(ctx: &Context, pod: &Pod) -> bool {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = status::status_patch(&status::runner_restarted(pod, Timestamp::now()));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=10 {
        match pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&body)).await {
            Ok(_) => return true,
            Err(error) if is_not_found(&error) => return true,
            Err(error) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), attempt, %error, "marking pod failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    // Still non-terminal as far as anyone can tell: its address stays reserved until the pod
    // is deleted.
    false
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, path::Path};

    use k8s_openapi::{
        api::core::v1::{Container, PodSpec, PodStatus},
        apimachinery::pkg::apis::meta::v1::Time,
    };
    use kube::{Client, api::ObjectMeta, config::Kubeconfig};

    use super::*;
    use crate::credentials::ApiTarget;

    /// A watch loop whose client points at a closed port: the tests drive `handle` and
    /// `finished` by hand and never let the spawned tasks run (a current-thread runtime only
    /// runs them when the test awaits).
    fn pods(test: &str) -> (Pods, mpsc::UnboundedReceiver<String>) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let kubeconfig = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n",
        )
        .expect("kubeconfig");
        let target = ApiTarget::from_parsed(&kubeconfig, Path::new("/")).expect("target");
        let ctx = Arc::new(Context {
            client,
            node_name: "rehearsal-runner".into(),
            state_dir: std::env::temp_dir().join(format!("rehearsal-runner-{test}-{}", std::process::id())),
            bin_dir: "/nonexistent".into(),
            target,
            shutdown_grace: Duration::from_secs(1),
            path_env: "/usr/bin:/bin".into(),
            guard: None,
        });
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let pods = Pods::new(ctx, finished_tx);
        (pods, finished_rx)
    }

    /// A pod of the node; with `started`, one a previous runner started and reported `pod_ip` for.
    fn pod(uid: &str, started: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(uid.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("rehearsal-runner".into()),
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: started.map(|ip| PodStatus {
                phase: Some(status::phase::RUNNING.into()),
                start_time: Some(Time(Timestamp::now())),
                pod_ip: Some(ip.into()),
                ..Default::default()
            }),
        }
    }

    fn ip(last: u8) -> Option<Ipv4Addr> {
        Some(Ipv4Addr::new(127, 1, 0, last))
    }

    #[tokio::test]
    async fn stale_addresses_are_reserved_before_listed_pods_start_and_freed_after() {
        let (mut pods, _finished) = pods("pods-stale-reserved");
        pods.handle(watcher::Event::Init);
        // Listed before the stale pod that still reports 127.1.0.1.
        pods.handle(watcher::Event::InitApply(pod("new", None)));
        pods.handle(watcher::Event::InitApply(pod("stale", Some("127.1.0.1"))));
        assert!(pods.workers.is_empty(), "new pods wait for the whole list");
        pods.handle(watcher::Event::InitDone);
        assert_eq!(pods.ips.get("stale"), ip(1));
        assert_eq!(pods.ips.get("new"), ip(2), "the stale pod's address is not handed out");
        assert!(pods.workers.contains_key("new") && !pods.workers.contains_key("stale"));

        // Its RunnerRestarted mark landed: the address is free.
        pods.finished("stale");
        assert_eq!(pods.ips.get("stale"), None);

        // A deleted pod keeps its address until its worker has ended its processes.
        pods.handle(watcher::Event::Delete(pod("new", None)));
        assert_eq!(pods.ips.get("new"), ip(2));
        pods.finished("new");
        assert_eq!(pods.ips.get("new"), None);
        assert_eq!(pods.ips.held(), 0);
    }

    #[tokio::test]
    async fn a_stale_pod_gone_before_its_mark_frees_its_address() {
        let (mut pods, _finished) = pods("pods-stale-gone");
        pods.handle(watcher::Event::Init);
        pods.handle(watcher::Event::InitApply(pod("deleted", Some("127.1.0.5"))));
        pods.handle(watcher::Event::InitApply(pod("vanished", Some("127.1.0.6"))));
        pods.handle(watcher::Event::InitApply(pod("legacy", Some("127.0.0.1"))));
        pods.handle(watcher::Event::InitDone);
        assert_eq!((pods.ips.get("deleted"), pods.ips.get("vanished")), (ip(5), ip(6)));
        assert_eq!(pods.ips.get("legacy"), None, "an address outside the range is not reserved");

        pods.handle(watcher::Event::Delete(pod("deleted", Some("127.1.0.5"))));
        assert_eq!(pods.ips.get("deleted"), None);
        // Missing from the next list (deleted while the watch was down).
        pods.handle(watcher::Event::Init);
        pods.handle(watcher::Event::InitDone);
        assert_eq!(pods.ips.held(), 0);
    }

    /// Lays out the folder of pod `uid` (see `pod`) as a run leaves it: credentials, a
    /// volume, a log.
    fn pod_folder(pods: &Pods, uid: &str) -> PathBuf {
        let dir = pods.ctx.pod_dir("default", uid, uid);
        poddir::create_private(&dir.join("volumes/tls")).expect("pod folder");
        for file in ["token", "kubeconfig", "volumes/tls/tls.key", "main.log"] {
            std::fs::write(dir.join(file), "x").expect("write");
        }
        dir
    }

    fn terminal(uid: &str) -> Pod {
        let mut pod = pod(uid, None);
        pod.status = Some(PodStatus { phase: Some(status::phase::SUCCEEDED.into()), ..Default::default() });
        pod
    }

    #[tokio::test]
    async fn a_deleted_pods_folder_goes_once_its_worker_has_ended() {
        let (mut pods, _finished) = pods("pods-folder-removal");
        // Ended earlier (logs kept): deleting the pod object removes its folder at once.
        let ended = pod_folder(&pods, "ended");
        pods.handle(watcher::Event::Apply(terminal("ended")));
        pods.handle(watcher::Event::Delete(terminal("ended")));
        assert!(!ended.exists());

        // Still running: the folder stays until the worker has stopped the processes.
        pods.handle(watcher::Event::Apply(pod("running", None)));
        assert!(pods.workers.contains_key("running"));
        let running = pod_folder(&pods, "running");
        pods.handle(watcher::Event::Delete(pod("running", None)));
        assert!(running.join("main.log").exists());
        pods.finished("running");
        assert!(!running.exists());
        let _ = std::fs::remove_dir_all(&pods.ctx.state_dir);
    }

    #[tokio::test]
    async fn a_relist_removes_folders_of_gone_pods_and_credentials_of_ended_ones() {
        let (mut pods, _finished) = pods("pods-folder-sweep");
        pods.handle(watcher::Event::Apply(pod("running", None)));
        let running = pod_folder(&pods, "running");
        let ended = pod_folder(&pods, "ended");
        let gone = pod_folder(&pods, "gone");
        pods.handle(watcher::Event::Init);
        pods.handle(watcher::Event::InitApply(pod("running", None)));
        pods.handle(watcher::Event::InitApply(terminal("ended")));
        pods.handle(watcher::Event::InitDone);
        assert!(running.join("token").exists(), "a running pod keeps its credentials");
        assert!(!ended.join("token").exists() && !ended.join("kubeconfig").exists());
        assert!(!ended.join("volumes").exists() && ended.join("main.log").exists());
        assert!(!gone.exists(), "deleted while the watch was down");
        let _ = std::fs::remove_dir_all(&pods.ctx.state_dir);
    }
}
