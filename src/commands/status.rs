//! `troll status`: what a deployment is, what it should show, what clients
//! see now, whether its rules are in place and its responder runs.

use crate::cli::{Context, StatusArgs};
use crate::commands::serve::SavedCounters;
use crate::error::{Error, Result};
use crate::plan::Hop;
use crate::resolve;
use crate::responder::Counters;
use crate::rules;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

#[derive(Debug, Serialize)]
pub struct Status {
    pub deployment: String,
    pub provider: Option<String>,
    pub message_lines: usize,
    /// Round-trip delays of the replies, as set-message stored them.
    pub delays: crate::responder::settings::DelaySettings,
    /// One per family served and window.
    pub shows: Vec<ShowStatus>,
    pub rules: Vec<RuleStatus>,
    pub responder: Responder,
}

#[derive(Debug, Serialize)]
pub struct ShowStatus {
    pub family: String,
    /// The window of the message (0-based; 0 when it was not split).
    pub window: usize,
    pub target: AddressStatus,
    pub hops: Vec<HopStatus>,
}

#[derive(Debug, Serialize)]
pub struct AddressStatus {
    pub address: IpAddr,
    pub local: IpAddr,
    pub wanted: Option<String>,
    /// What a resolver returns now (absent with --no-resolve).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Option<String>>,
    /// What the cloud provider's API reports (cloud deployments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct HopStatus {
    pub ttl: usize,
    /// `None` for a silent hop.
    pub hop: Option<AddressStatus>,
}

#[derive(Debug, Serialize)]
pub struct RuleStatus {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `None` when it could not be checked (not root).
    pub present: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Responder {
    pub running: bool,
    pub pid: Option<u32>,
    pub uptime_secs: Option<u64>,
    pub counters: Option<Counters>,
    /// Bad DNS queries by kind, when serve runs `--dns` and has seen some.
    pub dns_bad_queries: Option<BTreeMap<String, u64>>,
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    let state = ctx
        .store
        .load(&ctx.deployment)?
        .ok_or_else(|| Error::NoDeployment(ctx.deployment.clone()))?;
    let resolver = args.resolver;
    let lookup = |addr: IpAddr| (!args.no_resolve).then(|| resolve::reverse(addr, resolver));
    // What the provider's API says, for cloud deployments.
    let reported: Vec<(IpAddr, Option<String>)> = match crate::cloud::provider_of(&state)? {
        Some(provider) if !state.targets.is_empty() => {
            let mut addresses: Vec<IpAddr> = state.addresses.iter().map(|a| a.public).collect();
            addresses.extend(state.targets.iter().map(|t| t.public));
            let journal = crate::state::ReadJournal(&state);
            crate::cloud::block_on(provider.status(&journal, &addresses))??
        }
        _ => Vec::new(),
    };
    let report = |addr: IpAddr| {
        (!reported.is_empty()).then(|| {
            reported
                .iter()
                .find(|(a, _)| *a == addr)
                .and_then(|(_, n)| n.clone())
        })
    };

    let shows = if state.plan.is_some() && !state.targets.is_empty() {
        state.shows()?
    } else {
        Vec::new()
    };
    let shows = shows
        .iter()
        .map(|show| ShowStatus {
            family: show.target.family().to_string(),
            window: show.window,
            target: AddressStatus {
                address: show.target.public,
                local: show.target.local,
                wanted: show.target_name.clone(),
                resolved: lookup(show.target.public),
                reported: report(show.target.public),
            },
            hops: show
                .hops
                .iter()
                .enumerate()
                .map(|(i, hop)| HopStatus {
                    ttl: i + 1,
                    hop: match hop {
                        Hop::Named { address, name } => Some(AddressStatus {
                            address: address.public,
                            local: address.local,
                            wanted: Some(name.clone()),
                            resolved: lookup(address.public),
                            reported: report(address.public),
                        }),
                        Hop::Silent => None,
                    },
                })
                .collect(),
        })
        .collect();
    let rules = state
        .rules
        .iter()
        .map(|r| RuleStatus {
            family: r.family.to_string(),
            table: r.table.clone(),
            chain: r.chain.clone(),
            present: crate::lab::is_root().then(|| rules::chain_present(r)),
        })
        .collect();
    let pid = ctx.store.serve_running(&ctx.deployment);
    let saved: Option<SavedCounters> =
        std::fs::read_to_string(ctx.store.counters_path(&ctx.deployment))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    let (counters, dns_bad_queries) = match saved {
        Some(s) => (
            Some(s.responder),
            Some(s.dns_bad_queries).filter(|d| !d.is_empty()),
        ),
        None => (None, None),
    };
    let status = Status {
        deployment: ctx.deployment.clone(),
        provider: state.provider.map(|p| p.to_string()),
        message_lines: state.lines.len(),
        delays: state.delays.clone(),
        shows,
        rules,
        responder: Responder {
            running: pid.is_some(),
            pid,
            uptime_secs: pid.and_then(uptime),
            counters,
            dns_bad_queries,
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("plain data")
        );
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// Seconds since process `pid` started, from /proc.
fn uptime(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, in clock ticks) counts from after the command.
    let start: u64 = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((boot as u64).saturating_sub(start / ticks))
}

fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "deployment  {}", s.deployment);
    let _ = writeln!(
        out,
        "provider    {}",
        s.provider.as_deref().unwrap_or("none (message only)")
    );
    let responder = match (&s.responder.pid, s.responder.uptime_secs) {
        (Some(pid), Some(up)) => format!("running, pid {pid}, up {up}s"),
        (Some(pid), None) => format!("running, pid {pid}"),
        _ => "not running".to_string(),
    };
    let _ = writeln!(out, "responder   {responder}");
    let _ = writeln!(out, "delays      {}", s.delays.describe());
    let shown = |a: &AddressStatus| {
        let local = if a.local != a.address {
            format!(" (local {})", a.local)
        } else {
            String::new()
        };
        let reported = match &a.reported {
            None => String::new(),
            Some(Some(name)) => format!("  api: {name}"),
            Some(None) => "  api: none".to_string(),
        };
        let resolved = match &a.resolved {
            None => String::new(),
            Some(Some(name)) if Some(name) == a.wanted.as_ref() => "  ok".to_string(),
            Some(Some(name)) => format!("  resolves to {name}"),
            Some(None) => "  no PTR yet".to_string(),
        };
        format!(
            "{}{local}  {}{reported}{resolved}",
            a.address,
            a.wanted.as_deref().unwrap_or("(name kept)")
        )
    };
    if s.shows.is_empty() {
        let _ = writeln!(
            out,
            "shows       none yet (set a message and provision addresses)"
        );
    }
    let windows = s
        .shows
        .iter()
        .map(|show| show.window + 1)
        .max()
        .unwrap_or(1);
    for show in &s.shows {
        let label = if windows > 1 {
            format!("{} w{}/{windows}", show.family, show.window + 1)
        } else {
            show.family.clone()
        };
        let _ = writeln!(out, "{label:<11} target {}", shown(&show.target));
        for h in &show.hops {
            match &h.hop {
                Some(a) => {
                    let _ = writeln!(out, "  {:>3}  {}", h.ttl, shown(a));
                }
                None => {
                    let _ = writeln!(out, "  {:>3}  (silent)", h.ttl);
                }
            }
        }
    }
    for r in &s.rules {
        let present = match r.present {
            Some(true) => "present",
            Some(false) => "MISSING",
            None => "not checked (needs root)",
        };
        let _ = writeln!(
            out,
            "rules       {} {} {}: {present}",
            r.family, r.table, r.chain
        );
    }
    if let Some(c) = &s.responder.counters {
        let _ = writeln!(out, "counters    {}", c.summary());
    }
    if let Some(d) = &s.responder.dns_bad_queries {
        let _ = writeln!(out, "dns junk    {}", crate::dns::bad_query_summary(d));
    }
    out
}
