//! Containers as host processes: spawning in their own process group, signalling the group,
//! and turning an exit status into a container exit code.

use std::{
    fs::OpenOptions,
    os::unix::{fs::OpenOptionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
};

use tokio::process::{Child, Command};

/// Why a process could not be started (a container's `StartError`).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The log file could not be opened.
    #[error("opening log file {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The executable could not be started (not found, not executable, …).
    #[error("starting {program}: {source}")]
    Exec {
        /// The program.
        program: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// What to run for one container.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Executable (absolute, or looked up on the `PATH` in `env`).
    pub program: &'a Path,
    /// Arguments.
    pub args: &'a [String],
    /// The complete environment (the runner's own is not inherited).
    pub env: &'a [(String, String)],
    /// Working directory.
    pub cwd: &'a Path,
    /// Log file receiving stdout and stderr, appended to.
    pub log: &'a Path,
}

/// A started container process.
#[derive(Debug)]
pub struct Spawned {
    /// The child; dropping it kills the process.
    pub child: Child,
    /// Its pid, which is also its process-group id.
    pub pgid: i32,
}

/// Starts a container's process as the leader of a new process group.
pub fn spawn(spec: &Spec<'_>) -> Result<Spawned, SpawnError> {
    let log_error = |source| SpawnError::Log { path: spec.log.to_owned(), source };
    // 0600: a container's output may well print what its Secrets hold.
    let stdout = OpenOptions::new().create(true).append(true).mode(0o600).open(spec.log).map_err(log_error)?;
    let stderr = stdout.try_clone().map_err(log_error)?;

    let mut command = Command::new(spec.program);
    command
        .args(spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own group, so a signal reaches the shell's children too (kubelet stops the whole cgroup).
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (prctl, getppid, close_range) and allocates nothing.
    let parent = std::process::id();
    unsafe {
        command.pre_exec(move || {
            // The child dies with the runner even when the runner is SIGKILLed and cannot clean up.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The runner may have died before prctl took effect; then nobody would kill us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Nothing the runner inherited (a caller's lock file, say) leaks into containers.
            // Marked close-on-exec rather than closed, so std's exec-error pipe still works;
            // kernels before 5.11 lack close_range, and then fds are left as they are.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| SpawnError::Exec { program: spec.program.to_owned(), source })?;
    let pgid = child.id().and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0);
    Ok(Spawned { child, pgid })
}

/// Sends a signal to a whole process group; a group that is already gone is not an error.
pub fn signal_group(pgid: i32, signal: i32) {
    // pgid 0 or 1 would signal our own group or everything: never.
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == -1 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, error = %err, "signalling process group failed");
        }
    }
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The container exit code: the process's code, or 128 + signal.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

impl Exit {
    /// Exit of a process that ran normally or was killed by a signal.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit { code, signal: None },
            (None, Some(signal)) => Exit::signalled(signal),
            (None, None) => Exit { code: 255, signal: None },
        }
    }

    /// Exit by a signal: exit code 128 + signal, as shells and container runtimes report it.
    pub fn signalled(signal: i32) -> Self {
        Exit { code: 128 + signal, signal: Some(signal) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals() {
        assert_eq!(Exit::from_status(ExitStatus::from_raw(3 << 8)), Exit { code: 3, signal: None });
        assert_eq!(Exit::from_status(ExitStatus::from_raw(0)), Exit { code: 0, signal: None });
        assert_eq!(Exit::from_status(ExitStatus::from_raw(libc::SIGKILL)), Exit { code: 137, signal: Some(9) });
        assert_eq!(Exit::from_status(ExitStatus::from_raw(libc::SIGTERM)), Exit { code: 143, signal: Some(15) });
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rehearsal-runner-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn path_env() -> Vec<(String, String)> {
        vec![("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))]
    }

    #[tokio::test]
    async fn runs_with_given_env_cwd_and_log() {
        let dir = scratch("env");
        let log = dir.join("c.log");
        let mut env = path_env();
        env.push(("GREETING".into(), "hi".into()));
        let args = vec!["-c".to_owned(), "echo $GREETING; pwd; echo oops >&2; exit 3".to_owned()];
        let spec = Spec { program: Path::new("sh"), args: &args, env: &env, cwd: &dir, log: &log };
        let mut spawned = spawn(&spec).expect("spawn");
        let status = spawned.child.wait().await.expect("wait");
        assert_eq!(Exit::from_status(status), Exit { code: 3, signal: None });
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(text.contains("hi\n"), "{text}");
        assert!(text.contains(&dir.to_string_lossy().into_owned()), "{text}");
        assert!(text.contains("oops"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn signalling_the_group_reaches_children() {
        let dir = scratch("group");
        let log = dir.join("c.log");
        let env = path_env();
        // The shell waits on a child sleep; SIGTERM to the group ends both.
        let args = vec!["-c".to_owned(), "sleep 1000 & wait".to_owned()];
        let spec = Spec { program: Path::new("sh"), args: &args, env: &env, cwd: &dir, log: &log };
        let mut spawned = spawn(&spec).expect("spawn");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        signal_group(spawned.pgid, libc::SIGTERM);
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), spawned.child.wait())
            .await
            .expect("exited in time")
            .expect("wait");
        assert_eq!(Exit::from_status(status).code, 143);
        // Nothing of the group is left alive (an orphan may linger briefly as a zombie of init).
        let mut alive = live_members(spawned.pgid);
        for _ in 0..20 {
            if alive.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            alive = live_members(spawned.pgid);
        }
        assert!(alive.is_empty(), "process group still has live members: {alive:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Pids of non-zombie processes in group `pgid`, from /proc.
    fn live_members(pgid: i32) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
        entries
            .flatten()
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // Fields after the parenthesised command: state, ppid, pgrp, ...
                let rest = &stat[stat.rfind(')')? + 2..];
                let mut fields = rest.split_whitespace();
                let state = fields.next()?;
                let group: i32 = fields.nth(1)?.parse().ok()?;
                (group == pgid && state != "Z").then_some(pid)
            })
            .collect()
    }

    #[tokio::test]
    async fn inherited_descriptors_do_not_reach_the_container() {
        let dir = scratch("fds");
        let log = dir.join("c.log");
        let env = path_env();
        let file = std::fs::File::open("/dev/null").expect("open");
        // A descriptor without close-on-exec, like a lock file a caller's shell holds.
        // SAFETY: dup2 onto an unused descriptor number; closed again below.
        let fd = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&file), 77) };
        assert_eq!(fd, 77);
        let args =
            vec!["-c".to_owned(), "if [ -e /proc/self/fd/77 ]; then echo leaked; else echo closed; fi".to_owned()];
        let spec = Spec { program: Path::new("sh"), args: &args, env: &env, cwd: &dir, log: &log };
        let mut spawned = spawn(&spec).expect("spawn");
        spawned.child.wait().await.expect("wait");
        // SAFETY: closes the descriptor this test created.
        unsafe { libc::close(77) };
        assert_eq!(std::fs::read_to_string(&log).expect("log").trim(), "closed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_program_is_an_exec_error() {
        let dir = scratch("missing");
        let log = dir.join("c.log");
        let env = path_env();
        let spec =
            Spec { program: Path::new("definitely-not-a-program-xyz"), args: &[], env: &env, cwd: &dir, log: &log };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let result = rt.block_on(async { spawn(&spec).map(|_| ()) });
        assert!(matches!(result, Err(SpawnError::Exec { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
