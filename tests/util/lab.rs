//! The test side of the lab: `troll::lab` builds the two namespaces; this
//! adds what tests need around it: unique names per test, a private state
//! directory, `troll serve` as a child, client runs with a time limit,
//! snapshots of the server's firewall and sysctls, and output parsers for
//! the real clients. Dropping a `Lab` removes everything, also when the
//! test fails or panics; labs of test processes that died are swept.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use troll::lab::{self, LabNames};

pub use troll::lab::SERVER_ADDR;
pub const TARGET: &str = "198.19.0.1";
pub const TARGET6: &str = "2001:db8:19::1";
pub const PREFIX: &str = "trltest";

/// The lab's usual show: a repeated line (one address), a silent hop and
/// the target's own name; with what traceroute shows for it per family,
/// named (`NAMED4`, `NAMED6`) or by address only (`NUMERIC4`, served from
/// `HOPS`).
pub const MESSAGE: &str = "Hop-One\nhop.two\n\nHOP_three\nHop-One\nTarget.Name";
pub const HOPS: &str = "198.18.0.1,198.18.0.2,-,198.18.0.3,198.18.0.1";
pub const NAMED_TARGET: [&str; 2] = ["Target.Name", TARGET];

/// The usual show's five hops on the addresses `PREFIX1`..`PREFIX3`,
/// with the names `MESSAGE` gives them, or by address only.
macro_rules! usual_show {
    ($prefix:literal) => {
        usual_show!($prefix; "Hop-One", "hop.two", "HOP_three")
    };
    ($prefix:literal; $($one:literal, $two:literal, $three:literal)?) => {
        [
            Some(&[$($one,)? concat!($prefix, "1")]),
            Some(&[$($two,)? concat!($prefix, "2")]),
            None,
            Some(&[$($three,)? concat!($prefix, "3")]),
            Some(&[$($one,)? concat!($prefix, "1")]),
        ]
    };
}
pub const NAMED4: [Expected; 5] = usual_show!("198.18.0.");
pub const NAMED6: [Expected; 5] = usual_show!("2001:db8:18::");
pub const NUMERIC4: [Expected; 5] = usual_show!("198.18.0.";);

/// How many times in a row the lab tests run each client.
pub const RUNS: usize = 5;
/// A traceroute's wait (3 s) and highest TTL (10), as the lab tests run it.
pub const WAIT_MAX: [&str; 4] = ["-w", "3", "-m", "10"];
/// mtr in report mode with names and addresses, 3 probes per hop.
pub const MTR_REPORT: [&str; 9] = ["-r", "-w", "-b", "-c", "3", "-i", "0.2", "-m", "10"];
/// `setpriv` arguments that run a program as nobody with no capability.
pub const AS_NOBODY: [&str; 4] = [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Panics with a clear sentence unless we are root: the lab tests are part
/// of the suite and must not pass by doing nothing.
pub fn require_root() {
    assert!(
        lab::is_root(),
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

/// The real `troll` with `--state-dir STATE`, in this (the host's)
/// namespace, as `troll demo` runs.
pub fn troll_with_state(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_troll"));
    cmd.arg("--state-dir").arg(state);
    cmd
}

/// The pid of a `troll demo` run, from its namespaces' names in what it
/// printed (`troll-PID-client`).
pub fn demo_pid(printed: &str) -> u32 {
    printed
        .split("troll-")
        .nth(1)
        .and_then(|s| s.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the demo names its namespace:\n{printed}"))
}

/// Provisions a `static` deployment for the lab's target with
/// `hop_addresses` and stores `message`, each step with a `troll`
/// command from `troll`.
pub fn provision_static(troll: impl Fn() -> Command, hop_addresses: &str, message: &str) {
    sh_ok(troll().args([
        "provision",
        "--provider",
        "static",
        "--target",
        TARGET,
        "--hop-address",
        hop_addresses,
    ]));
    sh_ok(troll().args(["set-message", message]));
}

/// Removes labs left behind by test processes that no longer run.
fn sweep_stale() {
    let out = sh(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let client = name.replace("-server", "-client");
            let server = name.replace("-client", "-server");
            let _ = lab::destroy(&LabNames { client, server });
        }
    }
}

#[derive(Debug)]
pub struct Lab {
    pub names: LabNames,
    pub client: String,
    pub server: String,
    pub state_dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    /// A lab with the target on the server and the client's resolver
    /// pointing at the server.
    pub fn new() -> Lab {
        require_root();
        sweep_stale();
        let names = LabNames::unique(PREFIX, COUNTER.fetch_add(1, Ordering::SeqCst));
        lab::create(&names, &[TARGET.parse().unwrap(), TARGET6.parse().unwrap()])
            .expect("the lab builds");
        let lab = Lab {
            client: names.client.clone(),
            server: names.server.clone(),
            names,
            state_dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        lab::set_resolver(
            &lab.names,
            SERVER_ADDR.into(),
            &[TARGET.parse().unwrap(), TARGET6.parse().unwrap()],
        )
        .unwrap();
        lab
    }

    /// A command run inside a namespace.
    pub fn exec(&self, ns: &str, program: &str) -> Command {
        lab::exec(ns, program)
    }

    /// `troll` inside the server namespace, with the lab's state dir.
    pub fn troll(&self) -> Command {
        let mut cmd = self.exec(&self.server, env!("CARGO_BIN_EXE_troll"));
        cmd.env("TROLL_STATE_DIR", self.state_dir.path())
            .env("XDG_CONFIG_HOME", self.state_dir.path())
            .env_remove("RUST_LOG");
        cmd
    }

    /// Provisions a local deployment with `message` (hops 198.18.0.1 and
    /// up, target 198.19.0.1).
    pub fn provision(&self, message: &str) {
        self.provision_local(message, &[]);
    }

    /// The same over IPv4 and IPv6 (hops 2001:db8:18::1 and up, target
    /// 2001:db8:19::1 too).
    pub fn provision_ipv6(&self, message: &str) {
        self.provision_local(message, &["--ipv6"]);
    }

    fn provision_local(&self, message: &str, extra: &[&str]) {
        sh_ok(
            self.troll()
                .args(["provision", "--provider", "local"])
                .args(extra)
                .args(["--message", message]),
        );
    }

    /// A lab serving the usual show (`MESSAGE`) with names, over IPv4 or,
    /// with `ipv6`, over both families.
    pub fn serving_names(ipv6: bool) -> Lab {
        let mut lab = Lab::new();
        if ipv6 {
            lab.provision_ipv6(MESSAGE);
        } else {
            lab.provision(MESSAGE);
        }
        lab.serve_with_dns();
        lab
    }

    /// `troll set-message MESSAGE` while serve `index` runs: it says serve
    /// reloads, and serve logs the reload within 10 s.
    pub fn set_message_live(&self, index: usize, message: &str) {
        let out = sh_ok(self.troll().args(["set-message", message]));
        assert!(out.contains("reloads the message now"), "{out}");
        self.wait_for_log(index, "reloaded the show", Duration::from_secs(10));
    }

    /// Waits (up to `timeout`) until the log of serve `index` contains
    /// `text`.
    pub fn wait_for_log(&self, index: usize, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.serve_log(index).contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the serve log:\n{}",
                self.serve_log(index)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `troll serve ARGS` in the server namespace and waits until it
    /// is ready.
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
            if text.contains(troll::commands::demo::READY) {
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

    /// Serves the provisioned deployment with names (DNS on the server).
    pub fn serve_with_dns(&mut self) -> usize {
        self.serve(&["--interface", "eth0", "--dns", &format!("{SERVER_ADDR}:53")])
    }

    /// The pid of child `index` (`ip netns exec` execs, so it is troll's).
    pub fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
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
        let _ = lab::destroy(&self.names);
    }
}

/// One hop line of a client's output: the TTL, the names and addresses
/// shown, and how many probes were answered / lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopLine {
    pub ttl: usize,
    pub words: Vec<String>,
    pub answered: usize,
    pub lost: usize,
}

/// Parses traceroute, inetutils traceroute and tcptraceroute output: names
/// and addresses in either order, `(x)` unwrapped, times in `N ms` or
/// `Nms` form.
pub fn parse_traceroute(text: &str) -> Vec<HopLine> {
    let mut hops = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(ttl) = words.first().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        let mut hop = HopLine {
            ttl,
            words: Vec::new(),
            answered: 0,
            lost: 0,
        };
        let mut i = 1;
        while i < words.len() {
            let w = words[i];
            if w == "*" {
                hop.lost += 1;
            } else if w.ends_with("ms") && w.trim_end_matches("ms").parse::<f64>().is_ok() {
                hop.answered += 1;
            } else if w.parse::<f64>().is_ok() && words.get(i + 1) == Some(&"ms") {
                hop.answered += 1;
                i += 1;
            } else if w.starts_with('[') || w.starts_with('!') {
            } else {
                let w = w.trim_start_matches('(').trim_end_matches(')').to_string();
                if !hop.words.contains(&w) {
                    hop.words.push(w);
                }
            }
            i += 1;
        }
        hops.push(hop);
    }
    hops
}

/// An expected hop: what the client must show for it (`None`: silent).
pub type Expected<'a> = Option<&'a [&'a str]>;

/// Checks a trace: every expected hop shows exactly the expected names
/// and addresses and answers every probe, silent hops answer none, the
/// target comes last and answers every probe.
pub fn check_trace(output: &str, hops: &[Expected], target: &[&str], probes: usize) {
    let last = check_hops(output, hops, probes);
    assert_eq!(last.sorted_words(), sorted(target), "target:\n{output}");
    assert_eq!((last.answered, last.lost), (probes, 0), "target:\n{output}");
}

/// Checks the hops of a trace as `check_trace` does and returns the line
/// after them, the target's, for the caller to judge.
pub fn check_hops(output: &str, hops: &[Expected], probes: usize) -> HopLine {
    let mut parsed = parse_traceroute(output);
    assert_eq!(
        parsed.len(),
        hops.len() + 1,
        "wrong number of hops:\n{output}"
    );
    // Clients print "name (address)" or "address (name)": order is theirs.
    for (i, expected) in hops.iter().enumerate() {
        let got = &parsed[i];
        assert_eq!(got.ttl, i + 1, "{output}");
        match expected {
            Some(words) => {
                assert_eq!(
                    got.sorted_words(),
                    sorted(words),
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
    parsed.pop().unwrap()
}

impl HopLine {
    /// The names and addresses shown, in sorted order.
    pub fn sorted_words(&self) -> Vec<String> {
        let mut v = self.words.clone();
        v.sort();
        v
    }
}

/// `words` as owned strings, sorted.
pub fn sorted(words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `program ARGS` from the client `RUNS` times in a row, each output
/// printed and judged by `check`.
pub fn runs_in_a_row(lab: &Lab, program: &str, args: &[&str], check: impl Fn(&str)) {
    for run in 0..RUNS {
        let out = lab.client_run(program, args);
        println!("run {run}: {program} {args:?}\n{out}");
        check(&out);
    }
}

/// Checks mtr's report (run with `-b`: `N.|-- NAME (ADDR)  LOSS% ...`):
/// every named hop and the target with 0% loss, silent hops `???` 100%.
pub fn check_mtr(out: &str, hops: &[Expected], target: &[&str]) {
    let rows: Vec<(Vec<String>, f64)> = out
        .lines()
        .filter(|l| l.contains(".|--"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().skip(1).collect();
            let loss_at = w
                .iter()
                .position(|x| x.ends_with('%') || *x == "100.0")
                .expect("a loss column");
            let host: Vec<&str> = w[..loss_at]
                .iter()
                .map(|x| x.trim_start_matches('(').trim_end_matches(')'))
                .collect();
            (
                sorted(&host),
                w[loss_at].trim_end_matches('%').parse::<f64>().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), hops.len() + 1, "{out}");
    for (i, expected) in hops.iter().enumerate() {
        match expected {
            Some(words) => assert_eq!(rows[i], (sorted(words), 0.0), "hop {}:\n{out}", i + 1),
            None => assert_eq!(
                rows[i],
                (vec!["???".to_string()], 100.0),
                "hop {}:\n{out}",
                i + 1
            ),
        }
    }
    assert_eq!(rows[hops.len()], (sorted(target), 0.0), "target:\n{out}");
}

/// Checks tracepath's output (run with `-b`: `N:  NAME (ADDR)  TIME`):
/// each hop in order, `no reply` for silent hops, `reached`, no `asymm`.
pub fn check_tracepath(out: &str, hops: &[Expected], target: &[&str]) {
    assert!(!out.contains("asymm"), "asymm note:\n{out}");
    assert!(out.contains("reached"), "{out}");
    let mut seen: Vec<(usize, String)> = Vec::new();
    for line in out.lines() {
        let Some((ttl, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(ttl) = ttl.trim_end_matches('?').parse::<usize>() else {
            continue;
        };
        if rest.contains("[LOCALHOST]") {
            continue;
        }
        let shown = if rest.contains("no reply") {
            "-".to_string()
        } else {
            rest.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        seen.push((ttl, shown));
    }
    seen.dedup();
    let want: Vec<(usize, String)> = hops
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let shown = h.map_or("-".to_string(), |w| format!("{} ({})", w[0], w[1]));
            (i + 1, shown)
        })
        .chain([(hops.len() + 1, format!("{} ({})", target[0], target[1]))])
        .collect();
    assert_eq!(seen, want, "{out}");
}

/// `ip route` and `ip -6 route` of a namespace, for before/after checks
/// (link-local routes come and go with the kernel's own timing).
pub fn routes(lab: &Lab, ns: &str) -> String {
    let v4 = sh_ok(lab.exec(ns, "ip").args(["route", "show", "table", "all"]));
    let v6 = sh_ok(
        lab.exec(ns, "ip")
            .args(["-6", "route", "show", "table", "all"]),
    );
    format!("{v4}{v6}")
        .lines()
        .filter(|l| !l.contains("fe80:"))
        .collect::<Vec<_>>()
        .join("\n")
}
