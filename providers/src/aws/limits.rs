//! The limits a show can meet on EC2, checked before the first create call
//! so that a run that would hit one stops with nothing allocated:
//! - private IPv4 addresses per interface (DescribeInstanceTypes
//!   `Ipv4AddressesPerInterface`, the primary address included: a t3.micro
//!   holds 2, so one hop; a t3.small 4, so three);
//! - the region's Elastic IP quota (DescribeAccountAttributes
//!   `vpc-max-elastic-ips`): the hops plus the target's own must fit next
//!   to every Elastic IP the account already holds there.
//!
//! EC2 enforces both itself (`PrivateIpAddressLimitExceeded`,
//! `AddressLimitExceeded`); checking first only moves the refusal before
//! the money is spent.

use super::ec2::{Eip, InstanceInfo, Interface};
use super::ledger::{extra, hop_number, hop_slot, kinds, Ledger, TARGET};
use super::{AwsProvider, PROVIDER, TAG_DEPLOYMENT, TAG_INSTANCE};
use crate::{
    Error, Journal, MemoryJournal, PlannedCall, ProviderKind, ProvisionPlan, ResourceStatus, Result,
};
use std::net::Ipv4Addr;

/// What a provision of `count` hops would add and give back, as counted
/// from the journal and EC2 before any change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needs {
    /// Secondary private addresses to assign.
    pub new_private: usize,
    /// Elastic IPs to allocate (hops, and the target when it has none).
    pub new_eips: usize,
    /// Elastic IPs that will be released first (surplus hops, orphans).
    pub released_eips: usize,
    /// Secondary private addresses that will be unassigned first.
    pub released_private: usize,
    /// Private addresses on the interface that are not troll's.
    pub foreign_private: usize,
    /// Whether the target needs a new Elastic IP (none on the primary
    /// address, none of the deployment's own).
    pub new_target: bool,
}

/// The largest number of hops an interface holding `per_interface`
/// private addresses can carry next to `foreign` ones of others.
pub(crate) fn max_hops(per_interface: u32, foreign: usize) -> usize {
    (per_interface as usize).saturating_sub(1 + foreign)
}

/// A suggestion that fits: the smallest common type that holds `hops`.
fn bigger_type(hops: usize, foreign: usize) -> &'static str {
    // Ipv4AddressesPerInterface of a few general-purpose types.
    const TYPES: [(&str, usize); 5] = [
        ("t3.small", 4),
        ("t3.medium", 6),
        ("t3.large", 12),
        ("m5.xlarge", 15),
        ("m5.4xlarge", 30),
    ];
    TYPES
        .iter()
        .find(|(_, n)| max_hops(*n as u32, foreign) >= hops)
        .map_or("m5.4xlarge", |(t, _)| t)
}

impl AwsProvider {
    /// Counts what a provision of `count` hops needs, from the journal,
    /// the interface and the Elastic IPs of the region.
    pub(crate) fn needs(
        &self,
        ledger: &Ledger,
        iface: &Interface,
        count: usize,
        orphans: &[Eip],
        all: &[Eip],
    ) -> Needs {
        let ours_on_iface: Vec<Ipv4Addr> = ledger
            .all(kinds::PRIVATE_IP)
            .into_iter()
            .filter(|r| extra(r, "eni") == Some(iface.id.as_str()))
            .filter_map(|r| r.id.as_deref()?.parse().ok())
            .filter(|ip| iface.addresses.contains(ip) && *ip != iface.primary)
            .collect();
        let foreign_private = iface
            .addresses
            .iter()
            .filter(|a| **a != iface.primary && !ours_on_iface.contains(a))
            .count();
        let surplus = |s: &str| hop_number(s).is_some_and(|n| n > count || n == 0);
        let released_private = ledger
            .all(kinds::PRIVATE_IP)
            .into_iter()
            .filter(|r| super::ledger::slot_of(r).is_some_and(surplus))
            .count();
        let new_private = (1..=count)
            .filter(|i| ledger.get(kinds::PRIVATE_IP, &hop_slot(*i)).is_none())
            .count();
        let released_eips = ledger
            .all(kinds::EIP)
            .into_iter()
            .filter(|r| super::ledger::slot_of(r).is_some_and(surplus))
            .filter(|r| extra(r, "adopted") != Some("true"))
            .count()
            + orphans.len();
        let mut new_eips = (1..=count)
            .filter(|i| ledger.get(kinds::EIP, &hop_slot(*i)).is_none())
            .count();
        let on_primary = all.iter().any(|e| {
            e.network_interface_id.as_deref() == Some(iface.id.as_str())
                && e.private_ip == Some(iface.primary)
                && e.association_id.is_some()
        });
        let owned_target = ledger
            .get(kinds::EIP, TARGET)
            .is_some_and(|r| extra(r, "adopted") != Some("true") && r.id.is_some());
        let new_target = !on_primary && !owned_target;
        if new_target {
            new_eips += 1;
        }
        Needs {
            new_private,
            new_eips,
            released_eips,
            released_private,
            foreign_private,
            new_target,
        }
    }

    /// Stops, before anything is created, a provision of `count` hops that
    /// would exceed the interface's private addresses or the region's
    /// Elastic IP quota. The error names the limit, the number and the fix.
    pub(crate) async fn check_limits(
        &self,
        ledger: &Ledger,
        instance: &InstanceInfo,
        iface: &Interface,
        count: usize,
        orphans: &[Eip],
    ) -> Result<Needs> {
        let (per_interface, max_eips, all) = tokio::try_join!(
            self.ec2.ipv4_per_interface(&instance.instance_type),
            self.ec2.max_elastic_ips(),
            self.ec2.addresses(&[]),
        )?;
        let needs = self.needs(ledger, iface, count, orphans, &all);
        if let Some(limit) = per_interface {
            let after =
                iface.addresses.len().saturating_sub(needs.released_private) + needs.new_private;
            if after > limit as usize {
                let max = max_hops(limit, needs.foreign_private);
                let others = if needs.foreign_private > 0 {
                    format!(
                        " and {} other secondary address(es) already there",
                        needs.foreign_private
                    )
                } else {
                    String::new()
                };
                return Err(Error::Limit {
                    provider: PROVIDER,
                    detail: format!(
                        "instance type {} holds {limit} private IPv4 addresses per interface, the \
                         primary included{others}, so at most {max} hop(s), and the show needs \
                         {count}: nothing was allocated; use a larger instance type (e.g. {}) \
                         or a message with fewer distinct lines",
                        instance.instance_type,
                        bigger_type(count, needs.foreign_private)
                    ),
                });
            }
        }
        if let Some(max) = max_eips {
            let after = all.len() - needs.released_eips.min(all.len()) + needs.new_eips;
            if after > max as usize {
                return Err(Error::Limit {
                    provider: PROVIDER,
                    detail: format!(
                        "the region's Elastic IP quota (vpc-max-elastic-ips) is {max}, the \
                         account holds {} there, and the show needs {} more ({count} hop(s) and \
                         the target's): nothing was allocated; release unused Elastic IPs or \
                         ask AWS to raise the quota (Service Quotas, \"EC2-VPC Elastic IPs\")",
                        all.len(),
                        needs.new_eips
                    ),
                });
            }
        }
        Ok(needs)
    }

    /// What [`AwsProvider::provision`] would do for `count` hops, worked
    /// out with Describe calls only on a copy of the journal; the limits
    /// are checked as a real run checks them.
    pub async fn plan<J: Journal + ?Sized>(
        &self,
        count: usize,
        journal: &J,
    ) -> Result<ProvisionPlan> {
        let mut scratch = MemoryJournal {
            resources: journal.resources(),
        };
        let mut ledger = Ledger::load(&scratch);
        let (instance, iface) = self.instance_interface().await?;
        let tagged = self
            .reconcile(&mut ledger, &mut scratch, Some(&iface))
            .await?;
        let needs = self
            .check_limits(&ledger, &instance, &iface, count, &tagged.orphans)
            .await?;
        let mut calls = Vec::new();
        let call = |call: String, what: String| PlannedCall { call, what };
        if needs.released_eips > 0 {
            calls.push(call(
                format!("ec2:ReleaseAddress x{}", needs.released_eips),
                "surplus hops and untracked Elastic IPs of the deployment (reverse DNS reset, disassociated first)".into(),
            ));
        }
        let tags = format!(
            "{TAG_DEPLOYMENT}={}, {TAG_INSTANCE}={}",
            self.deployment, self.instance_id
        );
        for i in 1..=count {
            let slot = hop_slot(i);
            if ledger.get(kinds::EIP, &slot).is_none() {
                calls.push(call(
                    format!("ec2:AllocateAddress (tags {tags}, troll:slot={slot})"),
                    format!("Elastic IP for {slot}"),
                ));
            }
        }
        if needs.new_private > 0 {
            calls.push(call(
                format!(
                    "ec2:AssignPrivateIpAddresses {} x{}",
                    iface.id, needs.new_private
                ),
                "secondary private addresses the hops' Elastic IPs map to".into(),
            ));
        }
        for i in 1..=count {
            let slot = hop_slot(i);
            let done = ledger
                .get(kinds::ASSOCIATION, &slot)
                .is_some_and(|r| r.status == ResourceStatus::Created);
            if !done {
                calls.push(call(
                    "ec2:AssociateAddress".into(),
                    format!("{slot}'s Elastic IP to its private address"),
                ));
            }
        }
        if iface.source_dest_check != Some(false) {
            calls.push(call(
                format!(
                    "ec2:ModifyNetworkInterfaceAttribute {} SourceDestCheck=false",
                    iface.id
                ),
                "replies leave from the hops' addresses".into(),
            ));
        }
        let mut notes = Vec::new();
        if needs.new_target {
            calls.push(call(
                format!("ec2:AllocateAddress (tags {tags}, troll:slot={TARGET})"),
                "Elastic IP for the target".into(),
            ));
            calls.push(call(
                format!("ec2:AssociateAddress {} {}", iface.id, iface.primary),
                "the target's Elastic IP to the primary private address".into(),
            ));
            notes.push(
                "the target's new Elastic IP replaces the instance's public address: an SSH session to the old address drops (use tmux, or open a second session on the new address); teardown gives back a new automatic address, not the old one"
                    .to_string(),
            );
        }
        let held = (1..=count)
            .map(hop_slot)
            .chain([TARGET.to_string()])
            .filter(|s| {
                ledger
                    .get(kinds::EIP, s)
                    .is_some_and(|r| r.id.is_some() && extra(r, "adopted") != Some("true"))
            })
            .count();
        Ok(ProvisionPlan {
            provider: ProviderKind::Aws,
            calls,
            held_ipv4: held,
            new_ipv4: needs.new_eips,
            released_ipv4: needs.released_eips,
            ipv6: 0,
            notes,
            // DescribeInstances, DescribeNetworkInterfaces, DescribeAddresses
            // (tags), DescribeInstanceTypes, DescribeAccountAttributes,
            // DescribeAddresses (all).
            reads: 6,
        })
    }
}

/// What traceroute clients send that `permissions` does not admit from
/// everywhere: UDP 33434-33534, ICMP echo request (type 8), TCP 80.
pub(crate) fn missing_probe_rules(permissions: &[super::ec2::Permission]) -> Vec<String> {
    let admits = |proto: &str, low: i32, high: i32| {
        permissions.iter().any(|p| {
            p.anywhere_v4
                && (p.protocol == "-1"
                    || (p.protocol == proto
                        && (p.from == -1
                            || (p.from <= low && p.to >= high)
                            || (proto == "icmp" && p.from == low))))
        })
    };
    let mut out = Vec::new();
    if !admits("udp", 33434, 33534) {
        out.push("UDP 33434-33534".to_string());
    }
    if !admits("icmp", 8, 8) {
        out.push("ICMP echo request".to_string());
    }
    if !admits("tcp", 80, 80) {
        out.push("TCP 80".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_counts_against_the_interface() {
        assert_eq!(max_hops(2, 0), 1, "t3.micro");
        assert_eq!(max_hops(4, 0), 3, "t3.small");
        assert_eq!(max_hops(4, 2), 1);
        assert_eq!(max_hops(1, 3), 0);
        assert_eq!(bigger_type(2, 0), "t3.small");
        assert_eq!(bigger_type(4, 0), "t3.medium");
    }

    #[test]
    fn probe_rules_must_be_open_to_everyone() {
        use super::super::ec2::Permission;
        let p = |protocol: &str, from, to, anywhere_v4| Permission {
            protocol: protocol.into(),
            from,
            to,
            anywhere_v4,
        };
        assert_eq!(
            missing_probe_rules(&[p("-1", -1, -1, true)]),
            Vec::<String>::new()
        );
        assert_eq!(
            missing_probe_rules(&[p("udp", 33434, 33600, true), p("tcp", 22, 22, true)]),
            ["ICMP echo request", "TCP 80"]
        );
        assert_eq!(missing_probe_rules(&[p("-1", -1, -1, false)]).len(), 3);
    }
}
