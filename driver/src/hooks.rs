//! Running a Simulation's preRun and postRun hooks.
//!
//! Each hook is a command with arguments; its output goes to the driver's log, line by line. A
//! hook that fails (cannot start, exits non-zero, or outlives its timeout) fails the stage unless
//! it ignores failures.

use std::process::Stdio;
use std::time::Duration;

use rehearsal_crds::Hook;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;

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

fn log_lines<R: AsyncRead + Unpin + Send + 'static>(reader: R, stage: String, index: usize, stream: &'static str) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "rehearsal::hook", %stage, hook = index, stream, "{line}");
        }
    });
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
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn { stage: stage.into(), index, command: command.clone(), source })?;
    if let Some(out) = child.stdout.take() {
        log_lines(out, stage.to_string(), index, "stdout");
    }
    if let Some(err) = child.stderr.take() {
        log_lines(err, stage.to_string(), index, "stderr");
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
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("was killed by signal {}", status.signal().unwrap_or(0))
            }
        })),
        Ok(Err(e)) => Err(failed(format!("could not be waited for: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            Err(failed(format!("timed out after {} s", timeout.as_secs())))
        }
    }
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
