//! The test side of the internet lab (`troll::lab::internet`): a `static`
//! deployment of PUBLIC=LOCAL pairs on the server behind the NAT, `troll
//! serve --dns` as a child, and client runs in the far or near namespace.
//! Dropping a `Net` stops serve and removes every namespace, also when
//! the test fails or panics; labs of dead test processes are swept.

use super::lab::{require_root, sh, sh_ok};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use troll::lab::internet::{self, Internet, InternetNames, InternetOptions};
pub use troll::lab::internet::{local, public, public6, RouterPort, FAR_HOPS, NEAR_HOPS};
pub use troll::lab::nat::NatMode;

pub const PREFIX: &str = "trlnet";
static COUNTER: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
pub struct Net {
    pub lab: Internet,
    pub state_dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Net {
    pub fn new(nat: NatMode) -> Net {
        require_root();
        internet::sweep_stale(PREFIX);
        let names = InternetNames::unique(PREFIX, COUNTER.fetch_add(1, Ordering::SeqCst));
        let lab = Internet::create(
            names,
            InternetOptions {
                nat,
                ..InternetOptions::default()
            },
        )
        .expect("the internet lab builds");
        Net {
            lab,
            state_dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        }
    }

    pub fn ns(&self, role: &str) -> String {
        self.lab.ns(role)
    }

    /// `troll` in namespace `role`, with the lab's state dir.
    pub fn troll_in(&self, role: &str) -> Command {
        let mut cmd = troll::lab::exec(&self.ns(role), env!("CARGO_BIN_EXE_troll"));
        cmd.env("TROLL_STATE_DIR", self.state_dir.path())
            .env("XDG_CONFIG_HOME", self.state_dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Provisions a `static` deployment with `message`: the target and
    /// `hops` hop addresses as PUBLIC=LOCAL pairs, and the same on IPv6.
    pub fn provision(&self, message: &str, hops: u8) {
        let v4: Vec<String> = (1..=hops)
            .map(|n| format!("{}={}", public(n), local(n)))
            .collect();
        let v6: Vec<String> = (1..=hops).map(|n| public6(n).to_string()).collect();
        sh_ok(self.troll_in("server").args([
            "provision",
            "--provider",
            "static",
            "--target",
            &format!("{}={}", public(0), local(0)),
            "--target",
            &public6(0).to_string(),
            "--hop-address",
            &v4.join(","),
            "--hop-address",
            &v6.join(","),
            "--message",
            message,
        ]));
    }

    /// Starts `troll serve --dns` in the server namespace; returns its index.
    pub fn serve(&mut self) -> usize {
        self.serve_with(&["--dns", "0.0.0.0:53"])
    }

    /// Starts `troll serve` without its DNS server: the hops answer, their
    /// names do not resolve.
    pub fn serve_without_dns(&mut self) -> usize {
        self.serve_with(&[])
    }

    fn serve_with(&mut self, args: &[&str]) -> usize {
        let args: Vec<&str> = ["--interface", "eth0"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        self.serve_args(&args)
    }

    /// Starts `troll serve ARGS` in the server namespace (reading every
    /// interface unless ARGS say otherwise); returns its index.
    pub fn serve_args(&mut self, args: &[&str]) -> usize {
        let index = self.children.len();
        let log = self.state_dir.path().join(format!("serve-{index}.log"));
        let child = self
            .troll_in("server")
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
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

    /// Stops child `index` with SIGTERM and waits for it.
    pub fn stop(&mut self, index: usize) {
        let child = &mut self.children[index];
        // SAFETY: kill(2) on our own child (`ip netns exec` execs).
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "troll serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 10 s) until the log of serve `index` holds `text`
    /// `times` times.
    pub fn wait_for_log(&self, index: usize, text: &str, times: usize) {
        let log = self.state_dir.path().join(format!("serve-{index}.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&log).unwrap_or_default();
            if got.matches(text).count() >= times {
                return;
            }
            assert!(Instant::now() < deadline, "no {text:?} x{times} in\n{got}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills child `index` with SIGKILL (nothing is restored) and waits.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A client command's output (stdout and stderr) in namespace `role`.
    pub fn client_run(&self, role: &str, program: &str, args: &[&str]) -> String {
        let ns = self.ns(role);
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "ip", "netns", "exec", &ns, program])
            .args(args);
        let out = sh(&mut cmd);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Net {
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
        self.lab.destroy();
    }
}

/// The real hops a client in `role` sees, as (name, address) words.
pub fn real_hops(role: &str, v6: bool) -> Vec<[String; 2]> {
    let ports: &[RouterPort] = if role == "far" { &FAR_HOPS } else { &NEAR_HOPS };
    ports
        .iter()
        .map(|p| {
            let addr = if v6 {
                p.addr6.to_string()
            } else {
                p.addr.to_string()
            };
            [p.name.to_string(), addr]
        })
        .collect()
}
