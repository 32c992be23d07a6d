//! Runs a run's timeline (the replay's dispatch, the scenario's steps) on a thread of its own.
//!
//! On the process's runtime the timeline's timer and requests shared two workers with the
//! collectors' watch decoding, the snapshots' lists, the webhook and the status updates: a
//! deadline came due while a worker was busy elsewhere and the step started late (p99 12-64 ms in
//! `make bench-scenario-scale`). On a current-thread runtime of its own, with a client made there
//! (so its connection is read there too), the timeline competes with the rest only for the CPU.
//!
//! [`Apart`] does the same for tasks that outlive one call (the collectors' watches): a
//! current-thread runtime on a thread of its own, spawned on and awaited from anywhere.

use std::future::Future;

use tokio::runtime::{Builder, Handle, RuntimeFlavor};

/// Runs the future `make(true)` on a new thread named `name` with a current-thread runtime of
/// its own, and waits for it without holding a worker of the caller's runtime (its tasks move
/// to another thread meanwhile). `make(false)` runs inline instead where that is impossible: on
/// a current-thread runtime (unit tests), or when the runtime cannot be made; when the thread
/// cannot be started, the future runs on its runtime on this thread (both said in the log). A
/// panic there is a panic here. None only if the thread ended without running the future.
pub async fn run<'a, F, M>(name: &str, make: M) -> Option<F::Output>
where
    M: FnOnce(bool) -> F,
    F: Future + Send + 'a,
    F::Output: Send,
{
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        return Some(make(false).await);
    }
    let runtime = match Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(thread = name, error = %e, "cannot make a runtime of its own: running inline");
            return Some(make(false).await);
        }
    };
    let mut slot = Some(make(true));
    // The runtime goes into the closure: it must be dropped where blocking is allowed.
    tokio::task::block_in_place(move || {
        let spawned = std::thread::scope(|scope| {
            let (slot, runtime) = (&mut slot, &runtime);
            let body = move || slot.take().map(|f| runtime.block_on(f));
            std::thread::Builder::new().name(name.to_string()).spawn_scoped(scope, body).map(|h| h.join())
        });
        match spawned {
            Ok(Ok(output)) => output,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => {
                // The closure was dropped unrun: the future is still in its slot.
                tracing::warn!(thread = name, error = %e, "cannot start a thread: running on this one");
                slot.take().map(|f| runtime.block_on(f))
            }
        }
    })
}

/// A current-thread runtime on a thread of its own for long-lived tasks: they, and the
/// connections of a client made in one of them, run there, waking each other without waking
/// the process's workers. The thread ends once the `Apart` is dropped and every task spawned
/// through it has ended (so dropping it never cuts a task short).
pub struct Apart {
    handle: Handle,
    /// One per task and one here: when the last goes, the thread's runtime stops.
    alive: tokio::sync::mpsc::Sender<()>,
}

impl Apart {
    /// Starts the thread `name`; an error when the runtime or the thread cannot be made.
    pub fn start(name: &str) -> std::io::Result<Apart> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (alive, mut gone) = tokio::sync::mpsc::channel::<()>(1);
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            // Nothing is sent: recv ends when every sender is dropped.
            runtime.block_on(async move { while gone.recv().await.is_some() {} });
        })?;
        Ok(Apart { handle, alive })
    }

    /// Runs `task` on the thread.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let alive = self.alive.clone();
        self.handle.spawn(async move {
            let out = task.await;
            drop(alive);
            out
        })
    }
}

/// A client for the thread's own runtime, made there (so its connection's tasks run there) from
/// the kubeconfig `fallback` came from ([`crate::client::build`]), connected by one request
/// before the first deadline; `fallback` when it cannot be made or reach the API server.
pub async fn client(kubeconfig: Option<&str>, fallback: &kube::Client) -> kube::Client {
    let made = match crate::client::build(kubeconfig).await {
        Ok(client) => client.apiserver_version().await.map(|_| client).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    made.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a client of the thread's own: using the run's");
        fallback.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_future_runs_on_its_own_thread_and_borrows_from_the_caller() {
        let mut seen = Vec::new();
        let out = run("rehearsal-test", |apart| {
            let seen = &mut seen;
            async move {
                // A timer and a spawned task work there: the thread has a runtime of its own.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let spawned = tokio::spawn(async { std::thread::current().name().map(str::to_string) }).await;
                seen.push(apart);
                spawned.ok().flatten()
            }
        })
        .await;
        assert_eq!(out, Some(Some("rehearsal-test".to_string())));
        assert_eq!(seen, [true]);
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_it_runs_inline() {
        let out =
            run("rehearsal-test", |apart| async move { (apart, std::thread::current().name().map(str::to_string)) })
                .await;
        assert_eq!(out.map(|o| o.0), Some(false));
    }

    #[tokio::test]
    async fn apart_tasks_run_on_its_thread_and_it_ends_after_the_last() {
        let apart = Apart::start("rehearsal-apart").unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = apart.spawn(async move {
            let _ = rx.await;
            // A timer and a spawned task work there.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::spawn(async { std::thread::current().name().map(str::to_string) }).await.ok().flatten()
        });
        let handle = apart.handle.clone();
        drop(apart);
        // Dropped, and its task still runs to its end.
        tx.send(()).unwrap();
        assert_eq!(waiting.await.unwrap().as_deref(), Some("rehearsal-apart"));
        // Then the runtime stops: nothing more runs there.
        let mut stopped = false;
        for _ in 0..500 {
            if handle.spawn(async {}).await.is_err() {
                stopped = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(stopped, "the thread's runtime stopped after its last task");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    #[should_panic(expected = "boom")]
    async fn a_panic_there_is_a_panic_here() {
        run("rehearsal-test", |_| async { panic!("boom") }).await;
    }
}
