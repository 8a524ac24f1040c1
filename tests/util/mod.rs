//! Helpers shared by the integration tests: run the real `troll` binary
//! with its own state directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn troll_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_troll"))
}

/// A `troll` command with a private state dir and no config file from the
/// machine.
pub fn troll(state_dir: &Path) -> Command {
    let mut cmd = Command::new(troll_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", state_dir)
        .env("XDG_CONFIG_HOME", state_dir.join("config"))
        .env("TROLL_STATE_DIR", state_dir.join("state"))
        .stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("troll runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `cmd`, which must exit 0; its output otherwise in the failure.
pub fn run_ok(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

/// Compares `actual` with `tests/snapshots/NAME`; with
/// `TROLL_UPDATE_SNAPSHOTS=1` writes it instead.
pub fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("TROLL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with TROLL_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "snapshot {name} differs; run with TROLL_UPDATE_SNAPSHOTS=1 if intended"
    );
}
pub mod internet;
pub mod lab;

/// One `#[test]` per row `NAME: EXPR;` that evaluates EXPR: for tests
/// that differ only in their data, each keeping its own name (and any
/// doc comment above its row).
#[macro_export]
macro_rules! named_tests {
    ($($(#[$doc:meta])* $name:ident: $body:expr;)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                $body;
            }
        )*
    };
}
