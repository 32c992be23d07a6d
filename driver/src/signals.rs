//! SIGINT/SIGTERM for a run: the first asks it to stop and clean up; the second asks it to skip
//! what is left of the cleanup (the run still writes its status and exits non-zero). Kubernetes
//! sends SIGTERM when a driver pod is deleted, Ctrl-C sends SIGINT.

use tokio::sync::watch;

/// How many stop signals arrived, shared by everything that must react to them.
#[derive(Clone, Debug)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Starts listening for SIGINT and SIGTERM; `what` names the run in the messages.
    pub fn listen(what: &'static str) -> Signals {
        let (tx, rx) = watch::channel(0u32);
        // Registered once, before returning: a stream made anew after each signal would miss one
        // that arrives while the previous is being handled.
        let mut stops = StopSignals::register();
        tokio::spawn(async move {
            loop {
                let name = stops.next().await;
                let count = tx.borrow().saturating_add(1);
                if count == 1 {
                    eprintln!(
                        "rehearsal-driver: {name}: stopping the {what}, then cleaning up (again to skip the cleanup)"
                    );
                } else {
                    eprintln!("rehearsal-driver: {name} again: skipping the cleanup");
                }
                if tx.send(count).is_err() {
                    return;
                }
            }
        });
        Signals { count: rx }
    }

    /// Signals that never come (tests, benchmarks).
    pub fn never() -> Signals {
        let (tx, rx) = watch::channel(0u32);
        // Keep the sender alive for the life of the process so receivers never see it close.
        std::mem::forget(tx);
        Signals { count: rx }
    }

    /// A handle whose count is set by hand (tests).
    pub fn manual() -> (watch::Sender<u32>, Signals) {
        let (tx, rx) = watch::channel(0u32);
        (tx, Signals { count: rx })
    }

    /// True once a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        *self.count.borrow() >= 1
    }

    /// True once the cleanup is to be skipped.
    pub fn skip_requested(&self) -> bool {
        *self.count.borrow() >= 2
    }

    /// Resolves at the first signal (never, if none comes).
    pub async fn stopped(&self) {
        self.at_least(1).await;
    }

    /// Resolves at the second signal (never, if it does not come).
    pub async fn skipped(&self) {
        self.at_least(2).await;
    }

    async fn at_least(&self, n: u32) {
        let mut rx = self.count.clone();
        if rx.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The process's SIGINT and SIGTERM streams.
struct StopSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let int = signal(SignalKind::interrupt()).ok();
            let term = signal(SignalKind::terminate()).ok();
            if int.is_none() || term.is_none() {
                eprintln!("rehearsal-driver: cannot listen for SIGINT or SIGTERM; they will end the process at once");
            }
            StopSignals { int, term }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next signal's name (never resolves if neither could be registered).
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            let got = match s {
                Some(s) => s.recv().await.is_some(),
                None => false,
            };
            if !got {
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => "SIGINT",
            _ = recv(&mut self.term) => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "interrupt"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_stops_second_skips() {
        let (tx, s) = Signals::manual();
        assert!(!s.stop_requested());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.stopped().await }
        });
        tx.send(1).expect("send");
        waiter.await.expect("stopped resolves at the first signal");
        assert!(s.stop_requested() && !s.skip_requested());
        tx.send(2).expect("send");
        s.skipped().await;
        assert!(s.skip_requested());
        let never = Signals::never();
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), never.stopped()).await.is_err());
    }

    /// Real signals to this process: the second, sent as soon as the first was handled, counts
    /// too (the streams stay registered between signals).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_second_real_signal_right_after_the_first_is_seen() {
        let s = Signals::listen("test");
        let deadline = std::time::Duration::from_secs(10);
        // SAFETY: kill(2) on our own pid with a signal the listener handles.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        tokio::time::timeout(deadline, s.stopped()).await.expect("the first signal is seen");
        // SAFETY: as above.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        tokio::time::timeout(deadline, s.skipped()).await.expect("the second signal is seen");
    }
}
