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
    super::demo::require(&[
        args.client.tool(),
        ("unbound", "unbound"),
        ("nft", "nftables"),
        ("ethtool", "ethtool"),
    ])?;
    let input = encode_text(text, Default::default(), false)?;
    let plan = plan_message(&input)?;
    let needed = plan.addresses_needed();
    if needed >= usize::from(internet::SHOW_ADDRESSES) {
        return Err(Error::Usage(format!(
            "the internet lab has {} hop addresses per family and the message needs {needed}; shorten it",
            internet::SHOW_ADDRESSES - 1
        )));
    }
    // Record the deployment before creating anything.
    let (deployment, mut locked) = super::demo::new_deployment(ctx, "demo-internet")?;
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
    let stop = super::demo::stop_flag()?;
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
    super::demo::wait_or_stop(&mut child, stop)
}

fn start_server(
    ctx: &Context,
    deployment: &str,
    net: &Internet,
    stop: &AtomicBool,
) -> Result<Child> {
    let log = ctx.store.dir().join(format!("{deployment}.serve.log"));
    let child = super::demo::serve_command(
        ctx,
        &net.ns("server"),
        deployment,
        "eth0",
        "0.0.0.0:53",
        &log,
    )?
    .spawn()
    .map_err(|e| Error::Lab(format!("cannot start troll serve: {e}")))?;
    super::demo::wait_ready(child, &log, stop)
}
