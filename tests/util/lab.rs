//! A two-host lab: a client and a server network namespace joined by a veth
//! pair, with unique names per lab, removed when the lab is dropped (also
//! when a test fails or panics). The target address sits on the server;
//! hop addresses are configured nowhere: they only appear as the source of
//! the responder's replies. Traffic never leaves the two namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CLIENT_ADDR: &str = "198.18.254.1";
/// The server's own address on the link: answered by the kernel throughout.
pub const SERVER_ADDR: &str = "198.18.254.2";
pub const TARGET: &str = "198.18.0.100";
pub const PREFIX: &str = "trl";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Panics with a clear sentence unless we are root: the lab tests are part
/// of the suite and must not pass by doing nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the lab tests build network namespaces and need root; run ./scripts/test.sh as root"
    );
}

pub fn sh(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn sh_ok(cmd: &mut Command) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    sh_ok(Command::new("ip").args(args));
}

/// Removes labs left behind by test processes that no longer run.
fn sweep_stale() {
    let out = sh(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
    }
}

#[derive(Debug)]
pub struct Lab {
    pub client: String,
    pub server: String,
    pub state_dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    pub fn new() -> Lab {
        require_root();
        sweep_stale();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let client = format!("{PREFIX}{pid}-{n}-c");
        let server = format!("{PREFIX}{pid}-{n}-s");
        let lab = Lab {
            client: client.clone(),
            server: server.clone(),
            state_dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        let veth_c = format!("tc{}{n}", pid % 100_000);
        let veth_s = format!("ts{}{n}", pid % 100_000);
        ip(&["netns", "add", &client]);
        ip(&["netns", "add", &server]);
        ip(&[
            "link", "add", &veth_c, "netns", &client, "type", "veth", "peer", "name", &veth_s,
            "netns", &server,
        ]);
        for (ns, dev, addr) in [
            (&client, &veth_c, CLIENT_ADDR),
            (&server, &veth_s, SERVER_ADDR),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "name", "eth0"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        ip(&[
            "-n",
            &server,
            "addr",
            "add",
            &format!("{TARGET}/32"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &client, "route", "add", "default", "via", SERVER_ADDR]);
        ip(&["-n", &server, "route", "add", "default", "via", CLIENT_ADDR]);
        lab
    }

    /// A command run inside a namespace.
    pub fn exec(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// `troll` inside the server namespace, with the lab's state dir.
    pub fn troll(&self) -> Command {
        let mut cmd = self.exec(&self.server, env!("CARGO_BIN_EXE_troll"));
        cmd.env("TROLL_STATE_DIR", self.state_dir.path())
            .env("XDG_CONFIG_HOME", self.state_dir.path())
            .env("RUST_LOG", "info");
        cmd
    }

    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().to_path_buf()
    }

    /// Starts `troll serve ARGS` in the server namespace and waits until
    /// its rules are in place.
    pub fn serve(&mut self, args: &[&str]) -> usize {
        let log = self
            .state_dir
            .path()
            .join(format!("serve-{}.log", self.children.len()));
        let child = self
            .troll()
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
        let index = self.children.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("serving ") {
                return index;
            }
            if let Ok(Some(status)) = self.children[index].try_wait() {
                panic!("troll serve exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "troll serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The serve log of child `index`.
    pub fn serve_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.state_dir.path().join(format!("serve-{index}.log")))
            .unwrap_or_default()
    }

    /// Sends `signal` to child `index` and waits for it to exit.
    pub fn stop(&mut self, index: usize, signal: i32) -> std::process::ExitStatus {
        let child = &mut self.children[index];
        // `ip netns exec` execs the program, so the pid is troll's own.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "troll serve did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a background process in a namespace; killed with the lab.
    pub fn spawn(&mut self, ns: &str, program: &str, args: &[&str]) {
        let child = self
            .exec(ns, program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// A client command's output (stdout and stderr), with a time limit.
    pub fn client_run(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "ip", "netns", "exec", &self.client, program])
            .args(args);
        let out = sh(&mut cmd);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// iptables-save of the server namespace without comments and counters.
    pub fn iptables_snapshot(&self) -> String {
        let mut text = String::new();
        for tool in ["iptables-save", "ip6tables-save"] {
            let out = sh_ok(&mut self.exec(&self.server, tool));
            for line in out.lines().filter(|l| !l.starts_with('#')) {
                let line = match line.find(" [") {
                    Some(i) if line.starts_with(':') => &line[..i],
                    _ => line,
                };
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// The server namespace's network sysctls that troll could touch.
    pub fn sysctl_snapshot(&self) -> String {
        let out = sh_ok(self.exec(&self.server, "sysctl").args(["-a"]));
        out.lines()
            .filter(|l| {
                l.starts_with("net.ipv4.")
                    || l.starts_with("net.ipv6.")
                    || l.starts_with("net.core.")
            })
            .filter(|l| {
                !l.contains("nf_conntrack_count")
                    && !l.starts_with("net.ipv6.route.gc_")
                    && !l.contains(".stable_secret")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SAFETY: kill(2) on our own child; TERM first so troll restores.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.children {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}

/// One hop line of a traceroute-style output: the TTL, the addresses
/// shown, and how many probes were answered / lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopLine {
    pub ttl: usize,
    pub addresses: Vec<String>,
    pub answered: usize,
    pub lost: usize,
}

/// Parses traceroute, inetutils traceroute and tcptraceroute output.
pub fn parse_traceroute(text: &str) -> Vec<HopLine> {
    let mut hops = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        let Some(ttl) = words.peek().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        words.next();
        let mut hop = HopLine {
            ttl,
            addresses: Vec::new(),
            answered: 0,
            lost: 0,
        };
        let words: Vec<&str> = words.collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if w == "*" {
                hop.lost += 1;
            } else if w.ends_with("ms") && w.trim_end_matches("ms").parse::<f64>().is_ok() {
                hop.answered += 1;
            } else if w == "ms" {
            } else if w.parse::<f64>().is_ok() && words.get(i + 1) == Some(&"ms") {
                hop.answered += 1;
                i += 1;
            } else if w.starts_with('[') || w.starts_with('!') || w.starts_with('(') {
            } else if !hop.addresses.iter().any(|a| a == w) {
                hop.addresses.push(w.to_string());
            }
            i += 1;
        }
        hops.push(hop);
    }
    hops
}

/// Checks a parsed trace against the expected hops (`None`: silent) and the
/// target after them: every probe answered by the right address, silent
/// hops fully silent, nothing after the target.
pub fn check_trace(output: &str, hops: &[Option<&str>], target: &str, probes: usize) {
    let parsed = parse_traceroute(output);
    assert_eq!(
        parsed.len(),
        hops.len() + 1,
        "wrong number of hops:\n{output}"
    );
    for (i, expected) in hops.iter().enumerate() {
        let got = &parsed[i];
        assert_eq!(got.ttl, i + 1, "{output}");
        match expected {
            Some(addr) => {
                assert_eq!(
                    got.addresses,
                    vec![addr.to_string()],
                    "hop {}:\n{output}",
                    i + 1
                );
                assert_eq!(
                    (got.answered, got.lost),
                    (probes, 0),
                    "hop {}:\n{output}",
                    i + 1
                );
            }
            None => assert_eq!(
                (got.answered, got.lost),
                (0, probes),
                "hop {}:\n{output}",
                i + 1
            ),
        }
    }
    let last = &parsed[hops.len()];
    assert_eq!(
        last.addresses,
        vec![target.to_string()],
        "target:\n{output}"
    );
    assert_eq!((last.answered, last.lost), (probes, 0), "target:\n{output}");
}
