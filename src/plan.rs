//! Lines to a hop table.
//!
//! A message of `L` lines becomes `N = L - 1` fake hops plus the target's
//! own name (DESIGN.md §1), or `N = L` hops with `--keep-target-name`.
//! Identical lines share one address, silent lines need none. The plan says
//! how many addresses that takes per family, how many the deployment still
//! lacks, what they cost each month, and whether the show fits in the hop
//! limit that clients use by default.
//!
//! A message longer than a default trace can read may be split into
//! windows (`--window LINES`, DESIGN.md §8): window `w` is a show of its
//! own, traced to its own target address `T_w`, with `LINES - 1` of the
//! message's hop lines and a footer as `T_w`'s name (the next window's
//! address, or `--window-footer TEXT`); the last window's target carries
//! the message's last line. Window 0's target is the deployment's target;
//! windows 1.. take one more address each per family, allocated like hop
//! addresses and placed after them: slot `distinct.len() + w - 1`. Hop
//! addresses are shared by all windows, so identical lines still cost one.

use crate::message::Line;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use troll_providers::{monthly_cost_cents, AddressPair, Family, ProviderKind, PRICES_CHECKED};

/// Hops a typical path has before it reaches the server.
pub const TYPICAL_REAL_HOPS: usize = 15;
/// The default maximum TTL of traceroute, mtr and tracert.
pub const DEFAULT_CLIENT_MAX_HOPS: usize = 30;
/// The most fake hops a show may have: a TTL is at most 255, and the real
/// path comes first.
pub const MAX_HOPS: usize = 255 - TYPICAL_REAL_HOPS;

/// Fewest lines a window may hold: one hop and its footer.
pub const MIN_WINDOW: usize = 2;
/// Most lines a window may hold: every hop a TTL can reach, and the footer.
pub const MAX_WINDOW: usize = MAX_HOPS + 1;
/// The window size that fits a default trace after a typical path.
pub const DEFAULT_WINDOW: usize = DEFAULT_CLIENT_MAX_HOPS - TYPICAL_REAL_HOPS;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Every line is a fake hop; the target keeps the name it has.
    pub keep_target_name: bool,
    /// Split the message into windows of this many lines (hops and the
    /// footer), [`MIN_WINDOW`] to [`MAX_WINDOW`].
    pub window: Option<usize>,
    /// The footer of every window but the last, an encoded host name
    /// (default: [`default_footer`] of the next window's target).
    pub window_footer: Option<String>,
}

/// One fake hop of the plan, before addresses are known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PlanHop {
    /// Answered from the address in `slot` (an index into
    /// [`Plan::distinct`]), whose PTR is `name`.
    Named {
        name: String,
        slot: usize,
    },
    Silent,
}

/// The message as hops, independent of any address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The target's own name (the last line), if the plan sets it.
    pub target_name: Option<String>,
    /// Arrival TTL `t` is `hops[t - 1]`.
    pub hops: Vec<PlanHop>,
    /// The distinct hop names, in order of first use: one address each.
    pub distinct: Vec<String>,
    /// Things the operator should know (hop limit, silent target line).
    pub warnings: Vec<String>,
    /// The hops of windows 1.. (window 0's are `hops`); empty when the
    /// message is one show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Vec<PlanHop>>,
    /// Lines per window, when the message was split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// The footer of every window but the last, if the operator gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_footer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the message makes {hops} hops, more than the {MAX_HOPS} a traceroute can show after a \
         typical path (a TTL stops at 255); shorten the message"
    )]
    TooManyHops { hops: usize },
    #[error(
        "a window of {lines} line(s) cannot be served: a window holds {MIN_WINDOW} to \
         {MAX_WINDOW} lines (its hops and its footer); use --window {DEFAULT_WINDOW} to fit a \
         default 30-hop trace"
    )]
    BadWindow { lines: usize },
    #[error(
        "the show needs {needed} {family} hop address(es) but the deployment has {available}; \
         run `troll provision` to add {missing} more",
        missing = needed - available
    )]
    MissingAddresses {
        family: Family,
        needed: usize,
        available: usize,
    },
}

impl Plan {
    pub fn new(lines: &[Line], options: PlanOptions) -> Result<Plan, PlanError> {
        let (hop_lines, target_line) = match lines.split_last() {
            Some((last, rest)) if !options.keep_target_name => (rest, Some(last)),
            _ => (lines, None),
        };
        let mut warnings = Vec::new();
        let target_name = match target_line {
            Some(Line::Named { name }) => Some(name.clone()),
            Some(Line::Silent) => {
                warnings.push(
                    "the last line is blank, so the target keeps its current name".to_string(),
                );
                None
            }
            None => None,
        };
        if let Some(lines) = options.window {
            if !(MIN_WINDOW..=MAX_WINDOW).contains(&lines) {
                return Err(PlanError::BadWindow { lines });
            }
        }
        let per_window = options.window.map_or(usize::MAX, |lines| lines - 1);
        if hop_lines.len() > MAX_HOPS && options.window.is_none() {
            return Err(PlanError::TooManyHops {
                hops: hop_lines.len(),
            });
        }
        let mut distinct: Vec<String> = Vec::new();
        let hops = hop_lines
            .iter()
            .map(|line| match line {
                Line::Silent => PlanHop::Silent,
                Line::Named { name } => {
                    let slot = distinct.iter().position(|d| d == name).unwrap_or_else(|| {
                        distinct.push(name.clone());
                        distinct.len() - 1
                    });
                    PlanHop::Named {
                        name: name.clone(),
                        slot,
                    }
                }
            })
            .collect::<Vec<_>>();
        let mut windows: Vec<Vec<PlanHop>> = hops
            .chunks(per_window.min(hops.len()).max(1))
            .map(<[PlanHop]>::to_vec)
            .collect();
        let hops = if windows.is_empty() {
            Vec::new()
        } else {
            windows.remove(0)
        };
        let longest = windows.iter().map(Vec::len).fold(hops.len(), usize::max);
        let last_ttl = longest + 1 + TYPICAL_REAL_HOPS;
        if last_ttl > DEFAULT_CLIENT_MAX_HOPS {
            let what = if options.window.is_some() {
                "a window of"
            } else {
                "the message makes"
            };
            let split = if options.window.is_some() {
                format!("or use --window {DEFAULT_WINDOW}")
            } else {
                format!("or split the message with --window {DEFAULT_WINDOW}")
            };
            warnings.push(format!(
                "{what} {longest} hops plus a typical path of {TYPICAL_REAL_HOPS} real hops is \
                 {last_ttl}, beyond the default limit of {DEFAULT_CLIENT_MAX_HOPS}: clients must \
                 raise it (`traceroute -m 64`, `mtr -m 64`, `tracert -h 64`), {split}"
            ));
        }
        Ok(Plan {
            target_name,
            hops,
            distinct,
            warnings,
            windows,
            window: options.window,
            window_footer: options.window_footer,
        })
    }

    /// How many windows (shows per family) the message takes: 1 unless it
    /// was split.
    pub fn window_count(&self) -> usize {
        1 + self.windows.len()
    }

    /// The hops of window `w` (0-based).
    pub fn window_hops(&self, w: usize) -> &[PlanHop] {
        match w {
            0 => &self.hops,
            w => &self.windows[w - 1],
        }
    }

    /// `N`: probes with arrival TTL up to this are fake hops (of window 0
    /// when the message is split).
    pub fn hop_count(&self) -> usize {
        self.hops.len()
    }

    /// Every window's hops together: the message's hop lines.
    pub fn total_hops(&self) -> usize {
        self.hops.len() + self.windows.iter().map(Vec::len).sum::<usize>()
    }

    /// Addresses this plan needs in each family it is shown in: one per
    /// distinct name, and one target per window after the first.
    pub fn addresses_needed(&self) -> usize {
        self.distinct.len() + self.windows.len()
    }

    /// The hop table of window 0 for one family, after checking that
    /// `addresses` hold every window's (see [`Plan::shows`]).
    pub fn show(&self, target: AddressPair, addresses: &[AddressPair]) -> Result<Show, PlanError> {
        let mut shows = self.shows(target, addresses)?;
        Ok(shows.swap_remove(0))
    }

    /// The shows of one family, one per window: `addresses[slot]` (of the
    /// target's family) answers the hops of `distinct[slot]`, and the
    /// addresses after them are the targets of windows 1.., in order.
    /// Extra addresses are left unused.
    pub fn shows(
        &self,
        target: AddressPair,
        addresses: &[AddressPair],
    ) -> Result<Vec<Show>, PlanError> {
        let family = target.family();
        let usable: Vec<AddressPair> = addresses
            .iter()
            .filter(|a| a.family() == family)
            .copied()
            .collect();
        let needed = self.addresses_needed();
        if usable.len() < needed {
            return Err(PlanError::MissingAddresses {
                family,
                needed,
                available: usable.len(),
            });
        }
        let target_of = |w: usize| match w {
            0 => target,
            w => usable[self.distinct.len() + w - 1],
        };
        let last = self.window_count() - 1;
        Ok((0..=last)
            .map(|w| {
                let hops = self
                    .window_hops(w)
                    .iter()
                    .map(|hop| match hop {
                        PlanHop::Silent => Hop::Silent,
                        PlanHop::Named { name, slot } => Hop::Named {
                            address: usable[*slot],
                            name: name.clone(),
                        },
                    })
                    .collect();
                let target_name = if w == last {
                    self.target_name.clone()
                } else {
                    Some(
                        self.window_footer
                            .clone()
                            .unwrap_or_else(|| default_footer(target_of(w + 1).public)),
                    )
                };
                Show {
                    target: target_of(w),
                    target_name,
                    hops,
                    window: w,
                }
            })
            .collect())
    }

    /// Addresses, missing addresses and monthly cost at one provider for
    /// the families given, with `available` addresses already held.
    pub fn cost(
        &self,
        provider: ProviderKind,
        families: &[Family],
        available: &[AddressPair],
    ) -> Vec<FamilyCost> {
        families
            .iter()
            .map(|&family| {
                let have = available.iter().filter(|a| a.family() == family).count();
                let needed = self.addresses_needed();
                FamilyCost {
                    provider,
                    family,
                    needed,
                    available: have,
                    missing: needed.saturating_sub(have),
                    monthly_cents: monthly_cost_cents(provider, family, needed),
                }
            })
            .collect()
    }
}

/// Address count and price for one family at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyCost {
    pub provider: ProviderKind,
    pub family: Family,
    pub needed: usize,
    pub available: usize,
    pub missing: usize,
    pub monthly_cents: u64,
}

/// The monthly cost of a plan at every provider, for `troll preview`.
pub fn price_list(plan: &Plan) -> Vec<FamilyCost> {
    [ProviderKind::Vultr, ProviderKind::Aws]
        .into_iter()
        .flat_map(|p| plan.cost(p, &[Family::Ipv4, Family::Ipv6], &[]))
        .filter(|c| troll_providers::offers(c.provider, c.family))
        .collect()
}

/// When the price table was checked, for the reader of a cost.
pub fn prices_checked() -> &'static str {
    PRICES_CHECKED
}

/// One fake hop with its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Hop {
    Named { address: AddressPair, name: String },
    Silent,
}

/// A show in one family: the target and what answers each arrival TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Show {
    pub target: AddressPair,
    pub target_name: Option<String>,
    /// Arrival TTL `t` is `hops[t - 1]`.
    pub hops: Vec<Hop>,
    /// Which window of the message this is (0 when it was not split).
    pub window: usize,
}

/// The footer of a window whose next window is traced to `next`: a host
/// name that says where, e.g. `continued.at.198-51-100-2` or
/// `continued.at.2001-db8--2` (every label valid, DESIGN.md §2).
pub fn default_footer(next: IpAddr) -> String {
    let mut label: String = next
        .to_string()
        .chars()
        .map(|c| if c == '.' || c == ':' { '-' } else { c })
        .collect();
    if label.starts_with('-') {
        label.insert(0, '0');
    }
    if label.ends_with('-') {
        label.push('0');
    }
    format!("continued.at.{label}")
}

impl Show {
    /// Every (address, name) this show publishes as PTR records.
    pub fn ptr_records(&self) -> Vec<(IpAddr, String)> {
        let mut out: Vec<(IpAddr, String)> = Vec::new();
        for hop in &self.hops {
            if let Hop::Named { address, name } = hop {
                if !out.iter().any(|(a, _)| *a == address.public) {
                    out.push((address.public, name.clone()));
                }
            }
        }
        if let Some(name) = &self.target_name {
            out.push((self.target.public, name.clone()));
        }
        out
    }
}

/// Addresses from the documentation ranges (RFC 5737, RFC 3849), for
/// previews of a deployment that has none yet.
pub fn documentation_addresses(family: Family, count: usize) -> (AddressPair, Vec<AddressPair>) {
    match family {
        Family::Ipv4 => {
            let target = AddressPair::same(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)));
            let hops = (0..count)
                .map(|i| {
                    let addr = if i < 254 {
                        Ipv4Addr::new(198, 51, 100, (i + 1) as u8)
                    } else {
                        Ipv4Addr::new(192, 0, 2, (i - 253) as u8)
                    };
                    AddressPair::same(IpAddr::V4(addr))
                })
                .collect();
            (target, hops)
        }
        Family::Ipv6 => {
            let target = AddressPair::same(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10,
            )));
            let hops = (0..count)
                .map(|i| {
                    AddressPair::same(IpAddr::V6(Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0,
                        1,
                        0,
                        0,
                        0,
                        (i + 1) as u16,
                    )))
                })
                .collect();
            (target, hops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{encode, Options};

    fn plan(text: &str, options: PlanOptions) -> Plan {
        Plan::new(&encode(text, Options::default()).unwrap().lines, options).unwrap()
    }

    const SAMPLE: &str = "0----0\nDouglas Adams\nMostly Harmless\n0----0\n\nDont Panic";

    #[test]
    fn last_line_names_the_target_and_duplicates_share_a_slot() {
        let p = plan(SAMPLE, PlanOptions::default());
        assert_eq!(p.target_name.as_deref(), Some("Dont.Panic"));
        assert_eq!(p.hop_count(), 5);
        assert_eq!(
            p.distinct,
            vec!["0----0", "Douglas.Adams", "Mostly.Harmless"]
        );
        assert_eq!(
            p.hops,
            vec![
                PlanHop::Named {
                    name: "0----0".into(),
                    slot: 0
                },
                PlanHop::Named {
                    name: "Douglas.Adams".into(),
                    slot: 1
                },
                PlanHop::Named {
                    name: "Mostly.Harmless".into(),
                    slot: 2
                },
                PlanHop::Named {
                    name: "0----0".into(),
                    slot: 0
                },
                PlanHop::Silent,
            ]
        );
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn keep_target_name_makes_every_line_a_hop() {
        let p = plan(
            SAMPLE,
            PlanOptions {
                keep_target_name: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(p.target_name, None);
        assert_eq!(p.hop_count(), 6);
        assert_eq!(p.addresses_needed(), 4);
    }

    #[test]
    fn blank_last_line_keeps_the_target_name_with_a_warning() {
        let p = Plan::new(
            &[Line::Named { name: "a".into() }, Line::Silent],
            PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.target_name, None);
        assert_eq!(p.hop_count(), 1);
        assert!(p.warnings[0].contains("blank"));
    }

    #[test]
    fn show_maps_slots_to_addresses_and_reports_missing_ones() {
        let p = plan(SAMPLE, PlanOptions::default());
        let (target, hops) = documentation_addresses(Family::Ipv4, 3);
        let show = p.show(target, &hops).unwrap();
        let addr = |h: &Hop| match h {
            Hop::Named { address, .. } => Some(address.public.to_string()),
            Hop::Silent => None,
        };
        let got: Vec<_> = show.hops.iter().map(addr).collect();
        assert_eq!(
            got,
            vec![
                Some("198.51.100.1".into()),
                Some("198.51.100.2".into()),
                Some("198.51.100.3".into()),
                Some("198.51.100.1".into()),
                None
            ]
        );
        assert_eq!(show.ptr_records().len(), 4);
        let err = p.show(target, &hops[..1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the show needs 3 IPv4 hop address(es) but the deployment has 1; run `troll provision` to add 2 more"
        );
    }

    #[test]
    fn cost_per_provider_and_family() {
        let p = plan(SAMPLE, PlanOptions::default());
        let prices = price_list(&p);
        let vultr_v4 = prices
            .iter()
            .find(|c| c.provider == ProviderKind::Vultr && c.family == Family::Ipv4)
            .unwrap();
        assert_eq!((vultr_v4.needed, vultr_v4.monthly_cents), (3, 900));
        // AWS has no reverse DNS for its IPv6 ranges: no free IPv6 hops there.
        assert!(!prices
            .iter()
            .any(|c| c.provider == ProviderKind::Aws && c.family == Family::Ipv6));
        let (_, have) = documentation_addresses(Family::Ipv4, 1);
        let c = p.cost(ProviderKind::Vultr, &[Family::Ipv4], &have);
        assert_eq!((c[0].available, c[0].missing), (1, 2));
    }

    #[test]
    fn hop_limit_warning_names_the_flags() {
        let short = plan(&"x\n".repeat(15), PlanOptions::default());
        assert!(short.warnings.is_empty(), "{:?}", short.warnings);
        let long = plan(&"x\n".repeat(16), PlanOptions::default());
        assert!(long.warnings[0].contains("traceroute -m 64"));
        assert!(long.warnings[0].contains("mtr -m 64"));
        assert!(long.warnings[0].contains("tracert -h 64"));
    }

    fn windowed(text: &str, window: usize, footer: Option<&str>) -> Plan {
        plan(
            text,
            PlanOptions {
                window: Some(window),
                window_footer: footer.map(str::to_string),
                ..PlanOptions::default()
            },
        )
    }

    fn numbered(lines: usize) -> String {
        (1..=lines)
            .map(|i| format!("Line {i:02}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn names(show: &Show) -> Vec<Option<String>> {
        show.hops
            .iter()
            .map(|h| match h {
                Hop::Named { name, .. } => Some(name.clone()),
                Hop::Silent => None,
            })
            .collect()
    }

    #[test]
    fn windows_split_the_hop_lines_and_the_last_keeps_the_target_line() {
        // 40 lines: 39 hop lines in windows of 14, the 40th names the
        // last window's target.
        let p = windowed(&numbered(40), DEFAULT_WINDOW, None);
        assert_eq!(p.window_count(), 3);
        assert_eq!(
            (0..3).map(|w| p.window_hops(w).len()).collect::<Vec<_>>(),
            vec![14, 14, 11]
        );
        assert_eq!(p.total_hops(), 39);
        assert_eq!(p.addresses_needed(), 39 + 2);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let (target, addresses) = documentation_addresses(Family::Ipv4, p.addresses_needed());
        let shows = p.shows(target, &addresses).unwrap();
        assert_eq!(shows.len(), 3);
        let all: Vec<Option<String>> = shows.iter().flat_map(names).collect();
        let want: Vec<Option<String>> = (1..=39).map(|i| Some(format!("Line.{i:02}"))).collect();
        assert_eq!(all, want, "every hop line once, in order");
        // Window targets come after the 39 hop addresses, in order.
        assert_eq!(shows[0].target, target);
        assert_eq!(shows[1].target, addresses[39]);
        assert_eq!(shows[2].target, addresses[40]);
        assert_eq!(
            shows[0].target_name.as_deref(),
            Some("continued.at.198-51-100-40")
        );
        assert_eq!(
            shows[1].target_name.as_deref(),
            Some("continued.at.198-51-100-41")
        );
        assert_eq!(shows[2].target_name.as_deref(), Some("Line.40"));
        assert_eq!(
            shows.iter().map(|s| s.window).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // Every footer and hop name is one glibc accepts.
        for show in &shows {
            for (_, name) in show.ptr_records() {
                assert!(crate::message::is_valid_name(&name), "{name}");
            }
        }
        let short = p.show(target, &addresses[..40]).unwrap_err();
        assert_eq!(
            short,
            PlanError::MissingAddresses {
                family: Family::Ipv4,
                needed: 41,
                available: 40
            }
        );
    }

    #[test]
    fn identical_lines_share_one_address_across_windows() {
        let text = "0--0\nA\n0--0\nB\n0--0\nC\n\n0--0\nEnd";
        let p = windowed(text, 3, Some("more.over.there"));
        // Hop lines 0--0 A | 0--0 B | 0--0 C | (silent) 0--0; End is the target.
        assert_eq!(p.window_count(), 4);
        assert_eq!(p.distinct, vec!["0--0", "A", "B", "C"]);
        assert_eq!(p.addresses_needed(), 4 + 3);
        let (target, addresses) = documentation_addresses(Family::Ipv6, p.addresses_needed());
        let shows = p.shows(target, &addresses).unwrap();
        let border: Vec<AddressPair> = shows
            .iter()
            .flat_map(|s| &s.hops)
            .filter_map(|h| match h {
                Hop::Named { address, name } if name == "0--0" => Some(*address),
                _ => None,
            })
            .collect();
        assert_eq!(border.len(), 4);
        assert!(border.iter().all(|a| *a == addresses[0]), "{border:?}");
        assert_eq!(names(&shows[3]), vec![None, Some("0--0".into())]);
        for show in &shows[..3] {
            assert_eq!(show.target_name.as_deref(), Some("more.over.there"));
        }
        assert_eq!(shows[3].target_name.as_deref(), Some("End"));
        assert_eq!(shows[3].target, addresses[6]);
    }

    #[test]
    fn default_footers_are_valid_names_for_either_family() {
        for (addr, want) in [
            ("198.51.100.7", "continued.at.198-51-100-7"),
            ("2001:db8::7", "continued.at.2001-db8--7"),
            ("::1", "continued.at.0--1"),
            ("2001:db8::", "continued.at.2001-db8--0"),
        ] {
            let name = default_footer(addr.parse().unwrap());
            assert_eq!(name, want);
            assert!(crate::message::is_valid_name(&name), "{name}");
        }
    }

    #[test]
    fn a_message_that_fits_one_window_is_one_show() {
        let p = windowed(SAMPLE, DEFAULT_WINDOW, None);
        assert_eq!(p.window_count(), 1);
        assert_eq!(p.addresses_needed(), 3);
        let (target, addresses) = documentation_addresses(Family::Ipv4, 3);
        let shows = p.shows(target, &addresses).unwrap();
        assert_eq!(shows.len(), 1);
        assert_eq!(shows[0].target_name.as_deref(), Some("Dont.Panic"));
    }

    #[test]
    fn windows_over_the_default_limit_warn_and_bad_sizes_are_errors() {
        let p = windowed(&numbered(40), 20, None);
        assert!(
            p.warnings[0].starts_with("a window of 19 hops"),
            "{:?}",
            p.warnings
        );
        assert!(p.warnings[0].contains("--window 15"));
        let unsplit = plan(&numbered(40), PlanOptions::default());
        assert!(unsplit.warnings[0].contains("split the message with --window 15"));
        for lines in [0, 1, MAX_WINDOW + 1] {
            let err = Plan::new(
                &encode("a\nb\nc", Options::default()).unwrap().lines,
                PlanOptions {
                    window: Some(lines),
                    ..PlanOptions::default()
                },
            )
            .unwrap_err();
            assert_eq!(err, PlanError::BadWindow { lines });
            assert!(err.to_string().contains("--window 15"), "{err}");
        }
        // A window of 2 lines is one hop and the footer.
        let tiny = windowed("a\nb\nc\nd", 2, None);
        assert_eq!(tiny.window_count(), 3);
    }

    #[test]
    fn keep_target_name_windows_leave_the_last_target_unnamed() {
        let p = plan(
            &numbered(5),
            PlanOptions {
                keep_target_name: true,
                window: Some(3),
                window_footer: None,
            },
        );
        assert_eq!(p.window_count(), 3);
        let (target, addresses) = documentation_addresses(Family::Ipv4, p.addresses_needed());
        let shows = p.shows(target, &addresses).unwrap();
        assert_eq!(names(&shows[2]), vec![Some("Line.05".into())]);
        assert_eq!(shows[2].target_name, None);
    }

    #[test]
    fn a_plan_stored_before_windows_reads_as_one_window() {
        let p = plan(SAMPLE, PlanOptions::default());
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("window"), "{json}");
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let windowed = windowed(&numbered(40), 15, None);
        let back: Plan = serde_json::from_str(&serde_json::to_string(&windowed).unwrap()).unwrap();
        assert_eq!(back, windowed);
    }

    #[test]
    fn too_many_hops_is_an_error() {
        let lines = vec![Line::Named { name: "a".into() }; MAX_HOPS + 2];
        assert_eq!(
            Plan::new(&lines, PlanOptions::default()),
            Err(PlanError::TooManyHops { hops: MAX_HOPS + 1 })
        );
    }
}
