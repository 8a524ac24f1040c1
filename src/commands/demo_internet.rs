//! `troll demo --internet`: the demo over the internet lab
//! ([`crate::lab::internet`]): three routers with names, the cloud's 1:1
//! NAT, the provider edge and Unbound. The server runs a `static`
//! deployment of PUBLIC=LOCAL pairs behind the NAT, as on AWS; the client
//! three routers away runs a real traceroute, then `troll check`. Like
//! `troll demo`, the deployment is recorded before anything is created and
//! everything is removed at the end, also on Ctrl-C or failure (the NAT
//! runs inside this process, so the lab cannot outlive it: no `--keep`).

use super::set_message::{plan_message, store_message};
use super::teardown;
use crate::cli::{encode_text, Context, DemoArgs};
use crate::error::{Error, Result};
use crate::lab;
use crate::lab::internet::{self, Internet, InternetNames, InternetOptions};
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use troll_providers::{AddressPair, ProviderKind};

const PREFIX: &str = "troll-inet";

/// Stops serve and forgets the deployment, then removes the lab: serve
/// restores its rules inside the server namespace before it goes.
struct Cleanup<'a> {
    ctx: &'a Context,
    deployment: String,
    server: Option<Child>,
    net: Option<Internet>,
    done: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Cleanup<'_> {
    fn stop(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Err(e) = teardown::deployment(&self.ctx.store, &self.deployment) {
            eprintln!(
                "troll: cleaning up the demo failed: {e}; run `troll --deployment {} teardown`",
                self.deployment
            );
        }
        if let Some(mut child) = self.server.take() {
            // SAFETY: kill(2) on our own child; TERM so serve restores.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut net) = self.net.take() {
            net.destroy();
        }
    }
}

pub fn run(ctx: &Context, args: &DemoArgs, text: String) -> Result<()> {
    if args.keep {
        return Err(Error::Usage(
            "--keep does not go with --internet: the lab's NAT runs inside troll demo; use plain `troll demo --keep`"
                .into(),
        ));
    }
    for (program, package) in [
        (args.client.program(), args.client.package()),
        ("unbound", "unbound"),
        ("nft", "nftables"),
        ("ethtool", "ethtool"),
    ] {
        if lab::which(program).is_none() {
            return Err(Error::Usage(format!(
                "{program} is not installed; install the Debian package {package} (apt-get install {package})"
            )));
        }
    }
    let input = encode_text(text, Default::default(), false)?;
    let plan = plan_message(&input)?;
    let needed = plan.addresses_needed();
    if needed >= usize::from(internet::SHOW_ADDRESSES) {
        return Err(Error::Usage(format!(
            "the internet lab has {} hop addresses per family and the message needs {needed}; shorten it",
            internet::SHOW_ADDRESSES - 1
        )));
    }
    let pid = std::process::id();
    let deployment = if ctx.deployment == "default" {
        format!("demo-internet-{pid}")
    } else {
        ctx.deployment.clone()
    };
    // Record the deployment before creating anything.
    let mut locked = ctx.store.lock(&deployment)?;
    if locked.state.provider.is_some() || locked.state.plan.is_some() {
        return Err(Error::Usage(format!(
            "deployment '{deployment}' already exists; pick another --deployment or tear it down"
        )));
    }
    locked.state.provider = Some(ProviderKind::Static);
    let pair = |n: u8, v6: bool| {
        if v6 {
            AddressPair::same(IpAddr::V6(internet::public6(n)))
        } else {
            AddressPair {
                public: IpAddr::V4(internet::public(n)),
                local: IpAddr::V4(internet::local(n)),
            }
        }
    };
    let v6 = args.ipv6;
    locked.state.targets = vec![pair(0, false)];
    locked.state.addresses = (1..=needed as u8).map(|n| pair(n, false)).collect();
    if v6 {
        locked.state.targets.push(pair(0, true));
        locked
            .state
            .addresses
            .extend((1..=needed as u8).map(|n| pair(n, true)));
    }
    let hops = plan.hop_count();
    store_message(&mut locked.state, &input, plan);
    locked.save()?;
    drop(locked);
    let mut cleanup = Cleanup {
        ctx,
        deployment: deployment.clone(),
        server: None,
        net: None,
        done: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::Lab(format!("cannot install a signal handler: {e}")))?;
    }
    internet::sweep_stale(PREFIX);
    let net = cleanup.net.insert(Internet::create(
        InternetNames::unique(PREFIX, 0),
        InternetOptions::default(),
    )?);
    println!(
        "The internet lab: client {far} -> r1 -> r2 -> r3 -> 1:1 NAT -> edge -> server {server}; resolver Unbound at {resolver}",
        far = net.ns("far"),
        server = net.ns("server"),
        resolver = internet::RESOLVER,
    );
    let server = start_server(ctx, &deployment, net, &stop)?;
    let far = net.ns("far");
    cleanup.server = Some(server);

    let target = if v6 {
        internet::public6(0).to_string()
    } else {
        internet::public(0).to_string()
    };
    let max_hops = (hops + 5).max(30);
    let line = args.client.command_line(max_hops, &target, v6);
    println!("$ {line}    # in network namespace {far}");
    let status = run_in(
        &far,
        args.client.program(),
        &args.client.args(max_hops, &target, v6),
        &stop,
    )?;
    if !status.success() {
        eprintln!("troll: {} exited with {status}", args.client.program());
    }
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find", "troll's own binary", e))?;
    let exe = exe.to_string_lossy().into_owned();
    let message = input.text.clone();
    let check_args: Vec<String> = ["check", "--message", &message, &target]
        .into_iter()
        .map(String::from)
        .collect();
    println!("$ troll check {target} --message ...    # in network namespace {far}");
    run_in(&far, &exe, &check_args, &stop)?;
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Lab("interrupted; the lab was removed".into()));
    }
    cleanup.stop();
    Ok(())
}

fn run_in(
    ns: &str,
    program: &str,
    args: &[String],
    stop: &AtomicBool,
) -> Result<std::process::ExitStatus> {
    let mut child = lab::exec(ns, program)
        .args(args)
        .env_remove("TROLL_DEPLOYMENT")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| Error::Lab(format!("cannot start {program}: {e}")))?;
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

fn start_server(
    ctx: &Context,
    deployment: &str,
    net: &Internet,
    stop: &AtomicBool,
) -> Result<Child> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find", "troll's own binary", e))?;
    let log = ctx.store.dir().join(format!("{deployment}.serve.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| Error::io("cannot create", &log, e))?;
    let child = lab::exec(&net.ns("server"), &exe.to_string_lossy())
        .arg("--state-dir")
        .arg(ctx.store.dir())
        .args([
            "--deployment",
            deployment,
            "serve",
            "--interface",
            "eth0",
            "--dns",
            "0.0.0.0:53",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Error::Lab(format!("cannot start troll serve: {e}")))?;
    super::demo::wait_ready(child, &log, stop)
}
