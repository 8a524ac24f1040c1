//! The embedded authoritative DNS server for the shows' reverse zones.
//!
//! traceroute prints a hop's PTR name, so a message only appears if someone
//! answers the reverse lookups of the hop addresses. Cloud providers set PTR
//! records through their APIs; everywhere else (the local lab, a static
//! address block whose reverse zone is delegated to the operator's server,
//! common for IPv6 prefixes) `troll` answers them itself with this module.
//!
//! hickory does the wire format (parsing, name compression, EDNS, UDP and
//! TCP framing); this module only decides the answer. It is deliberately
//! small: one [`ZoneData`] holds every record, [`ZoneData::resolve`] is a pure
//! function from a question to an answer, and [`DnsServer`] runs hickory's
//! `ServerFuture` on a thread of its own so that the synchronous packet loop
//! of `troll serve` can start it, swap its records with [`DnsServer::update`]
//! and stop it. [`render_zone_file`] exports the same zones for BIND, NSD or
//! Knot.
//!
//! Zones are the /24 (IPv4) and /64 (IPv6) reverse zones of the addresses,
//! each with SOA and NS at its apex. Names are matched without regard to case
//! (resolvers randomise it, DNS 0x20), while PTR targets are served with
//! exactly the case they were given: the case is part of the message.
//!
//! Layout: `zone` (the records and the pure resolver), `server` (hickory on
//! its thread, the UDP loop that counts junk), `zonefile` (export).

mod server;
mod zone;
mod zonefile;

pub use server::{bad_query_summary, BadQuery, BoundDns, DnsServer, BAD_QUERY_SUMMARY_EVERY};
pub use zone::{PtrEntry, Resolution, ZoneData};
pub use zonefile::render_zone_file;

use std::io;
use std::net::{IpAddr, SocketAddr};

/// SOA refresh: how often a secondary checks the serial (seconds).
pub const SOA_REFRESH: i32 = 3600;
/// SOA retry: how soon a secondary retries a failed refresh (seconds).
pub const SOA_RETRY: i32 = 600;
/// SOA expire: how long a secondary serves the zone without its primary
/// (seconds; two weeks, as RFC 1912 suggests).
pub const SOA_EXPIRE: i32 = 1_209_600;

/// Default SOA MNAME and NS target: the zones are served by "this host".
/// Operators whose reverse zone is delegated set the name the parent zone
/// delegates to with [`ZoneData::with_nameserver`].
pub const DEFAULT_NAMESERVER: &str = "localhost.";
/// Default SOA RNAME: no mailbox (`.invalid` never resolves, RFC 2606).
pub const DEFAULT_HOSTMASTER: &str = "hostmaster.invalid.";
/// Labels in a /64 reverse zone origin: 16 nibbles, `ip6`, `arpa`.
const IPV6_ZONE_LABELS: usize = 18;
/// Largest TTL DNS allows (RFC 2181 §8).
const MAX_TTL: u32 = i32::MAX as u32;

/// Errors of the embedded DNS server; each names the address or the name at
/// fault and the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A PTR name is not a valid DNS name.
    #[error("invalid PTR name {name:?} for {address}: {reason}")]
    InvalidName {
        /// The address the name was meant for.
        address: IpAddr,
        /// The name as given.
        name: String,
        /// Why hickory rejected it.
        reason: String,
    },
    /// One address was given two different names.
    #[error("{address} has two PTR names, {first:?} and {second:?}; an address can show only one")]
    ConflictingNames {
        /// The address.
        address: IpAddr,
        /// The name seen first.
        first: String,
        /// The other name.
        second: String,
    },
    /// The SOA/NS server name or the hostmaster name is not a valid DNS name.
    #[error("invalid {field} name {name:?}: {reason}")]
    InvalidServerName {
        /// `nameserver` or `hostmaster`.
        field: &'static str,
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TTL is larger than DNS allows.
    #[error("TTL {ttl} is too large: DNS allows at most {MAX_TTL} seconds")]
    InvalidTtl {
        /// The TTL as given.
        ttl: u32,
    },
    /// A socket could not be bound.
    #[error("cannot bind DNS ({protocol}) on {addr}: {source}{hint}")]
    Bind {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
        /// What to do about it, empty when there is no advice.
        hint: &'static str,
    },
    /// The server thread or its runtime could not be started.
    #[error("cannot start the DNS server on {addr}: {source}")]
    Start {
        /// The address the server was bound to.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
}

impl DnsError {
    fn bind(protocol: &'static str, addr: SocketAddr, source: io::Error) -> DnsError {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => "; run as root or pick a port above 1023 with --dns",
            io::ErrorKind::AddrInUse => {
                "; another DNS server (systemd-resolved, dnsmasq, a running troll?) holds it, \
                 stop it or pick another address or port with --dns"
            }
            io::ErrorKind::AddrNotAvailable => "; that address is not on this host",
            _ => "",
        };
        DnsError::Bind {
            protocol,
            addr,
            source,
            hint,
        }
    }
}

#[cfg(test)]
mod tests;
