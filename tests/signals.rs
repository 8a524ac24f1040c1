//! Signals to a pid read from a file: `teardown` and `set-message` signal
//! only a `troll serve` of the deployment, whatever the files say.

mod util;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Command;
use util::{run, run_ok, troll};

/// Holds `deployment`'s serve lock as a running serve would, with `pid`
/// written into it.
fn forge_serve_lock(state_dir: &std::path::Path, deployment: &str, pid: &str) -> std::fs::File {
    let path = state_dir
        .join("state")
        .join(format!("{deployment}.serve.lock"));
    let mut lock = std::fs::File::create(path).unwrap();
    // SAFETY: flock on a file we own; no memory is passed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    write!(lock, "{pid}").unwrap();
    lock
}

/// A state dir with the default deployment's message stored.
fn state_with_a_message() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run_ok(troll(dir.path()).args(["set-message", "Hello\nWorld"]));
    dir
}

/// A process that is not troll serve, whose pid the tests forge into
/// troll's files; ended when dropped, also when a test fails.
struct Bystander(std::process::Child);

impl Bystander {
    fn start() -> Bystander {
        Bystander(Command::new("sleep").arg("60").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn assert_not_signalled(&mut self) {
        let exited = self.0.try_wait().unwrap();
        assert!(exited.is_none(), "the bystander was signalled: {exited:?}");
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Regression: teardown signalled whatever pid the lock file held.
#[test]
fn teardown_refuses_to_signal_a_lock_pid_that_is_not_troll_serve() {
    let dir = state_with_a_message();
    let mut bystander = Bystander::start();
    let pid = bystander.pid().to_string();
    for forged in [pid.as_str(), "-1", "0", "garbage", "99999999999"] {
        let _lock = forge_serve_lock(dir.path(), "default", forged);
        let out = run(troll(dir.path()).arg("teardown"));
        assert_eq!(out.code, 1, "{forged}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "is held by pid {forged}, which troll will not signal"
            )),
            "{forged}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
    bystander.assert_not_signalled();
    // Nothing was torn down meanwhile.
    run_ok(troll(dir.path()).args(["status", "--json"]));
}

/// Regression: set-message cast the state's u32 pid `as i32` (4294967295
/// became -1, every process) and signalled it.
#[test]
fn set_message_signals_no_process_the_state_names_falsely() {
    let dir = state_with_a_message();
    let mut bystander = Bystander::start();
    let state_path = dir.path().join("state/default.json");
    for forged in [u64::from(bystander.pid()), u64::from(u32::MAX), 0] {
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        state["serve_pid"] = forged.into();
        std::fs::write(&state_path, state.to_string()).unwrap();
        let out = run(troll(dir.path()).args(["set-message", "Hello\nAgain"]));
        assert_eq!(out.code, 0, "{forged}: {}", out.stderr);
        assert!(!out.stdout.contains("reloads"), "{forged}: {}", out.stdout);
        assert!(
            out.stderr.contains("not telling troll serve to reload"),
            "{forged}: {}",
            out.stderr
        );
    }
    bystander.assert_not_signalled();
}
