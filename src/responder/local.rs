//! The broadcast addresses of the host's IPv4 subnets: a probe claiming
//! one of them as its source gets no answer.
//!
//! Routed replies never reached them anyway (the routing table knows a
//! directed broadcast), but link replies go straight to the sender's
//! link-layer address, so the responder itself must not answer a spoofed
//! broadcast source, which would make the next router broadcast it (an
//! amplifier). The host's own unicast addresses are fine: a probe from the
//! host itself came in on loopback, and the reply goes back there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Each IPv4 subnet's broadcast addresses (its own and the all-ones and
/// all-zeros addresses of its prefix), sorted. Empty when they cannot be
/// read.
pub fn broadcasts() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        tracing::debug!(
            "cannot list the interface addresses: {}",
            std::io::Error::last_os_error()
        );
        return out;
    }
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*at };
        // SAFETY: a non-null ifa_addr points at a sockaddr of the family
        // it names.
        let addr = unsafe { sockaddr_ip(ifa.ifa_addr) };
        // The subnet's all-ones and all-zeros addresses, which the kernel
        // routes as broadcast whether or not the address has a `brd`.
        // SAFETY: a non-null ifa_netmask points at a sockaddr of the
        // family it names, as ifa_addr does.
        let mask = unsafe { sockaddr_ip(ifa.ifa_netmask) };
        if let (Some(IpAddr::V4(a)), Some(IpAddr::V4(m))) = (addr, mask) {
            let (a, m) = (u32::from(a), u32::from(m));
            if m.leading_ones() < 31 {
                out.push(IpAddr::V4(Ipv4Addr::from(a | !m)));
                out.push(IpAddr::V4(Ipv4Addr::from(a & m)));
            }
        }
        // An explicit `brd`. glibc reports the address itself here when
        // there is none, so that one is not a broadcast address.
        if ifa.ifa_flags & libc::IFF_BROADCAST as u32 != 0 {
            // SAFETY: with IFF_BROADCAST, ifa_ifu is the broadcast address.
            if let Some(IpAddr::V4(b)) = unsafe { sockaddr_ip(ifa.ifa_ifu) } {
                if Some(IpAddr::V4(b)) != addr {
                    out.push(IpAddr::V4(b));
                }
            }
        }
        at = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    out
}

/// # Safety
/// `sa` is null or points at a valid sockaddr of the family it names.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees sa points at a sockaddr.
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            // SAFETY: family AF_INET means a sockaddr_in.
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: family AF_INET6 means a sockaddr_in6.
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_loopback_subnets_broadcasts_not_its_address() {
        let all = broadcasts();
        assert!(!all.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{all:?}");
        assert!(all.contains(&IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255))));
        assert!(all.contains(&IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0))));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
