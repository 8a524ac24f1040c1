//! What addresses cost, in one dated table. The plan prints monthly costs
//! from it; update the date with the numbers.

use crate::{Family, ProviderKind};

/// When the prices below were last checked against the providers' public
/// price pages.
pub const PRICES_CHECKED: &str = "2024-06";

/// The monthly price of one extra address of one family at one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceEntry {
    pub provider: ProviderKind,
    pub family: Family,
    /// US cents per address per month.
    pub cents_per_month: u32,
    pub what: &'static str,
}

pub const PRICES: &[PriceEntry] = &[
    PriceEntry {
        provider: ProviderKind::Vultr,
        family: Family::Ipv4,
        cents_per_month: 300,
        what: "additional or reserved IPv4, $3.00/month each",
    },
    PriceEntry {
        provider: ProviderKind::Vultr,
        family: Family::Ipv6,
        cents_per_month: 0,
        what: "addresses from the instance's /64, free",
    },
    PriceEntry {
        provider: ProviderKind::Aws,
        family: Family::Ipv4,
        cents_per_month: 365,
        what: "public IPv4 (Elastic IP) $0.005/hour, about $3.65/month each",
    },
];

/// Whether troll can serve hops of `family` at `provider`. AWS has no
/// entry for IPv6: it offers no reverse DNS for its own IPv6 ranges, so an
/// IPv6 hop there could not carry its name.
pub fn offers(provider: ProviderKind, family: Family) -> bool {
    PRICES
        .iter()
        .any(|p| p.provider == provider && p.family == family)
}

/// Monthly cost in US cents of `count` addresses of `family` at `provider`.
/// Providers that are not in the table (local, static) cost nothing extra.
pub fn monthly_cost_cents(provider: ProviderKind, family: Family, count: usize) -> u64 {
    PRICES
        .iter()
        .find(|p| p.provider == provider && p.family == family)
        .map_or(0, |p| u64::from(p.cents_per_month) * count as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_costs_and_ipv6_is_free() {
        assert_eq!(
            monthly_cost_cents(ProviderKind::Vultr, Family::Ipv4, 4),
            1200
        );
        assert_eq!(monthly_cost_cents(ProviderKind::Aws, Family::Ipv4, 2), 730);
        assert_eq!(monthly_cost_cents(ProviderKind::Vultr, Family::Ipv6, 40), 0);
        assert_eq!(monthly_cost_cents(ProviderKind::Local, Family::Ipv4, 9), 0);
        assert!(offers(ProviderKind::Vultr, Family::Ipv6));
        assert!(
            !offers(ProviderKind::Aws, Family::Ipv6),
            "no reverse DNS for AWS IPv6"
        );
    }
}
