//! A stateless 1:1 NAT on the wire, as a cloud's internet gateway does it:
//! every frame that arrives on one port leaves by the other; IPv4 packets
//! to a public address get its private one as destination on the way in,
//! packets from a private address get its public one as source on the way
//! out. [`NatMode::Full`] also translates the header quoted in an ICMP
//! error on the way out (its destination, and its checksums) when that
//! destination is a private address of the mapping, as a NAT that knows
//! ICMP does: a quote that already holds the public address (troll's
//! responder writes its errors so) passes as it is. [`NatMode::OuterOnly`]
//! never touches the quote, so the kernel's own errors reach the client
//! quoting the private address.
//! Everything else (ARP, IPv6) passes untouched.
//!
//! One thread per direction, each in the NAT's namespace, reading and
//! writing whole frames on packet sockets. The translation is the pure
//! function [`translate`].

use crate::error::{Error, Result};
use crate::responder::decide::{adjust_checksum, pseudo_header_checksum};
use etherparse::IpNumber;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatMode {
    /// Outer header and the header quoted in ICMP errors.
    Full,
    /// Outer header only.
    OuterOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the internet to the private side: destination public -> local.
    Inbound,
    /// From the private side out: source local -> public.
    Outbound,
}

/// Public/local pairs.
pub type Pairs = [(Ipv4Addr, Ipv4Addr)];

/// Folds a 32-bit one's complement sum.
fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The full Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in bytes.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    !fold(sum)
}

/// Rewrites the address at `at` of the IPv4 packet `ip` (12: source, 16:
/// destination) and every checksum that covers it (IP header, the pseudo
/// header of TCP, UDP, UDP-Lite, DCCP). Returns whether it changed.
fn rewrite(ip: &mut [u8], at: usize, pairs: &Pairs, to_local: bool) -> bool {
    let Some(addr) = ip.get(at..at + 4) else {
        return false;
    };
    let old = [addr[0], addr[1], addr[2], addr[3]];
    let found = pairs.iter().find_map(|(public, local)| {
        let (from, to) = if to_local {
            (public, local)
        } else {
            (local, public)
        };
        (from.octets() == old).then_some(to.octets())
    });
    let Some(new) = found else {
        return false;
    };
    ip[at..at + 4].copy_from_slice(&new);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    adjust_checksum(ip, 10, &old, &new, false);
    let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    if first_fragment {
        if let Some((offset, zero_is_none)) = pseudo_header_checksum(IpNumber(ip[9]), false) {
            adjust_checksum(ip, ihl + offset, &old, &new, zero_is_none);
        }
    }
    true
}

/// Translates one Ethernet frame in place. Returns false for a frame that
/// must not pass (a truncated IPv4 header); everything else passes.
pub fn translate(frame: &mut [u8], direction: Direction, pairs: &Pairs, mode: NatMode) -> bool {
    if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
        return true;
    }
    let ip = &mut frame[14..];
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return false;
    }
    let to_local = direction == Direction::Inbound;
    let at = if to_local { 16 } else { 12 };
    if !rewrite(ip, at, pairs, to_local) {
        return true;
    }
    // An ICMP error on its way out quotes a packet that came in, addressed
    // to a local address: a full NAT gives it back its public one.
    let error = ip[9] == 1
        && matches!(ip.get(ihl), Some(3 | 4 | 5 | 11 | 12))
        && u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0;
    if mode == NatMode::Full && error && direction == Direction::Outbound {
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let icmp = &mut ip[ihl..total];
        if icmp.len() >= 8 + 20 {
            let quoted = &mut icmp[8..];
            let inner_at = 16;
            let old: [u8; 4] = quoted[inner_at..inner_at + 4].try_into().unwrap_or([0; 4]);
            if let Some((public, _)) = pairs.iter().find(|(_, local)| local.octets() == old) {
                let new = public.octets();
                quoted[inner_at..inner_at + 4].copy_from_slice(&new);
                adjust_checksum(quoted, 10, &old, &new, false);
                // And the quoted transport checksum, whose pseudo header
                // holds the destination, when the quote reaches it.
                let inner_ihl = usize::from(quoted[0] & 0x0f) * 4;
                if let Some((offset, zero_is_none)) =
                    pseudo_header_checksum(IpNumber(quoted[9]), false)
                {
                    adjust_checksum(quoted, inner_ihl + offset, &old, &new, zero_is_none);
                }
            }
            icmp[2..4].copy_from_slice(&[0, 0]);
            let sum = checksum(icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        }
    }
    true
}

/// The running NAT: two forwarding threads.
#[derive(Debug)]
pub struct Nat {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Nat {
    /// Starts forwarding between `public_if` and `private_if` of `ns`.
    pub fn start(
        ns: &str,
        public_if: &str,
        private_if: &str,
        pairs: Vec<(Ipv4Addr, Ipv4Addr)>,
        mode: NatMode,
    ) -> Result<Nat> {
        let stop = Arc::new(AtomicBool::new(false));
        let pairs: Arc<Vec<(Ipv4Addr, Ipv4Addr)>> = Arc::new(pairs);
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for (from, to, direction) in [
            (public_if, private_if, Direction::Inbound),
            (private_if, public_if, Direction::Outbound),
        ] {
            let (ns, from, to) = (ns.to_string(), from.to_string(), to.to_string());
            let (stop, pairs, ready) = (stop.clone(), pairs.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || {
                match Port::open(&ns, &from, &to) {
                    Ok(port) => {
                        let _ = ready.send(Ok(()));
                        port.forward(&stop, direction, &pairs, mode);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            }));
        }
        let nat = Nat { stop, threads };
        for _ in 0..2 {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    nat.stop();
                    return Err(e);
                }
                Err(_) => {
                    nat.stop();
                    return Err(Error::Lab("the NAT thread died".into()));
                }
            }
        }
        Ok(nat)
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// One direction: a packet socket to read from, one to write to.
struct Port {
    rx: socket2::Socket,
    tx: socket2::Socket,
}

fn packet_socket(ifname: &str) -> std::io::Result<socket2::Socket> {
    let protocol = (libc::ETH_P_ALL as u16).to_be() as i32;
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(protocol)),
    )?;
    let name = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are its own.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol as u16;
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
    Ok(socket)
}

impl Port {
    fn open(ns: &str, from: &str, to: &str) -> Result<Port> {
        let path = format!("/run/netns/{ns}");
        let file = std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
        // SAFETY: setns on a namespace file; it moves this thread only.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(Error::io(
                "cannot enter",
                &path,
                std::io::Error::last_os_error(),
            ));
        }
        let open = |ifname: &str| {
            packet_socket(ifname)
                .map_err(|e| Error::io("cannot open a packet socket on", ifname, e))
        };
        Ok(Port {
            rx: open(from)?,
            tx: open(to)?,
        })
    }

    fn forward(&self, stop: &AtomicBool, direction: Direction, pairs: &Pairs, mode: NatMode) {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::SeqCst) {
            // SAFETY: a zeroed sockaddr_ll is valid storage for recvfrom.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are writable buffers of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    std::os::fd::AsRawFd::as_raw_fd(&self.rx),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n <= 0 {
                continue;
            }
            // Frames this port sent itself are seen too: never echo them.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let frame = &mut buf[..n as usize];
            if translate(frame, direction, pairs, mode) {
                let _ = self.tx.send(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};

    const PAIRS: [(Ipv4Addr, Ipv4Addr); 2] = [
        (
            Ipv4Addr::new(198, 51, 100, 100),
            Ipv4Addr::new(10, 20, 0, 100),
        ),
        (
            Ipv4Addr::new(198, 51, 100, 101),
            Ipv4Addr::new(10, 20, 0, 101),
        ),
    ];

    fn udp_probe(dst: [u8; 4]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([100, 65, 1, 2], dst, 3)
            .udp(40000, 33434);
        let mut out = Vec::new();
        builder.write(&mut out, b"probe-payload").unwrap();
        out
    }

    fn valid(frame: &[u8]) -> SlicedPacket<'_> {
        let sliced = SlicedPacket::from_ethernet(frame).unwrap();
        let net = sliced.net.as_ref().unwrap();
        let etherparse::NetSlice::Ipv4(ip) = net else {
            panic!("not IPv4")
        };
        let header = ip.header().to_header();
        assert_eq!(header.header_checksum, header.calc_header_checksum());
        sliced
    }

    #[test]
    fn inbound_probe_gets_the_local_destination_and_right_checksums() {
        let mut frame = udp_probe([198, 51, 100, 100]);
        assert!(translate(
            &mut frame,
            Direction::Inbound,
            &PAIRS,
            NatMode::Full
        ));
        let sliced = valid(&frame);
        let etherparse::NetSlice::Ipv4(ip) = sliced.net.as_ref().unwrap() else {
            unreachable!()
        };
        assert_eq!(ip.header().destination(), [10, 20, 0, 100]);
        let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
            panic!("not UDP")
        };
        let expected = udp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), expected);
    }

    /// A Time Exceeded from hop .101 quoting a probe to the target's
    /// local address, as the kernel writes its errors.
    fn time_exceeded() -> Vec<u8> {
        let mut probe = udp_probe([198, 51, 100, 100]);
        translate(&mut probe, Direction::Inbound, &PAIRS, NatMode::Full);
        time_exceeded_quoting(&probe[14..])
    }

    /// A Time Exceeded from hop .101 quoting `quoted`.
    fn time_exceeded_quoting(quoted: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2; 6], [1; 6])
            .ipv4([10, 20, 0, 101], [100, 65, 1, 2], 64)
            .icmpv4(Icmpv4Type::TimeExceeded(
                etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
            ));
        let mut out = Vec::new();
        builder.write(&mut out, quoted).unwrap();
        out
    }

    fn icmp_ok(frame: &[u8]) -> Vec<u8> {
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(checksum(&ip[ihl..]), 0, "ICMP checksum");
        ip[ihl + 8..].to_vec()
    }

    #[test]
    fn full_nat_gives_the_quote_its_public_destination() {
        let mut frame = time_exceeded();
        assert!(translate(
            &mut frame,
            Direction::Outbound,
            &PAIRS,
            NatMode::Full
        ));
        valid(&frame);
        assert_eq!(frame[14 + 12..14 + 16], [198, 51, 100, 101]);
        let quoted = icmp_ok(&frame);
        assert_eq!(quoted[16..20], [198, 51, 100, 100]);
        assert_eq!(checksum(&quoted[..20]), 0, "quoted IP header checksum");
        // The quote is now the probe exactly as the client sent it.
        assert_eq!(quoted, udp_probe([198, 51, 100, 100])[14..]);
    }

    #[test]
    fn outer_only_nat_keeps_the_quote() {
        let mut frame = time_exceeded();
        let before = icmp_ok(&frame);
        assert!(translate(
            &mut frame,
            Direction::Outbound,
            &PAIRS,
            NatMode::OuterOnly
        ));
        valid(&frame);
        assert_eq!(frame[14 + 12..14 + 16], [198, 51, 100, 101]);
        assert_eq!(icmp_ok(&frame), before);
    }

    /// The responder's own Time Exceeded already quotes the public
    /// address: a full NAT finds no private one there and leaves the quote.
    #[test]
    fn full_nat_leaves_a_quote_with_the_public_destination() {
        let quoted = udp_probe([198, 51, 100, 100])[14..].to_vec();
        let frame = time_exceeded_quoting(&quoted);
        for mode in [NatMode::Full, NatMode::OuterOnly] {
            let mut out = frame.clone();
            assert!(translate(&mut out, Direction::Outbound, &PAIRS, mode));
            valid(&out);
            assert_eq!(out[14 + 12..14 + 16], [198, 51, 100, 101]);
            assert_eq!(icmp_ok(&out), quoted, "{mode:?}");
        }
    }

    #[test]
    fn other_frames_pass_unchanged() {
        let mut arp = vec![0xffu8; 14];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        let before = arp.clone();
        assert!(translate(
            &mut arp,
            Direction::Inbound,
            &PAIRS,
            NatMode::Full
        ));
        assert_eq!(arp, before);
        let mut other = udp_probe([203, 0, 113, 1]);
        let before = other.clone();
        assert!(translate(
            &mut other,
            Direction::Inbound,
            &PAIRS,
            NatMode::Full
        ));
        assert_eq!(other, before);
        let mut short = udp_probe([198, 51, 100, 100]);
        short.truncate(20);
        assert!(!translate(
            &mut short,
            Direction::Inbound,
            &PAIRS,
            NatMode::Full
        ));
    }
}
