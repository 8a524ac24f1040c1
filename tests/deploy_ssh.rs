//! `troll deploy` against a real OpenSSH server (Debian's sshd) in the
//! lab's server namespace, from the client namespace, with a throwaway host
//! key and client keys made here. sshd runs in a mount namespace of its own
//! where /usr/local and /var/lib are empty temporary directories, so what
//! deploy installs (/usr/local/bin/troll, /var/lib/troll) never touches the
//! host's, and a test user exists only in a private copy of /etc/passwd.
//! The lab has no init, so that server side runs without systemd: deploy
//! detects that and supervises `troll serve` itself (the --no-systemd path).
//! The systemd path runs against a Debian 12 server that systemd-nspawn
//! boots with systemd as its PID 1, in the lab's server namespace.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::lab::{check_trace, provision_static, sh_ok, Expected, Lab, SERVER_ADDR, TARGET};

/// A user that is not root and may not sudo.
const USER: &str = "trolldeploy";
/// A stand-in API key in the user's environment.
const SECRET: &str = "k3y-that-must-stay-home";
/// A root login (uid 0) whose sessions sshd chroots into Debian 11.
const OLD_ROOT: &str = "trollold";

/// The throwaway keys, configs and the server's private directories.
struct Keys {
    dir: tempfile::TempDir,
    host_pub: String,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["host", "id", "stranger"] {
            sh_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                    .arg(d.join(name)),
            );
        }
        let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        // Private copies of passwd and shadow with the test's own users.
        let home = d.join("home");
        std::fs::create_dir(&home).unwrap();
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        passwd.push_str(&format!(
            "{USER}:x:4242:4242::{}:/bin/sh\n{OLD_ROOT}:x:0:0::/root:/bin/sh\n",
            home.display()
        ));
        std::fs::write(d.join("passwd"), passwd).unwrap();
        let mut shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        shadow.push_str(&format!(
            "{USER}:*:19000:0:99999:7:::\n{OLD_ROOT}:*:19000:0:99999:7:::\n"
        ));
        std::fs::write(d.join("shadow"), shadow).unwrap();
        Keys { dir, host_pub }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// One sshd in the server namespace on `port`, with /usr/local and /var/lib
/// replaced by `root/usr-local` and `root/var-lib` (a tmpfs of `disk_kib`
/// for /usr/local when given).
fn sshd(
    lab: &mut Lab,
    keys: &Keys,
    port: u16,
    root: &Path,
    disk_kib: Option<u64>,
    chroot: Option<&str>,
    pre: &str,
) {
    let local = root.join("usr-local");
    let varlib = root.join("var-lib");
    std::fs::create_dir_all(local.join("bin")).unwrap();
    std::fs::create_dir_all(&varlib).unwrap();
    let config = root.join("sshd_config");
    let mut text = format!(
        "Port {port}\nListenAddress {SERVER_ADDR}\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         PermitRootLogin prohibit-password\nPidFile {pid}\nLogLevel VERBOSE\n",
        host = keys.path("host").display(),
        auth = keys.path("authorized_keys").display(),
        pid = root.join("sshd.pid").display(),
    );
    if let Some(dir) = chroot {
        text.push_str(&format!("Match User {OLD_ROOT}\n  ChrootDirectory {dir}\n"));
    }
    std::fs::write(&config, text).unwrap();
    let tmpfs = match disk_kib {
        Some(kib) => format!(
            "mount -t tmpfs -o size={kib}k troll-test-disk {} && mkdir -p {0}/bin && ",
            local.display()
        ),
        None => String::new(),
    };
    let script = format!(
        "set -e; {pre}{tmpfs}mount --bind {local} /usr/local; mount --bind {varlib} /var/lib; \
         mount --bind {passwd} /etc/passwd; mount --bind {shadow} /etc/shadow; mkdir -p /run/sshd; \
         exec /usr/sbin/sshd -D -e -f {config}",
        local = local.display(),
        varlib = varlib.display(),
        passwd = keys.path("passwd").display(),
        shadow = keys.path("shadow").display(),
        config = config.display(),
    );
    lab.spawn(
        &lab.server.clone(),
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
    );
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.server, "ss", "-Hltn"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!("{SERVER_ADDR}:{port}")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sshd on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills whatever deploy left running in the server namespace when a test
/// fails half-way (the lab then deletes the namespace).
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for signal in ["TERM", "KILL"] {
            let out = Command::new("ip").args(["netns", "pids", &self.0]).output();
            let pids = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            for pid in pids.unwrap_or_default().split_whitespace() {
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), pid])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

struct Setup {
    keys: Keys,
    /// The user's machine: state and HOME of the client-side troll.
    home: tempfile::TempDir,
    server: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let keys = Keys::new();
        let home = tempfile::tempdir().unwrap();
        // The server's host key is known, as after a first `ssh`.
        let known = format!(
            "[{SERVER_ADDR}]:2222 {}[{SERVER_ADDR}]:2224 {}",
            keys.host_pub, keys.host_pub
        );
        std::fs::write(home.path().join("known_hosts"), known).unwrap();
        Setup {
            keys,
            home,
            server: tempfile::tempdir().unwrap(),
        }
    }

    /// `troll` on the user's machine (the client namespace).
    fn troll(&self, lab: &Lab) -> Command {
        let mut cmd = lab.exec(&lab.client, env!("CARGO_BIN_EXE_troll"));
        cmd.env("TROLL_STATE_DIR", self.home.path().join("state"))
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path())
            .env_remove("RUST_LOG")
            .env_remove("SSH_AUTH_SOCK")
            // Keys the user's machine has; none may reach the server.
            .env("VULTR_API_KEY", SECRET)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdin(Stdio::null());
        cmd
    }

    /// `troll deploy DEST` with the test's ssh options.
    fn deploy(
        &self,
        lab: &Lab,
        dest: &str,
        port: u16,
        identity: &str,
        extra: &[&str],
    ) -> std::process::Output {
        let mut cmd = self.troll(lab);
        cmd.args(["deploy", dest, "--connect-timeout", "5"]);
        for option in [
            format!("Port={port}"),
            format!("IdentityFile={}", self.keys.path(identity).display()),
            "IdentitiesOnly=yes".to_string(),
            format!(
                "UserKnownHostsFile={}",
                self.home.path().join("known_hosts").display()
            ),
            "StrictHostKeyChecking=yes".to_string(),
        ] {
            cmd.args(["-o", &option]);
        }
        cmd.args(extra);
        cmd.output().unwrap()
    }

    fn remote_root(&self) -> PathBuf {
        self.server.path().join("main")
    }

    /// The server's main sshd: port 2222 on `remote_root`, its root login
    /// chrooted into `chroot` when given, after the shell commands `pre`.
    fn main_sshd(&self, lab: &mut Lab, chroot: Option<&str>, pre: &str) {
        sshd(
            lab,
            &self.keys,
            2222,
            &self.remote_root(),
            None,
            chroot,
            pre,
        );
    }

    /// `troll deploy root@server` on port 2222 with `extra`: it succeeds;
    /// returns what it said.
    fn deploy_ok(&self, lab: &Lab, dest: &str, extra: &[&str]) -> String {
        let out = self.deploy(lab, dest, 2222, "id", extra);
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        said
    }

    /// The first deploy to root@198.19.254.2 with `extra`: it serves and
    /// says how to check; returns what it said.
    fn first_deploy(&self, lab: &Lab, extra: &[&str]) -> String {
        let said = self.deploy_ok(lab, ROOT_DEST, extra);
        assert!(said.contains("is serving on"), "{said}");
        assert!(said.contains(&format!("troll check {TARGET}")), "{said}");
        said
    }

    /// A deploy with nothing changed: nothing restarts.
    fn redeploy_unchanged(&self, lab: &Lab, extra: &[&str]) {
        let said = self.deploy_ok(lab, ROOT_DEST, extra);
        assert!(said.contains("is up to date; nothing restarted"), "{said}");
    }

    /// A new message, set in place: the running serve follows it without a
    /// restart, within 10 s.
    fn redeploy_message(&self, lab: &Lab, extra: &[&str], message: &str, shown: Shown) {
        sh_ok(self.troll(lab).args(["set-message", message]));
        let said = self.deploy_ok(lab, ROOT_DEST, extra);
        assert!(said.contains("without a restart"), "{said}");
        wait_for_trace(lab, shown.0, shown.1);
    }

    /// A new binary (one more byte: another SHA-256): copied, and the
    /// service restarts on it.
    fn redeploy_binary(&self, lab: &Lab, extra: &[&str]) {
        let newer = self.home.path().join("troll-newer");
        let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_troll")).unwrap();
        bytes.push(0);
        std::fs::write(&newer, bytes).unwrap();
        std::fs::set_permissions(&newer, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let newer = newer.display().to_string();
        let said = self.deploy_ok(lab, ROOT_DEST, &[extra, &["--binary", &newer]].concat());
        assert!(said.contains("copying"), "{said}");
        assert!(said.contains("is serving on"), "{said}");
    }

    /// Teardown on the user's machine removes the service from the server
    /// first, and with it the server's rules.
    fn teardown(&self, lab: &Lab, rules_before: &str) {
        let out = self.troll(lab).arg("teardown").output().unwrap();
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains("service on root@198.19.254.2 stopped and removed"),
            "{said}"
        );
        assert_eq!(
            lab.iptables_snapshot(),
            rules_before,
            "the server's rules are gone"
        );
    }

    /// Every file under the server's private /usr/local and /var/lib.
    fn server_files(&self) -> Vec<String> {
        let out = sh_ok(Command::new("find").arg(self.remote_root()).args([
            "-mindepth",
            "1",
            "-not",
            "-name",
            "sshd*",
        ]));
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    }
}

/// What a trace must show: the hops, then the target's name.
type Shown<'a> = (&'a [Expected<'a>], &'a str);

/// The server's root login, as deploy is given it.
const ROOT_DEST: &str = "root@198.19.254.2";

/// Fails if any file under `dir` holds the user's API key.
fn assert_no_secret(dir: &Path) {
    let leaked = Command::new("grep")
        .args(["-r", "-l", SECRET])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        leaked.stdout.is_empty(),
        "the API key reached the server: {leaked:?}"
    );
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A failure: exit code 1 and one line on stderr containing `expect`.
fn refused(out: &std::process::Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(stderr.contains(expect), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line:\n{stderr}");
}

fn provision(setup: &Setup, lab: &Lab, message: &str) {
    provision_static(|| setup.troll(lab), "198.18.9.1,198.18.9.2", message);
}

/// Waits (up to 10 s) until a trace shows `hops` and then `target`: the
/// running serve reloads a new message within moments.
fn wait_for_trace(lab: &Lab, hops: &[Expected], target: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = trace(lab);
        let ok = std::panic::catch_unwind(|| check_trace(&out, hops, &[target, TARGET], 3));
        if ok.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new message never showed:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A trace shows a three-line message as provisioned here: two named
/// hops (198.18.9.1 and 198.18.9.2), then the target's name.
fn check_first_show(lab: &Lab, [one, two, target]: [&str; 3]) {
    let hops: [Expected; 2] = [Some(&[one, "198.18.9.1"]), Some(&[two, "198.18.9.2"])];
    check_trace(&trace(lab), &hops, &[target, TARGET], 3);
}

fn trace(lab: &Lab) -> String {
    lab.client_run("traceroute", &["-w", "3", "-m", "10", TARGET])
}

/// The supervisor's pid on the server.
fn supervisor(setup: &Setup) -> String {
    std::fs::read_to_string(
        setup
            .remote_root()
            .join("var-lib/troll/default.supervisor.pid"),
    )
    .unwrap_or_default()
    .trim()
    .to_string()
}

#[test]
fn deploy_serves_updates_in_place_and_tears_down_over_ssh() {
    let mut lab = Lab::new();
    let _reaper = Reaper(lab.server.clone());
    let setup = Setup::new();
    setup.main_sshd(&mut lab, None, "");
    let rules_before = lab.iptables_snapshot();
    provision(&setup, &lab, "Deployed.One\nDeployed.Two\nDeployed.Target");

    let dns = format!("{SERVER_ADDR}:53");
    let extra = ["--dns", &dns, "--interface", "eth0"];
    let said = setup.first_deploy(&lab, &extra);
    assert!(said.contains("has no systemd running"), "{said}");
    let installed = setup.remote_root().join("usr-local/bin/troll");
    assert!(installed.exists());
    let first = supervisor(&setup);
    assert!(!first.is_empty());
    assert_no_secret(&setup.remote_root());

    check_first_show(&lab, ["Deployed.One", "Deployed.Two", "Deployed.Target"]);

    // Again, unchanged: nothing restarts.
    setup.redeploy_unchanged(&lab, &extra);
    assert_eq!(supervisor(&setup), first);

    // A new message: set in place; the running serve follows it.
    let hops: [Expected; 2] = [Some(&["Second.Try", "198.18.9.1"]), None];
    let message = "Second.Try\n\nSecond.Target";
    setup.redeploy_message(&lab, &extra, message, (&hops, "Second.Target"));
    assert_eq!(supervisor(&setup), first);

    setup.redeploy_binary(&lab, &extra);
    assert_ne!(supervisor(&setup), first);
    check_trace(&trace(&lab), &hops, &["Second.Target", TARGET], 3);

    setup.teardown(&lab, &rules_before);
    let left: Vec<String> = setup
        .server_files()
        .into_iter()
        .filter(|f| {
            !f.ends_with("/usr-local/bin")
                && !f.ends_with("/var-lib/troll")
                && !f.ends_with("usr-local")
                && !f.ends_with("var-lib")
        })
        .collect();
    assert!(left.is_empty(), "left on the server: {left:?}");
    let procs = sh_ok(Command::new("ip").args(["netns", "pids", &lab.server]));
    let sshd_only = procs.split_whitespace().all(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "sshd")
            .unwrap_or(true)
    });
    assert!(
        sshd_only,
        "a process other than sshd still runs on the server"
    );
    assert!(!setup.home.path().join("state/default.json").exists());
}

#[test]
fn deploy_refusals_are_one_line_and_change_nothing() {
    let mut lab = Lab::new();
    let _reaper = Reaper(lab.server.clone());
    let setup = Setup::new();
    let bullseye = sh_ok(&mut Command::new("scripts/debian11-rootfs.sh"));
    setup.main_sshd(&mut lab, Some(bullseye.trim()), "");
    let full = setup.server.path().join("full");
    sshd(&mut lab, &setup.keys, 2224, &full, Some(1024), None, "");
    provision(&setup, &lab, "Refused.One\nRefused.Target");
    let before = setup.server_files();

    // Nothing listens on port 2223.
    let out = setup.deploy(&lab, "root@198.19.254.2", 2223, "id", &[]);
    refused(&out, "cannot reach root@198.19.254.2 over SSH");
    // A key the server does not know.
    let out = setup.deploy(&lab, "root@198.19.254.2", 2222, "stranger", &[]);
    refused(&out, "refused the SSH login");
    // Neither root nor sudo.
    let out = setup.deploy(&lab, &format!("{USER}@198.19.254.2"), 2222, "id", &[]);
    refused(&out, "is not root and cannot sudo");
    // Debian 11 (glibc 2.31) cannot run this natively built test binary,
    // which needs glibc 2.34 symbols and packed relocations.
    if troll_needs_new_glibc() {
        let out = setup.deploy(&lab, &format!("{OLD_ROOT}@198.19.254.2"), 2222, "id", &[]);
        refused(&out, "has glibc 2.31, but");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--binary"));
    }
    // A server whose disk has 1 MiB free.
    let out = setup.deploy(&lab, "root@198.19.254.2", 2224, "id", &[]);
    refused(&out, "disk is full");

    assert_eq!(setup.server_files(), before, "the server is as it was");
    let state = std::fs::read_to_string(setup.home.path().join("state/default.json")).unwrap();
    assert!(
        !state.contains("198.19.254.2"),
        "no server recorded: {state}"
    );
}

/// Whether the test's own troll needs a glibc newer than Debian 11's.
fn troll_needs_new_glibc() -> bool {
    let out = sh_ok(Command::new("readelf").args([
        "--version-info",
        "--wide",
        env!("CARGO_BIN_EXE_troll"),
    ]));
    out.contains("GLIBC_ABI_DT_RELR") || out.contains("GLIBC_2.34")
}

/// A directory under /var/cache/troll-tests (sshd refuses a chroot under
/// the world-writable /tmp), removed with the test.
struct CacheDir(PathBuf);

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The release binary (scripts/package.sh) deployed to a Debian 11 server:
/// sshd chroots the login into an overlay of the cached bullseye root with
/// iptables installed, so the server side runs Debian 11's glibc 2.31 and
/// its iptables.
#[test]
fn deploy_the_release_binary_to_debian_11() {
    let dist = std::env::var_os("TROLL_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dist"));
    let binary = dist.join("troll");
    assert!(
        binary.exists(),
        "no release binary in {}; run scripts/package.sh first (scripts/test.sh does)",
        dist.display()
    );
    let mut lab = Lab::new();
    let bullseye = sh_ok(&mut Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/debian11-rootfs.sh"
    )));
    let bullseye = bullseye.trim().to_string();
    let cache = CacheDir(Path::new(&bullseye).parent().unwrap().join(format!(
        "deploy-{}-{}",
        std::process::id(),
        lab.server
    )));
    let c = &cache.0;
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(c.join(d)).unwrap();
    }
    let overlay = format!(
        "mount -t overlay overlay -o lowerdir={bullseye},upperdir={u},workdir={w} {m}",
        u = c.join("upper").display(),
        w = c.join("work").display(),
        m = c.join("merged").display(),
    );
    // iptables comes from Debian's mirror, in this (host) network namespace.
    let m = c.join("merged");
    sh_ok(Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c"]).arg(format!(
        "set -e; {overlay}; mount --rbind /dev {m}/dev; cp /etc/resolv.conf {m}/etc/resolv.conf; \
         chroot {m} sh -c 'export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin; \
         apt-get update -qq && apt-get install -y -qq --no-install-recommends iptables >/dev/null'",
        m = m.display()
    )));
    let _reaper = Reaper(lab.server.clone());
    let setup = Setup::new();
    let pre = format!(
        "{overlay}; mount -t proc proc {m}/proc; mount --rbind /dev {m}/dev; ",
        m = m.display()
    );
    setup.main_sshd(&mut lab, Some(&m.display().to_string()), &pre);
    let rules_before = lab.iptables_snapshot();
    provision(&setup, &lab, "Debian.Eleven\nGlibc.2-31\nOld.Target");

    let dns = format!("{SERVER_ADDR}:53");
    let dest = format!("{OLD_ROOT}@198.19.254.2");
    let bin = binary.display().to_string();
    let extra = ["--binary", &bin, "--dns", &dns, "--interface", "eth0"];
    setup.deploy_ok(&lab, &dest, &extra);
    check_first_show(&lab, ["Debian.Eleven", "Glibc.2-31", "Old.Target"]);
    // It ran from the overlay, where Debian 11's files are.
    assert!(c.join("upper/usr/local/bin/troll").exists());

    let out = setup.troll(&lab).arg("teardown").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every rule and chain is gone. Debian 11 has no `nft` to delete the
    // emptied raw table with (see rules.rs), so that may stay, empty.
    let after = lab.iptables_snapshot();
    assert!(
        after == rules_before
            || !after
                .lines()
                .any(|l| l.starts_with("-A") || l.contains("troll")),
        "left: {after}"
    );
    assert!(
        !c.join("upper/usr/local/bin/troll").exists(),
        "the binary deploy installed is gone"
    );
}

/// A Debian 12 server that boots systemd as its PID 1: systemd-nspawn in
/// the lab's server namespace, over an overlay of the cached root
/// (scripts/debian12-systemd-rootfs.sh) whose upper layer holds the test's
/// throwaway host key, authorized key and sshd port. nspawn runs in a
/// mount namespace of its own (the overlay vanishes with it) and in
/// cgroups of the test's own, which are removed with the container, also
/// when the test fails.
struct SystemdServer {
    dir: CacheDir,
    name: String,
    pid: u32,
    cgroups: Vec<PathBuf>,
}

impl SystemdServer {
    fn boot(lab: &Lab, keys: &Keys) -> SystemdServer {
        let root = sh_ok(&mut Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/debian12-systemd-rootfs.sh"
        )));
        let root = root.trim().to_string();
        let name = format!("trolltest-{}", std::process::id());
        let dir = CacheDir(Path::new(&root).parent().unwrap().join(format!(
            "systemd-{}-{}",
            std::process::id(),
            lab.server
        )));
        let d = &dir.0;
        for sub in [
            "upper/etc/ssh/sshd_config.d",
            "upper/root/.ssh",
            "work",
            "merged",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let upper = d.join("upper");
        std::fs::copy(keys.path("host"), upper.join("etc/ssh/troll_test_host_key")).unwrap();
        std::fs::copy(
            keys.path("authorized_keys"),
            upper.join("root/.ssh/authorized_keys"),
        )
        .unwrap();
        std::fs::write(
            upper.join("etc/ssh/sshd_config.d/troll-test.conf"),
            "Port 2222\nHostKey /etc/ssh/troll_test_host_key\nPasswordAuthentication no\n\
             PermitRootLogin prohibit-password\n",
        )
        .unwrap();
        sh_ok(
            Command::new("chmod")
                .args(["600"])
                .arg(upper.join("etc/ssh/troll_test_host_key")),
        );
        sh_ok(
            Command::new("chmod")
                .args(["700"])
                .arg(upper.join("root/.ssh")),
        );
        // The hierarchies nspawn and the container's systemd write to.
        let hierarchies: Vec<&str> = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
            .into_iter()
            .filter(|h| Path::new(h).join("cgroup.procs").exists())
            .collect();
        let hierarchies = if hierarchies.is_empty() {
            vec!["/sys/fs/cgroup"]
        } else {
            hierarchies
        };
        let cgroups: Vec<PathBuf> = hierarchies
            .iter()
            .map(|h| Path::new(h).join(&name))
            .collect();
        let mut join = String::new();
        for cg in &cgroups {
            std::fs::create_dir_all(cg).unwrap();
            join.push_str(&format!("echo $$ > {}/cgroup.procs; ", cg.display()));
        }
        let script = format!(
            "set -e; {join}mount -t overlay overlay -o lowerdir={root},upperdir={u},workdir={w} {m}; \
             exec systemd-nspawn --quiet --boot --register=no --keep-unit --console=passive \
             --machine={name} --network-namespace-path=/run/netns/{ns} \
             --capability=CAP_NET_ADMIN,CAP_NET_RAW -D {m}",
            u = upper.display(),
            w = d.join("work").display(),
            m = d.join("merged").display(),
            ns = lab.server,
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("nspawn.log")).unwrap())
            .stderr(std::fs::File::create(d.join("nspawn.err")).unwrap())
            .spawn()
            .unwrap();
        let server = SystemdServer {
            pid: child.id(),
            dir,
            name,
            cgroups,
        };
        // `unshare` and `sh` exec, so the pid is nspawn's; it is reaped
        // by waitpid in drop.
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = sh_ok(Command::new("ip").args(["netns", "exec", &lab.server, "ss", "-Hltn"]));
            if out.contains(":2222 ") {
                return server;
            }
            let err = std::fs::read_to_string(server.dir.0.join("nspawn.err")).unwrap_or_default();
            assert!(
                Path::new(&format!("/proc/{}", server.pid)).exists() && Instant::now() < deadline,
                "the systemd container did not boot to sshd: {err}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn upper(&self) -> PathBuf {
        self.dir.0.join("upper")
    }

    /// Every pid in the container's cgroups.
    fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for cg in &self.cgroups {
            let out = Command::new("find")
                .arg(cg)
                .args(["-name", "cgroup.procs", "-exec", "cat", "{}", "+"])
                .output();
            if let Ok(out) = out {
                pids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
        pids
    }
}

impl Drop for SystemdServer {
    fn drop(&mut self) {
        let pid = self.pid as i32;
        // SIGTERM asks nspawn for an orderly shutdown of the container.
        // SAFETY: kill(2) and waitpid(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut status = 0;
            // SAFETY: as above.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done != 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is left (nspawn killed half-way) is killed outright.
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: kill(2) on a process of the test's own cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: reaps nspawn if it was killed above.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        for cg in &self.cgroups {
            let _ = Command::new("find")
                .arg(cg)
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .status();
        }
        let _ = std::fs::remove_dir_all(format!("/run/systemd/nspawn/propagate/{}", self.name));
    }
}

/// `ssh root@server COMMAND` from the client namespace, as deploy logs in.
fn remote(setup: &Setup, lab: &Lab, command: &str) -> String {
    let mut cmd = lab.exec(&lab.client, "ssh");
    cmd.args([
        "-p",
        "2222",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
    ])
    .arg(setup.keys.path("id"))
    .arg("-o")
    .arg(format!(
        "UserKnownHostsFile={}",
        setup.home.path().join("known_hosts").display()
    ))
    .args(["root@198.19.254.2", command])
    .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The service's main pid on the server.
fn main_pid(setup: &Setup, lab: &Lab) -> String {
    remote(
        setup,
        lab,
        "systemctl show -p MainPID --value troll-default.service",
    )
}

/// The systemd path: the server boots systemd, so deploy installs the unit
/// (install-service), enables and restarts it, and waits for troll status;
/// redeploys restart it only when the binary changes; teardown leaves no
/// unit, rule or process.
#[test]
fn deploy_to_a_server_with_systemd() {
    let lab = Lab::new();
    let _reaper = Reaper(lab.server.clone());
    let setup = Setup::new();
    let server = SystemdServer::boot(&lab, &setup.keys);
    assert_eq!(remote(&setup, &lab, "cat /proc/1/comm"), "systemd");
    let rules_before = lab.iptables_snapshot();
    provision(&setup, &lab, "Systemd.One\nSystemd.Two\nSystemd.Target");

    let dns = format!("{SERVER_ADDR}:53");
    let extra = ["--dns", &dns, "--interface", "eth0"];
    let said = setup.first_deploy(&lab, &extra);
    assert!(!said.contains("has no systemd running"), "{said}");
    let unit = "troll-default.service";
    assert_eq!(
        remote(&setup, &lab, &format!("systemctl is-active {unit}")),
        "active"
    );
    assert_eq!(
        remote(&setup, &lab, &format!("systemctl is-enabled {unit}")),
        "enabled"
    );
    assert!(server
        .upper()
        .join("etc/systemd/system")
        .join(unit)
        .exists());
    let first = main_pid(&setup, &lab);
    assert!(!first.is_empty() && first != "0", "no main pid: {first}");
    assert_no_secret(&server.upper());
    check_first_show(&lab, ["Systemd.One", "Systemd.Two", "Systemd.Target"]);

    // Again, unchanged: the service is not restarted.
    setup.redeploy_unchanged(&lab, &extra);
    assert_eq!(main_pid(&setup, &lab), first);

    // A new message: the running service follows it without a restart.
    let hops: [Expected; 2] = [Some(&["Systemd.Again", "198.18.9.1"]), None];
    let message = "Systemd.Again\n\nSystemd.End";
    setup.redeploy_message(&lab, &extra, message, (&hops, "Systemd.End"));
    assert_eq!(main_pid(&setup, &lab), first);

    // A new binary: copied, and systemd restarts the service on it.
    setup.redeploy_binary(&lab, &extra);
    let second = main_pid(&setup, &lab);
    assert!(second != first && second != "0", "{first} then {second}");
    check_trace(&trace(&lab), &hops, &["Systemd.End", TARGET], 3);

    // Teardown on the user's machine: the unit, its rules and its process
    // are gone from the server, and the server's systemd is still up.
    setup.teardown(&lab, &rules_before);
    assert_eq!(
        remote(&setup, &lab, "systemctl list-unit-files --no-legend 'troll-*'; systemctl list-units --all --no-legend 'troll-*'"),
        "",
        "no troll unit is left"
    );
    assert!(!server
        .upper()
        .join("etc/systemd/system")
        .join(unit)
        .exists());
    assert!(!server
        .upper()
        .join("etc/systemd/system/multi-user.target.wants")
        .join(unit)
        .exists());
    assert!(!server.upper().join("usr/local/bin/troll").exists());
    let state = remote(&setup, &lab, "ls -A /var/lib/troll 2>/dev/null");
    assert_eq!(state, "", "left in /var/lib/troll");
    let troll_procs: Vec<i32> = server
        .pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim() == "troll")
                .unwrap_or(false)
        })
        .collect();
    assert!(troll_procs.is_empty(), "troll still runs: {troll_procs:?}");
    assert!(!setup.home.path().join("state/default.json").exists());
}
