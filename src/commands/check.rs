//! `troll check HOST`: the show as the internet sees it. Traces HOST with
//! each protocol it may use, resolves every answering address through the
//! system resolver (and `--resolver`), and says per fake hop and for the
//! target whether it is right, and if not, what is wrong.

use crate::check::probe::{self, ProbeError, Protocol, TraceOptions};
use crate::check::{judge, Expected, ExpectedHop, Names, Report, Verdict};
use crate::cli::{CheckArgs, CheckProtocol, Context, MessageArgs};
use crate::error::{Error, Result};
use crate::plan::{Hop, Plan};
use crate::resolve;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
struct Output {
    host: String,
    address: IpAddr,
    /// The window of a split message this target shows (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<usize>,
    resolvers: Vec<String>,
    protocols: Vec<ProtocolOutput>,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct ProtocolOutput {
    protocol: Protocol,
    /// "checked" or "skipped".
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

/// The address to trace: HOST itself, or its first address of the family.
fn resolve_host(host: &str, v4: bool, v6: bool) -> Result<IpAddr> {
    if let Ok(addr) = host.parse::<IpAddr>() {
        return Ok(addr);
    }
    let addresses: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|_| {
            Error::Usage(format!(
                "cannot resolve host '{host}'; check the name, or give the target's address"
            ))
        })?
        .map(|a| a.ip())
        .collect();
    addresses
        .iter()
        .copied()
        .find(|a| (!v4 || a.is_ipv4()) && (!v6 || a.is_ipv6()))
        .ok_or_else(|| {
            Error::Usage(format!(
                "host '{host}' has no IPv{} address; drop -{} or give an address",
                if v6 { 6 } else { 4 },
                if v6 { 6 } else { 4 }
            ))
        })
}

/// The show expected at `target`: from --message/--file, encoded as
/// set-message does, or from the deployment's state. When `target` is the
/// first window of a split message, every window of its family follows,
/// each with its own target and window number.
fn expected_shows(
    ctx: &Context,
    args: &CheckArgs,
    target: IpAddr,
) -> Result<Vec<(Expected, Option<usize>)>> {
    if args.message.is_some() || args.file.is_some() {
        let message = MessageArgs {
            message: args.message.clone(),
            file: args.file.clone(),
            strict: false,
            wrap: args.wrap,
            keep_target_name: args.keep_target_name,
            window: None,
            window_footer: None,
        };
        let plan = super::set_message::plan_of(&message.read(&ctx.config)?)?;
        return Ok(vec![(from_plan(&plan, target), None)]);
    }
    let state = ctx.store.load(&ctx.deployment)?.ok_or_else(|| {
        Error::Usage(format!(
            "no show to compare with: deployment '{}' is not on this machine; give --message TEXT or --file PATH",
            ctx.deployment
        ))
    })?;
    let Some(plan) = &state.plan else {
        return Err(Error::Usage(format!(
            "deployment '{}' has no message; give --message TEXT or --file PATH",
            ctx.deployment
        )));
    };
    if state.targets.is_empty() {
        return Ok(vec![(from_plan(plan, target), None)]);
    }
    let shows = state.shows()?;
    let expected = |show: &crate::plan::Show| Expected {
        hops: show
            .hops
            .iter()
            .map(|h| match h {
                Hop::Named { address, name } => ExpectedHop {
                    name: Some(name.clone()),
                    address: Some(address.public),
                },
                Hop::Silent => ExpectedHop {
                    name: None,
                    address: None,
                },
            })
            .collect(),
        target: show.target.public,
        target_name: show.target_name.clone(),
    };
    let windowed = plan.window_count() > 1;
    match shows.iter().position(|s| s.target.public == target) {
        Some(first) if windowed && shows[first].window == 0 => Ok(shows[first..]
            .iter()
            .take(plan.window_count())
            .map(|show| (expected(show), Some(show.window)))
            .collect()),
        Some(i) => Ok(vec![(
            expected(&shows[i]),
            windowed.then_some(shows[i].window),
        )]),
        None => Err(Error::Usage(format!(
            "{target} is not a target of deployment '{}' (its targets: {}); check another deployment or give --message",
            ctx.deployment,
            shows
                .iter()
                .map(|s| s.target.public.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn from_plan(plan: &Plan, target: IpAddr) -> Expected {
    Expected {
        hops: plan
            .hops
            .iter()
            .map(|h| match h {
                crate::plan::PlanHop::Named { name, .. } => ExpectedHop {
                    name: Some(name.clone()),
                    address: None,
                },
                crate::plan::PlanHop::Silent => ExpectedHop {
                    name: None,
                    address: None,
                },
            })
            .collect(),
        target,
        target_name: plan.target_name.clone(),
    }
}

/// A spinner on a terminal, nothing otherwise (plain lines follow).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }

    fn set(&self, text: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(text);
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub fn run(ctx: &Context, args: &CheckArgs) -> Result<()> {
    let host = resolve_host(&args.host, args.ipv4, args.ipv6)?;
    let windows = expected_shows(ctx, args, host)?;
    let mut names: BTreeMap<IpAddr, Names> = BTreeMap::new();
    let mut outputs = Vec::new();
    for (expected, window) in &windows {
        outputs.push(check_target(args, expected, *window, &mut names)?);
    }
    let ok = outputs.iter().all(|o| o.ok);
    if args.json {
        let text = if outputs.len() == 1 {
            serde_json::to_string_pretty(&outputs[0])
        } else {
            serde_json::to_string_pretty(&serde_json::json!({ "windows": outputs, "ok": ok }))
        }
        .map_err(|e| Error::Check(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        for (i, output) in outputs.iter().enumerate() {
            if outputs.len() > 1 {
                if i > 0 {
                    println!();
                }
                println!(
                    "window {} of {}: target {}",
                    i + 1,
                    outputs.len(),
                    output.address
                );
            }
            print!("{}", render(output, usize::from(args.max_hops)));
        }
    }
    let mut problems = Vec::new();
    for output in &outputs {
        let target = output.address;
        let at = match output.window {
            Some(w) => format!("window {} ({target})", w + 1),
            None => target.to_string(),
        };
        let checked: Vec<&Report> = output
            .protocols
            .iter()
            .filter_map(|o| o.report.as_ref())
            .collect();
        let nothing_answered = checked.iter().all(|r| {
            r.lines.iter().all(|l| l.address.is_none()) && r.real_hops.iter().all(Option::is_none)
        });
        if nothing_answered {
            problems.push(format!(
                "nothing answered on the way to {at}; check that this machine can reach it (a firewall, or no route)"
            ));
        } else if !output.ok {
            let bad: Vec<&str> = checked
                .iter()
                .filter(|r| !r.ok())
                .map(|r| r.protocol.name())
                .collect();
            problems.push(format!(
                "the show at {at} does not match over {}; see the lines above",
                bad.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Check(problems.join("; ")))
    }
}

/// Traces one target with every protocol asked for and judges it.
fn check_target(
    args: &CheckArgs,
    expected: &Expected,
    window: Option<usize>,
    names: &mut BTreeMap<IpAddr, Names>,
) -> Result<Output> {
    let target = expected.target;
    let resolver = args.resolver;
    let max_hops = args.max_hops;
    let protocols: Vec<Protocol> = match args.protocol {
        Some(CheckProtocol::Udp) => vec![Protocol::Udp],
        Some(CheckProtocol::Icmp) => vec![Protocol::Icmp],
        Some(CheckProtocol::Tcp) => vec![Protocol::Tcp],
        Some(CheckProtocol::All) | None => vec![Protocol::Udp, Protocol::Icmp, Protocol::Tcp],
    };
    let options = TraceOptions {
        target,
        max_hops,
        parallel: args.parallel.max(1),
        wait: Duration::from_millis((args.wait * 1000.0) as u64),
        port: args.port,
    };
    let progress = Progress::new(!args.json);
    let mut outputs = Vec::new();
    let mut unreachable = Vec::new();
    for protocol in protocols {
        let mut options = options;
        if protocol == Protocol::Tcp {
            options.port = args.tcp_port;
        }
        progress.set(format!("{}: tracing {target}", protocol.name()));
        let started = Instant::now();
        let mut seen = 0usize;
        let result = probe::trace(protocol, &options, &mut |_| {
            seen += 1;
            progress.set(format!("{}: {seen} hops answered", protocol.name()));
        });
        let trace = match result {
            Ok(trace) => trace,
            Err(ProbeError::Permission(reason)) => {
                // An automatic choice leaves out what it cannot use quietly
                // in JSON and with one line in text; either way: skipped.
                outputs.push(ProtocolOutput {
                    protocol,
                    status: "skipped",
                    reason: Some(reason),
                    report: None,
                    seconds: None,
                });
                continue;
            }
            Err(ProbeError::Io(reason)) => {
                unreachable.push(format!("{}: {reason}", protocol.name()));
                continue;
            }
        };
        progress.set(format!("{}: looking up names", protocol.name()));
        for answer in trace.answers.values() {
            let addr = answer.address();
            names.entry(addr).or_insert_with(|| {
                let mut found = vec![resolve::reverse(addr, None)];
                if let Some(server) = resolver {
                    found.push(resolve::reverse(addr, Some(server)));
                }
                found
            });
        }
        let report = judge(protocol, expected, &trace, names, usize::from(max_hops));
        outputs.push(ProtocolOutput {
            protocol,
            status: "checked",
            reason: None,
            report: Some(report),
            seconds: Some(started.elapsed().as_secs_f64()),
        });
    }
    progress.done();
    if !unreachable.is_empty() && outputs.iter().all(|o| o.report.is_none()) {
        return Err(Error::Check(format!(
            "cannot reach {target} ({}); check the address and this machine's route to it",
            unreachable.join("; ")
        )));
    }
    let checked: Vec<Report> = outputs.iter().filter_map(|o| o.report.clone()).collect();
    if checked.is_empty() {
        let reasons: Vec<String> = outputs
            .iter()
            .filter_map(|o| {
                o.reason
                    .as_ref()
                    .map(|r| format!("{}: {r}", o.protocol.name()))
            })
            .collect();
        return Err(Error::Check(format!(
            "no protocol could be used ({})",
            reasons.join("; ")
        )));
    }
    let ok = checked.iter().all(|r| r.ok());
    let mut resolvers = vec!["system".to_string()];
    resolvers.extend(resolver.map(|r| r.to_string()));
    Ok(Output {
        host: args.host.clone(),
        address: target,
        window,
        resolvers,
        protocols: outputs,
        ok,
    })
}

fn ptr_text(names: &Names) -> String {
    if names.is_empty() {
        return String::new();
    }
    let first = names[0].clone().unwrap_or_else(|| "-".into());
    if names.iter().all(|n| *n == names[0]) {
        return first;
    }
    names
        .iter()
        .map(|n| n.clone().unwrap_or_else(|| "-".into()))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn render(output: &Output, max_hops: usize) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "troll check {} ({}), names from: {}\n",
        output.host,
        output.address,
        output.resolvers.join(", ")
    );
    for p in &output.protocols {
        let name = p.protocol.name();
        let Some(report) = &p.report else {
            let _ = writeln!(
                out,
                "{name}: skipped: {}",
                p.reason.as_deref().unwrap_or("")
            );
            continue;
        };
        match report.start {
            Some(start) => {
                let _ = writeln!(
                    out,
                    "{name}: the show starts at hop {start}, after {} real hop(s)",
                    start - 1
                );
            }
            None => {
                let _ = writeln!(out, "{name}: no hop of the show answered");
            }
        }
        let _ = writeln!(
            out,
            "  {:>4}  {:<24} {:<26} {:<24} verdict",
            "hop", "expected", "address", "PTR"
        );
        for line in &report.lines {
            let ttl = line.ttl.map_or("?".to_string(), |t| t.to_string());
            let expected = match (&line.expected, line.target) {
                (Some(n), _) => n.clone(),
                (None, true) => "(target)".into(),
                (None, false) => "(silent)".into(),
            };
            let address = line.address.map_or("*".to_string(), |a| a.to_string());
            let suffix = if line.target { " (target)" } else { "" };
            let _ = writeln!(
                out,
                "  {ttl:>4}  {expected:<24} {address:<26} {:<24} {}{suffix}",
                ptr_text(&line.ptr),
                line.verdict.text()
            );
        }
        let total = report.lines.len();
        let good = report.count(Verdict::Ok);
        let mut summary = format!(
            "{name}: {} {good} of {total} lines match ({} probes, {:.1} s)",
            if report.ok() { "ok:" } else { "FAIL:" },
            report.probes,
            p.seconds.unwrap_or(0.0)
        );
        for verdict in [
            Verdict::NoAnswer,
            Verdict::WrongAddress,
            Verdict::NoPtrYet,
            Verdict::WrongName,
            Verdict::OutOfHopRange,
        ] {
            let n = report.count(verdict);
            if n > 0 {
                summary.push_str(&format!(", {n} {}", verdict.text()));
            }
        }
        let _ = writeln!(out, "{summary}");
        if let Some(need) = report.needs_max_hops {
            let _ = writeln!(
                out,
                "{name}: the show ends at hop {need}, past --max-hops {max_hops}: clients need \
                 `traceroute -m {need}`, `mtr -m {need}`, `tracepath -m {need}` (and `troll check --max-hops {need}`)"
            );
        }
    }
    out
}
