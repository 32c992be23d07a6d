//! Running a Simulation's preRun and postRun hooks.
//!
//! Each hook is a command with arguments; its output goes to the driver's log, line by line. A
//! hook that fails (cannot start, exits non-zero, or outlives its timeout) fails the stage unless
//! it ignores failures.
//!
//! A hook runs in its own process group, so that a timeout ends everything it started (after
//! `sh -c 'sleep 1000 & ...'`, killing the shell alone would leave the `sleep`): the group gets
//! SIGTERM, then SIGKILL after [`KILL_GRACE`]. A hook that exits on its own is not followed
//! further: what it leaves running in the background (a port-forward for the run, say) is its
//! business. Its output is capped at [`MAX_LINES`] lines of at most [`MAX_LINE_BYTES`] bytes, so
//! a chatty or hostile hook can flood neither the log nor the driver's memory; the rest is read
//! (the hook never blocks on a full pipe) and counted, never kept.
//!
//! Hooks run with the driver's identity: see the README's "Hooks" section for the trust model.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rehearsal_crds::Hook;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The most output lines (stdout and stderr together) logged per hook.
pub const MAX_LINES: usize = 200;

/// The most bytes of one output line logged; the rest of the line is counted, not kept.
pub const MAX_LINE_BYTES: usize = 4096;

/// How long a timed-out hook's process group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long a finished hook's output is still read before the run goes on: a background child
/// can hold the pipes open indefinitely and must not hold up the run (its reader goes on in the
/// background, within the same caps).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The command could not be started.
    #[error("{stage} hook {index} ({command}) could not start: {source}")]
    Spawn {
        /// "preRun" or "postRun".
        stage: String,
        /// Position in the list, from 0.
        index: usize,
        /// The command.
        command: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{stage} hook {index} ({command}) {outcome}")]
    Failed {
        /// "preRun" or "postRun".
        stage: String,
        /// Position in the list, from 0.
        index: usize,
        /// The command.
        command: String,
        /// "exited with code 3", "was killed by signal 9", "timed out after 60 s".
        outcome: String,
    },
}

/// Reads one output stream of a hook to its end, logging each line while `budget` (shared by
/// the hook's streams) lasts. Memory is bounded by [`MAX_LINE_BYTES`] whatever the hook writes
/// (a line without end included). Returns how many lines were not logged.
async fn log_capped<R: AsyncRead + Unpin>(
    reader: R,
    stage: &str,
    index: usize,
    stream: &'static str,
    budget: &AtomicUsize,
) -> usize {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = 0usize; // bytes of the current line past MAX_LINE_BYTES
    let mut dropped = 0usize;
    let mut finish = |line: &mut Vec<u8>, cut: &mut usize| {
        if budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let text = String::from_utf8_lossy(line);
            if *cut > 0 {
                tracing::info!(target: "rehearsal::hook", %stage, hook = index, stream, "{text} [{cut} more bytes not logged]");
            } else {
                tracing::info!(target: "rehearsal::hook", %stage, hook = index, stream, "{text}");
            }
        } else {
            dropped += 1;
        }
        line.clear();
        *cut = 0;
    };
    // A read error ends the stream like its end does: the hook's exit status says the rest.
    while let Ok(chunk) = reader.fill_buf().await {
        if chunk.is_empty() {
            break;
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let keep = part.len().min(MAX_LINE_BYTES.saturating_sub(line.len()));
        line.extend_from_slice(&part[..keep]);
        cut += part.len() - keep;
        let used = part.len() + usize::from(newline.is_some());
        reader.consume(used);
        if newline.is_some() {
            finish(&mut line, &mut cut);
        }
    }
    if !line.is_empty() || cut > 0 {
        finish(&mut line, &mut cut); // the last line, without a newline
    }
    if dropped > 0 {
        tracing::warn!(
            target: "rehearsal::hook", %stage, hook = index, stream,
            "{dropped} more {stream} lines not logged (at most {MAX_LINES} lines per hook)"
        );
    }
    dropped
}

/// Logs `reader` in the background (see [`log_capped`]).
fn spawn_logger<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    stage: &str,
    index: usize,
    stream: &'static str,
    budget: Arc<AtomicUsize>,
) -> JoinHandle<usize> {
    let stage = stage.to_string();
    tokio::spawn(async move { log_capped(reader, &stage, index, stream, &budget).await })
}

/// Sends `signal` to every process of the group `pgid`; a group already gone is fine.
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(-pgid, signal) };
}

/// Whether any process of the group `pgid` still exists (zombies count, until reaped).
fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: as in `signal_group`; signal 0 only checks.
    let alive = unsafe { libc::kill(-pgid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Ends a timed-out hook and everything it started: SIGTERM to its process group, up to
/// [`KILL_GRACE`] for the group to go, then SIGKILL to whatever is left, and the hook reaped.
async fn end_group(child: &mut Child) {
    // The hook is its group's leader (process_group(0)), so its pid is the group id. Without
    // a pid it was already reaped: nothing to do.
    let Some(pgid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
        return;
    };
    signal_group(pgid, libc::SIGTERM);
    let gone = async {
        let _ = child.wait().await;
        while group_exists(pgid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(KILL_GRACE, gone).await.is_err() {
        // Once the leader is reaped its pid could in principle be reused as a new group's id;
        // while any process of the old group lives the kernel keeps the id reserved, and when
        // none does, this reaches nobody (or, within the grace, a newcomer: vanishingly rare).
        signal_group(pgid, libc::SIGKILL);
    }
    let _ = child.wait().await;
}

async fn run_one(stage: &str, index: usize, hook: &Hook, simulation_json: &[u8]) -> Result<(), HookError> {
    let command = std::iter::once(hook.command.as_str())
        .chain(hook.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(&hook.command)
        .args(&hook.args)
        .stdin(if hook.send_simulation { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout can reach what the hook started (see the module comment).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn { stage: stage.into(), index, command: command.clone(), source })?;
    let budget = Arc::new(AtomicUsize::new(MAX_LINES));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_logger(out, stage, index, "stdout", budget.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_logger(err, stage, index, "stderr", budget));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let body = simulation_json.to_vec();
        // A hook that does not read its input must not block the run: write in the background.
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let timeout = Duration::from_secs(u64::try_from(hook.timeout_seconds.max(1)).unwrap_or(60));
    let failed = |outcome: String| HookError::Failed { stage: stage.into(), index, command: command.clone(), outcome };
    let result = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => format!("was killed by signal {}", status.signal().unwrap_or(0)),
        })),
        Ok(Err(e)) => Err(failed(format!("could not be waited for: {e}"))),
        Err(_) => {
            end_group(&mut child).await;
            Err(failed(format!("timed out after {} s", timeout.as_secs())))
        }
    };
    // The output usually ends with the hook; it is read to its end (bounded) so the log is
    // complete before the next stage starts.
    let _ = tokio::time::timeout(OUTPUT_DRAIN, futures::future::join_all(readers)).await;
    result
}

/// Runs `hooks` in order. Failures of hooks that ignore them are logged; the first other
/// failure stops the list and is returned. Returns how many hooks ran.
pub async fn run(stage: &str, hooks: &[Hook], simulation_json: &[u8]) -> Result<usize, HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        tracing::info!(%stage, hook = index, command = %hook.command, "running hook");
        match run_one(stage, index, hook, simulation_json).await {
            Ok(()) => {}
            Err(e) if hook.ignore_failure => {
                tracing::warn!(%stage, hook = index, "{e} (ignored: ignoreFailure is set)")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(hooks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, args: &[&str]) -> Hook {
        Hook {
            command: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            send_simulation: false,
            timeout_seconds: 10,
            ignore_failure: false,
        }
    }

    #[tokio::test]
    async fn hooks_run_in_order_and_stop_at_the_first_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("order");
        let append = |n: &str| hook("sh", &["-c", &format!("echo {n} >> {}", log.display())]);
        let hooks = vec![append("one"), append("two"), hook("sh", &["-c", "exit 3"]), append("never")];
        let err = run("preRun", &hooks, b"{}").await.expect_err("third hook fails");
        assert_eq!(err.to_string(), "preRun hook 2 (sh -c exit 3) exited with code 3");
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "one\ntwo\n");
    }

    #[tokio::test]
    async fn ignored_failures_do_not_stop_the_list() {
        let mut bad = hook("false", &[]);
        bad.ignore_failure = true;
        assert_eq!(run("postRun", &[bad, hook("true", &[])], b"{}").await.expect("ignored"), 2);
    }

    #[tokio::test]
    async fn missing_command_is_a_spawn_error() {
        let err = run("preRun", &[hook("/nonexistent/rehearsal-hook", &[])], b"{}").await.expect_err("missing");
        assert!(err.to_string().starts_with("preRun hook 0 (/nonexistent/rehearsal-hook) could not start"), "{err}");
    }

    #[tokio::test]
    async fn timeout_kills_the_hook() {
        let mut slow = hook("sleep", &["30"]);
        slow.timeout_seconds = 1;
        let start = std::time::Instant::now();
        let err = run("preRun", &[slow], b"{}").await.expect_err("times out");
        assert_eq!(err.to_string(), "preRun hook 0 (sleep 30) timed out after 1 s");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// Runs a hook that writes its shell's pid (its group id) to a file and starts a background
    /// `sleep`; checks the hook has its own group while it runs, that it times out, and that no
    /// process of its group is left (polled up to a deadline: killed processes take a moment
    /// to be reaped).
    async fn assert_group_ends(script: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let mut h = hook("sh", &["-c", &format!("{script} & echo $$ > {}; wait", pidfile.display())]);
        h.timeout_seconds = 1;
        let started = std::time::Instant::now();
        let running = tokio::spawn(async move { run("preRun", &[h], b"").await });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let pgid = loop {
            let text = std::fs::read_to_string(&pidfile).unwrap_or_default();
            if let Ok(pid) = text.trim().parse::<libc::pid_t>() {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "the hook never wrote its pid");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // SAFETY: getpgid takes and returns plain integers.
        assert_eq!(unsafe { libc::getpgid(pgid) }, pgid, "the hook leads its own process group");
        let err = running.await.expect("task").expect_err("times out");
        assert!(err.to_string().ends_with("timed out after 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1) + KILL_GRACE + Duration::from_secs(3));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while group_exists(pgid) {
            assert!(std::time::Instant::now() < deadline, "process group {pgid} still has processes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_hooks_children() {
        assert_group_ends("sleep 1000").await;
    }

    #[tokio::test]
    async fn children_that_ignore_sigterm_get_sigkill() {
        // The background shell and its sleep ignore SIGTERM (an ignored signal stays ignored
        // across exec), so only the SIGKILL after the grace ends them.
        assert_group_ends("sh -c \"trap '' TERM; sleep 1000\"").await;
    }

    /// A log sink for one test (the tests run on a current-thread runtime, so the hook's
    /// logger tasks log to the thread's default subscriber).
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn logged(hooks: &[Hook]) -> String {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let _ = run("preRun", hooks, b"").await;
        String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8 log")
    }

    #[tokio::test]
    async fn output_is_capped_per_hook() {
        let started = std::time::Instant::now();
        let log = logged(&[hook("sh", &["-c", "seq -f out-%.0f 1 100000; echo err-1 >&2"])]).await;
        assert!(started.elapsed() < Duration::from_secs(20), "a flood of output does not hold up the run");
        let shown = log.lines().filter(|l| l.contains("out-") || l.contains("err-1")).count();
        assert_eq!(shown, MAX_LINES, "{}", &log[..log.len().min(2000)]);
        assert!(log.contains("out-200 ") && !log.contains("out-201 "), "the first lines are the ones logged");
        // 100,000 + 1 lines, 200 logged, the rest counted per stream. stderr is written after
        // seq ends, when stdout's first 200 lines have long been read.
        assert!(log.contains("99800 more stdout lines not logged (at most 200 lines per hook)"), "{log:.2000}");
        assert!(log.contains("1 more stderr lines not logged"), "{log:.2000}");
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let log = logged(&[hook("sh", &["-c", "head -c 10000 /dev/zero | tr '\\0' x; echo; printf tail"])]).await;
        let long = log.lines().find(|l| l.contains("xxxx")).expect("the long line is logged");
        assert_eq!(long.matches('x').count(), MAX_LINE_BYTES);
        assert!(long.contains("[5904 more bytes not logged] stage=preRun"), "{long}");
        assert!(log.lines().any(|l| l.contains(" tail stage=preRun")), "a last line without newline is logged: {log}");
    }

    #[tokio::test]
    async fn simulation_is_sent_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("stdin");
        let mut h = hook("sh", &["-c", &format!("cat > {}", out.display())]);
        h.send_simulation = true;
        run("preRun", &[h], br#"{"kind":"Simulation"}"#).await.expect("hook runs");
        assert_eq!(std::fs::read_to_string(&out).expect("written"), r#"{"kind":"Simulation"}"#);
    }

    #[tokio::test]
    async fn signal_is_reported() {
        let err = run("postRun", &[hook("sh", &["-c", "kill -9 $$"])], b"").await.expect_err("killed");
        assert_eq!(err.to_string(), "postRun hook 0 (sh -c kill -9 $$) was killed by signal 9");
    }
}
