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
        let mut stored = state
            .as_ref()
            .map(|s| s.message_options.clone())
            .unwrap_or_default();
        // Windows given now preview the stored message split so.
        if args.message.window.is_some() {
            stored.window = args.message.window;
            stored.window_footer = args.message.window_footer.clone();
        }
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
        .and_then(|s| plan.shows(s.targets[0], &s.addresses).ok());
    let shows = match held {
        Some(shows) => shows,
        None => {
            let (target, hops) =
                plan::documentation_addresses(Family::Ipv4, plan.addresses_needed());
            plan.shows(target, &hops)?
        }
    };
    let preview = Preview::new(&input, &plan, &shows);
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
    /// Window 0's trace (the whole message's when it was not split).
    pub trace: Vec<TraceLine>,
    /// Every window: its target, the command that traces it, its trace.
    pub windows: Vec<WindowPreview>,
    pub warnings: Vec<String>,
    pub costs: Vec<plan::FamilyCost>,
    pub prices_checked: &'static str,
    pub plan: Plan,
}

/// One window of the message (the only one unless `--window` split it).
#[derive(Debug, Serialize)]
pub struct WindowPreview {
    /// 0-based.
    pub window: usize,
    pub target: AddressPair,
    pub target_name: Option<String>,
    pub max_hops: usize,
    /// What to run to read this window.
    pub command: String,
    pub trace: Vec<TraceLine>,
}

#[derive(Debug, Serialize)]
pub struct TraceLine {
    pub ttl: usize,
    /// `real` (sample path), `fake`, `silent` or `target`.
    pub kind: &'static str,
    pub name: Option<String>,
    pub address: Option<IpAddr>,
}

/// A show's trace after the sample real hops, with the max hops a client
/// needs for it.
fn trace_of(show: &Show) -> (Vec<TraceLine>, usize) {
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
    let max_hops = if trace.len() > DEFAULT_CLIENT_MAX_HOPS {
        64
    } else {
        DEFAULT_CLIENT_MAX_HOPS
    };
    (trace, max_hops)
}

/// One trace as Linux traceroute prints it (made-up but plausible
/// round-trip times, the same every run).
fn render_trace(
    target: AddressPair,
    target_name: &Option<String>,
    max_hops: usize,
    trace: &[TraceLine],
) -> String {
    let mut out = String::new();
    let target = target.public;
    let shown = target_name.clone().unwrap_or_else(|| target.to_string());
    let _ = writeln!(
        out,
        "traceroute to {shown} ({target}), {max_hops} hops max, 60 byte packets"
    );
    for line in trace {
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

impl Preview {
    /// `shows`: one per window, window 0 first.
    fn new(input: &MessageInput, plan: &Plan, shows: &[Show]) -> Preview {
        let windows: Vec<WindowPreview> = shows
            .iter()
            .map(|show| {
                let (trace, max_hops) = trace_of(show);
                let limit = if max_hops > DEFAULT_CLIENT_MAX_HOPS {
                    format!("-m {max_hops} ")
                } else {
                    String::new()
                };
                WindowPreview {
                    window: show.window,
                    target: show.target,
                    target_name: show.target_name.clone(),
                    max_hops,
                    command: format!("traceroute {limit}{}", show.target.public),
                    trace,
                }
            })
            .collect();
        let show = &shows[0];
        let (trace, max_hops) = trace_of(show);
        let warnings = warnings(input, plan);
        Preview {
            target: show.target,
            target_name: show.target_name.clone(),
            hops: plan.total_hops(),
            silent_hops: shows
                .iter()
                .flat_map(|s| &s.hops)
                .filter(|h| matches!(h, Hop::Silent))
                .count(),
            addresses_needed: plan.addresses_needed(),
            max_hops,
            trace,
            windows,
            warnings,
            costs: price_list(plan),
            prices_checked: plan::prices_checked(),
            plan: plan.clone(),
        }
    }

    /// The trace; a split message's windows each after a line that names
    /// its target and the command that shows it.
    pub fn render(&self) -> String {
        if self.windows.len() <= 1 {
            return render_trace(self.target, &self.target_name, self.max_hops, &self.trace);
        }
        let mut out = String::new();
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "window {} of {}: target {}, trace it with `{}`",
                w.window + 1,
                self.windows.len(),
                w.target.public,
                w.command
            );
            out.push_str(&render_trace(
                w.target,
                &w.target_name,
                w.max_hops,
                &w.trace,
            ));
        }
        out
    }

    /// Hops, addresses and what they cost.
    pub fn summary(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let windows = match plan.window_count() {
            1 => String::new(),
            n => format!(" and the targets of windows 2 to {n}"),
        };
        let _ = writeln!(
            out,
            "\n{} fake hop(s) ({} silent) and the target; {} distinct name(s){windows} need {} address(es) per family.",
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
