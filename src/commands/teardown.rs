//! `troll teardown`: undo everything a deployment did on this host (and,
//! with a cloud provider, in the account), then forget it.

use crate::cli::Context;
use crate::commands::serve::clean_leftovers;
use crate::error::{Error, Result};
use crate::lab;
use crate::state::Store;
use std::time::{Duration, Instant};

pub fn run(ctx: &Context) -> Result<()> {
    let summary = deployment(&ctx.store, &ctx.deployment)?;
    println!("deployment '{}' torn down: {summary}.", ctx.deployment);
    Ok(())
}

/// Tears one deployment down and says what was removed. Each step is
/// recorded as it completes: if one fails, the state still lists what is
/// left, and teardown can simply be run again.
pub fn deployment(store: &Store, name: &str) -> Result<String> {
    if store.load(name)?.is_none() {
        return Err(Error::NoDeployment(name.to_string()));
    }
    let mut removed = Vec::new();
    remote_step(store, name, &mut removed)?;
    let (serving, stopped) = stop_server(store, name)?;
    if let Some(pid) = stopped {
        removed.push(format!(
            "troll serve (pid {pid}) stopped and its rules removed"
        ));
    }
    let mut locked = store.lock(name)?;
    let chains = locked.state.rules.len();
    clean_leftovers(&mut locked.state)?;
    locked.state.serve_pid = None;
    locked.save()?;
    if chains > 0 || stopped.is_none() {
        removed.push(format!("{chains} leftover firewall chain(s) removed"));
    }
    if let Some(cloud) = crate::cloud::Cloud::of(&locked.state)? {
        // Each step is recorded as it completes; on error the state keeps
        // what is left and teardown can run again.
        removed.push(cloud.teardown(&mut locked)?);
    }
    if let Some(names) = locked.state.lab.clone() {
        lab::destroy(&names)?;
        locked.state.lab = None;
        locked.save()?;
        removed.push(format!(
            "lab namespaces {} and {} deleted",
            names.client, names.server
        ));
    }
    for extra in [
        store.counters_path(name),
        store.dir().join(format!("{name}.serve.log")),
    ] {
        let _ = std::fs::remove_file(extra);
    }
    locked.remove()?;
    drop(serving);
    store.remove_locks(name);
    removed.push("state deleted".into());
    Ok(removed.join(", "))
}

/// A deployment `troll deploy` installed on a server is removed there
/// first, over SSH, before anything it depends on (addresses, PTRs) is
/// released; the state forgets the server only once that worked.
fn remote_step(store: &Store, name: &str, removed: &mut Vec<String>) -> Result<()> {
    let mut locked = store.lock(name)?;
    if let Some(remote) = locked.state.remote.clone() {
        removed.push(crate::commands::deploy::teardown_remote(
            &locked.state,
            &remote,
        )?);
        locked.state.remote = None;
        locked.save()?;
    }
    Ok(())
}

/// Stops a running `troll serve` of the deployment (SIGTERM, then waits
/// for it to restore its rules) and returns its lock and its pid.
fn stop_server(store: &Store, name: &str) -> Result<(std::fs::File, Option<i32>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut signalled = None;
    loop {
        match store.serve_lock(name) {
            Ok(lock) => {
                if let Some(pid) = signalled {
                    wait_gone(pid, deadline);
                }
                return Ok((lock, signalled));
            }
            Err(Error::AlreadyServed { pid, .. }) if Instant::now() < deadline => {
                if signalled.is_none() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        tracing::info!("stopping troll serve (pid {pid})");
                        // SAFETY: kill(2) with a pid read from our own lock file.
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                        signalled = Some(pid);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits (until `deadline`) for a process that released its lock to exit.
fn wait_gone(pid: i32, deadline: Instant) {
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                // The state follows the parenthesised command name.
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            })
            .unwrap_or(false)
    };
    while running() && Instant::now() < deadline + Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
}
