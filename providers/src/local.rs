//! The `local` provider: addresses from the benchmarking range
//! 198.18.0.0/15 (RFC 2544), for the network-namespace lab that `troll
//! demo` and the tests build. Nothing outside this machine ever sees them.

use crate::{
    AddressPair, AddressRequest, Error, Family, FixedAddresses, ProviderKind, Provisioned, Result,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The lab's target: the server's address that clients trace to.
pub const TARGET_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The lab's IPv6 target, in the documentation prefix.
pub const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0, 0, 0, 0, 1);
/// Hop addresses count up from here.
pub const FIRST_HOP_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// IPv6 hop addresses: a /64 routed to the server, configured nowhere.
pub const HOP_PREFIX_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 0);
/// Most hops the range gives out (198.18.0.1 to 198.18.255.254).
pub const MAX_HOPS: usize = 65_534;

#[derive(Debug, Clone, Default)]
pub struct LocalProvider {
    families: Vec<Family>,
}

impl LocalProvider {
    pub fn new(families: &[Family]) -> LocalProvider {
        LocalProvider {
            families: families.to_vec(),
        }
    }
}

impl LocalProvider {
    /// Hop address pairs: `request.ipv4` IPv4 pairs counting up from
    /// [`FIRST_HOP_V4`], then `request.ipv6` IPv6 pairs in
    /// [`HOP_PREFIX_V6`].
    pub fn allocate(&self, request: AddressRequest) -> Result<Vec<AddressPair>> {
        if request.ipv4.max(request.ipv6) > MAX_HOPS {
            return Err(Error::Invalid {
                detail: format!("the lab range holds at most {MAX_HOPS} hop addresses"),
            });
        }
        let base = u32::from(FIRST_HOP_V4);
        let v4 = (0..request.ipv4 as u32)
            .map(|i| AddressPair::same(IpAddr::V4(Ipv4Addr::from(base + i))));
        let prefix = u128::from(HOP_PREFIX_V6);
        let v6 = (0..request.ipv6 as u128)
            .map(|i| AddressPair::same(IpAddr::V6(Ipv6Addr::from(prefix + i + 1))));
        Ok(v4.chain(v6).collect())
    }

    /// The target's address pairs, one per family the deployment serves.
    pub fn targets(&self) -> Vec<AddressPair> {
        self.families
            .iter()
            .map(|f| match f {
                Family::Ipv4 => AddressPair::same(IpAddr::V4(TARGET_V4)),
                Family::Ipv6 => AddressPair::same(IpAddr::V6(TARGET_V6)),
            })
            .collect()
    }
}

/// The lab's addresses are fixed and configured by the lab itself: no call,
/// nothing in the journal, no reverse DNS to publish (troll's DNS server
/// answers for them).
impl FixedAddresses for LocalProvider {
    const KIND: ProviderKind = ProviderKind::Local;

    fn provisioned(&self, request: AddressRequest) -> Result<Provisioned> {
        Ok(Provisioned {
            addresses: self.allocate(request)?,
            targets: self.targets(),
            ..Provisioned::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_from_the_first_hop() {
        let p = LocalProvider::new(&[Family::Ipv4]);
        let got = p.allocate(AddressRequest { ipv4: 3, ipv6: 1 }).unwrap();
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            ["198.18.0.1", "198.18.0.2", "198.18.0.3", "2001:db8:18::1"]
        );
        assert_eq!(p.targets(), vec![AddressPair::same(IpAddr::V4(TARGET_V4))]);
        let many = p.allocate(AddressRequest { ipv4: 300, ipv6: 0 }).unwrap();
        assert_eq!(many[299].public.to_string(), "198.18.1.44");
    }
}
