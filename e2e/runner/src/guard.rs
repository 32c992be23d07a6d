//! The orphan guard: a tiny process, forked before the async runtime starts, that SIGKILLs every
//! container process group still registered when the runner dies, however it dies.
//!
//! `PR_SET_PDEATHSIG` (see `process`) reaches only a container's first process; a shell's
//! children would outlive a runner killed with `kill -9`. The guard learns process groups through
//! a pipe and notices the runner's death as end-of-file on it, since the kernel closes the
//! runner's write end however it exits. It is double-forked into its own session, so killing
//! the runner's process group or its descendants does not kill the guard before it acts.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// Most process groups the guard tracks at once; more than the node's pod capacity needs.
const CAPACITY: usize = 4096;

/// The runner's end of the guard: registers and unregisters process groups.
#[derive(Debug)]
pub struct Guard {
    write: OwnedFd,
}

impl Guard {
    /// Forks the guard process. Must be called while the runner has a single thread: a forked
    /// child of a multi-threaded process may only use async-signal-safe calls, which the guard
    /// does, but forking before any thread exists keeps it simple and safe.
    pub fn start() -> io::Result<Guard> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array; O_CLOEXEC keeps them out of containers.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child branches call only async-signal-safe functions and never return.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::close(write.as_raw_fd());
                libc::setsid();
                // The second fork leaves the guard outside the runner's process tree.
                if libc::fork() == 0 {
                    guard_main(read.as_raw_fd());
                }
                libc::_exit(0);
            },
            intermediate => {
                drop(read);
                // SAFETY: reaps the intermediate child, which exits at once.
                unsafe { libc::waitpid(intermediate, std::ptr::null_mut(), 0) };
                Ok(Guard { write })
            }
        }
    }

    /// Registers a container's process group: it is killed if the runner dies.
    pub fn watch(&self, pgid: i32) {
        self.send(pgid);
    }

    /// Unregisters a process group whose leader exited (and that was killed already).
    pub fn forget(&self, pgid: i32) {
        self.send(-pgid);
    }

    fn send(&self, message: i32) {
        let bytes = message.to_ne_bytes();
        // SAFETY: writes four bytes from a live buffer to an fd we own. Writes this small to a
        // pipe are atomic, so concurrent senders never interleave.
        let written = unsafe { libc::write(self.write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if written != 4 {
            tracing::warn!(error = %io::Error::last_os_error(), "orphan guard unreachable");
        }
    }
}

/// The process groups the guard would kill.
#[derive(Debug)]
struct Groups {
    slots: [i32; CAPACITY],
}

impl Groups {
    fn new() -> Self {
        Groups { slots: [0; CAPACITY] }
    }

    /// A positive message registers a group, a negative one unregisters it.
    fn apply(&mut self, message: i32) {
        // Registering fills a free slot; unregistering empties the group's slot.
        let (find, store) = if message > 1 {
            (0, message)
        } else if let Some(pgid) = message.checked_neg().filter(|pgid| *pgid > 1) {
            (pgid, 0)
        } else {
            return;
        };
        if let Some(slot) = self.slots.iter_mut().find(|s| **s == find) {
            *slot = store;
        }
    }

    fn members(&self) -> impl Iterator<Item = i32> + '_ {
        self.slots.iter().copied().filter(|s| *s > 1)
    }
}

/// The guard process: collect groups until end-of-file, then kill them all. Uses only
/// async-signal-safe calls and no allocation.
fn guard_main(read: i32) -> ! {
    // SAFETY: plain syscalls on integers and static strings.
    unsafe {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"runner-guard".as_ptr(), 0, 0, 0);
        // Hold nothing of the runner's open: log files, pipes, a caller's lock file.
        for fd in 0..1024 {
            if fd != read {
                libc::close(fd);
            }
        }
    }
    let mut groups = Groups::new();
    let mut buffer = [0u8; 4];
    let mut filled = 0;
    loop {
        // SAFETY: reads into the unfilled tail of a live buffer.
        let n = unsafe { libc::read(read, buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        filled += n.unsigned_abs();
        if filled == buffer.len() {
            groups.apply(i32::from_ne_bytes(buffer));
            filled = 0;
        }
    }
    for pgid in groups.members() {
        // SAFETY: kill(2) on a process group id the runner registered.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    // SAFETY: ends the guard without running the runner's atexit handlers.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_register_and_unregister() {
        let mut groups = Groups::new();
        groups.apply(100);
        groups.apply(200);
        groups.apply(-100);
        groups.apply(300);
        // 0, 1 and -1 would mean "our group" or "everyone" to kill(2): never recorded.
        groups.apply(1);
        groups.apply(0);
        groups.apply(-1);
        groups.apply(i32::MIN);
        let mut members: Vec<i32> = groups.members().collect();
        members.sort_unstable();
        assert_eq!(members, [200, 300]);
    }
}
