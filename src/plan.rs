//! Lines to a hop table.
//!
//! A message of `L` lines becomes `N = L - 1` fake hops plus the target's
//! own name (DESIGN.md §1), or `N = L` hops with `--keep-target-name`.
//! Identical lines share one address, silent lines need none. The plan says
//! how many addresses that takes per family, how many the deployment still
//! lacks, what they cost each month, and whether the show fits in the hop
//! limit that clients use by default.

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Every line is a fake hop; the target keeps the name it has.
    pub keep_target_name: bool,
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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the message makes {hops} hops, more than the {MAX_HOPS} a traceroute can show after a \
         typical path (a TTL stops at 255); shorten the message"
    )]
    TooManyHops { hops: usize },
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
        if hop_lines.len() > MAX_HOPS {
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
        let last_ttl = hops.len() + 1 + TYPICAL_REAL_HOPS;
        if last_ttl > DEFAULT_CLIENT_MAX_HOPS {
            warnings.push(format!(
                "{} hops plus a typical path of {TYPICAL_REAL_HOPS} real hops is {last_ttl}, \
                 beyond the default limit of {DEFAULT_CLIENT_MAX_HOPS}: clients must raise it \
                 (`traceroute -m 64`, `mtr -m 64`, `tracert -h 64`)",
                hops.len()
            ));
        }
        Ok(Plan {
            target_name,
            hops,
            distinct,
            warnings,
        })
    }

    /// `N`: probes with arrival TTL up to this are fake hops.
    pub fn hop_count(&self) -> usize {
        self.hops.len()
    }

    /// Addresses this plan needs in each family it is shown in.
    pub fn addresses_needed(&self) -> usize {
        self.distinct.len()
    }

    /// The hop table for one family: `addresses[slot]` answers the hops of
    /// `distinct[slot]`. Extra addresses are left unused.
    pub fn show(&self, target: AddressPair, addresses: &[AddressPair]) -> Result<Show, PlanError> {
        let family = target.family();
        let usable: Vec<AddressPair> = addresses
            .iter()
            .filter(|a| a.family() == family)
            .copied()
            .collect();
        if usable.len() < self.distinct.len() {
            return Err(PlanError::MissingAddresses {
                family,
                needed: self.distinct.len(),
                available: usable.len(),
            });
        }
        let hops = self
            .hops
            .iter()
            .map(|hop| match hop {
                PlanHop::Silent => Hop::Silent,
                PlanHop::Named { name, slot } => Hop::Named {
                    address: usable[*slot],
                    name: name.clone(),
                },
            })
            .collect();
        Ok(Show {
            target,
            target_name: self.target_name.clone(),
            hops,
        })
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
                let needed = self.distinct.len();
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

    #[test]
    fn too_many_hops_is_an_error() {
        let lines = vec![Line::Named { name: "a".into() }; MAX_HOPS + 2];
        assert_eq!(
            Plan::new(&lines, PlanOptions::default()),
            Err(PlanError::TooManyHops { hops: MAX_HOPS + 1 })
        );
    }
}
