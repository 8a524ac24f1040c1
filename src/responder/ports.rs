//! Which UDP ports have a real service on a target.
//!
//! The responder answers UDP to *closed* ports on the target itself (the
//! kernel's port unreachables are rate-limited), so it must never answer a
//! port a real service listens on. The kernel's socket tables
//! (`/proc/net/udp`, `/proc/net/udp6`, of the namespace the responder runs
//! in) say which are bound; they are re-read when a lookup finds a port
//! closed and the last read is older than [`MAX_AGE`], so a new service is
//! seen within that time and a flood of probes costs a few reads a second.

use super::decide::PortTable;
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

pub const MAX_AGE: Duration = Duration::from_millis(50);

/// A bound UDP socket: address (an unspecified one means every address of
/// its family) and port.
type Bound = (IpAddr, u16);

#[derive(Debug)]
pub struct ProcPorts {
    inner: RefCell<Snapshot>,
}

#[derive(Debug)]
struct Snapshot {
    bound: HashSet<Bound>,
    read_at: Option<Instant>,
}

impl Default for ProcPorts {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcPorts {
    pub fn new() -> ProcPorts {
        ProcPorts {
            inner: RefCell::new(Snapshot {
                bound: HashSet::new(),
                read_at: None,
            }),
        }
    }

    fn refresh(snapshot: &mut Snapshot) {
        snapshot.bound.clear();
        for (path, v6) in [("/proc/net/udp", false), ("/proc/net/udp6", true)] {
            if let Ok(text) = std::fs::read_to_string(path) {
                parse_table(&text, v6, &mut snapshot.bound);
            }
        }
        snapshot.read_at = Some(Instant::now());
    }
}

impl ProcPorts {
    /// Whether a socket receives UDP sent to `addr:port`.
    pub fn open(&self, addr: IpAddr, port: u16) -> bool {
        let any = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let mut snap = self.inner.borrow_mut();
        let open = |s: &Snapshot| s.bound.contains(&(addr, port)) || s.bound.contains(&(any, port));
        if open(&snap) {
            return true;
        }
        if snap.read_at.is_none_or(|t| t.elapsed() >= MAX_AGE) {
            ProcPorts::refresh(&mut snap);
        }
        open(&snap)
    }
}

impl PortTable for ProcPorts {
    fn udp_open(&self, addr: IpAddr, port: u16) -> bool {
        self.open(addr, port)
    }
}

/// Parses one `/proc/net/udp{,6}` table into bound (address, port) pairs.
/// An IPv6 socket bound to `::` counts for both families (it may be dual
/// stack; the table does not say, and answering for a real service would
/// be worse than leaving a closed port to the kernel), one bound to an
/// IPv4-mapped address counts for that IPv4 address.
pub fn parse_table(text: &str, v6: bool, out: &mut HashSet<Bound>) {
    for line in text.lines().skip(1) {
        let Some(local) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some((addr_hex, port_hex)) = local.split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port_hex, 16) else {
            continue;
        };
        if v6 {
            match parse_v6(addr_hex) {
                Some(a) if a.is_unspecified() => {
                    out.insert((IpAddr::V6(a), port));
                    out.insert((IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
                }
                Some(a) => {
                    let addr = a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4);
                    out.insert((addr, port));
                }
                None => continue,
            }
        } else if let Ok(raw) = u32::from_str_radix(addr_hex, 16) {
            // The kernel prints the address's memory as a host-order u32.
            out.insert((IpAddr::V4(Ipv4Addr::from(raw.to_ne_bytes())), port));
        }
    }
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    // Four host-order u32 words.
    for word in 0..4 {
        let raw = u32::from_str_radix(&hex[word * 8..word * 8 + 8], 16).ok()?;
        bytes[word * 4..word * 4 + 4].copy_from_slice(&raw.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  0: 640012C6:1B58 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
  1: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  0: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
  1: 0000000000000000FFFF0000640012C6:1F90 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_both_tables() {
        let mut bound = HashSet::new();
        parse_table(UDP, false, &mut bound);
        parse_table(UDP6, true, &mut bound);
        let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
        assert!(bound.contains(&(v4([198, 18, 0, 100]), 7000)));
        assert!(bound.contains(&(v4([0, 0, 0, 0]), 5353)));
        assert!(bound.contains(&(v4([0, 0, 0, 0]), 53)), "{bound:?}");
        assert!(
            bound.contains(&(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 53)),
            "{bound:?}"
        );
        assert!(bound.contains(&(v4([198, 18, 0, 100]), 8080)), "{bound:?}");
        assert_eq!(bound.len(), 5);
    }

    #[test]
    fn sees_a_socket_of_this_process() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let ports = ProcPorts::new();
        assert!(ports.open(Ipv4Addr::LOCALHOST.into(), port));
        assert!(!ports.open(Ipv4Addr::new(127, 0, 0, 2).into(), port));
        let sock6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let port6 = sock6.local_addr().unwrap().port();
        // A new socket is seen once the last read is MAX_AGE old.
        std::thread::sleep(MAX_AGE);
        assert!(ports.open(Ipv6Addr::LOCALHOST.into(), port6));
        assert!(!ports.open(Ipv4Addr::LOCALHOST.into(), port6));
    }
}
