//! One JSON file per deployment.
//!
//! The state is what lets troll undo everything it did: every cloud
//! resource, address, PTR, firewall rule and sysctl it changed. So it must
//! survive crashes: writes go to a temporary file that is fsynced and then
//! renamed over the old one (and the directory fsynced), so a reader sees
//! either the old state or the new one, never half of each. Mutating
//! commands hold an exclusive lock for their whole run, and a file troll
//! cannot read (corrupt, or from a newer troll) is never overwritten.

use crate::error::{Error, Result};
use crate::lab::LabNames;
use crate::message::Line;
use crate::plan::{Plan, Show};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use troll_providers::{AddressPair, Family, ProviderKind, Resource};

/// The schema this troll writes and the newest it reads.
pub const SCHEMA: u32 = 1;

/// Everything troll knows about one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub schema: u32,
    pub deployment: String,
    pub provider: Option<ProviderKind>,
    /// The provider's instance id, if any.
    pub instance: Option<String>,
    pub region: Option<String>,
    /// AWS: the domain the host names live under.
    pub domain: Option<String>,
    /// AWS: the Route 53 hosted zone troll writes the A records into.
    pub route53_zone: Option<String>,
    /// Every cloud resource, recorded before the call that creates it.
    pub resources: Vec<Resource>,
    /// One target per family served.
    pub targets: Vec<AddressPair>,
    /// Hop addresses the deployment holds, both families, in slot order.
    pub addresses: Vec<AddressPair>,
    /// The message as the operator wrote it.
    pub message: Option<String>,
    pub message_options: MessageOptions,
    pub lines: Vec<Line>,
    pub plan: Option<Plan>,
    /// PTR records as last published.
    pub ptrs: Vec<PtrState>,
    /// Firewall rules applied on this host, to be removed.
    pub rules: Vec<AppliedRule>,
    /// Window targets troll added to this host's interfaces, recorded
    /// before they are added; removed with the rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assigned: Vec<AssignedAddress>,
    /// Sysctls changed on this host, with the value to restore.
    pub sysctls: Vec<SysctlChange>,
    /// Extra settings a provider needs to keep (e.g. a source/dest check).
    pub notes: Vec<(String, String)>,
    /// The pid of the `troll serve` answering for this deployment, if any.
    pub serve_pid: Option<u32>,
    /// Round-trip delays of the replies (`set-message --hop-delay`,
    /// `--line-delay`).
    #[serde(default)]
    pub delays: crate::responder::settings::DelaySettings,
    /// The namespaces of a local lab (`troll demo`), removed on teardown.
    pub lab: Option<LabNames>,
    /// The server `troll deploy` installed the deployment on, recorded
    /// before it changes anything there; teardown removes it first.
    pub remote: Option<RemoteDeployment>,
}

/// A deployment installed on a server over SSH by `troll deploy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteDeployment {
    /// The SSH destination, as given (`user@host`, or a name from ~/.ssh/config).
    pub dest: String,
    /// Extra `ssh -o` options given to deploy.
    pub ssh_options: Vec<String>,
    /// The login is not root: commands run under `sudo -n`.
    pub sudo: bool,
    /// Served by a systemd unit; else by troll's own supervisor.
    pub systemd: bool,
    /// Deploy installed /usr/local/bin/troll (none was there before).
    pub installed_binary: bool,
}

impl State {
    /// The deployment's shows, one per target and window (a target's
    /// windows in order, after it), or an error saying what is missing (a
    /// message, addresses).
    pub fn shows(&self) -> Result<Vec<Show>> {
        let plan = self.plan.as_ref().ok_or_else(|| Error::Incomplete {
            deployment: self.deployment.clone(),
            missing: "message",
            command: "set-message",
        })?;
        if self.targets.is_empty() {
            return Err(Error::Incomplete {
                deployment: self.deployment.clone(),
                missing: "addresses",
                command: "provision",
            });
        }
        let mut shows = Vec::new();
        for target in &self.targets {
            shows.extend(plan.shows(*target, &self.addresses)?);
        }
        Ok(shows)
    }

    /// Every PTR record the deployment's shows publish, once per address
    /// (windows share their hop addresses).
    pub fn ptr_records(&self) -> Result<Vec<PtrState>> {
        let mut out: Vec<PtrState> = Vec::new();
        for (address, name) in self.shows()?.iter().flat_map(Show::ptr_records) {
            if !out.iter().any(|p| p.address == address) {
                out.push(PtrState { address, name });
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageOptions {
    pub wrap: bool,
    pub keep_target_name: bool,
    /// `--window LINES`: split the message into windows of this many lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// `--window-footer TEXT`, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_footer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtrState {
    pub address: std::net::IpAddr,
    pub name: String,
}

/// A chain troll owns, the built-in chain that jumps to it, and its rules
/// (each as given to `iptables -A CHAIN`). Recorded before it is created,
/// so that a crash half-way through is still cleaned up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    pub family: Family,
    pub table: String,
    pub hook: String,
    pub chain: String,
    pub rules: Vec<Vec<String>>,
    /// The table did not exist before troll: remove it when it is empty
    /// again, so the firewall is left exactly as found.
    #[serde(default)]
    pub created_table: bool,
}

/// An address troll added to an interface of this host (a window's
/// target, `/32` or `/128`), so that it removes it, and only it, again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedAddress {
    pub address: std::net::IpAddr,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// Checks a deployment name: it becomes a file name and a cloud label.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::DeploymentName(name.to_string()))
    }
}

/// The directory that holds every deployment's state.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// `/var/lib/troll` for root, else `$XDG_STATE_HOME/troll` (or
    /// `~/.local/state/troll`).
    pub fn default_dir() -> PathBuf {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/troll");
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("troll")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, deployment: &str) -> PathBuf {
        self.dir.join(format!("{deployment}.json"))
    }

    fn lock_path(&self, deployment: &str) -> PathBuf {
        self.dir.join(format!("{deployment}.lock"))
    }

    /// Reads a deployment's state without locking (for `status`, `preview`).
    pub fn load(&self, deployment: &str) -> Result<Option<State>> {
        check_name(deployment)?;
        read_state(&self.path(deployment))
    }

    /// Takes the deployment's lock, failing at once if another process
    /// holds it, and reads its state (a new one if there is none).
    pub fn lock(&self, deployment: &str) -> Result<Locked> {
        check_name(deployment)?;
        self.create_dir()?;
        let lock = self
            .acquire(&self.lock_path(deployment))?
            .map_err(|pid| Error::Locked {
                deployment: deployment.to_string(),
                pid,
            })?;
        let path = self.path(deployment);
        let state = read_state(&path)?.unwrap_or_else(|| State {
            schema: SCHEMA,
            deployment: deployment.to_string(),
            ..State::default()
        });
        Ok(Locked {
            _lock: lock,
            path,
            state,
        })
    }

    /// Takes the lock that a running `troll serve` holds for its whole
    /// life, so that one deployment is never served twice at once.
    pub fn serve_lock(&self, deployment: &str) -> Result<File> {
        check_name(deployment)?;
        self.create_dir()?;
        self.acquire(&self.serve_lock_path(deployment))?
            .map_err(|pid| Error::AlreadyServed {
                deployment: deployment.to_string(),
                pid,
            })
    }

    /// Removes a torn-down deployment's lock files (after its state).
    pub fn remove_locks(&self, deployment: &str) {
        for path in [self.lock_path(deployment), self.serve_lock_path(deployment)] {
            let _ = fs::remove_file(path);
        }
    }

    /// The pid of the running `troll serve` of a deployment, if one runs
    /// (it holds the serve lock). Reads only: creates and changes nothing.
    pub fn serve_running(&self, deployment: &str) -> Option<u32> {
        let path = self.dir.join(format!("{deployment}.serve.lock"));
        let mut file = File::open(path).ok()?;
        // SAFETY: flock on an fd we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        if rc == 0 {
            return None;
        }
        let mut pid = String::new();
        file.read_to_string(&mut pid).ok()?;
        pid.trim().parse().ok()
    }

    /// Where a running responder keeps its counters for `troll status`.
    /// The lock file a running `troll serve` of `deployment` holds.
    pub fn serve_lock_path(&self, deployment: &str) -> PathBuf {
        self.dir.join(format!("{deployment}.serve.lock"))
    }

    pub fn counters_path(&self, deployment: &str) -> PathBuf {
        self.dir.join(format!("{deployment}.counters.json"))
    }

    fn create_dir(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io("cannot create the state directory", &self.dir, e))
    }

    /// Locks `path` exclusively without waiting and writes our pid into
    /// it; `Ok(Err(pid))` if another process holds it.
    fn acquire(&self, path: &Path) -> Result<std::result::Result<File, String>> {
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("cannot open the lock file", path, e))?;
        // SAFETY: flock on an fd we own; no memory is passed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                return Ok(Err(match pid.trim() {
                    "" => "unknown".to_string(),
                    p => p.to_string(),
                }));
            }
            return Err(Error::io("cannot lock", path, err));
        }
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .and_then(|()| lock.flush())
            .map_err(|e| Error::io("cannot write the lock file", path, e))?;
        Ok(Ok(lock))
    }

    /// Every deployment that has a state file.
    pub fn list(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", &self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".json")?;
                check_name(stem).ok().map(|()| stem.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

fn read_state(path: &Path) -> Result<Option<State>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read the state file", path, e)),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::StateCorrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let schema = value.get("schema").and_then(serde_json::Value::as_u64);
    match schema {
        Some(found) if found > u64::from(SCHEMA) => {
            return Err(Error::StateFromFuture {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA,
            })
        }
        Some(_) => {}
        None => {
            return Err(Error::StateCorrupt {
                path: path.to_path_buf(),
                detail: "no schema version".into(),
            })
        }
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Error::StateCorrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// A deployment's state, held under its exclusive lock until dropped.
#[derive(Debug)]
pub struct Locked {
    _lock: File,
    path: PathBuf,
    pub state: State,
}

impl Locked {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the state atomically: temp file, fsync, rename, fsync of the
    /// directory. Mode 0600: the state names every resource of an account.
    pub fn save(&mut self) -> Result<()> {
        self.state.schema = SCHEMA;
        let mut text = serde_json::to_string_pretty(&self.state)
            .expect("the state always serializes: it has only plain data");
        text.push('\n');
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("state")
        ));
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| Error::io("cannot write the state file", &self.path, e))
    }

    /// Removes the state file (after a complete teardown).
    pub fn remove(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove the state file", &self.path, e)),
        }
    }
}

/// The state as a read-only journal (for provider status calls).
#[derive(Debug)]
pub struct ReadJournal<'a>(pub &'a State);

impl troll_providers::Journal for ReadJournal<'_> {
    fn resources(&self) -> Vec<Resource> {
        self.0.resources.clone()
    }

    fn record(&mut self, _: Vec<Resource>) -> troll_providers::Result<()> {
        Err(troll_providers::Error::Journal(
            "the state is open read-only here".into(),
        ))
    }
}

impl troll_providers::Journal for Locked {
    fn resources(&self) -> Vec<Resource> {
        self.state.resources.clone()
    }

    fn record(&mut self, resources: Vec<Resource>) -> troll_providers::Result<()> {
        self.state.resources = resources;
        self.save()
            .map_err(|e| troll_providers::Error::Journal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let mut locked = store.lock("demo").unwrap();
        locked.state.message = Some("hello".into());
        locked.save().unwrap();
        let mode = fs::metadata(locked.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(locked);
        let state = store.load("demo").unwrap().unwrap();
        assert_eq!(state.message.as_deref(), Some("hello"));
        assert_eq!(state.schema, SCHEMA);
        assert_eq!(store.list().unwrap(), vec!["demo"]);
    }

    #[test]
    fn a_second_lock_fails_naming_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let _held = store.lock("x").unwrap();
        let err = store.lock("x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "deployment 'x' is in use by another troll command (pid {}); wait for it to finish or stop it",
                std::process::id()
            )
        );
        assert!(store.lock("y").is_ok(), "other deployments are not blocked");
    }

    #[test]
    fn corrupt_and_future_files_are_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(store.path("bad"), "{ not json").unwrap();
        assert!(matches!(store.lock("bad"), Err(Error::StateCorrupt { .. })));
        assert_eq!(fs::read_to_string(store.path("bad")).unwrap(), "{ not json");

        fs::write(store.path("new"), r#"{"schema": 99, "deployment": "new"}"#).unwrap();
        let err = store.load("new").unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
        assert!(store.lock("new").is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "../etc", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("prod-1_a").is_ok());
    }
}
