//! Runs a run's timeline (the replay's dispatch, the scenario's steps) on a thread of its own.
//!
//! On the process's runtime the timeline's timer and requests shared two workers with the
//! collectors' watch decoding, the snapshots' lists, the webhook and the status updates: a
//! deadline came due while a worker was busy elsewhere and the step started late (p99 12-64 ms in
//! `make bench-scenario-scale`). On a current-thread runtime of its own, with a client made there
//! (so its connection is read there too), the timeline competes with the rest only for the CPU.

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    #[should_panic(expected = "boom")]
    async fn a_panic_there_is_a_panic_here() {
        run("rehearsal-test", |_| async { panic!("boom") }).await;
    }
}
