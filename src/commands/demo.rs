//! `troll demo`: the whole trick on one machine, names included, with no
//! account and no config. It builds a lab (two network namespaces), records
//! it in a `local` deployment *before* creating anything, runs `troll serve
//! --dns` in the server namespace and a real client in the client
//! namespace, and tears everything down again, also on Ctrl-C or failure.
//! With `--keep` the lab stays and the user gets the commands to try other
//! clients and to tear it down.

use super::set_message::{plan_message, store_message};
use super::teardown;
use crate::cli::{encode_text, Context, DemoArgs};
use crate::error::{Error, Result};
use crate::lab::{self, LabNames, SERVER_ADDR};
use crate::state::{Locked, Store};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use troll_providers::{AddressRequest, Family, LocalProvider, Provider, ProviderKind};

/// What `troll serve` logs once its rules and sockets are in place.
pub const READY: &str = "ready: answering probes";

pub const DEFAULT_MESSAGE: &str = "\
0------------------------------0
Douglas Adams
Mostly Harmless
0------------------------------0

So Long And Thanks
For All The Fish
Dont.Panic";

/// The traceroute clients the demo can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Linux traceroute, UDP probes
    Traceroute,
    /// Linux traceroute -I (ICMP echo)
    TracerouteIcmp,
    /// Linux traceroute -T (TCP SYN)
    TracerouteTcp,
    /// mtr, ICMP, report mode
    Mtr,
    /// mtr -u (UDP)
    MtrUdp,
    /// mtr -T (TCP)
    MtrTcp,
    /// tracepath (iputils)
    Tracepath,
    /// inetutils traceroute
    Inetutils,
    /// tcptraceroute
    Tcptraceroute,
}

impl Client {
    pub fn program(self) -> &'static str {
        self.tool().0
    }

    /// The program and the Debian package that has it.
    pub fn tool(self) -> (&'static str, &'static str) {
        match self {
            Client::Traceroute | Client::TracerouteIcmp | Client::TracerouteTcp => {
                ("traceroute", "traceroute")
            }
            Client::Mtr | Client::MtrUdp | Client::MtrTcp => ("mtr", "mtr-tiny"),
            Client::Tracepath => ("tracepath", "iputils-tracepath"),
            Client::Inetutils => ("inetutils-traceroute", "inetutils-traceroute"),
            Client::Tcptraceroute => ("tcptraceroute", "tcptraceroute"),
        }
    }

    /// The arguments: names resolved, wide enough for long names, enough
    /// hops, and a fixed wait (traceroute's adaptive wait misreads the
    /// lab's sub-millisecond round trips).
    pub fn args(self, max_hops: usize, target: &str, ipv6: bool) -> Vec<String> {
        let m = max_hops.to_string();
        let mut args: Vec<&str> = match self {
            Client::Traceroute => vec!["-w", "3", "-m", &m],
            Client::TracerouteIcmp => vec!["-I", "-w", "3", "-m", &m],
            Client::TracerouteTcp => vec!["-T", "-w", "3", "-m", &m],
            Client::Mtr => vec!["-r", "-w", "-c", "3", "-m", &m],
            Client::MtrUdp => vec!["-r", "-w", "-u", "-c", "3", "-m", &m],
            Client::MtrTcp => vec!["-r", "-w", "-T", "-c", "3", "-m", &m],
            Client::Tracepath => vec!["-m", &m],
            Client::Inetutils => vec!["--resolve-hostnames", "-w", "3", "-m", &m],
            Client::Tcptraceroute => vec!["-w", "3", "-m", &m],
        };
        if ipv6 {
            args.insert(0, "-6");
        }
        args.into_iter()
            .map(str::to_string)
            .chain([target.to_string()])
            .collect()
    }

    /// Whether the client can trace over IPv6.
    pub fn has_ipv6(self) -> bool {
        !matches!(self, Client::Inetutils | Client::Tcptraceroute)
    }

    pub fn command_line(self, max_hops: usize, target: &str, ipv6: bool) -> String {
        let args = self.args(max_hops, target, ipv6);
        format!("{} {}", self.program(), args.join(" "))
    }
}

const ALL_CLIENTS: [Client; 9] = [
    Client::Traceroute,
    Client::TracerouteIcmp,
    Client::TracerouteTcp,
    Client::Mtr,
    Client::MtrUdp,
    Client::MtrTcp,
    Client::Tracepath,
    Client::Inetutils,
    Client::Tcptraceroute,
];

/// Tears the demo down when dropped, unless disarmed (`--keep`), and
/// reaps the server process, so nothing of the demo outlives it.
struct Cleanup<'a> {
    store: &'a Store,
    deployment: String,
    server: Option<Child>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = teardown::deployment(self.store, &self.deployment) {
            eprintln!(
                "troll: cleaning up the demo failed: {e}; run `troll --deployment {} teardown`",
                self.deployment
            );
        }
        if let Some(mut child) = self.server.take() {
            // Teardown stopped it; wait until it is really gone.
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(ctx: &Context, args: &DemoArgs) -> Result<()> {
    if !lab::is_root() {
        return Err(Error::Privilege(
            "troll demo needs root to create network namespaces; run it with sudo".into(),
        ));
    }
    require(&[
        args.client.tool(),
        ("ip", "iproute2"),
        ("iptables", "iptables"),
    ])?;
    if args.ipv6 && !args.client.has_ipv6() {
        return Err(Error::Usage(format!(
            "{} cannot trace over IPv6; with --ipv6 pick traceroute, traceroute-icmp, traceroute-tcp, mtr, mtr-udp, mtr-tcp or tracepath",
            args.client.program()
        )));
    }
    let text = match args.message.as_deref() {
        None => DEFAULT_MESSAGE.to_string(),
        Some("-") => crate::cli::read_message_stdin()?,
        Some(text) => text.to_string(),
    };
    if args.internet {
        return super::demo_internet::run(ctx, args, text);
    }
    let input = encode_text(text, Default::default(), false)?;
    let plan = plan_message(&input)?;
    let (deployment, mut locked) = new_deployment(ctx, "demo")?;
    let pid = std::process::id();
    let names = LabNames {
        client: format!("troll-{pid}-client"),
        server: format!("troll-{pid}-server"),
    };

    // Record the whole deployment, lab included, before creating anything.
    let families: &[Family] = if args.ipv6 {
        &[Family::Ipv4, Family::Ipv6]
    } else {
        &[Family::Ipv4]
    };
    let provider = LocalProvider::new(families);
    let needed = plan.addresses_needed();
    let request = AddressRequest {
        ipv4: needed,
        ipv6: if args.ipv6 { needed } else { 0 },
    };
    let provisioned = crate::cloud::block_on(provider.provision(&mut locked, request))??;
    locked.state.provider = Some(ProviderKind::Local);
    locked.state.targets = provisioned.targets;
    locked.state.addresses = provisioned.addresses;
    let hops = plan.hop_count();
    store_message(&mut locked.state, &input, plan);
    locked.state.lab = Some(names.clone());
    locked.save()?;
    let targets: Vec<IpAddr> = locked.state.targets.iter().map(|t| t.public).collect();
    // The client traces the IPv6 target with --ipv6, else the IPv4 one.
    let target = *targets
        .last()
        .expect("the local provider has a target per family");
    drop(locked);
    let mut cleanup = Cleanup {
        store: &ctx.store,
        deployment: deployment.clone(),
        server: None,
        armed: true,
    };

    let stop = stop_flag()?;

    lab::create(&names, &targets)?;
    lab::set_resolver(&names, SERVER_ADDR.into(), &targets)?;
    let log = ctx.store.dir().join(format!("{deployment}.serve.log"));
    cleanup.server = Some(start_server(
        ctx,
        &deployment,
        &names,
        &log,
        args.keep,
        &stop,
    )?);

    let max_hops = (hops + 2).max(30);
    let target = target.to_string();
    let line = args.client.command_line(max_hops, &target, args.ipv6);
    println!("$ {line}    # in network namespace {}", names.client);
    let mut client = lab::exec(&names.client, args.client.program())
        .args(args.client.args(max_hops, &target, args.ipv6))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| Error::Lab(format!("cannot start {}: {e}", args.client.program())))?;
    let status = wait_or_stop(&mut client, &stop)?;
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Lab("interrupted; the lab was removed".into()));
    }
    if !status.success() {
        eprintln!("troll: {} exited with {status}", args.client.program());
    }

    if args.keep {
        cleanup.armed = false;
        print_keep_help(ctx, &deployment, &names, &targets, max_hops, &log);
    }
    Ok(())
}

/// `troll serve --interface INTERFACE --dns DNS` for `deployment` in
/// namespace `ns`, its output in `log`.
pub(super) fn serve_command(
    ctx: &Context,
    ns: &str,
    deployment: &str,
    interface: &str,
    dns: &str,
    log: &Path,
) -> Result<Command> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find", "troll's own binary", e))?;
    let log_file = std::fs::File::create(log).map_err(|e| Error::io("cannot create", log, e))?;
    let mut cmd = lab::exec(ns, &exe.to_string_lossy());
    cmd.arg("--state-dir")
        .arg(ctx.store.dir())
        .args(["--deployment", deployment, "serve"])
        .args(["--interface", interface, "--dns", dns])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    Ok(cmd)
}

/// Starts `troll serve --dns` in the server namespace and waits until it
/// answers. With `keep`, it runs in its own session so it outlives us.
fn start_server(
    ctx: &Context,
    deployment: &str,
    names: &LabNames,
    log: &Path,
    keep: bool,
    stop: &AtomicBool,
) -> Result<Child> {
    let dns = format!("{SERVER_ADDR}:53");
    let mut cmd = serve_command(ctx, &names.server, deployment, lab::LINK, &dns, log)?;
    if keep {
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Lab(format!("cannot start troll serve: {e}")))?;
    wait_ready(child, log, stop)
}

/// Waits until the serve `child` logs [`READY`] into `log`; kills it when
/// it does not in time or the user stops the demo, and says why.
pub(super) fn wait_ready(
    mut child: Child,
    log: &std::path::Path,
    stop: &AtomicBool,
) -> Result<Child> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(READY) {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Lab(format!(
                "troll serve exited ({status}) in the server namespace:\n{}",
                text.trim_end()
            )));
        }
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Lab(format!(
                "troll serve did not start in time:\n{}",
                text.trim_end()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The demo's deployment, locked: `PREFIX-PID`, or the one --deployment
/// names, which must not exist yet.
pub(super) fn new_deployment(ctx: &Context, prefix: &str) -> Result<(String, Locked)> {
    let deployment = if ctx.deployment == "default" {
        format!("{prefix}-{}", std::process::id())
    } else {
        ctx.deployment.clone()
    };
    let locked = ctx.store.lock(&deployment)?;
    if locked.state.provider.is_some() || locked.state.plan.is_some() {
        return Err(Error::Usage(format!(
            "deployment '{deployment}' already exists; pick another --deployment or tear it down"
        )));
    }
    Ok((deployment, locked))
}

/// A flag SIGINT and SIGTERM set, so that the demo can clean up.
pub(super) fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::Lab(format!("cannot install a signal handler: {e}")))?;
    }
    Ok(stop)
}

/// Fails with the first of `tools` (program, Debian package) that is not
/// installed.
pub(super) fn require(tools: &[(&str, &'static str)]) -> Result<()> {
    match tools
        .iter()
        .find(|(program, _)| lab::which(program).is_none())
    {
        Some(&(program, package)) => Err(Error::MissingTool {
            program: program.into(),
            package,
        }),
        None => Ok(()),
    }
}

/// Waits for the client; on Ctrl-C, stops it (it may have seen the signal
/// too) and returns.
pub(super) fn wait_or_stop(
    child: &mut Child,
    stop: &AtomicBool,
) -> Result<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::Lab(e.to_string()))? {
            return Ok(status);
        }
        if stop.load(Ordering::Relaxed) {
            let _ = child.kill();
            return child.wait().map_err(|e| Error::Lab(e.to_string()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn print_keep_help(
    ctx: &Context,
    deployment: &str,
    names: &LabNames,
    targets: &[IpAddr],
    max_hops: usize,
    log: &std::path::Path,
) {
    let troll = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "troll".into());
    let dir = ctx.store.dir().display();
    println!(
        "\nThe lab keeps running (deployment '{deployment}', serve log {}).",
        log.display()
    );
    println!("Try other clients:");
    for target in targets {
        let v6 = target.is_ipv6();
        for client in ALL_CLIENTS.into_iter().filter(|c| !v6 || c.has_ipv6()) {
            let line = client.command_line(max_hops, &target.to_string(), v6);
            println!("  ip netns exec {} {line}", names.client);
        }
    }
    println!("Ask the DNS server directly:");
    for target in targets {
        println!(
            "  ip netns exec {} dig -x {target} @{SERVER_ADDR}",
            names.client
        );
    }
    println!("Change the message while it runs:");
    println!("  {troll} --state-dir {dir} --deployment {deployment} set-message \"$(printf 'Hello\\nWorld')\"");
    println!("Tear it down:");
    println!("  {troll} --state-dir {dir} --deployment {deployment} teardown");
}
