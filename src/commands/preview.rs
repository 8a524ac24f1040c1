//! `troll preview`: what Linux traceroute would print, with no root and no
//! network, so a message can be tried before it costs anything.

use super::set_message::{plan_of, warnings};
use super::{dollars, print_warnings};
use crate::cli::{encode_text, Context, MessageInput, PreviewArgs};
use crate::error::{Error, Result};
use crate::plan::{self, price_list, Hop, Plan, Show, DEFAULT_CLIENT_MAX_HOPS};
use serde::Serialize;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use troll_providers::{AddressPair, Family};

/// Sample hops of a home connection, from the documentation range.
const SAMPLE_REAL_HOPS: [(&str, [u8; 4]); 3] = [
    ("_gateway", [192, 0, 2, 1]),
    ("isp-edge.example.net", [192, 0, 2, 65]),
    ("core1.example.net", [192, 0, 2, 129]),
];

pub fn run(ctx: &Context, args: &PreviewArgs) -> Result<()> {
    let state = ctx.store.load(&ctx.deployment)?;
    let input = if args.message.given() {
        args.message.read(&ctx.config)?
    } else if let Some(text) = state.as_ref().and_then(|s| s.message.clone()) {
        let stored = state
            .as_ref()
            .map(|s| s.message_options)
            .unwrap_or_default();
        encode_text(text, stored, args.message.strict)?
    } else {
        return Err(Error::Usage(format!(
            "no message given and deployment '{}' has none stored; pass one as an argument",
            ctx.deployment
        )));
    };
    let plan = plan_of(&input)?;
    let held = state
        .as_ref()
        .filter(|s| !s.targets.is_empty() && s.addresses.len() >= plan.addresses_needed())
        .and_then(|s| plan.show(s.targets[0], &s.addresses).ok());
    let show = match held {
        Some(show) => show,
        None => {
            let (target, hops) =
                plan::documentation_addresses(Family::Ipv4, plan.addresses_needed());
            plan.show(target, &hops)?
        }
    };
    let preview = Preview::new(&input, &plan, &show);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&preview).expect("the preview is plain data")
        );
    } else {
        print!("{}", preview.render());
        print_warnings(preview.warnings.iter().map(String::as_str));
        print!("{}", preview.summary(&plan));
    }
    Ok(())
}

/// The preview as data (`--json`) and as text.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub target: AddressPair,
    pub target_name: Option<String>,
    /// Fake hops: `N`.
    pub hops: usize,
    pub silent_hops: usize,
    pub addresses_needed: usize,
    pub max_hops: usize,
    pub trace: Vec<TraceLine>,
    pub warnings: Vec<String>,
    pub costs: Vec<plan::FamilyCost>,
    pub prices_checked: &'static str,
    pub plan: Plan,
}

#[derive(Debug, Serialize)]
pub struct TraceLine {
    pub ttl: usize,
    /// `real` (sample path), `fake`, `silent` or `target`.
    pub kind: &'static str,
    pub name: Option<String>,
    pub address: Option<IpAddr>,
}

impl Preview {
    fn new(input: &MessageInput, plan: &Plan, show: &Show) -> Preview {
        let mut trace: Vec<TraceLine> = SAMPLE_REAL_HOPS
            .iter()
            .enumerate()
            .map(|(i, (name, a))| TraceLine {
                ttl: i + 1,
                kind: "real",
                name: Some((*name).to_string()),
                address: Some(IpAddr::V4(Ipv4Addr::from(*a))),
            })
            .collect();
        for hop in &show.hops {
            let ttl = trace.len() + 1;
            trace.push(match hop {
                Hop::Named { address, name } => TraceLine {
                    ttl,
                    kind: "fake",
                    name: Some(name.clone()),
                    address: Some(address.public),
                },
                Hop::Silent => TraceLine {
                    ttl,
                    kind: "silent",
                    name: None,
                    address: None,
                },
            });
        }
        trace.push(TraceLine {
            ttl: trace.len() + 1,
            kind: "target",
            name: show.target_name.clone(),
            address: Some(show.target.public),
        });
        let warnings = warnings(input, plan);
        let max_hops = if trace.len() > DEFAULT_CLIENT_MAX_HOPS {
            64
        } else {
            DEFAULT_CLIENT_MAX_HOPS
        };
        Preview {
            target: show.target,
            target_name: show.target_name.clone(),
            hops: plan.hop_count(),
            silent_hops: show
                .hops
                .iter()
                .filter(|h| matches!(h, Hop::Silent))
                .count(),
            addresses_needed: plan.addresses_needed(),
            max_hops,
            trace,
            warnings,
            costs: price_list(plan),
            prices_checked: plan::prices_checked(),
            plan: plan.clone(),
        }
    }

    /// The trace as Linux traceroute prints it (made-up but plausible
    /// round-trip times, the same every run).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let target = self.target.public;
        let shown = self
            .target_name
            .clone()
            .unwrap_or_else(|| target.to_string());
        let _ = writeln!(
            out,
            "traceroute to {shown} ({target}), {} hops max, 60 byte packets",
            self.max_hops
        );
        for line in &self.trace {
            let _ = write!(out, "{:>2}  ", line.ttl);
            match (line.address, &line.name) {
                (None, _) => {
                    let _ = writeln!(out, "* * *");
                    continue;
                }
                (Some(addr), Some(name)) => {
                    let _ = write!(out, "{name} ({addr})");
                }
                (Some(addr), None) => {
                    let _ = write!(out, "{addr} ({addr})");
                }
            }
            let base = 0.4 + 4.1 * line.ttl.min(4) as f64 + 0.05 * line.ttl as f64;
            for probe in 0..3 {
                let _ = write!(
                    out,
                    "  {:.3} ms",
                    base + 0.071 * ((line.ttl * 7 + probe * 3) % 5) as f64
                );
            }
            out.push('\n');
        }
        out
    }

    /// Hops, addresses and what they cost.
    pub fn summary(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{} fake hop(s) ({} silent) and the target; {} distinct name(s) need {} address(es) per family.",
            self.hops,
            self.silent_hops,
            plan.distinct.len(),
            self.addresses_needed
        );
        for cost in &self.costs {
            let _ = writeln!(
                out,
                "  {:<6} {}: {} address(es), {}/month",
                cost.provider.name(),
                cost.family,
                cost.needed,
                dollars(cost.monthly_cents)
            );
        }
        let _ = writeln!(
            out,
            "  (prices as of {}; IPv6 hop addresses come free from the server's /64)",
            self.prices_checked
        );
        out
    }
}
