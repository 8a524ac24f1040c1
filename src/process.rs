//! Signalling a deployment's running `troll serve`, safely.
//!
//! Its pid comes from files (the serve lock, the state), so it is untrusted
//! text: kill(2) with "-1" signals every process, with "0" the caller's own
//! group, and a stale pid may by now belong to anything. So a pid is
//! accepted only as a positive decimal number, the process is held by a
//! pidfd (which can never come to mean another process), and it is checked
//! to be a `troll serve` of this very deployment: its executable is named
//! `troll`, its arguments include `serve`, and it has the deployment's serve
//! lock file open. Signals then go through the pidfd.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why a pid was not signalled.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// Not a positive decimal number that fits a pid.
    #[error("{0:?} is not a process id (a positive decimal number)")]
    Invalid(String),
    /// No such process (any more).
    #[error("no process {0} runs")]
    Gone(i32),
    /// The process is not a `troll serve` of this deployment.
    #[error("process {pid} is not a troll serve of this deployment: {reason}")]
    NotServe { pid: i32, reason: String },
    /// The kernel refused (pidfd_open or /proc).
    #[error("cannot check process {pid}: {source}")]
    Io { pid: i32, source: io::Error },
}

/// A pid read from a lock file: only `1..=i32::MAX`, digits only (no sign,
/// no spaces inside).
pub fn parse_pid(text: &str) -> Result<i32, PidError> {
    let text = text.trim();
    let invalid = || PidError::Invalid(text.to_owned());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match text.parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(invalid()),
    }
}

/// A pid stored in the state as a number: only `1..=i32::MAX`.
pub fn pid_from_u32(pid: u32) -> Result<i32, PidError> {
    match i32::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PidError::Invalid(pid.to_string())),
    }
}

/// A running `troll serve` of one deployment, held by a pidfd.
pub struct ServeProcess {
    pid: i32,
    pidfd: OwnedFd,
}

impl fmt::Debug for ServeProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServeProcess(pid {})", self.pid)
    }
}

impl ServeProcess {
    /// Takes hold of process `pid` and checks that it is a `troll serve`
    /// with `serve_lock` (the deployment's serve lock file) open.
    pub fn open(pid: i32, serve_lock: &Path) -> Result<ServeProcess, PidError> {
        if pid <= 0 {
            return Err(PidError::Invalid(pid.to_string()));
        }
        // SAFETY: pidfd_open takes a pid and flags, no memory.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ESRCH) => PidError::Gone(pid),
                _ => PidError::Io { pid, source: err },
            });
        }
        let fd = i32::try_from(fd).map_err(|_| PidError::Io {
            pid,
            source: io::Error::other("pidfd_open returned an impossible fd"),
        })?;
        // SAFETY: pidfd_open returned a new fd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let process = ServeProcess { pid, pidfd };
        if let Err(e) = check_serve(pid, serve_lock) {
            // /proc may have been read after the pid was reused: only a
            // process that is still the one the pidfd holds is judged.
            process.signal(0)?;
            return Err(e);
        }
        // What /proc said is about the process the pidfd holds only if that
        // process still runs now (a pid is not reused while it exists).
        process.signal(0)?;
        Ok(process)
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` (0: only checks that the process still runs).
    pub fn signal(&self, signal: libc::c_int) -> Result<(), PidError> {
        // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(match err.raw_os_error() {
            Some(libc::ESRCH) => PidError::Gone(self.pid),
            _ => PidError::Io {
                pid: self.pid,
                source: err,
            },
        })
    }

    /// Waits until the process has exited or `deadline` passes; true if it
    /// has exited. (A pidfd becomes readable when its process exits.)
    pub fn wait_exit(&self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: poll on one valid pollfd that lives across the call.
            let rc = unsafe { libc::poll(&raw mut poll, 1, millis) };
            if rc > 0 {
                return true;
            }
            if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return false;
            }
        }
    }
}

/// Whether /proc says `pid` is a `troll serve` holding `serve_lock` open.
fn check_serve(pid: i32, serve_lock: &Path) -> Result<(), PidError> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let io = |source| PidError::Io { pid, source };
    let not_serve = |reason| PidError::NotServe { pid, reason };
    let exe = std::fs::read_link(proc_dir.join("exe")).map_err(io)?;
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // After an upgrade the running binary shows as "troll (deleted)".
    if exe_name != "troll" && exe_name != "troll (deleted)" {
        return Err(not_serve(format!("its executable is {}", exe.display())));
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).map_err(io)?;
    if !cmdline.split(|&b| b == 0).any(|arg| arg == b"serve") {
        return Err(not_serve("it is not running `troll serve`".into()));
    }
    let lock = std::fs::canonicalize(serve_lock).map_err(|e| {
        not_serve(format!(
            "the serve lock {} is unreadable ({e})",
            serve_lock.display()
        ))
    })?;
    let holds_lock = std::fs::read_dir(proc_dir.join("fd"))
        .map_err(io)?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| target == lock);
    if holds_lock {
        Ok(())
    } else {
        Err(not_serve(format!("it does not hold {}", lock.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    #[test]
    fn only_positive_decimal_pids_are_accepted() {
        assert_eq!(parse_pid("4242").unwrap(), 4242);
        assert_eq!(parse_pid(" 1\n").unwrap(), 1);
        assert_eq!(parse_pid(&i32::MAX.to_string()).unwrap(), i32::MAX);
        for bad in [
            "-1",
            "0",
            "00",
            "",
            "unknown",
            "12abc",
            "+5",
            "1 2",
            "0x10",
            "2147483648",
            "99999999999999999999",
        ] {
            let err = parse_pid(bad).unwrap_err();
            assert!(matches!(err, PidError::Invalid(_)), "{bad:?}: {err}");
            assert!(err.to_string().contains("is not a process id"), "{err}");
        }
    }

    #[test]
    fn state_pids_outside_i32_are_refused_not_wrapped() {
        assert_eq!(pid_from_u32(77).unwrap(), 77);
        assert!(pid_from_u32(0).is_err());
        // `as i32` made this -1: every process.
        assert!(pid_from_u32(u32::MAX).is_err());
        assert!(pid_from_u32(1 << 31).is_err());
    }

    #[test]
    fn non_positive_pids_are_never_opened() {
        let lock = tempfile::NamedTempFile::new().unwrap();
        for pid in [0, -1, i32::MIN] {
            assert!(matches!(
                ServeProcess::open(pid, lock.path()),
                Err(PidError::Invalid(_))
            ));
        }
    }

    #[test]
    fn a_process_that_is_not_troll_serve_is_not_signalled() {
        let lock = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let err = ServeProcess::open(pid, lock.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("process {pid} is not a troll serve")),
            "{err}"
        );
        // Nor is this test binary, though it has the lock file open.
        let own = i32::try_from(std::process::id()).unwrap();
        let err = ServeProcess::open(own, lock.path()).unwrap_err();
        assert!(matches!(err, PidError::NotServe { .. }), "{err}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "sleep was not signalled"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_pid_that_runs_nothing_is_gone() {
        let lock = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        // Reaped: the pid is free (unless reused at once, which then is not
        // a troll serve).
        let err = ServeProcess::open(pid, lock.path()).unwrap_err();
        assert!(
            matches!(err, PidError::Gone(_) | PidError::NotServe { .. }),
            "{err}"
        );
    }

    #[test]
    fn wait_exit_sees_the_exit_through_the_pidfd() {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Held without the serve check: only the pidfd mechanics are tested.
        // SAFETY: pidfd_open takes a pid and flags, no memory.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        let process = ServeProcess {
            pid,
            // SAFETY: a new fd from pidfd_open, owned by nothing else.
            pidfd: unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap()) },
        };
        process.signal(0).unwrap();
        assert!(process.wait_exit(Instant::now() + Duration::from_secs(20)));
        child.wait().unwrap();
        assert!(matches!(process.signal(0), Err(PidError::Gone(_))));
    }
}
