//! `troll teardown`: undo everything a deployment did on this host (and,
//! with a cloud provider, in the account), then forget it.

use crate::cli::Context;
use crate::commands::serve::clean_leftovers;
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

pub fn run(ctx: &Context) -> Result<()> {
    let deployment = ctx.deployment.as_str();
    if ctx.store.load(deployment)?.is_none() {
        return Err(Error::NoDeployment(deployment.to_string()));
    }
    let _serving = stop_server(ctx)?;
    let mut locked = ctx.store.lock(deployment)?;
    let chains = locked.state.rules.len();
    // Record each step as it completes: if a step fails, the state still
    // lists what is left, and teardown can be run again.
    clean_leftovers(&mut locked.state)?;
    locked.state.serve_pid = None;
    locked.save()?;
    let _ = std::fs::remove_file(ctx.store.counters_path(deployment));
    locked.remove()?;
    println!(
        "deployment '{deployment}' torn down: {chains} firewall chain(s) removed, state deleted."
    );
    Ok(())
}

/// Stops a running `troll serve` of the deployment (SIGTERM, then waits
/// for it to restore its rules) and returns its lock.
fn stop_server(ctx: &Context) -> Result<std::fs::File> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut signalled = false;
    loop {
        match ctx.store.serve_lock(&ctx.deployment) {
            Ok(lock) => return Ok(lock),
            Err(Error::AlreadyServed { pid, .. }) if Instant::now() < deadline => {
                if !signalled {
                    if let Ok(pid) = pid.parse::<i32>() {
                        println!("stopping troll serve (pid {pid})");
                        // SAFETY: kill(2) with a pid read from our own lock file.
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                    }
                    signalled = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}
