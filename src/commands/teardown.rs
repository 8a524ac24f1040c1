//! `troll teardown`: undo everything a deployment did on this host (and,
//! with a cloud provider, in the account), then forget it.

use crate::cli::Context;
use crate::commands::serve::clean_leftovers;
use crate::error::{Error, Result};
use crate::lab;
use crate::process::{parse_pid, PidError, ServeProcess};
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
    let addresses = locked.state.assigned.len();
    clean_leftovers(&mut locked.state)?;
    locked.state.serve_pid = None;
    locked.save()?;
    if chains > 0 || stopped.is_none() {
        removed.push(format!("{chains} leftover firewall chain(s) removed"));
    }
    if addresses > 0 {
        removed.push(format!(
            "{addresses} leftover window target address(es) removed"
        ));
    }
    if let Some(provider) = crate::cloud::provider_of(&locked.state)? {
        // Each step is recorded as it completes; on error the state keeps
        // what is left and teardown can run again.
        let report = crate::cloud::block_on(provider.teardown(&mut locked))??;
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        removed.extend(report.summary);
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

/// How long the serve lock may name a process troll will not signal
/// before teardown gives up (a lock changing hands names none briefly).
const REFUSED_FOR: Duration = Duration::from_secs(1);

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
    let mut signalled: Option<ServeProcess> = None;
    // Since when, and why, the lock's pid was not signalled.
    let mut refused: Option<(Instant, PidError)> = None;
    loop {
        let pid = match store.serve_lock(name) {
            Ok(lock) => {
                if let Some(process) = &signalled {
                    process.wait_exit(deadline + Duration::from_secs(5));
                }
                return Ok((lock, signalled.map(|p| p.pid())));
            }
            Err(Error::AlreadyServed { pid, .. }) if Instant::now() < deadline => pid,
            Err(e) => return Err(e),
        };
        if signalled.is_none() {
            // Taken while that process holds the serve lock, and only if it
            // is a troll serve of this deployment.
            let lock = store.serve_lock_path(name);
            let outcome = parse_pid(&pid)
                .and_then(|pid| ServeProcess::open(pid, &lock))
                .and_then(|process| {
                    tracing::info!("stopping troll serve (pid {})", process.pid());
                    match process.signal(libc::SIGTERM) {
                        Ok(()) | Err(PidError::Gone(_)) => Ok(process),
                        Err(e) => Err(e),
                    }
                });
            match outcome {
                Ok(process) => signalled = Some(process),
                Err(reason) => {
                    // The lock may be changing hands: look again for a while.
                    let since = refused.map_or_else(Instant::now, |(since, _)| since);
                    if since.elapsed() > REFUSED_FOR {
                        return Err(Error::NotSignalled {
                            deployment: name.to_string(),
                            pid,
                            reason,
                        });
                    }
                    refused = Some((since, reason));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
