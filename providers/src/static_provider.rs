//! The `static` provider: addresses the operator already has. Nothing is
//! allocated or released; it checks that the given addresses are enough and
//! distinct, and leaves PTRs to troll's own DNS server or an exported zone.

use crate::{
    AddressPair, AddressRequest, Error, Family, FixedAddresses, ProviderKind, Provisioned, Result,
};
use std::collections::HashSet;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct StaticProvider {
    targets: Vec<AddressPair>,
    hops: Vec<AddressPair>,
}

impl StaticProvider {
    /// Validates the operator's addresses: at most one target per family,
    /// no address given twice, every hop in a family the target has.
    pub fn new(targets: Vec<AddressPair>, hops: Vec<AddressPair>) -> Result<StaticProvider> {
        let (mut publics, mut locals) = (HashSet::new(), HashSet::new());
        for pair in targets.iter().chain(&hops) {
            if pair.family() != Family::of(pair.local) {
                return Err(Error::Invalid {
                    detail: format!("{pair}: public and local address must be of the same family"),
                });
            }
            if !publics.insert(pair.public) {
                return Err(Error::DuplicateAddress {
                    address: pair.public,
                });
            }
            if !locals.insert(pair.local) {
                return Err(Error::DuplicateAddress {
                    address: pair.local,
                });
            }
        }
        for family in [Family::Ipv4, Family::Ipv6] {
            let count = targets.iter().filter(|t| t.family() == family).count();
            if count > 1 {
                return Err(Error::Invalid {
                    detail: format!(
                        "more than one {family} target given; a show has one per family"
                    ),
                });
            }
            let hop_count = hops.iter().filter(|h| h.family() == family).count();
            if hop_count > 0 && count == 0 {
                return Err(Error::Invalid {
                    detail: format!("{family} hop addresses were given without an {family} target; add --target"),
                });
            }
        }
        if targets.is_empty() {
            return Err(Error::Invalid {
                detail: "no target address given; add --target ADDR".into(),
            });
        }
        Ok(StaticProvider { targets, hops })
    }

    fn of_family(&self, family: Family) -> impl Iterator<Item = &AddressPair> {
        self.hops.iter().filter(move |h| h.family() == family)
    }
}

impl StaticProvider {
    /// The first `request.ipv4` IPv4 hop pairs then the first
    /// `request.ipv6` IPv6 ones, in the order the operator gave them.
    pub fn allocate(&self, request: AddressRequest) -> Result<Vec<AddressPair>> {
        let mut out = Vec::with_capacity(request.ipv4 + request.ipv6);
        for (family, needed) in [(Family::Ipv4, request.ipv4), (Family::Ipv6, request.ipv6)] {
            let available = self.of_family(family).count();
            if available < needed {
                return Err(Error::NotEnoughAddresses {
                    family,
                    needed,
                    available,
                });
            }
            out.extend(self.of_family(family).take(needed).copied());
        }
        Ok(out)
    }

    pub fn targets(&self) -> Vec<AddressPair> {
        self.targets.clone()
    }
}

/// The operator's addresses: nothing is created, recorded or released,
/// and the reverse names are the operator's to publish (troll's DNS server
/// or an exported zone).
impl FixedAddresses for StaticProvider {
    const KIND: ProviderKind = ProviderKind::Static;

    fn provisioned(&self, request: AddressRequest) -> Result<Provisioned> {
        Ok(Provisioned {
            addresses: self.allocate(request)?,
            targets: self.targets(),
            ..Provisioned::default()
        })
    }
}

/// Parses `PUBLIC` or `PUBLIC=LOCAL` (for hosts behind 1:1 NAT).
pub fn parse_pair(text: &str) -> Result<AddressPair> {
    let parse = |s: &str| {
        s.trim().parse::<IpAddr>().map_err(|_| Error::Invalid {
            detail: format!("'{s}' is not an IP address; write ADDR or PUBLIC=LOCAL"),
        })
    };
    match text.split_once('=') {
        Some((public, local)) => {
            let pair = AddressPair {
                public: parse(public)?,
                local: parse(local)?,
            };
            if Family::of(pair.public) != Family::of(pair.local) {
                return Err(Error::Invalid {
                    detail: format!(
                        "'{text}': public and local address must be of the same family"
                    ),
                });
            }
            Ok(pair)
        }
        None => Ok(AddressPair::same(parse(text)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(s: &str) -> AddressPair {
        parse_pair(s).unwrap()
    }

    #[test]
    fn hands_out_the_operators_addresses_in_order() {
        let p = StaticProvider::new(
            vec![pair("203.0.113.10")],
            vec![
                pair("198.51.100.1"),
                pair("198.51.100.2"),
                pair("198.51.100.3"),
            ],
        )
        .unwrap();
        let got = p.allocate(AddressRequest { ipv4: 2, ipv6: 0 }).unwrap();
        assert_eq!(got, vec![pair("198.51.100.1"), pair("198.51.100.2")]);
    }

    #[test]
    fn says_how_many_are_missing() {
        let p =
            StaticProvider::new(vec![pair("203.0.113.10")], vec![pair("198.51.100.1")]).unwrap();
        let err = p.allocate(AddressRequest { ipv4: 3, ipv6: 0 }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the show needs 3 IPv4 hop address(es) but only 1 were given; add 2 more with --hop-address"
        );
    }

    #[test]
    fn rejects_duplicates_and_missing_target() {
        let dup = StaticProvider::new(vec![pair("203.0.113.10")], vec![pair("203.0.113.10")]);
        assert!(matches!(dup, Err(Error::DuplicateAddress { .. })));
        let v6_without_target =
            StaticProvider::new(vec![pair("203.0.113.10")], vec![pair("2001:db8::1")]);
        assert!(v6_without_target.is_err());
        assert!(StaticProvider::new(vec![], vec![]).is_err());
    }

    #[test]
    fn parses_nat_pairs() {
        let p = pair("203.0.113.5=10.0.0.5");
        assert_eq!(p.public.to_string(), "203.0.113.5");
        assert_eq!(p.local.to_string(), "10.0.0.5");
        assert!(parse_pair("203.0.113.5=2001:db8::1").is_err());
        assert!(parse_pair("nope").is_err());
    }
}
