//! Names and forward records for the Elastic IPs' reverse DNS.
//!
//! AWS sets an Elastic IP's PTR only when the forward A record of the name
//! already resolves to that Elastic IP, so the names live under a domain
//! the operator controls, troll tells the operator which A records to
//! create, and checks them with a [`Resolver`] before it asks AWS.

use crate::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Looks names up. The system one asks the host's resolver; tests give a
/// table.
pub trait Resolver: Sync {
    /// The IPv4 addresses `name` resolves to (empty when it does not).
    fn resolve_a(&self, name: &str) -> Vec<Ipv4Addr>;

    /// The names `address`'s PTR record gives (empty when none).
    fn resolve_ptr(&self, _address: Ipv4Addr) -> Vec<String> {
        Vec::new()
    }
}

/// The host's resolver (getaddrinfo / getnameinfo: /etc/hosts, then DNS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve_a(&self, name: &str) -> Vec<Ipv4Addr> {
        let mut found: Vec<Ipv4Addr> = (name, 0u16)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .filter_map(|a| match a {
                        SocketAddr::V4(v4) => Some(*v4.ip()),
                        SocketAddr::V6(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found.dedup();
        found
    }

    fn resolve_ptr(&self, address: Ipv4Addr) -> Vec<String> {
        SystemResolver::reverse(IpAddr::V4(address))
            .into_iter()
            .collect()
    }
}

impl SystemResolver {
    /// The PTR name of `address` as every client looks it up: getnameinfo(3)
    /// with NI_NAMEREQD (/etc/hosts, then DNS), a name or nothing.
    pub fn reverse(address: IpAddr) -> Option<String> {
        // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match address {
            IpAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(v4).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is large and aligned enough for
                // every socket address.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: as above.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        let mut host = [0 as libc::c_char; 1025];
        // SAFETY: `storage` holds a valid sockaddr of the length passed,
        // `host` is a writable buffer of the length passed, and no service
        // is asked for.
        let rc = unsafe {
            libc::getnameinfo(
                (&raw const storage).cast(),
                len as libc::socklen_t,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                libc::NI_NAMEREQD,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: on success getnameinfo wrote a NUL-terminated string into
        // `host`, which outlives this borrow.
        let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
        Some(name.to_string_lossy().into_owned())
    }
}

/// An A record the operator must publish before AWS accepts the PTR.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForwardRecord {
    /// The fully qualified name, without the final dot.
    pub name: String,
    pub address: Ipv4Addr,
}

impl fmt::Display for ForwardRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} A {}", self.name, self.address)
    }
}

/// The records as a zone-file fragment (absolute names, so it fits any
/// zone file of the domain), for BIND, NSD, Knot or a DNS host's import.
pub fn zone_fragment(records: &[ForwardRecord], ttl: u32) -> String {
    let mut out = String::from(
        "; A records for troll: AWS sets an Elastic IP's reverse DNS only when\n\
         ; the name resolves to it.\n",
    );
    let width = records.iter().map(|r| r.name.len() + 1).max().unwrap_or(0);
    for r in records {
        let name = format!("{}.", r.name);
        out.push_str(&format!("{name:<width$}  {ttl}  IN  A  {}\n", r.address));
    }
    out
}

/// Checks a domain the operator controls: labels of 1 to 63 bytes of
/// letters, digits, `-` and `_`, at most 253 bytes in all; a final dot is
/// dropped.
pub(crate) fn validate_domain(domain: &str) -> Result<String> {
    let domain = domain.trim().trim_end_matches('.');
    let bad = |why: &str| Error::Invalid {
        detail: format!("the domain {domain:?} {why}"),
    };
    if domain.is_empty() {
        return Err(bad(
            "is empty; AWS reverse DNS needs a domain whose A records you control",
        ));
    }
    check_name(domain).map_err(|why| bad(&why))?;
    Ok(domain.to_string())
}

/// `line` under `domain`: `hello` becomes `hello.example.com`; a name that
/// already ends in the domain is kept. Errors name what is wrong.
pub(crate) fn host_name(line: &str, domain: &str) -> Result<String> {
    let line = line.trim_end_matches('.');
    let lower = line.to_ascii_lowercase();
    let suffix = format!(".{}", domain.to_ascii_lowercase());
    let name = if lower.ends_with(&suffix) || lower == domain.to_ascii_lowercase() {
        line.to_string()
    } else {
        format!("{line}.{domain}")
    };
    check_name(&name).map_err(|why| Error::Invalid {
        detail: format!("the host name {name:?} {why}"),
    })?;
    Ok(name)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.len() > 253 {
        return Err(format!("is {} bytes long; DNS allows 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!(
                "has a label of {} bytes; DNS allows 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("contains {c:?}; use letters, digits, '-' and '_'"));
        }
    }
    Ok(())
}

/// Whether two DNS names are the same (case and the final dot aside).
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether a PtrRecord AWS reports is one somebody set, not AWS's default
/// `ec2-1-2-3-4.compute-1.amazonaws.com`.
pub(crate) fn is_custom_ptr(ptr: Option<&str>) -> bool {
    let Some(p) = ptr else { return false };
    let p = p.trim_end_matches('.').to_ascii_lowercase();
    !p.is_empty() && !p.ends_with(".amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_under_the_domain_once() {
        assert_eq!(
            host_name("hello", "example.com").unwrap(),
            "hello.example.com"
        );
        assert_eq!(host_name("a.b", "example.com").unwrap(), "a.b.example.com");
        assert_eq!(
            host_name("hello.Example.com.", "example.com").unwrap(),
            "hello.Example.com"
        );
        assert!(host_name("he llo", "example.com").is_err());
        assert!(host_name(&"x".repeat(64), "example.com").is_err());
        assert!(host_name(&"x.".repeat(126), "example.com").is_err());
    }

    #[test]
    fn domains_are_checked() {
        assert_eq!(validate_domain("Example.com.").unwrap(), "Example.com");
        assert!(validate_domain("").is_err());
        assert!(validate_domain("a..b").is_err());
    }

    #[test]
    fn default_ptrs_are_not_custom() {
        assert!(!is_custom_ptr(None));
        assert!(!is_custom_ptr(Some("")));
        assert!(!is_custom_ptr(Some("ec2-3-4-5-6.compute-1.amazonaws.com.")));
        assert!(is_custom_ptr(Some("hello.example.com.")));
        assert!(same_name("Hello.example.com.", "hello.example.com"));
    }

    #[test]
    fn zone_fragment_has_absolute_names() {
        let text = zone_fragment(
            &[
                ForwardRecord {
                    name: "hi.example.com".into(),
                    address: Ipv4Addr::new(3, 4, 5, 6),
                },
                ForwardRecord {
                    name: "there.example.com".into(),
                    address: Ipv4Addr::new(3, 4, 5, 7),
                },
            ],
            300,
        );
        assert!(
            text.contains("hi.example.com.     300  IN  A  3.4.5.6\n"),
            "{text}"
        );
        assert!(
            text.contains("there.example.com.  300  IN  A  3.4.5.7\n"),
            "{text}"
        );
    }

    #[test]
    fn the_system_resolver_reads_localhost() {
        assert!(SystemResolver
            .resolve_a("localhost")
            .contains(&Ipv4Addr::LOCALHOST));
    }
}
