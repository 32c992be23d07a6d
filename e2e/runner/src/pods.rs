//! The watch on the node's pods (field selector `spec.nodeName=<node>`, all namespaces): a
//! worker per new pod, a stop request when a pod is deleted or disappears, deletion of pods
//! that end while terminated, and `RunnerRestarted` for pods a previous runner left running.

use std::{
    collections::{HashMap, HashSet},
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
    node::is_not_found,
    retry::Backoff,
    status,
    worker::{self, StopReason, Worker},
};

/// A running pod's worker.
struct Handle {
    stop: watch::Sender<Option<StopReason>>,
    task: JoinHandle<()>,
    grace: Duration,
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
    /// Uids seen since the watch (re)started listing, until the list is complete.
    relist: Option<HashSet<String>>,
    finished_tx: mpsc::UnboundedSender<String>,
}

/// Watches the node's pods until `shutdown`, then stops every pod and waits for them.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    // default_backoff: watch errors are retried with exponential backoff instead of ending the stream.
    let mut events = watcher(api, config).default_backoff().boxed();
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let mut pods = Pods {
        ctx,
        workers: HashMap::new(),
        done: HashSet::new(),
        deleting: HashSet::new(),
        delete_when_finished: HashMap::new(),
        relist: None,
        finished_tx,
    };
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
    fn handle(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
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
            self.done.insert(uid);
            let ctx = self.ctx.clone();
            tokio::spawn(async move { mark_runner_restarted(&ctx, &pod).await });
            return;
        }
        self.start(uid, pod);
    }

    fn start(&mut self, uid: String, pod: Pod) {
        let (stop, stop_rx) = watch::channel(None);
        let grace = worker::grace_period(&pod);
        let worker = Worker::new(self.ctx.clone(), pod, stop_rx);
        let finished = self.finished_tx.clone();
        let task_uid = uid.clone();
        let task = tokio::spawn(async move {
            // A panicking pod must not take the runner down; the inner task contains it.
            if let Err(error) = tokio::spawn(worker.run()).await {
                tracing::error!(uid = %task_uid, %error, "pod worker failed");
            }
            let _ = finished.send(task_uid);
        });
        self.workers.insert(uid, Handle { stop, task, grace });
    }

    fn deleted(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else { return };
        if let Some(handle) = self.workers.get(uid) {
            handle.request_stop(StopReason::Gone { grace: worker::grace_period(pod) });
        }
        self.done.remove(uid);
        self.deleting.remove(uid);
    }

    /// After a (re)list: pods that vanished while the watch was down are stopped and forgotten.
    fn relisted(&mut self) {
        let Some(seen) = self.relist.take() else { return };
        for (uid, handle) in &self.workers {
            if !seen.contains(uid) {
                handle.request_stop(StopReason::Gone { grace: handle.grace });
            }
        }
        self.done.retain(|uid| seen.contains(uid));
        self.deleting.retain(|uid| seen.contains(uid));
    }

    fn finished(&mut self, uid: &str) {
        if self.workers.remove(uid).is_some() {
            self.done.insert(uid.to_owned());
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

/// Reports a pod a previous runner had started as Failed with reason `RunnerRestarted`.
async fn mark_runner_restarted(ctx: &Context, pod: &Pod) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = status::status_patch(&status::runner_restarted(pod, Timestamp::now()));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=10 {
        match pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&body)).await {
            Ok(_) => return,
            Err(error) if is_not_found(&error) => return,
            Err(error) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), attempt, %error, "marking pod failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
