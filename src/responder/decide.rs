//! What to answer to one IPv4 or IPv6 packet: the responder's whole policy
//! as a pure function.
//!
//! The socket loop hands every packet it reads to [`decide`] and sends what
//! comes back; this module never touches a socket, a clock or the heap, so
//! the rules of DESIGN.md §1–§3 can be unit-tested with hex fixtures and
//! fuzzed with arbitrary bytes. Untrusted bytes are read only through
//! etherparse's checked slices, and the reply is written into a caller-owned
//! buffer, so the function cannot panic and does not allocate per packet.
//!
//! The arrival TTL `t` is the IPv4 TTL or the IPv6 hop limit of the probe.
//! With `N` fake hops for the destination:
//! - `1 <= t <= N`: hop `t` answers with ICMP Time Exceeded from its address
//!   (or stays silent), whatever the protocol, as a router does; the kernel
//!   never sees these probes (a raw-table rule drops them).
//! - `t > N`: the target itself answers. The kernel does it for echo
//!   requests, TCP, UDP to bound ports and every other protocol (UDP-Lite's
//!   port unreachable, an unknown protocol's protocol unreachable, SCTP's
//!   and DCCP's own answers); the responder sends the port
//!   unreachable for UDP to closed ports, because the kernel rate-limits its
//!   own (DESIGN.md §3).
//!
//! Both families follow the same rule (`follow_show`); only the parsing
//! and the reply format differ. IPv6 walks the extension headers to the
//! upper-layer header and never answers ICMPv6 errors, neighbour discovery,
//! MLD, or anything from or to a multicast address.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    checksum, err, icmpv4, icmpv6, ip_number, IcmpEchoHeader, Icmpv4Header, Icmpv4Slice,
    Icmpv4Type, Icmpv6Header, Icmpv6Slice, Icmpv6Type, IpAuthHeaderSlice, IpNumber, Ipv4Header,
    Ipv4HeaderSlice, Ipv6FlowLabel, Ipv6FragmentHeaderSlice, Ipv6Header, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

/// Size of the reply buffer: the largest reply of either family, IP header
/// included. IPv6 replies fill up to this, the IPv6 minimum MTU (RFC 4443
/// 2.4 (c)); IPv4 replies stop at [`MAX_REPLY_V4`].
pub const MAX_REPLY: usize = 1280;

/// Largest IPv4 reply, IP header included: the IPv4 minimum reassembly
/// size, the limit RFC 1812 sets for ICMP errors.
pub const MAX_REPLY_V4: usize = 576;

/// Largest IPv6 reply, IPv6 header included.
pub const MAX_REPLY_V6: usize = MAX_REPLY;

/// IP header plus ICMP header of an IPv4 reply (no IP options, 8-byte ICMP
/// header).
const REPLY_HEADERS_LEN_V4: usize = Ipv4Header::MIN_LEN + Icmpv4Header::MIN_LEN;

/// IPv6 header plus ICMPv6 header of an IPv6 reply (no extension headers,
/// 8-byte ICMPv6 header).
const REPLY_HEADERS_LEN_V6: usize = Ipv6Header::LEN + Icmpv6Header::MIN_LEN;

/// Most bytes of an IPv4 probe a reply quotes.
const MAX_QUOTE_V4: usize = MAX_REPLY_V4 - REPLY_HEADERS_LEN_V4;

/// Most bytes of an IPv6 probe a reply quotes.
const MAX_QUOTE_V6: usize = MAX_REPLY_V6 - REPLY_HEADERS_LEN_V6;

/// TTL (hop limit) the responder's replies start from, as a Linux host's
/// would.
const REPLY_BASE_TTL: u8 = 64;

/// Compiled shows for the responder: for each target address, the local
/// source address of every fake hop. IPv4 and IPv6 targets share one table.
///
/// A table built with [`Table::router`] also holds each hop address as a
/// destination of its own, answered as a router's interface is (DESIGN.md
/// §8): the message up to the line before the address's first line, then
/// the address itself as the target, which answers echo requests with echo
/// replies and UDP with port unreachable, and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Sorted by destination, one entry per destination.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    target: IpAddr,
    /// `hops[t - 1]` answers arrival TTL `t`; `None` is a silent hop. Every
    /// address is of the target's family.
    hops: Box<[Option<IpAddr>]>,
    /// A hop address answering as a router interface, not a show's target.
    interface: bool,
    /// The address clients send to when it is not `target` (behind a 1:1
    /// NAT): the errors the responder sends quote the probe with it as the
    /// destination. Of the target's family.
    public: Option<IpAddr>,
}

/// A hop list with the hops of the other family than `target`'s silenced.
fn same_family(target: IpAddr, hops: Vec<Option<IpAddr>>) -> Box<[Option<IpAddr>]> {
    hops.into_iter()
        .map(|hop| hop.filter(|hop| hop.is_ipv4() == target.is_ipv4()))
        .collect()
}

impl Table {
    /// Builds the table from `(target, hops)` pairs, where `hops[t - 1]` is
    /// the local source address for arrival TTL `t` and `None` a silent hop;
    /// the target has `hops.len()` fake hops. A hop address of the other
    /// family than its target's cannot answer it and is kept as a silent
    /// hop. If a target appears twice, the last pair wins.
    pub fn new(entries: impl IntoIterator<Item = (IpAddr, Vec<Option<IpAddr>>)>) -> Table {
        let by_target: BTreeMap<IpAddr, Vec<Option<IpAddr>>> = entries.into_iter().collect();
        Table {
            entries: by_target
                .into_iter()
                .map(|(target, hops)| Entry {
                    target,
                    hops: same_family(target, hops),
                    interface: false,
                    public: None,
                })
                .collect(),
        }
    }

    /// Like [`Table::new`], and every named hop address also answers as a
    /// router interface: a probe to hop address `H`, whose first line in
    /// its show is `k`, meets hops `1..k-1` of that show and then `H`
    /// itself. An address used by several shows follows the first one (in
    /// target order); an address that is also a target stays a target.
    pub fn router(entries: impl IntoIterator<Item = (IpAddr, Vec<Option<IpAddr>>)>) -> Table {
        let targets = Table::new(entries);
        let mut interfaces: BTreeMap<IpAddr, Box<[Option<IpAddr>]>> = BTreeMap::new();
        for entry in &targets.entries {
            for (i, hop) in entry.hops.iter().enumerate() {
                let Some(hop) = *hop else { continue };
                if targets.hops(hop).is_none() {
                    interfaces
                        .entry(hop)
                        .or_insert_with(|| entry.hops[..i].into());
                }
            }
        }
        let mut all = targets.entries;
        all.extend(interfaces.into_iter().map(|(target, hops)| Entry {
            target,
            hops,
            interface: true,
            public: None,
        }));
        all.sort_by_key(|entry| entry.target);
        Table { entries: all }
    }

    /// Gives the table the public address of each local one behind a 1:1
    /// NAT, as `(local, public)` pairs. An ICMP error the responder sends
    /// for a probe to `local` (a target or a hop address) then quotes the
    /// probe with `public` as its destination, and the quoted IP header
    /// checksum and transport checksum (UDP, TCP, UDP-Lite, DCCP; ICMPv6
    /// and the mobility header on IPv6) adjusted as a NAT does it (RFC
    /// 1624): the probe as the client sent it. A NAT that translates only
    /// the outer header leaves the quote so, and clients match the quote to
    /// their socket; one that also translates quotes finds no private
    /// address in it and leaves it too. A pair of equal addresses, of two
    /// families, or for an address not in the table changes nothing.
    pub fn with_public(mut self, pairs: impl IntoIterator<Item = (IpAddr, IpAddr)>) -> Table {
        for (local, public) in pairs {
            if local == public || local.is_ipv4() != public.is_ipv4() {
                continue;
            }
            if let Ok(i) = self
                .entries
                .binary_search_by_key(&local, |entry| entry.target)
            {
                self.entries[i].public = Some(public);
            }
        }
        self
    }

    /// The public address the responder's errors quote for `local`, when
    /// [`Table::with_public`] gave it one.
    pub fn public(&self, local: IpAddr) -> Option<IpAddr> {
        self.entry(local).and_then(|entry| entry.public)
    }

    /// True when `addr` is a hop address answering as a router interface.
    pub fn is_hop_address(&self, addr: IpAddr) -> bool {
        self.entry(addr).is_some_and(|entry| entry.interface)
    }

    /// The hop addresses that answer as router interfaces, in ascending
    /// order, with their number of hops before them.
    pub fn hop_addresses(&self) -> impl Iterator<Item = (IpAddr, usize)> + '_ {
        self.entries
            .iter()
            .filter(|entry| entry.interface)
            .map(|entry| (entry.target, entry.hops.len()))
    }

    fn entry(&self, addr: IpAddr) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&addr, |entry| entry.target)
            .ok()
            .and_then(|i| self.entries.get(i))
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
    /// when `target` is not in the table (a hop address is, in a router
    /// table).
    pub fn hops(&self, target: IpAddr) -> Option<&[Option<IpAddr>]> {
        self.entry(target).map(|entry| &*entry.hops)
    }

    /// Every destination the responder reads packets for, targets and hop
    /// addresses, in ascending order (IPv4 before IPv6).
    pub fn targets(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.entries.iter().map(|entry| entry.target)
    }
}

/// Which UDP ports have a real service bound on the target (the responder
/// answers closed ports itself).
pub trait PortTable {
    /// True when a socket on this host receives UDP datagrams sent to
    /// `addr:port`.
    fn udp_open(&self, addr: IpAddr, port: u16) -> bool;
}

/// Any `Fn(addr, port) -> bool` is a port table (handy in tests).
impl<F: Fn(IpAddr, u16) -> bool> PortTable for F {
    fn udp_open(&self, addr: IpAddr, port: u16) -> bool {
        self(addr, port)
    }
}

/// Defines [`DropReason`] from one list: each variant with its stable
/// name. The enum, [`DropReason::ALL`], `name()` and `index()` all come
/// from it, so a new reason cannot be left out of one of them.
macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// Why the responder sends nothing for a packet. Dropping here only means
        /// "no reply from the responder": whether the kernel also sees the packet is
        /// decided by the rules (it does not for probes with `t <= N`).
        ///
        /// New reasons are appended, so `index()` of the existing ones stays.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $($(#[$doc])* $variant,)+
        }

        impl DropReason {
            /// Every reason, in `index()` order (for counters).
            pub const ALL: [DropReason; [$(DropReason::$variant),+].len()] =
                [$(DropReason::$variant),+];

            /// Stable snake_case name, used in logs and JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)+
                }
            }

            /// Position in [`DropReason::ALL`], for an array of counters.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// Shorter than its IP header, its IPv4 total length or IPv6 payload
    /// length, an IPv6 extension header, or its transport header (ICMP 8,
    /// UDP 8, TCP 20 bytes or its data offset, 8 bytes of any other
    /// protocol).
    Truncated = "truncated",
    /// IP version is neither 4 nor 6.
    BadVersion = "bad_version",
    /// IPv4 header length (IHL) below 5.
    BadHeaderLength = "bad_header_length",
    /// IPv4 total length smaller than the IP header.
    BadTotalLength = "bad_total_length",
    /// IPv4 header checksum is wrong.
    BadChecksum = "bad_checksum",
    /// Destination is not a target of the show.
    NotForTarget = "not_for_target",
    /// Not the first fragment of a datagram (fragment offset != 0).
    Fragment = "fragment",
    /// Arrived with TTL (hop limit) 0, which no router forwards.
    TtlZero = "ttl_zero",
    /// No one to answer. IPv4: unspecified (0.0.0.0/8), loopback,
    /// multicast, class E or the limited broadcast. IPv6: unspecified,
    /// loopback, multicast or IPv4-mapped (which Linux drops on input).
    BadSource = "bad_source",
    /// An ICMP error message (ICMPv6 types 0–127), or an ICMPv4 type unknown
    /// to us; never answered (RFC 1122 3.2.2, RFC 4443 2.4 (e)).
    IcmpError = "icmp_error",
    /// An ICMP query other than an echo request (echo reply, timestamp,
    /// node information, extended echo...).
    IcmpNotEcho = "icmp_not_echo",
    /// TCP with a data offset below 5.
    BadTcpHeader = "bad_tcp_header",
    /// Retired (issue 16): TCP without a clean SYN on a fake hop, which
    /// now gets Time Exceeded like any probe. Kept so the indices stay.
    TcpNotSyn = "tcp_not_syn",
    /// Retired (issue 16): neither ICMP, UDP nor TCP on a fake hop, which
    /// now gets Time Exceeded like any probe. Kept so the indices stay.
    OtherProtocol = "other_protocol",
    /// The hop at this TTL is a blank line of the message.
    SilentHop = "silent_hop",
    /// An IPv6 extension header chain that cannot be walked: a hop-by-hop
    /// header that is not the first one, or an authentication header with
    /// a zero length.
    BadExtensionHeader = "bad_extension_header",
    /// Link-local ICMPv6 control traffic, left to the kernel: neighbour
    /// discovery and router messages (133–137, 141, 142, 148, 149),
    /// multicast listener discovery (130–132, 143) and multicast router
    /// discovery (151–153).
    NeighborDiscovery = "neighbor_discovery",
    /// IPv6 packet to a multicast address: a show's target is unicast.
    Multicast = "multicast",
    /// IPv4 header with options (source routes, record route, malformed
    /// lengths...): no traceroute client sends them by default, and a
    /// reply would quote whatever they hold.
    IpOptions = "ip_options",
    /// UDP length field below 8 or beyond the datagram: an impossible
    /// length.
    BadUdpLength = "bad_udp_length",
    /// Past the hops of a hop address, neither an echo request nor UDP: a
    /// router's interface answers nothing else.
    HopAddressOther = "hop_address_other",
    /// An echo request to a hop address whose reply would not fit the
    /// reply limit (576 bytes on IPv4, 1280 on IPv6), or a fragment of one.
    EchoTooLong = "echo_too_long",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a reply is, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ICMP Time Exceeded (v4 11/0, v6 3/0) from a fake hop.
    TimeExceeded,
    /// ICMP Destination Unreachable, port (v4 3/3, v6 1/4), from the target
    /// or from a hop address.
    PortUnreachable,
    /// ICMP echo reply (v4 0, v6 129) from a hop address.
    EchoReply,
}

impl ReplyKind {
    /// Stable snake_case name, used in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::TimeExceeded => "time_exceeded",
            ReplyKind::PortUnreachable => "port_unreachable",
            ReplyKind::EchoReply => "echo_reply",
        }
    }
}

/// The outcome for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reply bytes were written to `out[..len]`: a complete packet of the
    /// probe's family, IP header included (for a raw socket that takes the
    /// header from the caller: IP_HDRINCL on IPv4, IPPROTO_RAW on IPv6);
    /// `to` is the destination, of the same family. IPv4 replies are at
    /// most [`MAX_REPLY_V4`] bytes, IPv6 ones [`MAX_REPLY_V6`].
    Reply {
        len: usize,
        to: IpAddr,
        kind: ReplyKind,
        /// The message line that answers (1-based): `t` for hop `t`'s
        /// Time Exceeded, `N + 1` for the target's own answer (a hop
        /// address's own line). Round-trip delays are per line.
        line: u8,
    },
    /// Not ours to answer: the kernel answers it (`t > N` TCP, `t > N` ICMP
    /// echo, UDP to an open port on the target, other protocols past the
    /// fake hops).
    Kernel,
    /// Nothing to send.
    Drop(DropReason),
}

/// Decides what to answer to `packet`, an IPv4 or IPv6 packet starting at
/// its IP header (the version nibble picks the family; bytes past the IPv4
/// total length or the IPv6 payload length, such as Ethernet padding, are
/// ignored). A reply is written into `out`. Never panics, whatever the
/// bytes.
pub fn decide(
    packet: &[u8],
    table: &Table,
    ports: &impl PortTable,
    out: &mut [u8; MAX_REPLY],
) -> Decision {
    // Anything but version 6 goes to the IPv4 parser, which reports short
    // packets and other versions as it always has.
    let verdict = match packet.first() {
        Some(first) if first >> 4 == 6 => classify_v6(packet, table, ports),
        _ => classify_v4(packet, table, ports),
    };
    match verdict {
        Ok(Verdict::Kernel) => Decision::Kernel,
        Ok(Verdict::Answer(Answer::V4(answer))) => Decision::Reply {
            len: write_reply_v4(&answer, out),
            to: IpAddr::V4(answer.to),
            kind: answer.kind,
            line: answer.line,
        },
        Ok(Verdict::Answer(Answer::V6(answer))) => Decision::Reply {
            len: write_reply_v6(&answer, out),
            to: IpAddr::V6(answer.to),
            kind: answer.kind,
            line: answer.line,
        },
        Err(reason) => Decision::Drop(reason),
    }
}

enum Verdict<'a> {
    Kernel,
    Answer(Answer<'a>),
}

/// Everything a reply is made of.
enum Answer<'a> {
    V4(AnswerV4<'a>),
    V6(AnswerV6<'a>),
}

struct AnswerV4<'a> {
    kind: ReplyKind,
    line: u8,
    from: Ipv4Addr,
    to: Ipv4Addr,
    ttl: u8,
    identification: u16,
    /// The probe, exactly its IP total length.
    probe: &'a [u8],
    /// The probe's transport bytes (an echo request, for an echo reply).
    transport: &'a [u8],
    /// How an error's quote differs from the probe (behind a 1:1 NAT).
    requote: Option<Requote>,
}

struct AnswerV6<'a> {
    kind: ReplyKind,
    line: u8,
    from: Ipv6Addr,
    to: Ipv6Addr,
    hop_limit: u8,
    /// The probe from its IPv6 header on, exactly its payload length.
    probe: &'a [u8],
    /// The upper-layer bytes (an echo request, for an echo reply), the
    /// end of `probe`.
    transport: &'a [u8],
    /// How an error's quote differs from the probe (behind a 1:1 NAT).
    requote: Option<Requote>,
}

/// An error's quote behind a 1:1 NAT: the probe with `public`, the address
/// the client sent to, as its destination ([`requote`]).
struct Requote {
    /// Of the probe's family.
    public: IpAddr,
    /// Where the probe's upper-layer header starts.
    transport_at: usize,
    /// The upper-layer protocol.
    protocol: IpNumber,
}

/// Transport protocols a probe can use, after the checks that do not depend
/// on the TTL. At a fake hop every one gets Time Exceeded; past the hops
/// only UDP to a closed port is the responder's to answer.
enum Probe {
    Echo,
    Udp {
        port: u16,
    },
    /// TCP with any flags (a SYN, an ACK probe, a real connection's
    /// segment past the hops).
    Tcp,
    /// Any other protocol (UDP-Lite, DCCP, SCTP, GRE, ESP, unassigned...):
    /// past the hops the kernel gives its normal answer.
    Other,
}

/// What the show says about a probe, whatever its family.
enum Step {
    Kernel,
    Answer {
        kind: ReplyKind,
        from: IpAddr,
        ttl: u8,
        line: u8,
    },
}

fn classify_v4<'a>(
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
    let entry = table
        .entry(IpAddr::V4(target))
        .ok_or(DropReason::NotForTarget)?;
    if ip.fragments_offset().value() != 0 {
        return Err(DropReason::Fragment);
    }
    let ttl = ip.ttl();
    if ttl == 0 {
        return Err(DropReason::TtlZero);
    }
    let source = ip.source_addr();
    if is_bad_source_v4(source) {
        return Err(DropReason::BadSource);
    }
    if header_len > Ipv4Header::MIN_LEN {
        return Err(DropReason::IpOptions);
    }
    let transport = probe.get(header_len..).ok_or(DropReason::Truncated)?;

    let kind = match ip.protocol() {
        IpNumber::ICMP => icmpv4_probe(transport)?,
        IpNumber::UDP => udp_probe(transport, !ip.more_fragments())?,
        IpNumber::TCP => tcp_probe(transport)?,
        _ => other_probe(transport)?,
    };

    let step = follow_show(ttl, kind, IpAddr::V4(target), entry, ports)?;
    if matches!(
        step,
        Step::Answer {
            kind: ReplyKind::EchoReply,
            ..
        }
    ) && (ip.more_fragments() || Ipv4Header::MIN_LEN + transport.len() > MAX_REPLY_V4)
    {
        return Err(DropReason::EchoTooLong);
    }
    match step {
        Step::Kernel => Ok(Verdict::Kernel),
        Step::Answer {
            kind,
            from: IpAddr::V4(from),
            ttl,
            line,
        } => Ok(Verdict::Answer(Answer::V4(AnswerV4 {
            kind,
            line,
            from,
            to: source,
            ttl,
            identification: ip.identification(),
            probe,
            transport,
            requote: entry.public.map(|public| Requote {
                public,
                transport_at: header_len,
                protocol: ip.protocol(),
            }),
        }))),
        // Table::new keeps only hop addresses of the target's family.
        Step::Answer { .. } => Err(DropReason::SilentHop),
    }
}

fn classify_v6<'a>(
    packet: &'a [u8],
    table: &Table,
    ports: &impl PortTable,
) -> Result<Verdict<'a>, DropReason> {
    let ip = Ipv6HeaderSlice::from_slice(packet).map_err(|e| match e {
        err::ipv6::HeaderSliceError::Len(_) => DropReason::Truncated,
        err::ipv6::HeaderSliceError::Content(err::ipv6::HeaderError::UnexpectedVersion {
            ..
        }) => DropReason::BadVersion,
    })?;
    // The payload length counts the extension headers. A zero length with
    // bytes after the header would be a jumbogram, which no link we serve
    // carries: the packet then simply ends at its header.
    let total_len = Ipv6Header::LEN + usize::from(ip.payload_length());
    let probe = packet.get(..total_len).ok_or(DropReason::Truncated)?;
    // Before the table, so that even a show naming a multicast target never
    // answers a group; then the same order as IPv4.
    let target = ip.destination_addr();
    if target.is_multicast() {
        return Err(DropReason::Multicast);
    }
    let entry = table
        .entry(IpAddr::V6(target))
        .ok_or(DropReason::NotForTarget)?;
    let payload = probe.get(Ipv6Header::LEN..).ok_or(DropReason::Truncated)?;
    let UpperLayer {
        protocol,
        bytes: transport,
        fragment,
    } = upper_layer(ip.next_header(), payload)?;
    let hop_limit = ip.hop_limit();
    if hop_limit == 0 {
        return Err(DropReason::TtlZero);
    }
    let source = ip.source_addr();
    if is_bad_source_v6(source) {
        return Err(DropReason::BadSource);
    }

    let kind = match protocol {
        IpNumber::IPV6_ICMP => icmpv6_probe(transport)?,
        // A first fragment's length covers the datagram, not the fragment.
        IpNumber::UDP => udp_probe(transport, false)?,
        IpNumber::TCP => tcp_probe(transport)?,
        _ => other_probe(transport)?,
    };

    let step = follow_show(hop_limit, kind, IpAddr::V6(target), entry, ports)?;
    // An echo behind a fragment header is one piece of a longer request.
    if matches!(
        step,
        Step::Answer {
            kind: ReplyKind::EchoReply,
            ..
        }
    ) && (fragment || Ipv6Header::LEN + transport.len() > MAX_REPLY_V6)
    {
        return Err(DropReason::EchoTooLong);
    }
    match step {
        Step::Kernel => Ok(Verdict::Kernel),
        Step::Answer {
            kind,
            from: IpAddr::V6(from),
            ttl,
            line,
        } => Ok(Verdict::Answer(Answer::V6(AnswerV6 {
            kind,
            line,
            from,
            to: source,
            hop_limit: ttl,
            probe,
            transport,
            requote: entry.public.map(|public| Requote {
                public,
                transport_at: probe.len() - transport.len(),
                protocol,
            }),
        }))),
        // Table::new keeps only hop addresses of the target's family.
        Step::Answer { .. } => Err(DropReason::SilentHop),
    }
}

/// The show's rule for a probe that arrived with TTL (hop limit) `ttl >= 1`
/// for `target` (a show's target or a hop address), whose entry is `entry`.
fn follow_show(
    ttl: u8,
    kind: Probe,
    target: IpAddr,
    entry: &Entry,
    ports: &impl PortTable,
) -> Result<Step, DropReason> {
    let hops = &*entry.hops;
    // hops[t - 1] exists exactly when 1 <= t <= N.
    match usize::from(ttl).checked_sub(1).and_then(|i| hops.get(i)) {
        // A router answers a probe whose TTL runs out whatever its
        // protocol (DESIGN.md §8): UDP-Lite, DCCP, SCTP, GRE, TCP with any
        // flags... Only what the parsers refused before (ICMP errors and
        // queries, later fragments, malformed headers) is never answered.
        Some(hop) => {
            let from = hop.ok_or(DropReason::SilentHop)?;
            // Decreases with t so tracepath sees a symmetric path.
            let reply_ttl = REPLY_BASE_TTL.saturating_sub(ttl - 1).max(1);
            Ok(Step::Answer {
                kind: ReplyKind::TimeExceeded,
                from,
                ttl: reply_ttl,
                line: ttl,
            })
        }
        None => {
            // Keeps decreasing after the last fake hop.
            let reply_ttl = usize::from(REPLY_BASE_TTL)
                .saturating_sub(hops.len())
                .max(1);
            let ttl = u8::try_from(reply_ttl).unwrap_or(REPLY_BASE_TTL);
            // The table holds at most u8::MAX - 1 hops where it matters
            // (63); a longer one saturates.
            let line = u8::try_from(hops.len() + 1).unwrap_or(u8::MAX);
            let answer = |kind| {
                Ok(Step::Answer {
                    kind,
                    from: target,
                    ttl,
                    line,
                })
            };
            match kind {
                // A hop address is a router's interface: the kernel never
                // sees its traffic, and it has no UDP service.
                Probe::Echo if entry.interface => answer(ReplyKind::EchoReply),
                Probe::Udp { .. } if entry.interface => answer(ReplyKind::PortUnreachable),
                _ if entry.interface => Err(DropReason::HopAddressOther),
                Probe::Udp { port } if !ports.udp_open(target, port) => {
                    answer(ReplyKind::PortUnreachable)
                }
                _ => Ok(Step::Kernel),
            }
        }
    }
}

/// A UDP datagram: a probe to any port. Its length field must cover at
/// least the header and, when the datagram is `whole` (not the first
/// fragment of a longer one), no more than the bytes that came.
fn udp_probe(transport: &[u8], whole: bool) -> Result<Probe, DropReason> {
    let udp = UdpHeaderSlice::from_slice(transport).map_err(|_| DropReason::Truncated)?;
    let length = usize::from(udp.length());
    if length < etherparse::UdpHeader::LEN || (whole && length > transport.len()) {
        return Err(DropReason::BadUdpLength);
    }
    Ok(Probe::Udp {
        port: udp.destination_port(),
    })
}

/// Any other protocol: a probe when it carries the 8 bytes a reply must
/// quote (DESIGN.md §2). A shorter one would also make the reply more than
/// twice its size (28 or 48 bytes of headers around it): no amplification.
fn other_probe(transport: &[u8]) -> Result<Probe, DropReason> {
    if transport.len() < 8 {
        return Err(DropReason::Truncated);
    }
    Ok(Probe::Other)
}

/// A TCP segment with a well-formed header, whatever its flags: a tracer
/// may probe with SYN, ACK, FIN, or none at all.
fn tcp_probe(transport: &[u8]) -> Result<Probe, DropReason> {
    TcpHeaderSlice::from_slice(transport).map_err(|e| match e {
        err::tcp::HeaderSliceError::Len(_) => DropReason::Truncated,
        err::tcp::HeaderSliceError::Content(_) => DropReason::BadTcpHeader,
    })?;
    Ok(Probe::Tcp)
}

/// Sorts an ICMP message: echo requests are probes, everything else is
/// dropped whatever the TTL.
fn icmpv4_probe(transport: &[u8]) -> Result<Probe, DropReason> {
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

/// Sorts an ICMPv6 message: echo requests are probes, everything else is
/// dropped whatever the hop limit. The type says whether a message is an
/// error (0–127) or informational (128–255, RFC 4443 2.1), so unknown types
/// need no guess.
fn icmpv6_probe(transport: &[u8]) -> Result<Probe, DropReason> {
    let icmp = Icmpv6Slice::from_slice(transport).map_err(|_| DropReason::Truncated)?;
    match icmp.type_u8() {
        icmpv6::TYPE_ECHO_REQUEST => Ok(Probe::Echo),
        0..=127 => Err(DropReason::IcmpError),
        icmpv6::TYPE_MULTICAST_LISTENER_QUERY
        | icmpv6::TYPE_MULTICAST_LISTENER_REPORT
        | icmpv6::TYPE_MULTICAST_LISTENER_REDUCTION
        | icmpv6::TYPE_ROUTER_SOLICITATION
        | icmpv6::TYPE_ROUTER_ADVERTISEMENT
        | icmpv6::TYPE_NEIGHBOR_SOLICITATION
        | icmpv6::TYPE_NEIGHBOR_ADVERTISEMENT
        | icmpv6::TYPE_REDIRECT_MESSAGE
        | icmpv6::TYPE_INVERSE_NEIGHBOR_DISCOVERY_SOLICITATION
        | icmpv6::TYPE_INVERSE_NEIGHBOR_DISCOVERY_ADVERTISEMENT
        | TYPE_MLD2_REPORT
        | TYPE_CERTIFICATION_PATH_SOLICITATION
        | TYPE_CERTIFICATION_PATH_ADVERTISEMENT
        | TYPE_MULTICAST_ROUTER_ADVERTISEMENT
        | TYPE_MULTICAST_ROUTER_SOLICITATION
        | TYPE_MULTICAST_ROUTER_TERMINATION => Err(DropReason::NeighborDiscovery),
        _ => Err(DropReason::IcmpNotEcho),
    }
}

/// Link-local ICMPv6 control messages etherparse has no constant for:
/// MLDv2 report (RFC 3810), SEND certification path (RFC 3971), multicast
/// router discovery (RFC 4286).
const TYPE_MLD2_REPORT: u8 = 143;
const TYPE_CERTIFICATION_PATH_SOLICITATION: u8 = 148;
const TYPE_CERTIFICATION_PATH_ADVERTISEMENT: u8 = 149;
const TYPE_MULTICAST_ROUTER_ADVERTISEMENT: u8 = 151;
const TYPE_MULTICAST_ROUTER_SOLICITATION: u8 = 152;
const TYPE_MULTICAST_ROUTER_TERMINATION: u8 = 153;

/// Walks the extension headers of an IPv6 packet (`payload`: everything
/// after the IPv6 header, `next` the header's next header) and returns the
/// upper-layer protocol and its bytes. A protocol that is not an extension
/// header etherparse knows (ESP, no next header, ...) ends the walk and is
/// returned as is.
///
/// The walk is ours, one etherparse slice per header, rather than
/// `Ipv6ExtensionsSlice`'s: it must stop at the fragment header of a later
/// fragment, whose following bytes are the middle of the datagram, not
/// headers.
fn upper_layer(mut next: IpNumber, payload: &[u8]) -> Result<UpperLayer<'_>, DropReason> {
    let mut rest = payload;
    let mut first = true;
    let mut fragment = false;
    loop {
        let (len, following) = match next {
            // RFC 8200 4.1: only right after the IPv6 header.
            ip_number::IPV6_HOP_BY_HOP if !first => return Err(DropReason::BadExtensionHeader),
            ip_number::IPV6_HOP_BY_HOP | ip_number::IPV6_DEST_OPTIONS | ip_number::IPV6_ROUTE => {
                let header =
                    Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| DropReason::Truncated)?;
                (header.slice().len(), header.next_header())
            }
            ip_number::IPV6_FRAG => {
                let header =
                    Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| DropReason::Truncated)?;
                if fragment_offset(&header) != 0 {
                    return Err(DropReason::Fragment);
                }
                fragment = true;
                (header.slice().len(), header.next_header())
            }
            ip_number::AUTH => {
                let header = IpAuthHeaderSlice::from_slice(rest).map_err(|e| match e {
                    err::ip_auth::HeaderSliceError::Len(_) => DropReason::Truncated,
                    err::ip_auth::HeaderSliceError::Content(_) => DropReason::BadExtensionHeader,
                })?;
                (header.slice().len(), header.next_header())
            }
            _ => {
                return Ok(UpperLayer {
                    protocol: next,
                    bytes: rest,
                    fragment,
                })
            }
        };
        rest = rest.get(len..).ok_or(DropReason::Truncated)?;
        next = following;
        first = false;
    }
}

/// The upper layer of an IPv6 packet.
struct UpperLayer<'a> {
    protocol: IpNumber,
    bytes: &'a [u8],
    /// Behind a fragment header (of a first fragment).
    fragment: bool,
}

/// Fragment offset of an IPv6 fragment header, in 8-byte units: the top 13
/// bits of its bytes 2..4 (RFC 8200 4.5). etherparse 0.16 reads this field
/// with the wrong bit layout (`fragment_offset()` of `00 01`, a first
/// fragment, is 1: JulianSchmid/etherparse#150, fixed in 0.20), so it is
/// read here from the header etherparse checked.
fn fragment_offset(header: &Ipv6FragmentHeaderSlice<'_>) -> u16 {
    match header.slice() {
        [_, _, high, low, ..] => u16::from_be_bytes([*high, *low]) >> 3,
        _ => 0,
    }
}

/// IPv4 sources no reply can or may go to.
fn is_bad_source_v4(source: Ipv4Addr) -> bool {
    let first = source.octets()[0];
    // 0.0.0.0/8 ("this network", unspecified included) and 240.0.0.0/4
    // (class E, limited broadcast included).
    first == 0 || first >= 240 || source.is_loopback() || source.is_multicast()
}

/// IPv6 sources no reply can or may go to. Link-local sources are fine: the
/// reply goes back out of the interface the probe came in on.
fn is_bad_source_v6(source: Ipv6Addr) -> bool {
    source.is_unspecified()
        || source.is_loopback()
        || source.is_multicast()
        || source.to_ipv4_mapped().is_some()
}

/// The identifier and sequence number of an echo request (its ICMP bytes
/// 4..8), for the reply.
fn echo_header(transport: &[u8]) -> IcmpEchoHeader {
    match transport {
        [_, _, _, _, a, b, c, d, ..] => IcmpEchoHeader {
            id: u16::from_be_bytes([*a, *b]),
            seq: u16::from_be_bytes([*c, *d]),
        },
        _ => IcmpEchoHeader { id: 0, seq: 0 },
    }
}

/// Writes an IPv4 reply into `out` and returns its length: IP header, ICMP
/// header, then the probe quoted byte for byte up to `MAX_REPLY_V4` (an
/// echo reply: the request's data, whose size decide checked). An error's
/// quote carries the probe's public destination when the table knows one
/// ([`requote`]).
fn write_reply_v4(answer: &AnswerV4<'_>, out: &mut [u8; MAX_REPLY]) -> usize {
    let (icmp_type, quote) = match answer.kind {
        ReplyKind::TimeExceeded => (
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
            &answer.probe[..answer.probe.len().min(MAX_QUOTE_V4)],
        ),
        ReplyKind::PortUnreachable => (
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
            &answer.probe[..answer.probe.len().min(MAX_QUOTE_V4)],
        ),
        ReplyKind::EchoReply => {
            let data = answer.transport.get(8..).unwrap_or_default();
            (
                Icmpv4Type::EchoReply(echo_header(answer.transport)),
                &data[..data.len().min(MAX_QUOTE_V4)],
            )
        }
    };
    let len = REPLY_HEADERS_LEN_V4 + quote.len();
    let (headers, body) = out.split_at_mut(REPLY_HEADERS_LEN_V4);
    let body = write_quote(body, quote, answer.kind, answer.requote.as_ref());
    // Errors leave bytes 4..8 zero: no RFC 4884 length, nothing unused set.
    let icmp = Icmpv4Header::with_checksum(icmp_type, body).to_bytes();
    let mut ip = Ipv4Header {
        // len <= MAX_REPLY_V4, far below u16::MAX.
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

    let (ip_out, icmp_out) = headers.split_at_mut(ip.len());
    ip_out.copy_from_slice(&ip);
    icmp_out.copy_from_slice(&icmp);
    len
}

/// Writes an IPv6 reply into `out` and returns its length: IPv6 header,
/// ICMPv6 header, then the probe quoted byte for byte up to `MAX_REPLY_V6`;
/// an error's quote carries the probe's public destination when the table
/// knows one ([`requote`]).
fn write_reply_v6(answer: &AnswerV6<'_>, out: &mut [u8; MAX_REPLY]) -> usize {
    let (icmp_type, quote) = match answer.kind {
        ReplyKind::TimeExceeded => (
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
            &answer.probe[..answer.probe.len().min(MAX_QUOTE_V6)],
        ),
        ReplyKind::PortUnreachable => (
            Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
            &answer.probe[..answer.probe.len().min(MAX_QUOTE_V6)],
        ),
        ReplyKind::EchoReply => {
            let data = answer.transport.get(8..).unwrap_or_default();
            (
                Icmpv6Type::EchoReply(echo_header(answer.transport)),
                &data[..data.len().min(MAX_QUOTE_V6)],
            )
        }
    };
    let (headers, body) = out.split_at_mut(REPLY_HEADERS_LEN_V6);
    let body = write_quote(body, quote, answer.kind, answer.requote.as_ref());
    let from = answer.from.octets();
    let to = answer.to.octets();
    // Both types leave bytes 4..8 zero (unused). The checksum covers the
    // pseudo-header; it only fails for a message over 4 GiB, and the quote
    // is at most MAX_QUOTE_V6 bytes.
    let icmp = Icmpv6Header::with_checksum(icmp_type, from, to, body)
        .unwrap_or_else(|_| Icmpv6Header::new(icmp_type))
        .to_bytes();
    let payload_len = icmp.len() + quote.len();
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        // payload_len <= MAX_REPLY_V6, far below u16::MAX.
        payload_length: payload_len as u16,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: answer.hop_limit,
        source: from,
        destination: to,
    }
    .to_bytes();

    let (ip_out, icmp_out) = headers.split_at_mut(ip.len());
    ip_out.copy_from_slice(&ip);
    icmp_out.copy_from_slice(&icmp);
    ip.len() + payload_len
}

/// Where the checksum of an upper-layer header that covers the IP
/// pseudo-header (and so the destination address) sits in that header, and
/// whether a zero there means "no checksum" (UDP, UDP-Lite): the fields a
/// NAT's address change must adjust. ICMPv4, SCTP (CRC32c), GRE, ESP...
/// have none.
pub fn pseudo_header_checksum(protocol: IpNumber, v6: bool) -> Option<(usize, bool)> {
    match protocol {
        IpNumber::TCP => Some((16, false)),
        IpNumber::UDP | IpNumber::UDP_LITE => Some((6, true)),
        IpNumber::DCCP => Some((6, false)),
        IpNumber::IPV6_ICMP if v6 => Some((2, false)),
        IpNumber::MOBILITY_HEADER if v6 => Some((4, false)),
        _ => None,
    }
}

/// RFC 1624 (eqn. 3) update of the Internet checksum at `bytes[at..at +
/// 2]` for a covered field that changed from `old` to `new` (of equal,
/// even length): `HC' = ~(~HC + ~m + m')`. With `zero_is_none` (UDP) a
/// zero checksum, "none", stays zero, and a result of zero is written as
/// all ones. A checksum beyond `bytes` is left alone.
pub fn adjust_checksum(bytes: &mut [u8], at: usize, old: &[u8], new: &[u8], zero_is_none: bool) {
    let Some(field) = bytes.get_mut(at..at + 2) else {
        return;
    };
    let check = u16::from_be_bytes([field[0], field[1]]);
    if zero_is_none && check == 0 {
        return;
    }
    let mut sum = u32::from(!check);
    for (old, new) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([old[0], old[1]]));
        sum += u32::from(u16::from_be_bytes([new[0], new[1]]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut result = !(sum as u16);
    if zero_is_none && result == 0 {
        result = 0xffff;
    }
    field.copy_from_slice(&result.to_be_bytes());
}

/// Copies `quote` to the start of `body` (a reply's bytes after its
/// headers) and returns that part; an error's quote gets the probe's
/// public destination when there is one ([`requote`]).
fn write_quote<'o>(
    body: &'o mut [u8],
    quote: &[u8],
    kind: ReplyKind,
    how: Option<&Requote>,
) -> &'o mut [u8] {
    let body = &mut body[..quote.len()];
    body.copy_from_slice(quote);
    if let (Some(how), ReplyKind::TimeExceeded | ReplyKind::PortUnreachable) = (how, kind) {
        requote(body, how);
    }
    body
}

/// Gives the quoted probe `quote` (the start of the probe as it arrived)
/// the public destination of `how`, and adjusts the checksums that cover
/// it: the IPv4 header's, and the upper layer's (see
/// [`pseudo_header_checksum`]) when the quote reaches it. A 1:1 NAT
/// changed exactly these on the way in, so the quote becomes the probe as
/// the client sent it, byte for byte.
fn requote(quote: &mut [u8], how: &Requote) {
    let (v4, v6);
    // The new destination, where the IP header holds it and (IPv4) its
    // checksum.
    let (public, destination, ip_checksum): (&[u8], _, _) = match how.public {
        IpAddr::V4(a) => {
            v4 = a.octets();
            (&v4, 16..20, Some(10))
        }
        IpAddr::V6(a) => {
            v6 = a.octets();
            (&v6, 24..40, None)
        }
    };
    let mut old = [0u8; 16];
    let Some(old) = old.get_mut(..public.len()) else {
        return;
    };
    match quote.get_mut(destination) {
        Some(field) if field.len() == public.len() => {
            old.copy_from_slice(field);
            field.copy_from_slice(public);
        }
        _ => return,
    }
    if let Some(at) = ip_checksum {
        adjust_checksum(quote, at, old, public, false);
    }
    if let Some((at, zero_is_none)) = pseudo_header_checksum(how.protocol, how.public.is_ipv6()) {
        adjust_checksum(quote, how.transport_at + at, old, public, zero_is_none);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responder::fixture::{fix_ipv4_checksum, hex, icmpv6_sum, ones_complement};
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const HOP1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const HOP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const HOP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
    /// A port bound on the target.
    const OPEN_PORT: u16 = 53;

    const V6_CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
    const V6_TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const V6_HOP1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
    const V6_HOP2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12);
    const V6_HOP4: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x13);

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

    /// A table entry from addresses of one family.
    fn entry<A: Into<IpAddr>>(target: A, hops: Vec<Option<A>>) -> (IpAddr, Vec<Option<IpAddr>>) {
        let hops = hops.into_iter().map(|hop| hop.map(Into::into)).collect();
        (target.into(), hops)
    }

    /// A table of IPv4 shows, from IPv4 addresses.
    fn table_v4(entries: impl IntoIterator<Item = (Ipv4Addr, Vec<Option<Ipv4Addr>>)>) -> Table {
        Table::new(
            entries
                .into_iter()
                .map(|(target, hops)| entry(target, hops)),
        )
    }

    /// One show per family, each with hop 1 and 2 named, hop 3 silent, hop
    /// 4 named: N = 4.
    fn table() -> Table {
        Table::new([
            entry(TARGET, vec![Some(HOP1), Some(HOP2), None, Some(HOP4)]),
            entry(
                V6_TARGET,
                vec![Some(V6_HOP1), Some(V6_HOP2), None, Some(V6_HOP4)],
            ),
        ])
    }

    fn ports(addr: IpAddr, port: u16) -> bool {
        (addr == IpAddr::V4(TARGET) || addr == IpAddr::V6(V6_TARGET)) && port == OPEN_PORT
    }

    fn tracepath_probe() -> Vec<u8> {
        let mut probe = hex(TRACEPATH_HEAD);
        probe.resize(1500, 0);
        probe
    }

    /// A fixture with some header bytes replaced, checksum fixed.
    fn edited(fixture: &str, edits: &[(usize, u8)]) -> Vec<u8> {
        let mut packet = hex(fixture);
        for &(at, value) in edits {
            packet[at] = value;
        }
        fix_ipv4_checksum(&mut packet);
        packet
    }

    fn run(packet: &[u8]) -> (Decision, [u8; MAX_REPLY]) {
        let mut out = [0u8; MAX_REPLY];
        let decision = decide(packet, &table(), &ports, &mut out);
        (decision, out)
    }

    /// Asserts the reply is well formed and quotes `probe`; returns its bytes.
    fn check_reply(probe: &[u8], decision: Decision, out: &[u8; MAX_REPLY]) -> Vec<u8> {
        if probe[0] >> 4 == 6 {
            check_reply_v6(probe, decision, out)
        } else {
            check_reply_v4(probe, decision, out)
        }
    }

    fn check_reply_v4(probe: &[u8], decision: Decision, out: &[u8; MAX_REPLY]) -> Vec<u8> {
        let Decision::Reply { len, to, kind, .. } = decision else {
            panic!("expected a reply, got {decision:?}");
        };
        assert!(len <= MAX_REPLY_V4);
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
        assert_eq!(to, IpAddr::V4(probe_ip.source_addr()));

        let icmp = Icmpv4Slice::from_slice(ip_payload(reply)).expect("reply ICMP parses");
        let expected_type = match kind {
            ReplyKind::TimeExceeded => (11, 0),
            ReplyKind::PortUnreachable => (3, 3),
            ReplyKind::EchoReply => panic!("echo replies have tests of their own"),
        };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), expected_type);
        assert_eq!(icmp.bytes5to8(), [0; 4]);
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload())
        );
        assert_eq!(ones_complement(icmp.slice()), 0);
        if kind == ReplyKind::PortUnreachable {
            assert_eq!(ip.source_addr(), probe_ip.destination_addr());
        }

        let probe_len = usize::from(probe_ip.total_len());
        let quote = icmp.payload();
        assert_eq!(quote.len(), probe_len.min(MAX_QUOTE_V4));
        assert_eq!(quote, &probe[..quote.len()]);
        reply.to_vec()
    }

    fn ip_payload(reply: &[u8]) -> &[u8] {
        &reply[Ipv4Header::MIN_LEN..]
    }

    fn check_reply_v6(probe: &[u8], decision: Decision, out: &[u8; MAX_REPLY]) -> Vec<u8> {
        let Decision::Reply { len, to, kind, .. } = decision else {
            panic!("expected a reply, got {decision:?}");
        };
        assert!(len <= MAX_REPLY_V6);
        let reply = &out[..len];
        etherparse::SlicedPacket::from_ip(reply).expect("reply parses");
        let ip = Ipv6HeaderSlice::from_slice(reply).expect("reply IPv6 header parses");
        assert_eq!(Ipv6Header::LEN + usize::from(ip.payload_length()), len);
        assert_eq!(ip.traffic_class(), 0);
        assert_eq!(ip.flow_label(), Ipv6FlowLabel::ZERO);
        assert_eq!(ip.next_header(), IpNumber::IPV6_ICMP);
        assert!(ip.hop_limit() >= 1);
        let probe_ip = Ipv6HeaderSlice::from_slice(probe).expect("probe IPv6 header parses");
        assert_eq!(ip.destination_addr(), probe_ip.source_addr());
        assert_eq!(to, IpAddr::V6(probe_ip.source_addr()));

        let icmp = Icmpv6Slice::from_slice(&reply[Ipv6Header::LEN..]).expect("reply ICMPv6 parses");
        let expected_type = match kind {
            ReplyKind::TimeExceeded => (3, 0),
            ReplyKind::PortUnreachable => (1, 4),
            ReplyKind::EchoReply => panic!("echo replies have tests of their own"),
        };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), expected_type);
        assert_eq!(icmp.bytes5to8(), [0; 4]);
        assert!(icmp.is_checksum_valid(ip.source(), ip.destination()));
        // The same, by hand: pseudo-header (RFC 8200 8.1) plus message sum
        // to all ones.
        assert_eq!(icmpv6_sum(ip.source(), ip.destination(), icmp.slice()), 0);
        if kind == ReplyKind::PortUnreachable {
            assert_eq!(ip.source_addr(), probe_ip.destination_addr());
        }

        let probe_len = Ipv6Header::LEN + usize::from(probe_ip.payload_length());
        let quote = icmp.payload();
        assert_eq!(quote.len(), probe_len.min(MAX_QUOTE_V6));
        assert_eq!(quote, &probe[..quote.len()]);
        reply.to_vec()
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
                to: IpAddr::V4(CLIENT),
                kind: ReplyKind::TimeExceeded,
                line: 1,
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
                to: IpAddr::V4(CLIENT),
                kind: ReplyKind::PortUnreachable,
                line: 5,
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
            &reply[..REPLY_HEADERS_LEN_V4],
            &hex("450002403a5b00004001b130c612000bc6120102 0b00880a00000000")[..]
        );
        assert_eq!(&reply[REPLY_HEADERS_LEN_V4..], &probe[..548]);
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
        fix_ipv4_checksum(&mut probe);
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
        let long = table_v4([(TARGET, vec![Some(HOP1); 100])]);
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
        let bare = table_v4([(TARGET, vec![])]);
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
        let table = table_v4([
            (TARGET, vec![Some(HOP1)]),
            (other, vec![None]),
            (TARGET, vec![Some(HOP2), None]),
        ]);
        assert!(!table.is_empty());
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.hops(TARGET.into()),
            Some(&[Some(IpAddr::V4(HOP2)), None][..])
        );
        assert_eq!(table.hops(other.into()), Some(&[None][..]));
        assert_eq!(table.hops(CLIENT.into()), None);
        assert_eq!(
            table.targets().collect::<Vec<_>>(),
            vec![IpAddr::V4(TARGET), IpAddr::V4(other)]
        );
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

    /// An IPv4 UDP probe to the show's target at TTL 1, as a builder makes
    /// it, with `edit` applied and the header checksum fixed.
    fn edited_udp_probe(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ipv4([198, 19, 254, 1], [198, 19, 0, 1], 1)
            .udp(40000, 33434)
            .write(&mut p, &[0u8; 12])
            .unwrap();
        edit(&mut p);
        let ihl = usize::from(p[0] & 0x0f) * 4;
        p[10] = 0;
        p[11] = 0;
        let mut sum: u32 = p[..ihl]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        p
    }

    fn new_reasons_table() -> Table {
        Table::new([(
            IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)),
            vec![Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))],
        )])
    }

    #[test]
    fn drop_ip_options() {
        // Record route (7), length 7, pointer 4, one empty slot, then NOP.
        let p = edited_udp_probe(|p| {
            p.splice(20..20, [7u8, 7, 4, 0, 0, 0, 0, 1]);
            p[0] = 0x47;
            let len = p.len() as u16;
            p[2..4].copy_from_slice(&len.to_be_bytes());
        });
        let mut out = [0u8; MAX_REPLY];
        let d = decide(
            &p,
            &new_reasons_table(),
            &|_: IpAddr, _: u16| false,
            &mut out,
        );
        assert_eq!(d, Decision::Drop(DropReason::IpOptions));
    }

    #[test]
    fn drop_bad_udp_length() {
        let table = new_reasons_table();
        let mut out = [0u8; MAX_REPLY];
        for length in [0u16, 7, 1024] {
            let p = edited_udp_probe(|p| p[24..26].copy_from_slice(&length.to_be_bytes()));
            let d = decide(&p, &table, &|_: IpAddr, _: u16| false, &mut out);
            assert_eq!(
                d,
                Decision::Drop(DropReason::BadUdpLength),
                "length {length}"
            );
        }
        let fine = edited_udp_probe(|_| {});
        let d = decide(&fine, &table, &|_: IpAddr, _: u16| false, &mut out);
        assert!(matches!(d, Decision::Reply { .. }), "{d:?}");
    }

    #[test]
    fn drop_reason_indices_and_names_are_stable() {
        // Counters and logs keep these across versions: append only.
        let expected = [
            "truncated",
            "bad_version",
            "bad_header_length",
            "bad_total_length",
            "bad_checksum",
            "not_for_target",
            "fragment",
            "ttl_zero",
            "bad_source",
            "icmp_error",
            "icmp_not_echo",
            "bad_tcp_header",
            "tcp_not_syn",
            "other_protocol",
            "silent_hop",
            "bad_extension_header",
            "neighbor_discovery",
            "multicast",
            "ip_options",
            "bad_udp_length",
            "hop_address_other",
            "echo_too_long",
        ];
        let names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names, expected);
        assert_eq!(DropReason::SilentHop.index(), 14);
        assert_eq!(DropReason::Multicast.index(), 17);
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
            fix_ipv4_checksum(&mut packet);
            assert_drop(&packet, DropReason::Truncated);
        }
        // TCP data offset 15 (60 bytes) in a 40-byte segment.
        assert_drop(&edited(TCP_TTL4, &[(32, 0xf0)]), DropReason::Truncated);
    }

    #[test]
    fn drop_bad_version() {
        // Version 6 is IPv6 now; every other version is refused.
        for first in [0x05, 0x55, 0x75, 0xf5] {
            assert_drop(&edited(UDP_TTL1, &[(0, first)]), DropReason::BadVersion);
        }
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
    fn drop_silent_hop() {
        // Hop 3 is a blank line, whatever the protocol.
        for fixture in [UDP_TTL1, ICMP_TTL2, TCP_TTL4] {
            assert_drop(&edited(fixture, &[(8, 3)]), DropReason::SilentHop);
        }
    }

    // --- IPv6 ----------------------------------------------------------------

    // Real packets, captured with a packet socket on a veth pair in a network
    // namespace (Linux 6.x): probes from 2001:db8:1::2 to 2001:db8::10 sent
    // by traceroute 2.1 and tracepath, or by a UDP socket with a sticky
    // extension header (IPV6_DSTOPTS, IPV6_HOPOPTS) or fragmentation on
    // (IPV6_PMTUDISC_DONT); neighbour discovery and MLD as the kernel sent
    // them. Byte offsets used below: payload length 4..6, next header 6,
    // hop limit 7, source 8..24, destination 24..40, then the next header.

    /// traceroute -6: UDP to 33434, 80 bytes, payload "@A..._", hop limit 1.
    const V6_UDP_HL1: &str = "6001395700281101\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        b4c0829a00285bbe\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// traceroute -6 -I: echo request id 0x5cf0 seq 1, 80 bytes, hop limit 2.
    const V6_ICMP_HL2: &str = "6008932b00283a02\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        800051a15cf00001\
        48494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364656667";
    /// traceroute -6 -T: SYN to port 80 with MSS, SACK, timestamps, window
    /// scale; hop limit 4.
    const V6_TCP_HL4: &str = "600835e800280604\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        dcf700508357d7be00000000a0021680af550000\
        020405a00402080a705f7e010000000001030302";
    /// traceroute -6 UDP probe past the fake hops, hop limit 5.
    const V6_UDP_HL5: &str = "60080adb00281105\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        caf9829a00285bbe\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// tracepath -6: 1500 bytes, UDP to 44444, hop limit 1; its first 88
    /// bytes (the rest of the payload is zeros).
    const V6_TRACEPATH_HEAD: &str = "6008397805b41101\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        cdd4ad9c05b4614a\
        0100000000000000ef0700000000000097e2b7350000000000000000000000000000000000000000";
    /// UDP to 33434 behind a destination options header (PadN), 88 bytes,
    /// hop limit 1.
    const V6_DSTOPTS_HL1: &str = "600fb49700303c01\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        1100010400000000\
        e6e6829a00284593\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// UDP to 33435 behind a hop-by-hop options header (PadN), 88 bytes,
    /// hop limit 1.
    const V6_HOPOPTS_HL1: &str = "6000025700300001\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        1100010400000000\
        eda0829b00283ed8\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    /// First fragment (offset 0, more fragments) of a 1808-byte UDP datagram
    /// to 33436 of zeros, 1496 bytes, hop limit 1; its first 56 bytes.
    const V6_FRAG_FIRST_HEAD: &str = "6004348305b02c01\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        110000019c475b58\
        8d65829c07108647";
    /// The same datagram's last fragment (offset 1448), 408 bytes; its first
    /// 48 bytes.
    const V6_FRAG_LATER_HEAD: &str = "6004348301702c01\
        20010db8000100000000000000000002 20010db8000000000000000000000010\
        110005a89c475b58";
    /// MLDv2 report from fe80::9064:54ff:feb6:5919 to ff02::16, behind a
    /// hop-by-hop header with a router alert, hop limit 1.
    const V6_MLD_REPORT: &str = "6000000000380001\
        fe80000000000000906454fffeb65919 ff020000000000000000000000000016\
        3a00050200000100\
        8f00d7e90000000204000000ff0200000000000000000001ff00000204000000\
        ff0200000000000000000001ffb65919";
    /// Router solicitation from fe80::9064:54ff:feb6:5919 to ff02::2.
    const V6_ROUTER_SOLICITATION: &str = "6000000000103aff\
        fe80000000000000906454fffeb65919 ff020000000000000000000000000002\
        8500fec5000000000101926454b65919";
    /// Duplicate address detection: neighbour solicitation from :: to
    /// ff02::1:ff9f:da98.
    const V6_NS_DAD: &str = "6000000000203aff\
        00000000000000000000000000000000 ff0200000000000000000001ff9fda98\
        8700838800000000fe80000000000000641952fffe9fda980e013be85043f2e0";
    /// Unreachability detection: neighbour solicitation for the target, from
    /// fe80::b4a4:bff:fe45:fa41 to the target's own address.
    const V6_NS_NUD: &str = "6000000000203aff\
        fe80000000000000b4a40bfffe45fa41 20010db8000000000000000000000010\
        8700a8390000000020010db80000000000000000000000100101b6a40b45fa41";

    /// Time Exceeded and port unreachable header (IPv6 + ICMPv6) lengths.
    const V6_HEADERS: usize = 48;

    fn v6_tracepath_probe() -> Vec<u8> {
        let mut probe = hex(V6_TRACEPATH_HEAD);
        probe.resize(1500, 0);
        probe
    }

    fn v6_first_fragment() -> Vec<u8> {
        let mut probe = hex(V6_FRAG_FIRST_HEAD);
        probe.resize(1496, 0);
        probe
    }

    fn v6_later_fragment() -> Vec<u8> {
        let mut probe = hex(V6_FRAG_LATER_HEAD);
        probe.resize(408, 0);
        probe
    }

    /// A fixture with some bytes replaced (IPv6 has no header checksum).
    fn edited_v6(fixture: &str, edits: &[(usize, u8)]) -> Vec<u8> {
        let mut packet = hex(fixture);
        for &(at, value) in edits {
            packet[at] = value;
        }
        packet
    }

    /// Sets the payload length to what follows the IPv6 header.
    fn fix_payload_len(packet: &mut [u8]) {
        let payload_len = u16::try_from(packet.len() - Ipv6Header::LEN).unwrap();
        packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
    }

    /// `packet` with its source (offset 8) or destination (24) replaced.
    fn with_addr(mut packet: Vec<u8>, at: usize, addr: Ipv6Addr) -> Vec<u8> {
        packet[at..at + 16].copy_from_slice(&addr.octets());
        packet
    }

    #[test]
    fn v6_udp_probe_at_hop_1_gets_time_exceeded_from_hop_1() {
        let probe = hex(V6_UDP_HL1);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            decision,
            Decision::Reply {
                len: 128,
                to: IpAddr::V6(V6_CLIENT),
                kind: ReplyKind::TimeExceeded,
                line: 1,
            }
        );
        // From 2001:db8::11, hop limit 64, ICMPv6 3/0.
        assert_eq!(
            reply,
            hex("6000000000583a40\
                 20010db8000000000000000000000011 20010db8000100000000000000000002\
                 0300129a00000000\
                 6001395700281101\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 b4c0829a00285bbe404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
    }

    #[test]
    fn v6_icmp_echo_at_hop_2_gets_time_exceeded_from_hop_2() {
        let probe = hex(V6_ICMP_HL2);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        // From 2001:db8::12, hop limit 63.
        assert_eq!(
            reply,
            hex("6000000000583a3f\
                 20010db8000000000000000000000012 20010db8000100000000000000000002\
                 030073ea00000000\
                 6008932b00283a02\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 800051a15cf0000148494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364656667")
        );
    }

    #[test]
    fn v6_tcp_syn_at_hop_4_gets_time_exceeded_from_hop_4() {
        let probe = hex(V6_TCP_HL4);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        // From 2001:db8::13, hop limit 61.
        assert_eq!(
            reply,
            hex("6000000000583a3d\
                 20010db8000000000000000000000013 20010db8000100000000000000000002\
                 030004f700000000\
                 600835e800280604\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 dcf700508357d7be00000000a0021680af550000020405a00402080a705f7e010000000001030302")
        );
    }

    #[test]
    fn v6_udp_past_the_hops_to_a_closed_port_gets_port_unreachable_from_the_target() {
        let probe = hex(V6_UDP_HL5);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            decision,
            Decision::Reply {
                len: 128,
                to: IpAddr::V6(V6_CLIENT),
                kind: ReplyKind::PortUnreachable,
                line: 5,
            }
        );
        // From 2001:db8::10 with hop limit 64 - N = 60, ICMPv6 1/4.
        assert_eq!(
            reply,
            hex("6000000000583a3c\
                 20010db8000000000000000000000010 20010db8000100000000000000000002\
                 01042ccf00000000\
                 60080adb00281105\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 caf9829a00285bbe404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
    }

    #[test]
    fn v6_tracepath_1500_byte_probe_is_quoted_up_to_1280_bytes() {
        let probe = v6_tracepath_probe();
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(reply.len(), 1280);
        // Payload length 1240.
        assert_eq!(
            &reply[..V6_HEADERS],
            &hex("6000000004d83a40\
                  20010db8000000000000000000000011 20010db8000100000000000000000002\
                  03006f1c00000000")[..]
        );
        assert_eq!(&reply[V6_HEADERS..], &probe[..1232]);
    }

    #[test]
    fn v6_probe_behind_destination_options_is_answered_and_quoted_whole() {
        let probe = hex(V6_DSTOPTS_HL1);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            reply,
            hex("6000000000603a40\
                 20010db8000000000000000000000011 20010db8000100000000000000000002\
                 03003e3c00000000\
                 600fb49700303c01\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 1100010400000000e6e6829a00284593\
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
        // Past the hops, the UDP port behind the options header counts.
        let past = edited_v6(V6_DSTOPTS_HL1, &[(7, 9)]);
        let (decision, out) = run(&past);
        check_reply(&past, decision, &out);
        let open = edited_v6(V6_DSTOPTS_HL1, &[(7, 9), (50, 0), (51, OPEN_PORT as u8)]);
        assert_eq!(run(&open).0, Decision::Kernel);
    }

    #[test]
    fn v6_probe_behind_hop_by_hop_options_is_answered_and_quoted_whole() {
        let probe = hex(V6_HOPOPTS_HL1);
        let (decision, out) = run(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(
            reply,
            hex("6000000000603a40\
                 20010db8000000000000000000000011 20010db8000100000000000000000002\
                 03002c8c00000000\
                 6000025700300001\
                 20010db8000100000000000000000002 20010db8000000000000000000000010\
                 1100010400000000eda0829b00283ed8\
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
        );
    }

    #[test]
    fn v6_first_fragment_is_answered_and_later_fragments_are_dropped() {
        let first = v6_first_fragment();
        let (decision, out) = run(&first);
        let reply = check_reply(&first, decision, &out);
        assert_eq!(reply.len(), 1280);
        assert_eq!(
            &reply[..V6_HEADERS],
            &hex("6000000004d83a40\
                  20010db8000000000000000000000011 20010db8000100000000000000000002\
                  0300d4ae00000000")[..]
        );
        assert_eq!(&reply[V6_HEADERS..], &first[..1232]);
        // An atomic fragment (offset 0, no more fragments) is whole.
        let mut atomic = first.clone();
        atomic[43] = 0;
        let (decision, out) = run(&atomic);
        check_reply(&atomic, decision, &out);

        let later = v6_later_fragment();
        assert_drop(&later, DropReason::Fragment);
        // Past the hops too: nothing after a later fragment's header is a
        // header, even when it would parse as one (or fail to).
        for (next_header, hop_limit) in [(17, 9), (0, 1), (60, 1), (58, 1)] {
            let mut packet = later.clone();
            packet[40] = next_header;
            packet[7] = hop_limit;
            assert_drop(&packet, DropReason::Fragment);
        }
    }

    /// etherparse 0.16 reads `00 01` (offset 0, more fragments) as offset 1.
    #[test]
    fn v6_fragment_offset_is_the_top_13_bits_etherparse_150() {
        // Offset/flags word -> answered (offset 0) or dropped.
        for (word, answered) in [
            (0x0001u16, true),
            (0x0000, true),
            (0x0007, true),
            (0x0008, false),
            (0x0009, false),
            (0x05a8, false),
            (0xfff8, false),
        ] {
            let mut packet = v6_first_fragment();
            packet[42..44].copy_from_slice(&word.to_be_bytes());
            let (decision, out) = run(&packet);
            if answered {
                check_reply(&packet, decision, &out);
            } else {
                assert_eq!(
                    decision,
                    Decision::Drop(DropReason::Fragment),
                    "{word:#06x}"
                );
            }
        }
    }

    #[test]
    fn v6_past_the_hops_echo_tcp_and_other_protocols_are_left_to_the_kernel() {
        assert_eq!(run(&edited_v6(V6_ICMP_HL2, &[(7, 5)])).0, Decision::Kernel);
        assert_eq!(run(&edited_v6(V6_TCP_HL4, &[(7, 5)])).0, Decision::Kernel);
        // An ACK to a real service on the target, with a high hop limit.
        let ack = edited_v6(V6_TCP_HL4, &[(7, 57), (53, 0x10)]);
        assert_eq!(run(&ack).0, Decision::Kernel);
        // SCTP, ESP and "no next header" past the hops.
        for next_header in [132, 50, 59] {
            let packet = edited_v6(V6_UDP_HL5, &[(6, next_header)]);
            assert_eq!(run(&packet).0, Decision::Kernel);
        }
    }

    #[test]
    fn v6_udp_to_an_open_port_is_left_to_the_kernel_past_the_hops_only() {
        let past = edited_v6(V6_UDP_HL5, &[(42, 0), (43, OPEN_PORT as u8)]);
        assert_eq!(run(&past).0, Decision::Kernel);
        let on_hop = edited_v6(V6_UDP_HL1, &[(42, 0), (43, OPEN_PORT as u8)]);
        let (decision, out) = run(&on_hop);
        check_reply(&on_hop, decision, &out);
    }

    #[test]
    fn v6_ethernet_padding_past_the_payload_length_is_not_quoted() {
        let mut probe = hex(V6_UDP_HL1);
        probe.extend_from_slice(&[0xee; 6]);
        let (decision, out) = run(&probe);
        assert_eq!(check_reply(&probe, decision, &out).len(), 128);
    }

    #[test]
    fn v6_udp_with_no_payload_is_answered() {
        let mut probe = hex(V6_UDP_HL1);
        probe.truncate(48);
        fix_payload_len(&mut probe);
        probe[44..46].copy_from_slice(&8u16.to_be_bytes());
        let (decision, out) = run(&probe);
        assert_eq!(check_reply(&probe, decision, &out).len(), 96);
    }

    #[test]
    fn v6_reply_hop_limits_saturate_at_1() {
        let long = Table::new([entry(V6_TARGET, vec![Some(V6_HOP1); 100])]);
        let mut out = [0u8; MAX_REPLY];
        let at_hop_70 = edited_v6(V6_UDP_HL1, &[(7, 70)]);
        let decision = decide(&at_hop_70, &long, &ports, &mut out);
        check_reply(&at_hop_70, decision, &out);
        assert_eq!(out[7], 1);
        let past = edited_v6(V6_UDP_HL1, &[(7, 101)]);
        let decision = decide(&past, &long, &ports, &mut out);
        check_reply(&past, decision, &out);
        assert_eq!((out[7], out[40]), (1, 1));
    }

    #[test]
    fn table_keeps_hops_of_the_target_family_only() {
        let table = Table::new([
            (
                IpAddr::V6(V6_TARGET),
                vec![Some(IpAddr::V4(HOP1)), Some(IpAddr::V6(V6_HOP2))],
            ),
            (
                IpAddr::V4(TARGET),
                vec![Some(IpAddr::V6(V6_HOP1)), Some(IpAddr::V4(HOP2))],
            ),
        ]);
        assert_eq!(
            table.hops(V6_TARGET.into()),
            Some(&[None, Some(IpAddr::V6(V6_HOP2))][..])
        );
        assert_eq!(
            table.hops(TARGET.into()),
            Some(&[None, Some(IpAddr::V4(HOP2))][..])
        );
        assert_eq!(
            table.targets().collect::<Vec<_>>(),
            vec![IpAddr::V4(TARGET), IpAddr::V6(V6_TARGET)]
        );
        let mut out = [0u8; MAX_REPLY];
        let probe = hex(V6_UDP_HL1);
        assert_eq!(
            decide(&probe, &table, &ports, &mut out),
            Decision::Drop(DropReason::SilentHop)
        );
        let probe = hex(UDP_TTL1);
        assert_eq!(
            decide(&probe, &table, &ports, &mut out),
            Decision::Drop(DropReason::SilentHop)
        );
        let probe = edited_v6(V6_ICMP_HL2, &[]);
        let decision = decide(&probe, &table, &ports, &mut out);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(&reply[8..24], &V6_HOP2.octets()[..]);
    }

    #[test]
    fn v6_neighbor_discovery_and_mld_are_never_answered() {
        // As sent: to multicast groups.
        for fixture in [V6_MLD_REPORT, V6_ROUTER_SOLICITATION, V6_NS_DAD] {
            assert_drop(&hex(fixture), DropReason::Multicast);
        }
        // Unicast to the target: reachability confirmation.
        assert_drop(&hex(V6_NS_NUD), DropReason::NeighborDiscovery);
        // The same report and solicitation sent to the target itself, on a
        // fake hop and past the hops; the report is behind a hop-by-hop
        // header.
        for fixture in [V6_MLD_REPORT, V6_ROUTER_SOLICITATION] {
            for hop_limit in [1, 2, 255] {
                let mut packet = with_addr(hex(fixture), 24, V6_TARGET);
                packet[7] = hop_limit;
                assert_drop(&packet, DropReason::NeighborDiscovery);
            }
        }
        // Every neighbour discovery, router and MLD type in an echo's place.
        for icmp_type in [
            130, 131, 132, 133, 134, 135, 136, 137, 141, 142, 143, 148, 149, 151, 152, 153,
        ] {
            for hop_limit in [2, 255] {
                let packet = edited_v6(V6_ICMP_HL2, &[(7, hop_limit), (40, icmp_type)]);
                assert_drop(&packet, DropReason::NeighborDiscovery);
            }
        }
    }

    // --- one test per drop reason, IPv6 ------------------------------------

    #[test]
    fn v6_drop_truncated() {
        // Shorter than an IPv6 header.
        assert_drop(&hex(V6_UDP_HL1)[..39], DropReason::Truncated);
        assert_drop(&[0x60], DropReason::Truncated);
        // Cut by the capture buffer: shorter than the payload length.
        assert_drop(&hex(V6_UDP_HL1)[..79], DropReason::Truncated);
        assert_drop(&v6_tracepath_probe()[..1400], DropReason::Truncated);
        // Upper-layer headers cut short, payload length consistent.
        for (fixture, keep) in [(V6_UDP_HL1, 47), (V6_ICMP_HL2, 47), (V6_TCP_HL4, 59)] {
            let mut packet = hex(fixture);
            packet.truncate(keep);
            fix_payload_len(&mut packet);
            assert_drop(&packet, DropReason::Truncated);
        }
        // TCP data offset 15 (60 bytes) in a 40-byte segment.
        assert_drop(&edited_v6(V6_TCP_HL4, &[(52, 0xf0)]), DropReason::Truncated);
        // Extension headers cut short: inside the options header, past the
        // packet (length 256 * 8), and an empty payload announcing one.
        for fixture in [V6_DSTOPTS_HL1, V6_HOPOPTS_HL1] {
            let mut packet = hex(fixture);
            packet.truncate(44);
            fix_payload_len(&mut packet);
            assert_drop(&packet, DropReason::Truncated);
            assert_drop(&edited_v6(fixture, &[(41, 0xff)]), DropReason::Truncated);
            let mut packet = hex(fixture);
            packet.truncate(40);
            fix_payload_len(&mut packet);
            assert_drop(&packet, DropReason::Truncated);
        }
        // A fragment header cut short.
        let mut packet = v6_first_fragment();
        packet.truncate(44);
        fix_payload_len(&mut packet);
        assert_drop(&packet, DropReason::Truncated);
    }

    #[test]
    fn v6_drop_bad_extension_header() {
        // A hop-by-hop header after a destination options header.
        assert_drop(
            &edited_v6(V6_DSTOPTS_HL1, &[(40, 0)]),
            DropReason::BadExtensionHeader,
        );
        // A second hop-by-hop header.
        assert_drop(
            &edited_v6(V6_HOPOPTS_HL1, &[(40, 0)]),
            DropReason::BadExtensionHeader,
        );
        // An authentication header with a zero length.
        assert_drop(
            &edited_v6(V6_UDP_HL1, &[(6, 51), (41, 0)]),
            DropReason::BadExtensionHeader,
        );
    }

    #[test]
    fn v6_drop_multicast() {
        let groups: [Ipv6Addr; 4] = [
            "ff02::1".parse().unwrap(),
            "ff02::1:ff00:10".parse().unwrap(),
            "ff05::2".parse().unwrap(),
            "ff0e::db8:10".parse().unwrap(),
        ];
        for group in groups {
            for fixture in [V6_UDP_HL1, V6_ICMP_HL2, V6_UDP_HL5] {
                let packet = with_addr(hex(fixture), 24, group);
                assert_drop(&packet, DropReason::Multicast);
            }
        }
        // Even when a show names a multicast address as its target.
        let group = groups[3];
        let table = Table::new([entry(group, vec![Some(V6_HOP1)])]);
        let mut out = [0u8; MAX_REPLY];
        let packet = with_addr(hex(V6_UDP_HL1), 24, group);
        assert_eq!(
            decide(&packet, &table, &ports, &mut out),
            Decision::Drop(DropReason::Multicast)
        );
    }

    #[test]
    fn v6_drop_not_for_target() {
        // To hop 1's address, to the IPv4-mapped target, and to a target of
        // the other family written as IPv4-compatible.
        for addr in [
            V6_HOP1,
            TARGET.to_ipv6_mapped(),
            "::c612:a".parse::<Ipv6Addr>().unwrap(),
        ] {
            let packet = with_addr(hex(V6_UDP_HL1), 24, addr);
            assert_drop(&packet, DropReason::NotForTarget);
        }
    }

    #[test]
    fn v6_drop_fragment() {
        assert_drop(&v6_later_fragment(), DropReason::Fragment);
        // Offset 8 with more fragments, behind a destination options header.
        let mut packet = hex(V6_DSTOPTS_HL1);
        packet[6] = 44;
        packet.splice(40..40, hex("3c00000900000001"));
        fix_payload_len(&mut packet);
        assert_drop(&packet, DropReason::Fragment);
    }

    #[test]
    fn v6_drop_ttl_zero() {
        assert_drop(&edited_v6(V6_UDP_HL1, &[(7, 0)]), DropReason::TtlZero);
    }

    #[test]
    fn v6_drop_bad_source() {
        for source in ["::", "::1", "ff02::1", "ff0e::1", "::ffff:198.18.1.2"] {
            let packet = with_addr(hex(V6_UDP_HL1), 8, source.parse().unwrap());
            assert_drop(&packet, DropReason::BadSource);
        }
        // A link-local client is fine.
        let source = "fe80::1".parse().unwrap();
        let packet = with_addr(hex(V6_UDP_HL1), 8, source);
        let (decision, out) = run(&packet);
        check_reply(&packet, decision, &out);
    }

    #[test]
    fn v6_drop_icmp_error() {
        // Destination unreachable, packet too big, time exceeded, parameter
        // problem, type 0, private and reserved error types, on a fake hop
        // and past it.
        for icmp_type in [1, 2, 3, 4, 0, 100, 127] {
            for hop_limit in [2, 9] {
                let packet = edited_v6(V6_ICMP_HL2, &[(7, hop_limit), (40, icmp_type)]);
                assert_drop(&packet, DropReason::IcmpError);
            }
        }
    }

    #[test]
    fn v6_drop_icmp_not_echo() {
        // Echo reply, router renumbering, node information, mobile prefix
        // solicitation, extended echo request, private and reserved
        // informational types.
        for icmp_type in [129, 138, 139, 140, 146, 160, 200, 255] {
            for hop_limit in [2, 9] {
                let packet = edited_v6(V6_ICMP_HL2, &[(7, hop_limit), (40, icmp_type)]);
                assert_drop(&packet, DropReason::IcmpNotEcho);
            }
        }
    }

    #[test]
    fn v6_drop_bad_tcp_header() {
        assert_drop(
            &edited_v6(V6_TCP_HL4, &[(52, 0x40)]),
            DropReason::BadTcpHeader,
        );
    }

    #[test]
    fn v6_drop_silent_hop() {
        for fixture in [V6_UDP_HL1, V6_ICMP_HL2, V6_TCP_HL4, V6_DSTOPTS_HL1] {
            assert_drop(&edited_v6(fixture, &[(7, 3)]), DropReason::SilentHop);
        }
    }

    // --- properties --------------------------------------------------------

    // --- every protocol at a fake hop (issue 16) ---------------------------

    /// Probes of protocols beyond UDP, ICMP echo and TCP SYN, with the
    /// exact Time Exceeded a router sends for each (computed by an
    /// independent script: IP/ICMP checksums, TTL 64 - (t - 1), the probe
    /// quoted whole).
    /// UDP-Lite (136) to port 53 (traceroute -UL), checksum coverage 8, TTL 1.
    const UDPLITE_TTL1: &str = "4500003c1c40000001880fcac6120102c612000aa9e300350008c7fd404142434445464748494a4b4c4d4e4f50515253\
        5455565758595a5b5c5d5e5f";
    const UDPLITE_TTL1_REPLY: &str = "450000581c4000004001d133c612000bc61201020b008ddc000000004500003c1c40000001880fcac6120102c612000a\
        a9e300350008c7fd404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

    /// The same over IPv6, hop limit 1.
    const V6_UDPLITE_HL1: &str = "600fb4a10028880120010db800010000000000000000000220010db8000000000000000000000010a9e300350008f9a9\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    const V6_UDPLITE_HL1_REPLY: &str = "6000000000583a4020010db800000000000000000000001120010db800010000000000000000000203000fb800000000\
        600fb4a10028880120010db800010000000000000000000220010db8000000000000000000000010a9e300350008f9a9\
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

    /// DCCP (33) Request to 33434 (traceroute -D), TTL 2.
    const DCCP_TTL2: &str =
        "450000281c41000002210f44c6120102c612000aa9e4829a0500c5be03001c2d3d2e1f0000000000";
    const DCCP_TTL2_REPLY: &str = "450000441c4100003f01d245c612000cc61201020b00826600000000450000281c41000002210f44c6120102c612000a\
        a9e4829a0500c5be03001c2d3d2e1f0000000000";

    /// The same over IPv6, hop limit 2.
    const V6_DCCP_HL2: &str = "600fb4a10014210220010db800010000000000000000000220010db8000000000000000000000010a9e4829a0500f76a\
        03001c2d3d2e1f0000000000";
    const V6_DCCP_HL2_REPLY: &str = "6000000000443a3f20010db800000000000000000000001220010db800010000000000000000000203006b6800000000\
        600fb4a10014210220010db800010000000000000000000220010db8000000000000000000000010a9e4829a0500f76a\
        03001c2d3d2e1f0000000000";

    /// SCTP (132) INIT to 33434, CRC32c correct, TTL 4.
    const SCTP_TTL4: &str = "450000341c42000004840cd4c6120102c612000aa9e5829a000000004a58837e010000145ac3b1e200010000000affff\
        5ac3b1e2";
    const SCTP_TTL4_REPLY: &str = "450000501c4200003d01d437c612000dc61201020b00e03d00000000450000341c42000004840cd4c6120102c612000a\
        a9e5829a000000004a58837e010000145ac3b1e200010000000affff5ac3b1e2";

    /// The same over IPv6, hop limit 4.
    const V6_SCTP_HL4: &str = "600fb4a10020840420010db800010000000000000000000220010db8000000000000000000000010a9e5829a00000000\
        4a58837e010000145ac3b1e200010000000affff5ac3b1e2";
    const V6_SCTP_HL4_REPLY: &str = "6000000000503a3d20010db800000000000000000000001320010db8000100000000000000000002030097d000000000\
        600fb4a10020840420010db800010000000000000000000220010db8000000000000000000000010a9e5829a00000000\
        4a58837e010000145ac3b1e200010000000affff5ac3b1e2";

    /// GRE (47), IPv4 payload type, 32 bytes, TTL 1.
    const GRE_TTL1: &str = "450000381c430000012f1024c6120102c612000a00000800404142434445464748494a4b4c4d4e4f5051525354555657\
        58595a5b5c5d5e5f";
    const GRE_TTL1_REPLY: &str = "450000541c4300004001d134c612000bc61201020b00f7fa00000000450000381c430000012f1024c6120102c612000a\
        00000800404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

    /// The same over IPv6, hop limit 1.
    const V6_GRE_HL1: &str = "600fb4a100242f0120010db800010000000000000000000220010db80000000000000000000000100000080040414243\
        4445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    const V6_GRE_HL1_REPLY: &str = "6000000000543a4020010db800000000000000000000001120010db80001000000000000000000020300048b00000000\
        600fb4a100242f0120010db800010000000000000000000220010db80000000000000000000000100000080040414243\
        4445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

    /// Protocol 253 (experimental; traceroute -P 253), 40 zero bytes, TTL 2.
    const PROTO253_TTL2: &str = "4500003c1c44000002fd0e51c6120102c612000a00000000000000000000000000000000000000000000000000000000\
        000000000000000000000000";
    const PROTO253_TTL2_REPLY: &str = "450000581c4400003f01d22ec612000cc61201020b00f4ff000000004500003c1c44000002fd0e51c6120102c612000a\
        00000000000000000000000000000000000000000000000000000000000000000000000000000000";

    /// The same over IPv6, hop limit 2.
    const V6_PROTO253_HL2: &str = "600fb4a10028fd0220010db800010000000000000000000220010db80000000000000000000000100000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000";
    const V6_PROTO253_HL2_REPLY: &str = "6000000000583a3f20010db800000000000000000000001220010db80001000000000000000000020300338500000000\
        600fb4a10028fd0220010db800010000000000000000000220010db80000000000000000000000100000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000";

    /// TCP ACK to port 80 (traceroute -T -O ack), DF, TTL 4.
    const TCP_ACK_TTL4: &str =
        "450000287f22400004066a7dc6120102c612000ab0f600504a3e29c1000000015010faf0026c0000";
    const TCP_ACK_TTL4_REPLY: &str = "450000447f2200003d017163c612000dc61201020b00824b00000000450000287f22400004066a7dc6120102c612000a\
        b0f600504a3e29c1000000015010faf0026c0000";

    /// The same over IPv6, hop limit 4.
    const V6_TCP_ACK_HL4: &str = "600fb4a10014060420010db800010000000000000000000220010db8000000000000000000000010b0f600504a3e29c1\
        000000015010faf034180000";
    const V6_TCP_ACK_HL4_REPLY: &str = "6000000000443a3d20010db800000000000000000000001320010db80001000000000000000000020300864a00000000\
        600fb4a10014060420010db800010000000000000000000220010db8000000000000000000000010b0f600504a3e29c1\
        000000015010faf034180000";

    fn every_protocol_fixtures() -> [(&'static str, &'static str); 12] {
        [
            (UDPLITE_TTL1, UDPLITE_TTL1_REPLY),
            (DCCP_TTL2, DCCP_TTL2_REPLY),
            (SCTP_TTL4, SCTP_TTL4_REPLY),
            (GRE_TTL1, GRE_TTL1_REPLY),
            (PROTO253_TTL2, PROTO253_TTL2_REPLY),
            (TCP_ACK_TTL4, TCP_ACK_TTL4_REPLY),
            (V6_UDPLITE_HL1, V6_UDPLITE_HL1_REPLY),
            (V6_DCCP_HL2, V6_DCCP_HL2_REPLY),
            (V6_SCTP_HL4, V6_SCTP_HL4_REPLY),
            (V6_GRE_HL1, V6_GRE_HL1_REPLY),
            (V6_PROTO253_HL2, V6_PROTO253_HL2_REPLY),
            (V6_TCP_ACK_HL4, V6_TCP_ACK_HL4_REPLY),
        ]
    }

    #[test]
    fn every_protocol_at_a_fake_hop_gets_the_exact_time_exceeded() {
        for (probe, reply) in every_protocol_fixtures() {
            let probe = hex(probe);
            let (decision, out) = run(&probe);
            let got = check_reply(&probe, decision, &out);
            assert_eq!(got, hex(reply), "probe {}", probe.len());
            let Decision::Reply { kind, .. } = decision else {
                unreachable!()
            };
            assert_eq!(kind, ReplyKind::TimeExceeded);
        }
    }

    #[test]
    fn every_protocol_past_the_hops_gets_the_kernels_answer() {
        // TTL / hop limit 5 > N = 4: UDP-Lite's port unreachable, DCCP's
        // reset, SCTP's ABORT, an unknown protocol's protocol unreachable
        // and TCP's RST all come from the kernel, unsuppressed.
        for (probe, _) in every_protocol_fixtures() {
            let mut probe = hex(probe);
            if probe[0] >> 4 == 6 {
                probe[7] = 5;
            } else {
                probe[8] = 5;
                fix_ipv4_checksum(&mut probe);
            }
            assert_eq!(run(&probe).0, Decision::Kernel, "{probe:02x?}");
        }
    }

    #[test]
    fn tcp_with_any_flags_at_a_fake_hop_gets_time_exceeded() {
        // SYN|ACK, RST, FIN, NULL, XMAS (FIN|PSH|URG), ACK, SYN|FIN.
        for flags in [0x12, 0x04, 0x01, 0x00, 0x29, 0x10, 0x03] {
            let probe = edited(TCP_TTL4, &[(33, flags)]);
            let (decision, out) = run(&probe);
            check_reply(&probe, decision, &out);
            let probe = edited_v6(V6_TCP_HL4, &[(53, flags)]);
            let (decision, out) = run(&probe);
            check_reply(&probe, decision, &out);
        }
    }

    #[test]
    fn a_protocol_with_less_than_8_bytes_of_payload_is_not_answered() {
        // Found by the fuzzer: a 44-byte IPv6 packet got a 92-byte reply.
        // Fewer than the 8 bytes a reply must quote, and a reply would be
        // more than twice the probe: dropped as truncated, whatever the
        // protocol; 8 bytes are answered.
        for (len, answered) in [(20usize, false), (27, false), (28, true)] {
            let mut probe = hex(PROTO253_TTL2)[..len].to_vec();
            probe[3] = len as u8;
            fix_ipv4_checksum(&mut probe);
            let (decision, out) = run(&probe);
            if answered {
                assert_eq!(check_reply(&probe, decision, &out).len(), 56);
            } else {
                assert_eq!(decision, Decision::Drop(DropReason::Truncated));
            }
        }
        for (len, answered) in [(40usize, false), (44, false), (48, true)] {
            let mut probe = hex(V6_PROTO253_HL2)[..len].to_vec();
            fix_payload_len(&mut probe);
            let (decision, out) = run(&probe);
            if answered {
                assert_eq!(check_reply(&probe, decision, &out).len(), 96);
            } else {
                assert_eq!(decision, Decision::Drop(DropReason::Truncated));
            }
        }
    }

    // --- hop addresses answer as router interfaces (issue 16) ---------------

    /// ping (56 data bytes, DF) to hop 4's address with TTL 4, and the echo
    /// reply from it: id, sequence and data mirrored, TTL 64 - 3.
    const PING_HOP4_TTL4: &str = "450000543a1140000401af64c6120102c612000d080033290c010001101112131415161718191a1b1c1d1e1f20212223\
        2425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647";
    const PING_HOP4_TTL4_REPLY: &str = "450000543a1100003d01b664c612000dc612010200003b290c010001101112131415161718191a1b1c1d1e1f20212223\
        2425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647";
    /// ping -6 to hop 1's address, hop limit 64, and the echo reply.
    const V6_PING_HOP1_HL64: &str = "6000a1b200403a4020010db800010000000000000000000220010db800000000000000000000001180005f210c020007\
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
        4041424344454647";
    const V6_PING_HOP1_HL64_REPLY: &str = "6000000000403a4020010db800000000000000000000001120010db800010000000000000000000281005e210c020007\
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
        4041424344454647";

    fn run_router(packet: &[u8]) -> (Decision, [u8; MAX_REPLY]) {
        let router = Table::router([
            entry(TARGET, vec![Some(HOP1), Some(HOP2), None, Some(HOP4)]),
            entry(
                V6_TARGET,
                vec![Some(V6_HOP1), Some(V6_HOP2), None, Some(V6_HOP4)],
            ),
        ]);
        let mut out = [0u8; MAX_REPLY];
        let decision = decide(packet, &router, &ports, &mut out);
        (decision, out)
    }

    /// A probe fixture sent to another destination (IPv4 offset 16, IPv6
    /// 24), IP checksum fixed.
    fn to(fixture: &str, destination: IpAddr) -> Vec<u8> {
        let mut packet = hex(fixture);
        match destination {
            IpAddr::V4(d) => {
                packet[16..20].copy_from_slice(&d.octets());
                fix_ipv4_checksum(&mut packet);
            }
            IpAddr::V6(d) => packet[24..40].copy_from_slice(&d.octets()),
        }
        packet
    }

    #[test]
    fn router_table_lists_each_hop_address_with_the_lines_before_its_first() {
        let a = IpAddr::V4(HOP1);
        let b = IpAddr::V4(HOP2);
        let router = Table::router([(IpAddr::V4(TARGET), vec![Some(a), Some(b), None, Some(a)])]);
        assert_eq!(router.hops(a), Some(&[][..]), "a's first line is line 1");
        assert_eq!(router.hops(b), Some(&[Some(a)][..]));
        assert!(router.is_hop_address(a) && !router.is_hop_address(IpAddr::V4(TARGET)));
        assert_eq!(
            router.hop_addresses().collect::<Vec<_>>(),
            vec![(a, 0), (b, 1)]
        );
        assert_eq!(router.targets().count(), 3);
        // An address that is also a show's target stays a target.
        let both = Table::router([(IpAddr::V4(TARGET), vec![Some(a)]), (a, vec![Some(b)])]);
        assert!(!both.is_hop_address(a));
        assert_eq!(both.hops(a), Some(&[Some(b)][..]));
        // Table::new knows no hop addresses.
        assert_eq!(table().hops(IpAddr::V4(HOP1)), None);
    }

    #[test]
    fn echo_request_to_a_hop_address_gets_the_exact_echo_reply_from_it() {
        for (probe, reply, from) in [
            (PING_HOP4_TTL4, PING_HOP4_TTL4_REPLY, IpAddr::V4(HOP4)),
            (
                V6_PING_HOP1_HL64,
                V6_PING_HOP1_HL64_REPLY,
                IpAddr::V6(V6_HOP1),
            ),
        ] {
            let probe = hex(probe);
            let (decision, out) = run_router(&probe);
            let Decision::Reply { len, to, kind, .. } = decision else {
                panic!("{decision:?}");
            };
            assert_eq!(kind, ReplyKind::EchoReply);
            assert_eq!(to.is_ipv4(), from.is_ipv4());
            assert_eq!(&out[..len], &hex(reply)[..]);
        }
    }

    #[test]
    fn a_trace_to_hop_address_k_meets_the_first_k_minus_1_lines_then_the_address() {
        let hop4 = IpAddr::V4(HOP4);
        // UDP: hops 1, 2, silent 3, then hop 4's address answers as the
        // destination (port unreachable), even to a port open on the target.
        for (ttl, expect) in [
            (1, Some((HOP1, 11))),
            (2, Some((HOP2, 11))),
            (3, None),
            (4, Some((HOP4, 3))),
            (9, Some((HOP4, 3))),
        ] {
            let mut probe = to(UDP_TTL1, hop4);
            probe[8] = ttl;
            probe[22..24].copy_from_slice(&OPEN_PORT.to_be_bytes());
            fix_ipv4_checksum(&mut probe);
            let (decision, out) = run_router(&probe);
            match expect {
                Some((from, icmp_type)) => {
                    let reply = check_reply(&probe, decision, &out);
                    assert_eq!(reply[12..16], from.octets(), "ttl {ttl}");
                    assert_eq!(reply[20], icmp_type, "ttl {ttl}");
                    // TTLs keep decreasing: 64, 63, (62), 61.
                    assert_eq!(reply[8], 64 - (ttl.min(4) - 1), "ttl {ttl}");
                }
                None => assert_eq!(decision, Decision::Drop(DropReason::SilentHop)),
            }
        }
        // ICMP echo at TTL 2 meets hop 2; any protocol below the address
        // meets its hop.
        let mut echo = hex(PING_HOP4_TTL4);
        echo[8] = 2;
        fix_ipv4_checksum(&mut echo);
        let (decision, out) = run_router(&echo);
        assert_eq!(check_reply(&echo, decision, &out)[12..16], HOP2.octets());
        let (decision, out) = run_router(&to(SCTP_TTL4, IpAddr::V4(HOP4)));
        assert_eq!(decision, Decision::Drop(DropReason::HopAddressOther));
        let sctp = to(GRE_TTL1, hop4);
        let (decision, out2) = run_router(&sctp);
        assert_eq!(check_reply(&sctp, decision, &out2)[12..16], HOP1.octets());
        let _ = out;
        // IPv6: hop 1's address is the destination from hop limit 1 on.
        let probe = to(V6_UDP_HL1, IpAddr::V6(V6_HOP1));
        let (decision, out) = run_router(&probe);
        let reply = check_reply(&probe, decision, &out);
        assert_eq!(reply[8..24], V6_HOP1.octets());
        assert_eq!(reply[40], 1, "port unreachable");
    }

    #[test]
    fn nothing_else_to_a_hop_address_is_answered() {
        // TCP (SYN or ACK), SCTP, protocol 253 past the lines before it.
        for (fixture, dst) in [
            (TCP_TTL4, IpAddr::V4(HOP2)),
            (TCP_ACK_TTL4, IpAddr::V4(HOP1)),
            (SCTP_TTL4, IpAddr::V4(HOP2)),
            (PROTO253_TTL2, IpAddr::V4(HOP1)),
            (V6_TCP_HL4, IpAddr::V6(V6_HOP2)),
            (V6_PROTO253_HL2, IpAddr::V6(V6_HOP1)),
        ] {
            assert_eq!(
                run_router(&to(fixture, dst)).0,
                Decision::Drop(DropReason::HopAddressOther),
                "{fixture}"
            );
        }
        // ICMP errors and non-echo queries: as for a target.
        let mut timestamp = hex(PING_HOP4_TTL4);
        timestamp[20] = 13;
        fix_ipv4_checksum(&mut timestamp);
        assert_eq!(
            run_router(&timestamp).0,
            Decision::Drop(DropReason::IcmpNotEcho)
        );
    }

    #[test]
    fn echo_replies_never_exceed_the_reply_limit_or_answer_fragments() {
        // 600-byte echo request to hop 4: its reply would pass 576 bytes.
        let mut big = hex(PING_HOP4_TTL4);
        big.resize(600, 0x55);
        big[2..4].copy_from_slice(&600u16.to_be_bytes());
        fix_ipv4_checksum(&mut big);
        assert_eq!(run_router(&big).0, Decision::Drop(DropReason::EchoTooLong));
        // 576 bytes fit: the reply is exactly as long as the request.
        let mut fits = big[..576].to_vec();
        fits[2..4].copy_from_slice(&576u16.to_be_bytes());
        fix_ipv4_checksum(&mut fits);
        let Decision::Reply { len, .. } = run_router(&fits).0 else {
            panic!("a 576-byte echo is answered");
        };
        assert_eq!(len, 576);
        // The first fragment of a longer request.
        let mut first = hex(PING_HOP4_TTL4);
        first[6] = 0x20;
        fix_ipv4_checksum(&mut first);
        assert_eq!(
            run_router(&first).0,
            Decision::Drop(DropReason::EchoTooLong)
        );
        // IPv6: 1280 bytes fit, 1281 do not.
        for (size, answered) in [(1280usize, true), (1281, false)] {
            let mut v6 = hex(V6_PING_HOP1_HL64);
            v6.resize(size, 0x55);
            fix_payload_len(&mut v6);
            let answered_now = matches!(run_router(&v6).0, Decision::Reply { .. });
            assert_eq!(answered_now, answered, "{size}");
        }
    }

    fn fixtures() -> Vec<Vec<u8>> {
        vec![
            hex(UDP_TTL1),
            hex(ICMP_TTL2),
            hex(TCP_TTL4),
            hex(UDP_TTL5),
            tracepath_probe(),
            hex(UDPLITE_TTL1),
            hex(DCCP_TTL2),
            hex(SCTP_TTL4),
            hex(GRE_TTL1),
            hex(PROTO253_TTL2),
            hex(TCP_ACK_TTL4),
        ]
    }

    fn fixtures_v6() -> Vec<Vec<u8>> {
        vec![
            hex(V6_UDP_HL1),
            hex(V6_ICMP_HL2),
            hex(V6_TCP_HL4),
            hex(V6_UDP_HL5),
            v6_tracepath_probe(),
            hex(V6_DSTOPTS_HL1),
            hex(V6_HOPOPTS_HL1),
            v6_first_fragment(),
            v6_later_fragment(),
            hex(V6_MLD_REPORT),
            hex(V6_NS_NUD),
            hex(V6_UDPLITE_HL1),
            hex(V6_DCCP_HL2),
            hex(V6_SCTP_HL4),
            hex(V6_GRE_HL1),
            hex(V6_PROTO253_HL2),
            hex(V6_TCP_ACK_HL4),
        ]
    }

    /// `packet` with bytes overwritten at `edits`, then cut at `cut` when
    /// `truncate`.
    fn mutate(
        packet: &mut Vec<u8>,
        edits: &[(prop::sample::Index, u8)],
        cut: prop::sample::Index,
        truncate: bool,
    ) {
        for (at, value) in edits {
            let at = at.index(packet.len());
            packet[at] = *value;
        }
        if truncate {
            packet.truncate(cut.index(packet.len() + 1));
        }
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
            fix_ipv4_checksum(&mut packet);
            check_any(&packet);
        }

        #[test]
        fn mutated_probes_never_panic_and_replies_stay_valid(
            mut packet in prop::sample::select(fixtures()),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            fix in any::<bool>(),
        ) {
            mutate(&mut packet, &edits, cut, truncate);
            if fix {
                fix_ipv4_checksum(&mut packet);
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
            let table = table_v4([(TARGET, hops.clone())]);
            let mut packet = hex(UDP_TTL1)[..28].to_vec();
            packet.resize(28 + payload_len, 0x5a);
            let total_len = packet.len() as u16;
            packet[2..4].copy_from_slice(&total_len.to_be_bytes());
            packet[8] = ttl;
            packet[22..24].copy_from_slice(&port.to_be_bytes());
            packet[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
            fix_ipv4_checksum(&mut packet);

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

    proptest! {
        #[test]
        fn arbitrary_bytes_behind_a_valid_ipv6_header_never_panic(
            hop_limit in 0u8..8,
            // Hop-by-hop, routing, fragment, authentication, destination
            // options, ICMPv6, UDP, TCP, no next header, anything.
            next_header in prop_oneof![
                Just(0u8), Just(43), Just(44), Just(51), Just(60),
                Just(58), Just(17), Just(6), Just(59), any::<u8>(),
            ],
            rest in proptest::collection::vec(any::<u8>(), 0..1400),
            short_by in prop_oneof![Just(0usize), 0usize..4],
        ) {
            let mut packet = hex(V6_UDP_HL1)[..40].to_vec();
            packet.extend_from_slice(&rest);
            fix_payload_len(&mut packet);
            packet.truncate(packet.len() - short_by.min(rest.len()));
            packet[6] = next_header;
            packet[7] = hop_limit;
            check_any(&packet);
        }

        #[test]
        fn mutated_ipv6_probes_never_panic_and_replies_stay_valid(
            mut packet in prop::sample::select(fixtures_v6()),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            fix in any::<bool>(),
        ) {
            mutate(&mut packet, &edits, cut, truncate);
            if fix && packet.len() >= 40 {
                fix_payload_len(&mut packet);
            }
            check_any(&packet);
        }

        #[test]
        fn ipv6_udp_probes_follow_the_show(
            hops in proptest::collection::vec(proptest::option::of(any::<[u8; 16]>()), 0..40),
            hop_limit in 1u8..=255,
            port in any::<u16>(),
            payload_len in 0usize..1600,
        ) {
            let hops: Vec<Option<Ipv6Addr>> =
                hops.into_iter().map(|h| h.map(Ipv6Addr::from)).collect();
            let table = Table::new([entry(V6_TARGET, hops.clone())]);
            let mut packet = hex(V6_UDP_HL1)[..48].to_vec();
            packet.resize(48 + payload_len, 0x5a);
            fix_payload_len(&mut packet);
            packet[7] = hop_limit;
            packet[42..44].copy_from_slice(&port.to_be_bytes());
            packet[44..46].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());

            let mut out = [0u8; MAX_REPLY];
            let decision = decide(&packet, &table, &ports, &mut out);
            let t = usize::from(hop_limit);
            if t <= hops.len() {
                match hops[t - 1] {
                    None => prop_assert_eq!(decision, Decision::Drop(DropReason::SilentHop)),
                    Some(hop) => {
                        let reply = check_reply(&packet, decision, &out);
                        prop_assert_eq!(&reply[8..24], &hop.octets()[..]);
                        prop_assert_eq!(reply[7], 64u8.saturating_sub(hop_limit - 1).max(1));
                        prop_assert_eq!(reply[40], 3);
                    }
                }
            } else if port == OPEN_PORT {
                prop_assert_eq!(decision, Decision::Kernel);
            } else {
                let reply = check_reply(&packet, decision, &out);
                prop_assert_eq!(&reply[8..24], &V6_TARGET.octets()[..]);
                prop_assert_eq!(usize::from(reply[7]), 64usize.saturating_sub(hops.len()).max(1));
                prop_assert_eq!(reply[40], 1);
            }
        }
    }
}

/// Errors behind a 1:1 NAT: the quote carries the probe's public
/// destination, with its checksums adjusted, byte for byte the probe the
/// client sent ([`Table::with_public`]).
#[cfg(test)]
mod public_quote_tests {
    use super::*;
    use crate::responder::fixture::{icmpv6_sum, ones_complement};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    const CLIENT: [u8; 4] = [192, 0, 2, 7];
    const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 100);
    const HOP1_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);
    const HOP1: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 101);
    const HOP2_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 102);
    const HOP2: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 102);

    const V6_CLIENT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    const V6_PUBLIC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x100);
    const V6_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0x20, 0, 0, 0, 0, 0x100);
    const V6_HOP1_PUBLIC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x101);
    const V6_HOP1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0x20, 0, 0, 0, 0, 0x101);
    const V6_HOP2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0x20, 0, 0, 0, 0, 0x102);

    /// Two hops per family, hop addresses answering as interfaces, every
    /// address behind the NAT but the second IPv6 hop.
    fn table() -> Table {
        let v4 = |a: Ipv4Addr| Some(IpAddr::V4(a));
        let v6 = |a: Ipv6Addr| Some(IpAddr::V6(a));
        Table::router([
            (IpAddr::V4(LOCAL), vec![v4(HOP1), v4(HOP2)]),
            (IpAddr::V6(V6_LOCAL), vec![v6(V6_HOP1), v6(V6_HOP2)]),
        ])
        .with_public([
            (LOCAL.into(), PUBLIC.into()),
            (HOP1.into(), HOP1_PUBLIC.into()),
            (HOP2.into(), HOP2_PUBLIC.into()),
            (V6_LOCAL.into(), V6_PUBLIC.into()),
            (V6_HOP1.into(), V6_HOP1_PUBLIC.into()),
        ])
    }

    fn no_port_open(_: IpAddr, _: u16) -> bool {
        false
    }

    #[derive(Clone, Copy)]
    enum Proto {
        Udp,
        Tcp,
        Echo,
    }

    const PAYLOAD: &[u8] = b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_";

    /// A probe from the client to `dst`, every checksum computed for `dst`.
    fn v4(dst: Ipv4Addr, ttl: u8, proto: Proto, payload: &[u8]) -> Vec<u8> {
        build(
            PacketBuilder::ipv4(CLIENT, dst.octets(), ttl),
            false,
            proto,
            payload,
        )
    }

    fn v6(dst: Ipv6Addr, hop_limit: u8, proto: Proto, payload: &[u8]) -> Vec<u8> {
        let ip = PacketBuilder::ipv6(V6_CLIENT, dst.octets(), hop_limit);
        build(ip, true, proto, payload)
    }

    fn build(
        ip: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
        v6: bool,
        proto: Proto,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        match proto {
            Proto::Udp => ip.udp(43001, 33434).write(&mut out, payload),
            Proto::Tcp => ip
                .tcp(43001, 80, 0x4a3e_29c1, 64240)
                .syn()
                .write(&mut out, payload),
            Proto::Echo if v6 => ip.icmpv6_echo_request(0x0b7a, 3).write(&mut out, payload),
            Proto::Echo => ip.icmpv4_echo_request(0x0b7a, 3).write(&mut out, payload),
        }
        .unwrap();
        out
    }

    /// The reply to `received`, checked as a packet (sent to the client,
    /// IP and ICMP checksums right): its source, ICMP type and the bytes
    /// after the ICMP header.
    fn reply(received: &[u8]) -> (IpAddr, u8, Vec<u8>) {
        let mut out = [0u8; MAX_REPLY];
        let Decision::Reply { len, to, .. } = decide(received, &table(), &no_port_open, &mut out)
        else {
            panic!("no reply to {received:02x?}");
        };
        let reply = &out[..len];
        let (from, client, icmp_sum, icmp) = if received[0] >> 4 == 6 {
            let ip = Ipv6HeaderSlice::from_slice(reply).unwrap();
            let icmp = &reply[Ipv6Header::LEN..];
            let sum = icmpv6_sum(ip.source(), ip.destination(), icmp);
            (ip.source_addr().into(), V6_CLIENT.into(), sum, icmp)
        } else {
            let ip = Ipv4HeaderSlice::from_slice(reply).unwrap();
            assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
            let icmp = &reply[Ipv4Header::MIN_LEN..];
            let client = IpAddr::from(CLIENT);
            (ip.source_addr().into(), client, ones_complement(icmp), icmp)
        };
        assert_eq!(to, client);
        assert_eq!(icmp_sum, 0, "ICMP checksum");
        (from, icmp[0], icmp[8..].to_vec())
    }

    /// etherparse's own reading of a whole quoted probe: every checksum
    /// right for its (public) destination.
    fn assert_checksums_right(quote: &[u8]) {
        let sliced = SlicedPacket::from_ip(quote).unwrap();
        let (transport, v4_header, v6_header) = match sliced.net.as_ref().unwrap() {
            etherparse::NetSlice::Ipv4(ip) => {
                let header = ip.header().to_header();
                assert_eq!(header.header_checksum, header.calc_header_checksum());
                (sliced.transport.as_ref().unwrap(), Some(header), None)
            }
            etherparse::NetSlice::Ipv6(ip) => (
                sliced.transport.as_ref().unwrap(),
                None,
                Some(ip.header().to_header()),
            ),
        };
        match (transport, &v4_header, &v6_header) {
            (TransportSlice::Udp(udp), Some(ip), _) => assert_eq!(
                udp.checksum(),
                udp.to_header()
                    .calc_checksum_ipv4(ip, udp.payload())
                    .unwrap()
            ),
            (TransportSlice::Udp(udp), _, Some(ip)) => assert_eq!(
                udp.checksum(),
                udp.to_header()
                    .calc_checksum_ipv6(ip, udp.payload())
                    .unwrap()
            ),
            (TransportSlice::Tcp(tcp), Some(ip), _) => {
                let sum = tcp.calc_checksum_ipv4(ip.source, ip.destination).unwrap();
                assert_eq!(tcp.checksum(), sum)
            }
            (TransportSlice::Tcp(tcp), _, Some(ip)) => {
                let sum = tcp.calc_checksum_ipv6(ip.source, ip.destination).unwrap();
                assert_eq!(tcp.checksum(), sum)
            }
            (TransportSlice::Icmpv4(icmp), _, _) => assert_eq!(
                icmp.checksum(),
                icmp.header().icmp_type.calc_checksum(icmp.payload())
            ),
            (TransportSlice::Icmpv6(icmp), _, Some(ip)) => assert_eq!(
                icmp.checksum(),
                icmp.header()
                    .icmp_type
                    .calc_checksum(ip.source, ip.destination, icmp.payload())
                    .unwrap()
            ),
            _ => panic!("unexpected quote {quote:02x?}"),
        }
    }

    #[test]
    fn time_exceeded_quotes_the_probe_as_the_client_sent_it() {
        for (proto, t, hop, v6_hop) in [
            (Proto::Udp, 1, HOP1, V6_HOP1),
            (Proto::Tcp, 2, HOP2, V6_HOP2),
            (Proto::Echo, 1, HOP1, V6_HOP1),
        ] {
            // What the NAT delivers: the local destination, checksums
            // right for it.
            for (sent, received, hop, icmp_type) in [
                (
                    v4(PUBLIC, t, proto, PAYLOAD),
                    v4(LOCAL, t, proto, PAYLOAD),
                    IpAddr::V4(hop),
                    11,
                ),
                (
                    v6(V6_PUBLIC, t, proto, PAYLOAD),
                    v6(V6_LOCAL, t, proto, PAYLOAD),
                    IpAddr::V6(v6_hop),
                    3,
                ),
            ] {
                assert_ne!(sent, received);
                let (from, got_type, quote) = reply(&received);
                assert_eq!((from, got_type), (hop, icmp_type));
                assert_eq!(quote, sent);
                assert_checksums_right(&quote);
            }
        }
    }

    /// The exact bytes for one probe (computed apart from etherparse): a
    /// UDP probe the client sent to 198.51.100.100 with TTL 1, as the NAT
    /// delivers it to 10.20.0.100, and hop 1's Time Exceeded, which quotes
    /// it with 198.51.100.100 again (quoted IP checksum 0x8d12, UDP
    /// 0xf365, as sent).
    #[test]
    fn v4_udp_time_exceeded_exact_bytes() {
        let received = crate::responder::fixture::hex(
            "4500003c000040000111ad32c00002070a140064\
             a7f9829a00281386\
             404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
        );
        let expected = crate::responder::fixture::hex(
            "45000058000000004001ae250a140065c0000207\
             0b00e1d800000000\
             4500003c0000400001118d12c0000207c6336464\
             a7f9829a0028f365\
             404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
        );
        let mut out = [0u8; MAX_REPLY];
        let Decision::Reply { len, .. } = decide(&received, &table(), &no_port_open, &mut out)
        else {
            panic!("no reply");
        };
        assert_eq!(out[..len], expected);
    }

    /// Past the hops: the target's port unreachable quotes the public
    /// target too (its source stays local: the NAT maps it).
    #[test]
    fn port_unreachable_from_the_target_quotes_the_public_target() {
        for (sent, received, target, icmp_type) in [
            (
                v4(PUBLIC, 3, Proto::Udp, PAYLOAD),
                v4(LOCAL, 3, Proto::Udp, PAYLOAD),
                IpAddr::V4(LOCAL),
                3,
            ),
            (
                v6(V6_PUBLIC, 3, Proto::Udp, PAYLOAD),
                v6(V6_LOCAL, 3, Proto::Udp, PAYLOAD),
                IpAddr::V6(V6_LOCAL),
                1,
            ),
        ] {
            let (from, got_type, quote) = reply(&received);
            assert_eq!((from, got_type), (target, icmp_type));
            assert_eq!(quote, sent);
        }
    }

    /// A trace to a hop address quotes that address's public one; its
    /// echo reply (no quote) is the request's data as ever.
    #[test]
    fn hop_addresses_quote_their_own_public_address() {
        let sent = v4(HOP2_PUBLIC, 1, Proto::Udp, PAYLOAD);
        let (from, icmp_type, quote) = reply(&v4(HOP2, 1, Proto::Udp, PAYLOAD));
        assert_eq!((from, icmp_type), (IpAddr::V4(HOP1), 11));
        assert_eq!(quote, sent);
        let (from, icmp_type, data) = reply(&v4(HOP2, 2, Proto::Echo, PAYLOAD));
        assert_eq!((from, icmp_type), (IpAddr::V4(HOP2), 0));
        assert_eq!(data, PAYLOAD);
        // V6_HOP2 has no public address: its quote stays as received.
        let received = v6(V6_HOP2, 1, Proto::Udp, PAYLOAD);
        let (_, _, quote) = reply(&received);
        assert_eq!(quote, received);
    }

    /// A quote cut at 576 bytes: the checksums are adjusted all the same,
    /// as a NAT does without seeing the whole datagram.
    #[test]
    fn a_cut_quote_is_adjusted_too() {
        let payload = [0x5au8; 1472];
        let sent = v4(PUBLIC, 1, Proto::Udp, &payload);
        let (_, _, quote) = reply(&v4(LOCAL, 1, Proto::Udp, &payload));
        assert_eq!(quote.len(), MAX_QUOTE_V4);
        assert_eq!(quote, sent[..MAX_QUOTE_V4]);
        let sent = v6(V6_PUBLIC, 1, Proto::Tcp, &payload);
        let (_, _, quote) = reply(&v6(V6_LOCAL, 1, Proto::Tcp, &payload));
        assert_eq!(quote.len(), MAX_QUOTE_V6);
        assert_eq!(quote, sent[..MAX_QUOTE_V6]);
    }

    /// A UDP datagram without checksum (zero, IPv4) keeps none.
    #[test]
    fn udp_without_checksum_keeps_none() {
        let mut received = v4(LOCAL, 1, Proto::Udp, PAYLOAD);
        received[26..28].copy_from_slice(&[0, 0]);
        let mut sent = v4(PUBLIC, 1, Proto::Udp, PAYLOAD);
        sent[26..28].copy_from_slice(&[0, 0]);
        let (_, _, quote) = reply(&received);
        assert_eq!(quote, sent);
    }

    /// UDP-Lite and DCCP carry a pseudo-header checksum at bytes 6..8;
    /// SCTP (a CRC32c without one) is quoted with only the address and
    /// the IP header checksum changed.
    #[test]
    fn other_protocols_with_a_pseudo_header_are_adjusted() {
        for (protocol, checksum_at) in [(136u8, Some(6)), (33, Some(6)), (132, None)] {
            let mut received = v4(LOCAL, 1, Proto::Udp, PAYLOAD);
            received[9] = protocol;
            crate::responder::fixture::fix_ipv4_checksum(&mut received);
            let (_, _, quote) = reply(&received);
            let mut expected = received.clone();
            expected[16..20].copy_from_slice(&PUBLIC.octets());
            crate::responder::fixture::fix_ipv4_checksum(&mut expected);
            if let Some(at) = checksum_at {
                // The same change as UDP's, whose sum covers the same
                // pseudo-header.
                let udp_sent = v4(PUBLIC, 1, Proto::Udp, PAYLOAD);
                expected[20 + at..22 + at].copy_from_slice(&udp_sent[26..28]);
            }
            assert_eq!(quote, expected, "protocol {protocol}");
        }
    }

    #[test]
    fn with_public_ignores_what_it_cannot_use() {
        let table = Table::new([(IpAddr::V4(LOCAL), vec![Some(IpAddr::V4(HOP1))])]).with_public([
            (LOCAL.into(), V6_PUBLIC.into()),
            (HOP1.into(), HOP1_PUBLIC.into()),
            (HOP2.into(), HOP2_PUBLIC.into()),
        ]);
        assert_eq!(table.public(LOCAL.into()), None);
        // HOP1 is no destination in a plain table.
        assert_eq!(table.public(HOP1.into()), None);
        assert_eq!(table.public(HOP2.into()), None);
        let received = v4(LOCAL, 1, Proto::Udp, PAYLOAD);
        let mut out = [0u8; MAX_REPLY];
        let Decision::Reply { len, .. } = decide(&received, &table, &no_port_open, &mut out) else {
            panic!("no reply");
        };
        assert_eq!(out[28..len], received);
    }

    proptest! {
        /// The incremental update equals a full recomputation.
        #[test]
        fn adjust_checksum_matches_a_full_sum(
            mut data in proptest::collection::vec(any::<u8>(), 24..64),
            new in any::<[u8; 16]>(),
            at in 0usize..4,
        ) {
            if data.len() % 2 == 1 {
                data.pop();
            }
            let at = at * 2;
            let field = 8..24;
            let sum = |bytes: &[u8]| {
                let mut b = bytes.to_vec();
                b[at..at + 2].copy_from_slice(&[0, 0]);
                ones_complement(&b)
            };
            let initial = sum(&data).to_ne_bytes();
            data[at..at + 2].copy_from_slice(&initial);
            let old = data[field.clone()].to_vec();
            data[field.clone()].copy_from_slice(&new);
            adjust_checksum(&mut data, at, &old, &new, false);
            prop_assert_eq!(ones_complement(&data), 0);
        }
    }
}
