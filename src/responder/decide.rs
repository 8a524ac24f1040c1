//! What to answer to one IPv4 packet: the responder's whole policy as a pure
//! function.
//!
//! The socket loop hands every packet it reads to [`decide`] and sends what
//! comes back; this module never touches a socket, a clock or the heap, so
//! the rules of DESIGN.md §1–§3 can be unit-tested with hex fixtures and
//! fuzzed with arbitrary bytes. Untrusted bytes are read only through
//! etherparse's checked slices, and the reply is written into a caller-owned
//! buffer, so the function cannot panic and does not allocate per packet.
//!
//! The arrival TTL `t` is the IP TTL of the probe. With `N` fake hops for the
//! destination:
//! - `1 <= t <= N`: hop `t` answers with ICMP Time Exceeded from its address
//!   (or stays silent); the kernel never sees these probes (a raw-table
//!   rule drops them).
//! - `t > N`: the target itself answers. The kernel does it for echo
//!   requests, TCP and UDP to bound ports; the responder sends the port
//!   unreachable for UDP to closed ports, because the kernel rate-limits its
//!   own (DESIGN.md §3).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use etherparse::{
    checksum, err, icmpv4, Icmpv4Header, Icmpv4Slice, Icmpv4Type, IpNumber, Ipv4Header,
    Ipv4HeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

/// Largest reply, IP header included: the IPv4 minimum reassembly size, the
/// limit RFC 1812 sets for ICMP errors.
pub const MAX_REPLY: usize = 576;

/// IP header plus ICMP header of a reply (no IP options, 8-byte ICMP header).
const REPLY_HEADERS_LEN: usize = Ipv4Header::MIN_LEN + Icmpv4Header::MIN_LEN;

/// Most bytes of the probe a reply quotes.
const MAX_QUOTE: usize = MAX_REPLY - REPLY_HEADERS_LEN;

/// TTL the responder's replies start from, as a Linux host's would.
const REPLY_BASE_TTL: u8 = 64;

/// Compiled show for the responder (IPv4): for each target address, the
/// local source address of every fake hop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Sorted by target, one entry per target.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    target: Ipv4Addr,
    /// `hops[t - 1]` answers arrival TTL `t`; `None` is a silent hop.
    hops: Box<[Option<Ipv4Addr>]>,
}

impl Table {
    /// Builds the table from `(target, hops)` pairs, where `hops[t - 1]` is
    /// the local source address for arrival TTL `t` and `None` a silent hop;
    /// the target has `hops.len()` fake hops. If a target appears twice, the
    /// last pair wins.
    pub fn new(entries: impl IntoIterator<Item = (Ipv4Addr, Vec<Option<Ipv4Addr>>)>) -> Table {
        let by_target: BTreeMap<Ipv4Addr, Vec<Option<Ipv4Addr>>> = entries.into_iter().collect();
        Table {
            entries: by_target
                .into_iter()
                .map(|(target, hops)| Entry {
                    target,
                    hops: hops.into_boxed_slice(),
                })
                .collect(),
        }
    }

    /// True when the table has no target at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The hops of `target` (`hops[t - 1]` for arrival TTL `t`), or `None`
    /// when `target` is not in the table.
    pub fn hops(&self, target: Ipv4Addr) -> Option<&[Option<Ipv4Addr>]> {
        self.entries
            .binary_search_by_key(&target, |entry| entry.target)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|entry| &*entry.hops)
    }

    /// The target addresses, in ascending order.
    pub fn targets(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.entries.iter().map(|entry| entry.target)
    }
}

/// Which UDP ports have a real service bound on the target (the responder
/// answers closed ports itself).
pub trait PortTable {
    /// True when a socket on this host receives UDP datagrams sent to
    /// `addr:port`.
    fn udp_open(&self, addr: Ipv4Addr, port: u16) -> bool;
}

/// Any `Fn(addr, port) -> bool` is a port table (handy in tests).
impl<F: Fn(Ipv4Addr, u16) -> bool> PortTable for F {
    fn udp_open(&self, addr: Ipv4Addr, port: u16) -> bool {
        self(addr, port)
    }
}

/// Why the responder sends nothing for a packet. Dropping here only means
/// "no reply from the responder": whether the kernel also sees the packet is
/// decided by the rules (it does not for probes with `t <= N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than its IP header, its IP total length or its transport
    /// header (ICMP 8, UDP 8, TCP 20 bytes or its data offset).
    Truncated = 0,
    /// IP version is not 4.
    BadVersion,
    /// IP header length (IHL) below 5.
    BadHeaderLength,
    /// IP total length smaller than the IP header.
    BadTotalLength,
    /// IP header checksum is wrong.
    BadChecksum,
    /// Destination is not a target of the show.
    NotForTarget,
    /// Not the first fragment of a datagram (fragment offset != 0).
    Fragment,
    /// Arrived with TTL 0, which no router forwards.
    TtlZero,
    /// Source is unspecified (0.0.0.0/8), loopback, multicast, class E or
    /// the limited broadcast: no one to answer.
    BadSource,
    /// An ICMP error message, or an ICMP type unknown to us; never answered
    /// (RFC 1122 3.2.2).
    IcmpError,
    /// An ICMP query other than an echo request (echo reply, timestamp...).
    IcmpNotEcho,
    /// TCP with a data offset below 5.
    BadTcpHeader,
    /// TCP without a clean SYN (ACK, RST, FIN, none...) on a fake hop.
    TcpNotSyn,
    /// Neither ICMP, UDP nor TCP, on a fake hop.
    OtherProtocol,
    /// The hop at this TTL is a blank line of the message.
    SilentHop,
}

impl DropReason {
    /// Every reason, in `index()` order (for counters).
    pub const ALL: [DropReason; 15] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeaderLength,
        DropReason::BadTotalLength,
        DropReason::BadChecksum,
        DropReason::NotForTarget,
        DropReason::Fragment,
        DropReason::TtlZero,
        DropReason::BadSource,
        DropReason::IcmpError,
        DropReason::IcmpNotEcho,
        DropReason::BadTcpHeader,
        DropReason::TcpNotSyn,
        DropReason::OtherProtocol,
        DropReason::SilentHop,
    ];

    /// Stable snake_case name, used in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::BadTotalLength => "bad_total_length",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::NotForTarget => "not_for_target",
            DropReason::Fragment => "fragment",
            DropReason::TtlZero => "ttl_zero",
            DropReason::BadSource => "bad_source",
            DropReason::IcmpError => "icmp_error",
            DropReason::IcmpNotEcho => "icmp_not_echo",
            DropReason::BadTcpHeader => "bad_tcp_header",
            DropReason::TcpNotSyn => "tcp_not_syn",
            DropReason::OtherProtocol => "other_protocol",
            DropReason::SilentHop => "silent_hop",
        }
    }

    /// Position in [`DropReason::ALL`], for an array of counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a reply is, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ICMP Time Exceeded (11/0) from a fake hop.
    TimeExceeded,
    /// ICMP Destination Unreachable, port (3/3), from the target.
    PortUnreachable,
}

impl ReplyKind {
    /// Stable snake_case name, used in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::TimeExceeded => "time_exceeded",
            ReplyKind::PortUnreachable => "port_unreachable",
        }
    }
}

/// The outcome for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reply bytes were written to `out[..len]` (a complete IPv4 packet, IP
    /// header included, for a raw socket with IP_HDRINCL); `to` is the
    /// destination.
    Reply {
        len: usize,
        to: Ipv4Addr,
        kind: ReplyKind,
    },
    /// Not ours to answer: the kernel answers it (`t > N` TCP, `t > N` ICMP
    /// echo, UDP to an open port on the target, other protocols past the
    /// fake hops).
    Kernel,
    /// Nothing to send.
    Drop(DropReason),
}

/// Decides what to answer to `packet`, an IPv4 packet starting at its IP
/// header (bytes past its total length, such as Ethernet padding, are
/// ignored). A reply is written into `out`. Never panics, whatever the bytes.
pub fn decide(
    packet: &[u8],
    table: &Table,
    ports: &impl PortTable,
    out: &mut [u8; MAX_REPLY],
) -> Decision {
    match classify(packet, table, ports) {
        Ok(Verdict::Kernel) => Decision::Kernel,
        Ok(Verdict::Answer(answer)) => {
            let len = write_reply(&answer, out);
            Decision::Reply {
                len,
                to: answer.to,
                kind: answer.kind,
            }
        }
        Err(reason) => Decision::Drop(reason),
    }
}

enum Verdict<'a> {
    Kernel,
    Answer(Answer<'a>),
}

/// Everything a reply is made of.
struct Answer<'a> {
    kind: ReplyKind,
    from: Ipv4Addr,
    to: Ipv4Addr,
    ttl: u8,
    identification: u16,
    /// The probe, exactly its IP total length.
    probe: &'a [u8],
}

/// Transport protocols a probe can use, after the checks that do not depend
/// on the TTL.
enum Probe {
    Echo,
    Udp {
        port: u16,
    },
    TcpSyn,
    /// TCP that is not a clean SYN: normal traffic to a real service.
    TcpOther,
    Other,
}

fn classify<'a>(
    packet: &'a [u8],
    table: &Table,
    ports: &impl PortTable,
) -> Result<Verdict<'a>, DropReason> {
    let ip = Ipv4HeaderSlice::from_slice(packet).map_err(|e| match e {
        err::ipv4::HeaderSliceError::Len(_) => DropReason::Truncated,
        err::ipv4::HeaderSliceError::Content(err::ipv4::HeaderError::UnexpectedVersion {
            ..
        }) => DropReason::BadVersion,
        err::ipv4::HeaderSliceError::Content(
            err::ipv4::HeaderError::HeaderLengthSmallerThanHeader { .. },
        ) => DropReason::BadHeaderLength,
    })?;
    // The sum over a header that carries a correct checksum is all ones.
    if checksum::Sum16BitWords::new()
        .add_slice(ip.slice())
        .ones_complement()
        != 0
    {
        return Err(DropReason::BadChecksum);
    }
    let header_len = ip.slice().len();
    let total_len = usize::from(ip.total_len());
    if total_len < header_len {
        return Err(DropReason::BadTotalLength);
    }
    let probe = packet.get(..total_len).ok_or(DropReason::Truncated)?;
    let target = ip.destination_addr();
    let hops = table.hops(target).ok_or(DropReason::NotForTarget)?;
    if ip.fragments_offset().value() != 0 {
        return Err(DropReason::Fragment);
    }
    let ttl = ip.ttl();
    if ttl == 0 {
        return Err(DropReason::TtlZero);
    }
    let source = ip.source_addr();
    if is_bad_source(source) {
        return Err(DropReason::BadSource);
    }
    let transport = probe.get(header_len..).ok_or(DropReason::Truncated)?;

    let kind = match ip.protocol() {
        IpNumber::ICMP => icmp_probe(transport)?,
        IpNumber::UDP => Probe::Udp {
            port: UdpHeaderSlice::from_slice(transport)
                .map_err(|_| DropReason::Truncated)?
                .destination_port(),
        },
        IpNumber::TCP => {
            let tcp = TcpHeaderSlice::from_slice(transport).map_err(|e| match e {
                err::tcp::HeaderSliceError::Len(_) => DropReason::Truncated,
                err::tcp::HeaderSliceError::Content(_) => DropReason::BadTcpHeader,
            })?;
            if tcp.syn() && !tcp.ack() && !tcp.rst() && !tcp.fin() {
                Probe::TcpSyn
            } else {
                Probe::TcpOther
            }
        }
        _ => Probe::Other,
    };

    let answer = |kind, from, ttl| {
        Verdict::Answer(Answer {
            kind,
            from,
            to: source,
            ttl,
            identification: ip.identification(),
            probe,
        })
    };

    // hops[t - 1] exists exactly when 1 <= t <= N.
    match usize::from(ttl).checked_sub(1).and_then(|i| hops.get(i)) {
        Some(hop) => {
            match kind {
                Probe::Echo | Probe::Udp { .. } | Probe::TcpSyn => {}
                Probe::TcpOther => return Err(DropReason::TcpNotSyn),
                Probe::Other => return Err(DropReason::OtherProtocol),
            }
            let from = hop.ok_or(DropReason::SilentHop)?;
            // Decreases with t so tracepath sees a symmetric path.
            let reply_ttl = REPLY_BASE_TTL.saturating_sub(ttl - 1).max(1);
            Ok(answer(ReplyKind::TimeExceeded, from, reply_ttl))
        }
        None => match kind {
            Probe::Udp { port } if !ports.udp_open(target, port) => {
                // Keeps decreasing after the last fake hop.
                let reply_ttl = usize::from(REPLY_BASE_TTL)
                    .saturating_sub(hops.len())
                    .max(1);
                let reply_ttl = u8::try_from(reply_ttl).unwrap_or(REPLY_BASE_TTL);
                Ok(answer(ReplyKind::PortUnreachable, target, reply_ttl))
            }
            _ => Ok(Verdict::Kernel),
        },
    }
}

/// Sorts an ICMP message: echo requests are probes, everything else is
/// dropped whatever the TTL.
fn icmp_probe(transport: &[u8]) -> Result<Probe, DropReason> {
    let icmp = Icmpv4Slice::from_slice(transport).map_err(|e| match e.layer {
        // Timestamp messages of the wrong size are still queries.
        err::Layer::Icmpv4Timestamp | err::Layer::Icmpv4TimestampReply => DropReason::IcmpNotEcho,
        _ => DropReason::Truncated,
    })?;
    match icmp.type_u8() {
        icmpv4::TYPE_ECHO_REQUEST => Ok(Probe::Echo),
        icmpv4::TYPE_ECHO_REPLY
        | icmpv4::TYPE_ROUTER_ADVERTISEMENT
        | icmpv4::TYPE_ROUTER_SOLICITATION
        | icmpv4::TYPE_TIMESTAMP
        | icmpv4::TYPE_TIMESTAMP_REPLY
        | icmpv4::TYPE_INFO_REQUEST
        | icmpv4::TYPE_INFO_REPLY
        | icmpv4::TYPE_ADDRESS
        | icmpv4::TYPE_ADDRESSREPLY
        | TYPE_EXTENDED_ECHO_REQUEST
        | TYPE_EXTENDED_ECHO_REPLY => Err(DropReason::IcmpNotEcho),
        // Errors (3, 4, 5, 11, 12) and types we do not know.
        _ => Err(DropReason::IcmpError),
    }
}

/// RFC 8335 extended echo (PROBE), a query etherparse has no constant for.
const TYPE_EXTENDED_ECHO_REQUEST: u8 = 42;
const TYPE_EXTENDED_ECHO_REPLY: u8 = 43;

/// Sources no reply can or may go to.
fn is_bad_source(source: Ipv4Addr) -> bool {
    let first = source.octets()[0];
    // 0.0.0.0/8 ("this network", unspecified included) and 240.0.0.0/4
    // (class E, limited broadcast included).
    first == 0 || first >= 240 || source.is_loopback() || source.is_multicast()
}

/// Writes the reply into `out` and returns its length: IP header, ICMP
/// header, then the probe quoted byte for byte up to `MAX_REPLY`.
fn write_reply(answer: &Answer<'_>, out: &mut [u8; MAX_REPLY]) -> usize {
    let quote = &answer.probe[..answer.probe.len().min(MAX_QUOTE)];
    let icmp_type = match answer.kind {
        ReplyKind::TimeExceeded => {
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit)
        }
        ReplyKind::PortUnreachable => {
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
        }
    };
    // Both types leave bytes 4..8 zero: no RFC 4884 length, nothing unused set.
    let icmp = Icmpv4Header::with_checksum(icmp_type, quote).to_bytes();
    let len = REPLY_HEADERS_LEN + quote.len();
    let mut ip = Ipv4Header {
        // len <= MAX_REPLY, far below u16::MAX.
        total_len: len as u16,
        // Mirrors the probe's: varies per probe, needs no state.
        identification: answer.identification,
        dont_fragment: false,
        time_to_live: answer.ttl,
        protocol: IpNumber::ICMP,
        source: answer.from.octets(),
        destination: answer.to.octets(),
        ..Default::default()
    };
    ip.header_checksum = ip.calc_header_checksum();
    let ip = ip.to_bytes();

    let (ip_out, rest) = out.split_at_mut(ip.len());
    ip_out.copy_from_slice(&ip);
    let (icmp_out, rest) = rest.split_at_mut(icmp.len());
    icmp_out.copy_from_slice(&icmp);
    rest[..quote.len()].copy_from_slice(quote);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const HOP1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const HOP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const HOP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
    /// A port bound on the target.
    const OPEN_PORT: u16 = 53;

    // Probes from 198.18.1.2 to 198.18.0.10, checksums all correct.

    /// traceroute 2.1 default: UDP to 33434, 60 bytes, payload "@A..._", TTL 1.
    const UDP_TTL1: &str = "4500003c1c2d000001111054c6120102c612000a\
        a9e1829a002850ec\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// traceroute -I: echo request id 0x0b7a seq 3, 60 bytes, TTL 2.
    const ICMP_TTL2: &str = "4500003c5e3f00000201cd51c6120102c612000a\
        0800f77d0b7a0003\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// traceroute -T: SYN to port 80 with MSS, SACK, timestamps, window
    /// scale; DF; TTL 4.
    const TCP_TTL4: &str = "4500003c7f21400004066a6ac6120102c612000a\
        b0f500504a3e29c100000000a002faf0e4100000\
        020405b40402080a9a3b1c4d0000000001030307";
    /// traceroute UDP probe to 33438 past the fake hops, TTL 5.
    const UDP_TTL5: &str = "4500003c1c31000005110c50c6120102c612000a\
        a9e1829e002850e8\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// tracepath: 1500 bytes, DF, UDP to 44444, TTL 1; its first 60 bytes
    /// (the rest of the payload is zeros).
    const TRACEPATH_HEAD: &str = "450005dc3a5b40000111ac85c6120102c612000a\
        d431ad9c05c8fa12\
        0000000165a1b2c30004d2e10000000000000000000000000000000000000000";

    /// Hop 1 and 2 named, hop 3 silent, hop 4 named: N = 4.
    fn table() -> Table {
        Table::new([(TARGET, vec![Some(HOP1), Some(HOP2), None, Some(HOP4)])])
    }

    fn ports(addr: Ipv4Addr, port: u16) -> bool {
        addr == TARGET && port == OPEN_PORT
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        s.chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).expect("ascii hex");
                u8::from_str_radix(text, 16).expect("hex digit")
            })
            .collect()
    }

    fn tracepath_probe() -> Vec<u8> {
        let mut probe = hex(TRACEPATH_HEAD);
        probe.resize(1500, 0);
        probe
    }

    /// Recomputes the IP header checksum after a test edited the header.
    fn fix_ip_checksum(packet: &mut [u8]) {
        let ihl = usize::from(packet[0] & 0xf) * 4;
        packet[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum::Sum16BitWords::new()
            .add_slice(&packet[..ihl])
            .ones_complement();
        // The sum is over native-endian words, so its bytes go back as is.
        packet[10..12].copy_from_slice(&sum.to_ne_bytes());
    }

    /// A fixture with some header bytes replaced, checksum fixed.
    fn edited(fixture: &str, edits: &[(usize, u8)]) -> Vec<u8> {
        let mut packet = hex(fixture);
        for &(at, value) in edits {
            packet[at] = value;
        }
        fix_ip_checksum(&mut packet);
        packet
    }

    fn run(packet: &[u8]) -> (Decision, [u8; MAX_REPLY]) {
        let mut out = [0u8; MAX_REPLY];
        let decision = decide(packet, &table(), &ports, &mut out);
        (decision, out)
    }

    /// Asserts the reply is well formed and quotes `probe`; returns its bytes.
    fn check_reply(probe: &[u8], decision: Decision, out: &[u8; MAX_REPLY]) -> Vec<u8> {
        let Decision::Reply { len, to, kind } = decision else {
            panic!("expected a reply, got {decision:?}");
        };
        assert!(len <= MAX_REPLY);
        let reply = &out[..len];
        let ip = Ipv4HeaderSlice::from_slice(reply).expect("reply IP header parses");
        assert_eq!(ip.ihl(), 5);
        assert_eq!(usize::from(ip.total_len()), len);
        assert_eq!(ip.protocol(), IpNumber::ICMP);
        assert!(!ip.dont_fragment() && !ip.more_fragments());
        assert_eq!(ip.fragments_offset().value(), 0);
        assert!(ip.ttl() >= 1);
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
        let probe_ip = Ipv4HeaderSlice::from_slice(probe).expect("probe IP header parses");
        assert_eq!(ip.destination_addr(), probe_ip.source_addr());
        assert_eq!(to, probe_ip.source_addr());

        let icmp = Icmpv4Slice::from_slice(ip_payload(reply)).expect("reply ICMP parses");
        let expected_type = match kind {
            ReplyKind::TimeExceeded => (11, 0),
            ReplyKind::PortUnreachable => (3, 3),
        };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), expected_type);
        assert_eq!(icmp.bytes5to8(), [0; 4]);
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload())
        );
        assert_eq!(
            checksum::Sum16BitWords::new()
                .add_slice(icmp.slice())
                .ones_complement(),
            0
        );
        if kind == ReplyKind::PortUnreachable {
            assert_eq!(ip.source_addr(), probe_ip.destination_addr());
        }

        let probe_len = usize::from(probe_ip.total_len());
        let quote = icmp.payload();
        assert_eq!(quote.len(), probe_len.min(MAX_QUOTE));
        assert_eq!(quote, &probe[..quote.len()]);
        reply.to_vec()
    }

    fn ip_payload(reply: &[u8]) -> &[u8] {
        &reply[Ipv4Header::MIN_LEN..]
    }

    fn assert_drop(packet: &[u8], reason: DropReason) {
        let (decision, _) = run(packet);
        assert_eq!(decision, Decision::Drop(reason));
    }

    // --- exact replies -----------------------------------------------------

    #[test]
    fn udp_probe_at_hop_1_gets_time_exceeded_from_hop_1() {
        let probe = hex(UDP_TTL1);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            reply,
            hex("450000581c2d00004001d146c612000bc6120102\
                 0b00826a00000000\
                 4500003c1c2d000001111054c6120102c612000aa9e1829a002850ec\
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
        assert_eq!(
            decision,
            Decision::Reply {
                len: 88,
                to: CLIENT,
                kind: ReplyKind::TimeExceeded
            }
        );
    }

    #[test]
    fn icmp_echo_at_hop_2_gets_time_exceeded_from_hop_2() {
        let probe = hex(ICMP_TTL2);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            reply,
            hex("450000585e3f00003f019033c612000cc6120102\
                 0b00f4ff00000000\
                 4500003c5e3f00000201cd51c6120102c612000a0800f77d0b7a0003\
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
    }

    #[test]
    fn tcp_syn_at_hop_4_gets_time_exceeded_from_hop_4() {
        let probe = hex(TCP_TTL4);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            reply,
            hex("450000587f2100003d017150c612000dc6120102\
                 0b00825f00000000\
                 4500003c7f21400004066a6ac6120102c612000ab0f500504a3e29c100000000a002faf0e4100000\
                 020405b40402080a9a3b1c4d0000000001030307")
        );
    }

    #[test]
    fn udp_past_the_hops_to_a_closed_port_gets_port_unreachable_from_the_target() {
        let probe = hex(UDP_TTL5);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            decision,
            Decision::Reply {
                len: 88,
                to: CLIENT,
                kind: ReplyKind::PortUnreachable
            }
        );
        // From 198.18.0.10 with TTL 64 - N = 60.
        assert_eq!(
            reply,
            hex("450000581c3100003c01d543c612000ac6120102\
                 03038a6700000000\
                 4500003c1c31000005110c50c6120102c612000aa9e1829e002850e8\
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
    }

    #[test]
    fn tracepath_1500_byte_probe_is_quoted_up_to_576_bytes() {
        let probe = tracepath_probe();
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(reply.len(), 576);
        assert_eq!(
            &reply[..REPLY_HEADERS_LEN],
            &hex("450002403a5b00004001b130c612000bc6120102 0b00880a00000000")[..]
        );
        assert_eq!(&reply[REPLY_HEADERS_LEN..], &probe[..548]);
    }

    // --- outcomes that are not replies -------------------------------------

    #[test]
    fn past_the_hops_echo_and_tcp_are_left_to_the_kernel() {
        let echo = edited(ICMP_TTL2, &[(8, 5)]);
        assert_eq!(run(&echo).0, Decision::Kernel);
        let syn = edited(TCP_TTL4, &[(8, 5)]);
        assert_eq!(run(&syn).0, Decision::Kernel);
        // An ACK to a real service on the target, with a high TTL.
        let ack = edited(TCP_TTL4, &[(8, 57), (33, 0x10)]);
        assert_eq!(run(&ack).0, Decision::Kernel);
        // GRE past the hops.
        let gre = edited(UDP_TTL5, &[(9, 47)]);
        assert_eq!(run(&gre).0, Decision::Kernel);
    }

    #[test]
    fn udp_to_an_open_port_past_the_hops_is_left_to_the_kernel() {
        let probe = edited(UDP_TTL5, &[(22, 0), (23, OPEN_PORT as u8)]);
        assert_eq!(run(&probe).0, Decision::Kernel);
    }

    #[test]
    fn udp_to_an_open_port_on_a_fake_hop_still_gets_time_exceeded() {
        let probe = edited(UDP_TTL1, &[(22, 0), (23, OPEN_PORT as u8)]);
        let (decision, out) = run(&probe);
        check_reply(&probe, decision, &out);
    }

    #[test]
    fn first_fragment_is_answered_and_later_fragments_are_dropped() {
        // MF set, offset 0.
        let first = edited(UDP_TTL1, &[(6, 0x20)]);
        let (decision, out) = run(&first);
        check_reply(&first, decision, &out);
        // MF set, offset 185 * 8.
        let middle = edited(UDP_TTL1, &[(6, 0x20), (7, 185)]);
        assert_drop(&middle, DropReason::Fragment);
        // Last fragment: MF clear, offset != 0.
        let last = edited(UDP_TTL1, &[(7, 185)]);
        assert_drop(&last, DropReason::Fragment);
    }

    #[test]
    fn ethernet_padding_past_the_total_length_is_not_quoted() {
        let mut probe = hex(UDP_TTL1);
        probe.extend_from_slice(&[0xee; 6]);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(reply.len(), 88);
    }

    #[test]
    fn udp_with_no_payload_is_answered() {
        let mut probe = hex(UDP_TTL1);
        probe.truncate(28);
        probe[2..4].copy_from_slice(&28u16.to_be_bytes());
        probe[24..26].copy_from_slice(&8u16.to_be_bytes());
        fix_ip_checksum(&mut probe);
        let (decision, out) = run(&probe);
        assert_eq!(check_reply(&probe, decision, &out).len(), 56);
    }

    #[test]
    fn ecn_setup_syn_is_a_clean_syn() {
        // SYN | ECE | CWR.
        let probe = edited(TCP_TTL4, &[(33, 0xc2)]);
        let (decision, out) = run(&probe);
        check_reply(&probe, decision, &out);
    }

    #[test]
    fn reply_ttls_saturate_at_1() {
        let long = Table::new([(TARGET, vec![Some(HOP1); 100])]);
        let mut out = [0u8; MAX_REPLY];
        let at_hop_70 = edited(UDP_TTL1, &[(8, 70)]);
        let decision = decide(&at_hop_70, &long, &ports, &mut out);
        check_reply(&at_hop_70, decision, &out);
        assert_eq!(out[8], 1);
        let past = edited(UDP_TTL1, &[(8, 101)]);
        let decision = decide(&past, &long, &ports, &mut out);
        check_reply(&past, decision, &out);
        assert_eq!(out[8], 1);
    }

    #[test]
    fn target_with_no_fake_hops_answers_only_as_the_target() {
        let bare = Table::new([(TARGET, vec![])]);
        let mut out = [0u8; MAX_REPLY];
        let probe = hex(UDP_TTL1);
        let decision = decide(&probe, &bare, &ports, &mut out);
        assert!(matches!(
            decision,
            Decision::Reply {
                kind: ReplyKind::PortUnreachable,
                ..
            }
        ));
        assert_eq!(out[8], 64);
    }

    #[test]
    fn table_keeps_the_last_entry_for_a_target() {
        let other = Ipv4Addr::new(198, 18, 0, 99);
        let table = Table::new([
            (TARGET, vec![Some(HOP1)]),
            (other, vec![None]),
            (TARGET, vec![Some(HOP2), None]),
        ]);
        assert!(!table.is_empty());
        assert_eq!(table.len(), 2);
        assert_eq!(table.hops(TARGET), Some(&[Some(HOP2), None][..]));
        assert_eq!(table.hops(other), Some(&[None][..]));
        assert_eq!(table.hops(CLIENT), None);
        assert_eq!(table.targets().collect::<Vec<_>>(), vec![TARGET, other]);
        assert!(Table::new([]).is_empty());
    }

    #[test]
    fn drop_reasons_are_listed_once_in_index_order_with_unique_names() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            let name = reason.name();
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(reason.to_string(), name);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
    }

    // --- one test per drop reason ------------------------------------------

    #[test]
    fn drop_truncated() {
        // Shorter than an IP header.
        assert_drop(&hex(UDP_TTL1)[..19], DropReason::Truncated);
        // Cut by the capture buffer: shorter than the total length.
        assert_drop(&hex(UDP_TTL1)[..59], DropReason::Truncated);
        // Options announced (IHL 6) but missing.
        assert_drop(&hex("46000014")[..], DropReason::Truncated);
        // Transport headers cut short, total length consistent.
        for (fixture, keep) in [(UDP_TTL1, 27), (ICMP_TTL2, 27), (TCP_TTL4, 39)] {
            let mut packet = hex(fixture);
            packet.truncate(keep);
            packet[2..4].copy_from_slice(&(keep as u16).to_be_bytes());
            fix_ip_checksum(&mut packet);
            assert_drop(&packet, DropReason::Truncated);
        }
        // TCP data offset 15 (60 bytes) in a 40-byte segment.
        assert_drop(&edited(TCP_TTL4, &[(32, 0xf0)]), DropReason::Truncated);
    }

    #[test]
    fn drop_bad_version() {
        assert_drop(&edited(UDP_TTL1, &[(0, 0x65)]), DropReason::BadVersion);
    }

    #[test]
    fn drop_bad_header_length() {
        assert_drop(&edited(UDP_TTL1, &[(0, 0x44)]), DropReason::BadHeaderLength);
    }

    #[test]
    fn drop_bad_total_length() {
        assert_drop(
            &edited(UDP_TTL1, &[(2, 0), (3, 19)]),
            DropReason::BadTotalLength,
        );
    }

    #[test]
    fn drop_bad_checksum() {
        let mut packet = hex(UDP_TTL1);
        packet[11] ^= 1;
        assert_drop(&packet, DropReason::BadChecksum);
    }

    #[test]
    fn drop_not_for_target() {
        // To hop 1's address rather than the target.
        assert_drop(&edited(UDP_TTL1, &[(19, 11)]), DropReason::NotForTarget);
    }

    #[test]
    fn drop_fragment() {
        assert_drop(&edited(UDP_TTL1, &[(7, 1)]), DropReason::Fragment);
    }

    #[test]
    fn drop_ttl_zero() {
        assert_drop(&edited(UDP_TTL1, &[(8, 0)]), DropReason::TtlZero);
    }

    #[test]
    fn drop_bad_source() {
        for source in [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [239, 255, 255, 250],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            let edits: Vec<_> = source
                .iter()
                .enumerate()
                .map(|(i, &b)| (12 + i, b))
                .collect();
            assert_drop(&edited(UDP_TTL1, &edits), DropReason::BadSource);
        }
    }

    #[test]
    fn drop_icmp_error() {
        // Time exceeded, port unreachable, redirect, parameter problem,
        // source quench, and an unknown type, on a fake hop and past it.
        for icmp_type in [11, 3, 5, 12, 4, 200] {
            for ttl in [2, 9] {
                let packet = edited(ICMP_TTL2, &[(8, ttl), (20, icmp_type)]);
                assert_drop(&packet, DropReason::IcmpError);
            }
        }
    }

    #[test]
    fn drop_icmp_not_echo() {
        // Echo reply, router solicitation, extended echo request.
        for icmp_type in [0, 10, 42] {
            assert_drop(
                &edited(ICMP_TTL2, &[(20, icmp_type)]),
                DropReason::IcmpNotEcho,
            );
        }
        // A timestamp request has a fixed size this packet does not have.
        assert_drop(&edited(ICMP_TTL2, &[(20, 13)]), DropReason::IcmpNotEcho);
    }

    #[test]
    fn drop_bad_tcp_header() {
        // Data offset 4 (16 bytes).
        assert_drop(&edited(TCP_TTL4, &[(32, 0x40)]), DropReason::BadTcpHeader);
    }

    #[test]
    fn drop_tcp_not_syn() {
        // SYN|ACK, RST, FIN, NULL, XMAS (FIN|PSH|URG), ACK on a fake hop.
        for flags in [0x12, 0x04, 0x01, 0x00, 0x29, 0x10, 0x03] {
            assert_drop(&edited(TCP_TTL4, &[(33, flags)]), DropReason::TcpNotSyn);
        }
    }

    #[test]
    fn drop_other_protocol() {
        // SCTP on hop 1.
        assert_drop(&edited(UDP_TTL1, &[(9, 132)]), DropReason::OtherProtocol);
    }

    #[test]
    fn drop_silent_hop() {
        // Hop 3 is a blank line, whatever the protocol.
        for fixture in [UDP_TTL1, ICMP_TTL2, TCP_TTL4] {
            assert_drop(&edited(fixture, &[(8, 3)]), DropReason::SilentHop);
        }
    }

    // --- properties --------------------------------------------------------

    fn fixtures() -> Vec<Vec<u8>> {
        vec![
            hex(UDP_TTL1),
            hex(ICMP_TTL2),
            hex(TCP_TTL4),
            hex(UDP_TTL5),
            tracepath_probe(),
        ]
    }

    /// Whatever the decision, a reply must be a valid answer to `packet`.
    fn check_any(packet: &[u8]) {
        let (decision, out) = run(packet);
        if let Decision::Reply { .. } = decision {
            check_reply(packet, decision, &out);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(packet in proptest::collection::vec(any::<u8>(), 0..1600)) {
            check_any(&packet);
        }

        #[test]
        fn arbitrary_bytes_behind_a_valid_ip_header_never_panic(
            ttl in 0u8..8,
            protocol in prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            let mut packet = hex(UDP_TTL1)[..20].to_vec();
            packet.extend_from_slice(&rest);
            let total_len = packet.len() as u16;
            packet[2..4].copy_from_slice(&total_len.to_be_bytes());
            packet[8] = ttl;
            packet[9] = protocol;
            fix_ip_checksum(&mut packet);
            check_any(&packet);
        }

        #[test]
        fn mutated_probes_never_panic_and_replies_stay_valid(
            which in 0usize..5,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            fix in any::<bool>(),
        ) {
            let mut packet = fixtures().swap_remove(which);
            for (at, value) in edits {
                let at = at.index(packet.len());
                packet[at] = value;
            }
            if truncate {
                packet.truncate(cut.index(packet.len() + 1));
            }
            if fix && packet.len() >= 20 {
                let ihl = usize::from(packet[0] & 0xf) * 4;
                if (20..=packet.len()).contains(&ihl) {
                    fix_ip_checksum(&mut packet);
                }
            }
            check_any(&packet);
        }

        #[test]
        fn udp_probes_follow_the_show(
            hops in proptest::collection::vec(proptest::option::of(any::<[u8; 4]>()), 0..40),
            ttl in 1u8..=255,
            port in any::<u16>(),
            payload_len in 0usize..1600,
        ) {
            let hops: Vec<Option<Ipv4Addr>> = hops.into_iter().map(|h| h.map(Ipv4Addr::from)).collect();
            let table = Table::new([(TARGET, hops.clone())]);
            let mut packet = hex(UDP_TTL1)[..28].to_vec();
            packet.resize(28 + payload_len, 0x5a);
            let total_len = packet.len() as u16;
            packet[2..4].copy_from_slice(&total_len.to_be_bytes());
            packet[8] = ttl;
            packet[22..24].copy_from_slice(&port.to_be_bytes());
            packet[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
            fix_ip_checksum(&mut packet);

            let mut out = [0u8; MAX_REPLY];
            let decision = decide(&packet, &table, &ports, &mut out);
            let t = usize::from(ttl);
            if t <= hops.len() {
                match hops[t - 1] {
                    None => prop_assert_eq!(decision, Decision::Drop(DropReason::SilentHop)),
                    Some(hop) => {
                        let reply = check_reply(&packet, decision, &out);
                        prop_assert_eq!(&reply[12..16], &hop.octets()[..]);
                        prop_assert_eq!(reply[8], 64u8.saturating_sub(ttl - 1).max(1));
                        prop_assert_eq!(reply[20], 11);
                    }
                }
            } else if port == OPEN_PORT {
                prop_assert_eq!(decision, Decision::Kernel);
            } else {
                let reply = check_reply(&packet, decision, &out);
                prop_assert_eq!(&reply[12..16], &TARGET.octets()[..]);
                prop_assert_eq!(usize::from(reply[8]), 64usize.saturating_sub(hops.len()).max(1));
                prop_assert_eq!(reply[20], 3);
            }
        }
    }
}
