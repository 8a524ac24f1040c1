//! What a provision would do, worked out with read calls only: the create
//! calls in order, the addresses held already, and what they all cost per
//! month. `troll provision --dry-run` prints it and stops; a real run
//! prints it and proceeds.

use crate::{monthly_cost_cents, Family, ProviderKind, PRICES_CHECKED};
use std::fmt::Write as _;

/// One call the provision would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCall {
    /// The API call, e.g. `POST /instances/ID/ipv4` or `ec2:AllocateAddress`.
    pub call: String,
    /// What it is for, e.g. `additional IPv4 for hop 3`.
    pub what: String,
}

/// A provision worked out before any change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionPlan {
    pub provider: ProviderKind,
    /// The calls that would change something, in order.
    pub calls: Vec<PlannedCall>,
    /// IPv4 addresses the deployment holds already and keeps.
    pub held_ipv4: usize,
    /// IPv4 addresses the provision would add.
    pub new_ipv4: usize,
    /// IPv4 addresses the provision would give back first.
    pub released_ipv4: usize,
    /// IPv6 hop addresses (free).
    pub ipv6: usize,
    /// Things the operator should know before it runs.
    pub notes: Vec<String>,
    /// How many read calls working the plan out took.
    pub reads: usize,
}

impl ProvisionPlan {
    /// What the addresses the deployment will hold cost per month, in US
    /// cents.
    pub fn monthly_cents(&self) -> u64 {
        monthly_cost_cents(self.provider, Family::Ipv4, self.held_ipv4 + self.new_ipv4)
    }

    /// The plan as the CLI prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.calls.is_empty() {
            let _ = writeln!(
                out,
                "Plan: no create call; the deployment has what it needs."
            );
        } else {
            let _ = writeln!(out, "Plan: {} call(s), in order:", self.calls.len());
        }
        for (i, c) in self.calls.iter().enumerate() {
            let _ = writeln!(out, "  {:>2}. {}  ({})", i + 1, c.call, c.what);
        }
        let total = self.held_ipv4 + self.new_ipv4;
        let cents = self.monthly_cents();
        let _ = write!(
            out,
            "Cost: {total} IPv4 address(es) ({} new, {} held), ${}.{:02}/month at {} prices of {PRICES_CHECKED}",
            self.new_ipv4,
            self.held_ipv4,
            cents / 100,
            cents % 100,
            self.provider
        );
        if self.released_ipv4 > 0 {
            let _ = write!(out, "; {} given back first", self.released_ipv4);
        }
        if self.ipv6 > 0 {
            let _ = write!(out, "; {} IPv6 hop(s) free", self.ipv6);
        }
        out.push_str(".\n");
        for note in &self.notes {
            let _ = writeln!(out, "Note: {note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_prints_calls_and_cost() {
        let plan = ProvisionPlan {
            provider: ProviderKind::Vultr,
            calls: vec![PlannedCall {
                call: "POST /instances/i/ipv4".into(),
                what: "additional IPv4 1 of 2".into(),
            }],
            held_ipv4: 1,
            new_ipv4: 2,
            released_ipv4: 0,
            ipv6: 3,
            notes: vec![],
            reads: 2,
        };
        let text = plan.render();
        assert!(text.contains(" 1. POST /instances/i/ipv4"), "{text}");
        assert!(
            text.contains("3 IPv4 address(es) (2 new, 1 held), $9.00/month"),
            "{text}"
        );
        assert!(text.contains("3 IPv6 hop(s) free"), "{text}");
    }
}
