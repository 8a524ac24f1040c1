//! `troll deploy SSH_DEST`: install a provisioned deployment on its server
//! over SSH, from the operator's own machine.
//!
//! All SSH is the system's OpenSSH client (`ssh`), so the user's config,
//! keys, agent, jump hosts and known hosts apply as they do everywhere
//! else; troll only writes small POSIX shell scripts that the server runs
//! with `sh -s` (under `sudo -n` when the login is not root). The server
//! gets the deployment exactly as cloud-init does (`user_data::Handover`):
//! its addresses as a static deployment and its message, never an API key.
//!
//! Order of work, so that a failure leaves the server as it was: first a
//! read-only probe (architecture, glibc, root or sudo, init, free space,
//! what is installed), checked against the binary's own needs; then the
//! deployment is recorded in the local state (so `troll teardown` knows the
//! server before anything exists there); then the binary is uploaded to a
//! temporary name, verified and renamed; then the handover runs and the
//! service (re)starts only when something it runs with changed.

use crate::cli::{Context, DeployArgs};
use crate::commands::user_data::{Handover, EXE, STATE_DIR};
use crate::error::{Error, Result};
use crate::state::{RemoteDeployment, State};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub fn run(ctx: &Context, args: &DeployArgs) -> Result<()> {
    let state = ctx
        .store
        .load(&ctx.deployment)?
        .ok_or_else(|| Error::NoDeployment(ctx.deployment.clone()))?;
    // The message goes over the script's own input, never to a file.
    let handover = Handover::new(&state, "/dev/stdin", args.dns, args.interface.as_deref())?;
    let binary_path = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot find", "troll's own binary", e))?,
    };
    let binary =
        std::fs::read(&binary_path).map_err(|e| Error::io("cannot read", &binary_path, e))?;
    let needs = elf::needs(&binary).map_err(|detail| {
        Error::Usage(format!(
            "{} is not a troll binary for Linux ({detail}); give --binary the troll from the release tarball",
            binary_path.display()
        ))
    })?;
    let ssh = Ssh::new(&args.ssh_dest, &args.ssh_option, args.connect_timeout);

    println!("checking {} ...", args.ssh_dest);
    let server = ssh.probe()?;
    server.check(&args.ssh_dest, &needs, &binary_path, binary.len() as u64)?;
    let systemd = server.systemd && !args.no_systemd;
    if !server.systemd && !args.no_systemd {
        println!(
            "{} has no systemd running: troll serve runs under troll's own supervision there (as with --no-systemd)",
            args.ssh_dest
        );
    }
    let sha = hex(&Sha256::digest(&binary));

    // Recorded before the server changes, so that teardown knows it.
    {
        let mut locked = ctx.store.lock(&ctx.deployment)?;
        let installed_binary = match &locked.state.remote {
            Some(r) if r.dest == args.ssh_dest => r.installed_binary,
            _ => server.installed.is_none(),
        };
        locked.state.remote = Some(RemoteDeployment {
            dest: args.ssh_dest.clone(),
            ssh_options: args.ssh_option.clone(),
            sudo: !server.root,
            systemd,
            installed_binary,
        });
        locked.save()?;
    }

    if server.installed.as_deref() != Some(sha.as_str()) {
        println!(
            "copying {} ({:.1} MB) to {}:{EXE}",
            binary_path.display(),
            binary.len() as f64 / 1e6,
            args.ssh_dest
        );
        ssh.upload(&binary, &sha, !server.root)?;
    }
    let fingerprints = (
        run_fingerprint(&sha, &handover, systemd),
        show_fingerprint(&handover),
    );
    let script = apply_script(&state, &handover, &fingerprints, systemd, args.timeout);
    let out = ssh.run_script(&script, !server.root)?;
    let restarted = out.lines().any(|l| l == "troll-deploy: restarted");
    let reloaded = out.lines().any(|l| l == "troll-deploy: message");
    for line in out.lines().filter(|l| !l.starts_with("troll-deploy: ")) {
        println!("  {line}");
    }
    let target = state
        .targets
        .first()
        .map(|t| t.public.to_string())
        .unwrap_or_default();
    if restarted {
        println!(
            "deployment '{}' is serving on {}.",
            state.deployment, args.ssh_dest
        );
    } else if reloaded {
        println!(
            "deployment '{}' on {} shows the new message; troll serve follows it without a restart.",
            state.deployment, args.ssh_dest
        );
    } else {
        println!(
            "deployment '{}' on {} is up to date; nothing restarted.",
            state.deployment, args.ssh_dest
        );
    }
    println!("next: once the PTR records are public (`troll status`), run `troll check {target}` from any machine.");
    Ok(())
}

/// Stops and removes the deployment on its server (service or supervisor,
/// rules, the server's state, the binary if deploy installed it). Used by
/// `troll teardown` before it releases any cloud resource.
pub fn teardown_remote(state: &State, remote: &RemoteDeployment) -> Result<String> {
    let ssh = Ssh::new(&remote.dest, &remote.ssh_options, 15);
    let script = teardown_script(&state.deployment, remote);
    ssh.run_script(&script, remote.sudo).map_err(|e| {
        Error::Remote(format!(
            "{e}; the server still serves: run `troll teardown` again once it is reachable"
        ))
    })?;
    Ok(format!("service on {} stopped and removed", remote.dest))
}

/// What the service runs with (binary, addresses, serve flags, init): it
/// restarts only when this changes.
fn run_fingerprint(binary_sha: &str, handover: &Handover, systemd: bool) -> String {
    digest(&[
        binary_sha,
        &handover.provision.join("\0"),
        &handover.serve_args.join("\0"),
        &systemd.to_string(),
    ])
}

/// What it shows: a running serve follows `set-message` without a restart.
fn show_fingerprint(handover: &Handover) -> String {
    digest(&[&handover.message, &handover.set_message.join("\0")])
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0xff]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A word for `sh`, single-quoted.
fn sq(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn sh_argv(argv: &[String]) -> String {
    argv.iter().map(|w| sq(w)).collect::<Vec<_>>().join(" ")
}

/// Files the deployment keeps on the server, beside its state.
fn remote_file(deployment: &str, what: &str) -> String {
    format!("{STATE_DIR}/{deployment}.{what}")
}

/// The server-side work of a deploy, idempotent: nothing happens when the
/// server already runs these (run, show) fingerprints, and only the
/// message is set when only the show changed.
fn apply_script(
    state: &State,
    handover: &Handover,
    fingerprints: &(String, String),
    systemd: bool,
    timeout: u64,
) -> String {
    let d = &state.deployment;
    let unit = format!("troll-{d}.service");
    let deployed = remote_file(d, "deployed");
    let supervisor = remote_file(d, "supervisor.pid");
    let log = remote_file(d, "serve.log");
    let status = sh_argv(&[
        EXE.into(),
        "--state-dir".into(),
        STATE_DIR.into(),
        "--deployment".into(),
        d.clone(),
        "status".into(),
        "--json".into(),
        "--no-resolve".into(),
    ]);
    let serve = {
        let mut argv: Vec<String> = [EXE, "--state-dir", STATE_DIR, "--deployment", d, "serve"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(handover.serve_args.iter().cloned());
        sh_argv(&argv)
    };
    let running = if systemd {
        format!("systemctl is-active --quiet {unit}")
    } else {
        format!("[ -s {supervisor} ] && kill -0 \"$(cat {supervisor})\" 2>/dev/null")
    };
    let stop = if systemd {
        format!("systemctl stop {unit} 2>/dev/null || true")
    } else {
        stop_supervisor(d)
    };
    let start = if systemd {
        format!(
            "{install} >/dev/null\nsystemctl daemon-reload\nsystemctl enable --quiet {unit}\nsystemctl restart {unit}",
            install = sh_argv(&handover.install_service)
        )
    } else {
        // troll's own supervision: a session of its own that restarts
        // serve when it fails, until the pid file's process is killed.
        format!(
            "nohup setsid sh -c {loop_} >/dev/null 2>&1 </dev/null &",
            loop_ = sq(&format!(
                "echo $$ > {supervisor}; while :; do {serve} >> {log} 2>&1 || true; sleep 2; done"
            ))
        )
    };
    format!(
        r#"set -eu
umask 022
mkdir -p {STATE_DIR}
chmod 0700 {STATE_DIR}
deployed=$(cat {deployed} 2>/dev/null || true)
if [ "$deployed" = {both} ] && {running}; then
  echo "troll-deploy: unchanged"
elif [ "${{deployed%% *}}" = {run} ] && {running}; then
  printf '%s' {message} | {set_message} >/dev/null
  echo {both} > {deployed}
  echo "troll-deploy: message"
else
  {stop}
  {provision} >/dev/null
  printf '%s' {message} | {set_message} >/dev/null
  : > {log}
  {start}
  echo {both} > {deployed}
  echo "troll-deploy: restarted"
fi
# Wait until troll status shows the responder up with its rules in place.
i=0
while :; do
  s=$({status} 2>/dev/null || true)
  if printf '%s' "$s" | grep -q '"running": true' && ! printf '%s' "$s" | grep -q '"present": false'; then
    break
  fi
  i=$((i + 1))
  if [ "$i" -gt {tries} ]; then
    echo "troll serve did not come up within {timeout} s: $(tail -n 1 {log} 2>/dev/null)" >&2
    exit 3
  fi
  sleep 0.5
done
{EXE} --state-dir {STATE_DIR} --deployment {d} status --no-resolve | sed -n '1,3p'
"#,
        run = sq(&fingerprints.0),
        both = sq(&format!("{} {}", fingerprints.0, fingerprints.1)),
        provision = sh_argv(&handover.provision),
        message = sq(&handover.message),
        set_message = sh_argv(&handover.set_message),
        tries = timeout * 2,
    )
}

/// Shell that stops troll's own supervisor and the serve it runs (the
/// whole session: serve removes its rules on SIGTERM) and waits for it.
fn stop_supervisor(deployment: &str) -> String {
    let supervisor = remote_file(deployment, "supervisor.pid");
    format!(
        r#"if [ -s {supervisor} ]; then
    pid=$(cat {supervisor})
    kill -TERM -"$pid" 2>/dev/null || true
    n=0
    while kill -0 -"$pid" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    rm -f {supervisor}
  fi"#
    )
}

fn teardown_script(deployment: &str, remote: &RemoteDeployment) -> String {
    let d = deployment;
    let unit = format!("troll-{d}.service");
    let stop = if remote.systemd {
        format!(
            "systemctl disable --now --quiet {unit} 2>/dev/null || true\nrm -f /etc/systemd/system/{unit}\nsystemctl daemon-reload 2>/dev/null || true"
        )
    } else {
        stop_supervisor(d)
    };
    let binary = if remote.installed_binary {
        // Only when no other deployment on the server still uses it.
        format!("if ! ls {STATE_DIR}/*.deployed >/dev/null 2>&1; then rm -f {EXE}; fi")
    } else {
        String::new()
    };
    format!(
        r#"set -eu
{stop}
if [ -x {EXE} ] && [ -e {state} ]; then
  {EXE} --state-dir {STATE_DIR} --deployment {d} teardown >/dev/null
fi
rm -f {deployed} {log}
{binary}
echo "troll-deploy: removed"
"#,
        state = remote_file(d, "json"),
        deployed = remote_file(d, "deployed"),
        log = remote_file(d, "serve.log"),
    )
}

/// The system's OpenSSH client, as the user has it configured.
#[derive(Debug)]
struct Ssh {
    dest: String,
    options: Vec<String>,
    connect_timeout: u64,
}

/// What the read-only probe found on the server.
#[derive(Debug, Default, PartialEq, Eq)]
struct Server {
    arch: String,
    /// (major, minor), or None when the server has no glibc.
    glibc: Option<(u32, u32)>,
    root: bool,
    sudo: bool,
    systemd: bool,
    /// Free KiB where the binary goes.
    free_kib: u64,
    /// SHA-256 of the troll already installed there.
    installed: Option<String>,
}

const PROBE: &str = r#"set -u
echo "arch=$(uname -m)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
echo "uid=$(id -u)"
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo sudo=yes; else echo sudo=no; fi
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
d=/usr/local/bin; [ -d "$d" ] || d=/usr/local; [ -d "$d" ] || d=/
echo "free=$(df -Pk "$d" | awk 'NR==2 {print $4}')"
if [ -f /usr/local/bin/troll ]; then echo "installed=$(sha256sum /usr/local/bin/troll | cut -d' ' -f1)"; fi
"#;

impl Ssh {
    fn new(dest: &str, options: &[String], connect_timeout: u64) -> Ssh {
        Ssh {
            dest: dest.to_string(),
            options: options.to_vec(),
            connect_timeout,
        }
    }

    fn command(&self, remote: &str) -> Command {
        let program = std::env::var_os("TROLL_SSH").unwrap_or_else(|| "ssh".into());
        let mut cmd = Command::new(program);
        // BatchMode: fail rather than prompt; troll may run without a terminal.
        cmd.args(["-o", "BatchMode=yes", "-o"])
            .arg(format!("ConnectTimeout={}", self.connect_timeout));
        for o in &self.options {
            cmd.arg("-o").arg(o);
        }
        cmd.arg("--").arg(&self.dest).arg(remote);
        cmd
    }

    /// Runs `remote` with `input` on its standard input; its stdout.
    fn exec(&self, remote: &str, input: &[u8]) -> Result<String> {
        let mut child = self
            .command(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Remote(format!(
                    "cannot run ssh ({e}); install the OpenSSH client (apt-get install openssh-client)"
                ))
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Remote(format!("ssh failed: {e}")))?;
        let _ = writer.join();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Some(255) => Err(ssh_error(&self.dest, &stderr)),
            _ => Err(Error::Remote(format!(
                "on {}: {}",
                self.dest,
                last_line(&stderr).unwrap_or("the command failed without a message")
            ))),
        }
    }

    fn run_script(&self, script: &str, sudo: bool) -> Result<String> {
        let remote = if sudo { "sudo -n sh -s" } else { "sh -s" };
        self.exec(remote, script.as_bytes())
    }

    fn probe(&self) -> Result<Server> {
        let out = self.exec("sh -s", PROBE.as_bytes())?;
        Ok(Server::parse(&out))
    }

    /// Copies the binary to a temporary name, checks its SHA-256 and only
    /// then renames it over the installed one; a partial upload (a full
    /// disk) is removed.
    fn upload(&self, binary: &[u8], sha: &str, sudo: bool) -> Result<()> {
        let tmp = format!("{EXE}.upload");
        let script = format!(
            "set -eu; mkdir -p /usr/local/bin; \
             if ! cat > {tmp}; then rm -f {tmp}; echo 'the upload did not complete: the disk is full' >&2; exit 4; fi; \
             if [ \"$(sha256sum {tmp} | cut -d' ' -f1)\" != {sha} ]; then rm -f {tmp}; echo 'the uploaded binary is damaged' >&2; exit 4; fi; \
             chmod 0755 {tmp}; mv -f {tmp} {EXE}"
        );
        let remote = if sudo {
            format!("sudo -n sh -c {}", sq(&script))
        } else {
            format!("sh -c {}", sq(&script))
        };
        self.exec(&remote, binary).map(drop).map_err(|e| match e {
            Error::Remote(m) if m.contains("disk is full") => Error::Remote(format!(
                "{}'s disk is full: troll needs {} MB in /usr/local/bin; free some space and deploy again",
                self.dest,
                binary.len().div_ceil(1_000_000)
            )),
            e => e,
        })
    }
}

impl Server {
    fn parse(out: &str) -> Server {
        let mut s = Server::default();
        for line in out.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "arch" => s.arch = value.to_string(),
                "glibc" => s.glibc = parse_glibc(value),
                "uid" => s.root = value == "0",
                "sudo" => s.sudo = value == "yes",
                "systemd" => s.systemd = value == "yes",
                "free" => s.free_kib = value.parse().unwrap_or(0),
                "installed" if value.len() == 64 => s.installed = Some(value.to_string()),
                _ => {}
            }
        }
        s
    }

    /// Whether `binary` (with `needs`) can run there and be installed.
    fn check(&self, dest: &str, needs: &elf::Needs, binary: &Path, size: u64) -> Result<()> {
        if !self.root && !self.sudo {
            return Err(Error::Remote(format!(
                "the login on {dest} is not root and cannot sudo without a password; log in as root (root@HOST) or allow this user `sudo` without a password"
            )));
        }
        if self.arch != needs.arch {
            return Err(Error::Remote(format!(
                "{dest} is {}, but {} is built for {}; build troll for {} and give it with --binary",
                self.arch,
                binary.display(),
                needs.arch,
                self.arch
            )));
        }
        if needs.glibc.is_some() || needs.dt_relr {
            let Some(have) = self.glibc else {
                return Err(Error::Remote(format!(
                    "{dest} has no glibc (musl, as on Alpine?), which {} needs; use a glibc distribution (Debian, Ubuntu, Amazon Linux...)",
                    binary.display()
                )));
            };
            let want = needs.floor();
            if have < want {
                return Err(Error::Remote(format!(
                    "{dest} has glibc {}.{}, but {} needs {}.{}{}; give --binary the release build (glibc 2.17 and later: scripts/package.sh, or the tarball)",
                    have.0,
                    have.1,
                    binary.display(),
                    want.0,
                    want.1,
                    if needs.dt_relr { " (packed relocations)" } else { "" }
                )));
            }
        }
        // The upload plus the file it replaces, and some room to work.
        let need_kib = size.div_ceil(1024) + 4096;
        if self.free_kib < need_kib {
            return Err(Error::Remote(format!(
                "{dest}'s disk is full: {} MB free where troll goes, it needs {} MB; free some space and deploy again",
                self.free_kib / 1024,
                need_kib.div_ceil(1024)
            )));
        }
        Ok(())
    }
}

/// "glibc 2.31" -> (2, 31).
fn parse_glibc(text: &str) -> Option<(u32, u32)> {
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// One sentence for an ssh failure (exit 255), naming the fix.
fn ssh_error(dest: &str, stderr: &str) -> Error {
    let detail = last_line(stderr).unwrap_or("no message").to_string();
    let has = |s: &str| stderr.contains(s);
    let message = if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "{dest} refused the SSH login ({detail}); add your public key to the server's authorized_keys (ssh-copy-id {dest}) or load it into your agent (ssh-add)"
        )
    } else if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        format!(
            "the SSH host key of {dest} is unknown or changed ({detail}); connect once with `ssh {dest}` and check the key"
        )
    } else if has("Could not resolve hostname") {
        format!("cannot resolve {dest} ({detail}); check the host name or use its address")
    } else if has("Connection refused")
        || has("timed out")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Connection closed")
        || has("Connection reset")
    {
        format!(
            "cannot reach {dest} over SSH ({detail}); check the address, that the server runs and that its firewall lets SSH in"
        )
    } else {
        format!("ssh to {dest} failed ({detail}); check that `ssh {dest}` works")
    };
    Error::Remote(message)
}

/// The dynamic loader needs of an ELF binary, read from its headers.
pub mod elf {
    /// What a binary needs of the system it runs on.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Needs {
        /// `uname -m` of the machine it is built for.
        pub arch: String,
        /// The newest GLIBC_x.y symbol version it uses; None when static.
        pub glibc: Option<(u32, u32)>,
        /// It needs GLIBC_ABI_DT_RELR (packed relocations, glibc 2.36).
        pub dt_relr: bool,
    }

    impl Needs {
        /// The oldest glibc that can run it.
        pub fn floor(&self) -> (u32, u32) {
            let base = self.glibc.unwrap_or((2, 0));
            if self.dt_relr {
                base.max((2, 36))
            } else {
                base
            }
        }
    }

    const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }
    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }
    fn u64_at(b: &[u8], at: usize) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
    }
    fn cstr(b: &[u8], at: usize) -> Option<&str> {
        let rest = b.get(at..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Reads a little-endian ELF64 file's machine and its version needs
    /// (`.gnu.version_r`: the GLIBC_x.y names `objdump -T` shows).
    pub fn needs(b: &[u8]) -> Result<Needs, String> {
        if b.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
            return Err("not a little-endian 64-bit ELF file".into());
        }
        let bad = || "its ELF headers are damaged".to_string();
        let machine = u16_at(b, 18).ok_or_else(bad)?;
        let arch = match machine {
            62 => "x86_64",
            183 => "aarch64",
            243 => "riscv64",
            _ => "an unknown machine",
        }
        .to_string();
        let shoff = u64_at(b, 40).ok_or_else(bad)?;
        let shentsize = u16_at(b, 58).ok_or_else(bad)? as usize;
        let shnum = u16_at(b, 60).ok_or_else(bad)? as usize;
        let section = |i: usize| -> Option<(u32, usize, usize, u32, u32)> {
            let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
            Some((
                u32_at(b, at + 4)?,  // sh_type
                u64_at(b, at + 24)?, // sh_offset
                u64_at(b, at + 32)?, // sh_size
                u32_at(b, at + 40)?, // sh_link
                u32_at(b, at + 44)?, // sh_info: number of entries
            ))
        };
        let mut glibc: Option<(u32, u32)> = None;
        let mut dt_relr = false;
        for i in 0..shnum {
            let (kind, offset, _, link, count) = section(i).ok_or_else(bad)?;
            if kind != SHT_GNU_VERNEED {
                continue;
            }
            let (_, strtab, _, _, _) = section(link as usize).ok_or_else(bad)?;
            let mut need = offset;
            for _ in 0..count {
                let aux_count = u16_at(b, need + 2).ok_or_else(bad)?;
                let mut aux = need + u32_at(b, need + 8).ok_or_else(bad)? as usize;
                for _ in 0..aux_count {
                    let name_at = u32_at(b, aux + 8).ok_or_else(bad)? as usize;
                    let name = cstr(b, strtab + name_at).ok_or_else(bad)?;
                    if name == "GLIBC_ABI_DT_RELR" {
                        dt_relr = true;
                    } else if let Some(v) = name.strip_prefix("GLIBC_") {
                        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                        if let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next())
                        {
                            glibc = glibc.max(Some((major, minor)));
                        }
                    }
                    let next = u32_at(b, aux + 12).ok_or_else(bad)? as usize;
                    if next == 0 {
                        break;
                    }
                    aux += next;
                }
                let next = u32_at(b, need + 12).ok_or_else(bad)? as usize;
                if next == 0 {
                    break;
                }
                need += next;
            }
        }
        Ok(Needs {
            arch,
            glibc,
            dt_relr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_glibc_needs_of_this_test_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needs = elf::needs(&me).unwrap();
        assert_eq!(needs.arch, std::env::consts::ARCH);
        // Any Rust binary on glibc uses at least GLIBC_2.2.5 symbols.
        let glibc = needs.glibc.expect("dynamically linked");
        assert!(glibc >= (2, 2), "{glibc:?}");
    }

    #[test]
    fn rejects_what_is_not_elf() {
        assert!(elf::needs(b"#!/bin/sh\n").is_err());
        assert!(elf::needs(b"\x7fELF\x02\x01").is_err());
    }

    #[test]
    fn parses_the_probe() {
        let s = Server::parse(
            "arch=x86_64\nglibc=glibc 2.31\nuid=1000\nsudo=yes\nsystemd=no\nfree=12345\n",
        );
        assert_eq!(s.glibc, Some((2, 31)));
        assert!(!s.root && s.sudo && !s.systemd);
        assert_eq!(s.free_kib, 12345);
        assert_eq!(s.installed, None);
    }

    fn server() -> Server {
        Server {
            arch: "x86_64".into(),
            glibc: Some((2, 31)),
            root: true,
            sudo: false,
            systemd: true,
            free_kib: 1 << 20,
            installed: None,
        }
    }

    #[test]
    fn refuses_what_the_server_cannot_run() {
        let portable = elf::Needs {
            arch: "x86_64".into(),
            glibc: Some((2, 17)),
            dt_relr: false,
        };
        let bin = Path::new("troll");
        assert!(server().check("h", &portable, bin, 24 << 20).is_ok());
        let native = elf::Needs {
            glibc: Some((2, 34)),
            dt_relr: true,
            ..portable.clone()
        };
        let err = server()
            .check("h", &native, bin, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("glibc 2.31") && err.contains("2.36"), "{err}");
        let arm = Server {
            arch: "aarch64".into(),
            ..server()
        };
        let err = arm.check("h", &portable, bin, 1).unwrap_err().to_string();
        assert!(err.contains("aarch64") && err.contains("--binary"), "{err}");
        let musl = Server {
            glibc: None,
            ..server()
        };
        assert!(musl.check("h", &portable, bin, 1).is_err());
        let nobody = Server {
            root: false,
            ..server()
        };
        let err = nobody
            .check("h", &portable, bin, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sudo"), "{err}");
        let full = Server {
            free_kib: 100,
            ..server()
        };
        let err = full.check("h", &portable, bin, 1).unwrap_err().to_string();
        assert!(err.contains("disk is full"), "{err}");
    }

    #[test]
    fn ssh_failures_name_the_fix() {
        let e = ssh_error("h", "root@h: Permission denied (publickey).\n").to_string();
        assert!(e.contains("ssh-copy-id"), "{e}");
        let e = ssh_error("h", "ssh: connect to host h port 22: Connection refused\n").to_string();
        assert!(e.contains("cannot reach"), "{e}");
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(sq("it's"), r"'it'\''s'");
        assert_eq!(sh_argv(&["a b".into(), "c".into()]), "'a b' 'c'");
    }
}
