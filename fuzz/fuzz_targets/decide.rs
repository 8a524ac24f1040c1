//! Fuzzes the responder's decision function: arbitrary bytes, behind a hop
//! table and a port table built from the first bytes of the input.
//!
//! `decide` must never panic, and every reply it writes must be something
//! we would put on the wire: an IPv4 or IPv6 packet that etherparse parses
//! back, with correct IP and ICMP checksums, no longer than the family's
//! limit (576 bytes on v4, 1280 on v6), sent to the probe's source from the
//! right address, quoting the probe's first bytes unchanged, never more
//! than twice the probe's size, and only for a probe DESIGN.md says gets an
//! answer: at a fake hop any protocol (TCP with any flags, UDP-Lite, SCTP,
//! GRE, unassigned numbers...) but ICMP errors and queries; past the hops
//! only UDP to a closed port.
//!
//! Input layout (see `Input::parse`):
//! ```text
//! byte 0      flags: bit 0 the probe's own destination is the target,
//!                    bit 1 every UDP port is open, bit 2 a second target
//!                    of each family, bit 3 hop addresses answer as router
//!                    interfaces (`Table::router`), bit 4 the target sits
//!                    behind a 1:1 NAT (`Table::with_public`: errors quote
//!                    the probe with its public destination), bit 5 the
//!                    hops are a message split into windows (`--window`):
//!                    window w is a target of its own with the next K hops
//!                    (the last window the rest), all sharing the hop
//!                    addresses, and the input's target is window
//!                    `flags >> 6`; the other windows' targets are
//!                    198.18.1.w / 2001:db8:0:1::w
//! byte 1      number of fake hops N (0..=63, the low 6 bits), and K - 1
//!             (the high 2 bits: 1 to 4 hops per window)
//! N bytes     hop i: 0 = silent; else an address of the packet's family
//!             ending in b & 0x7f, or of the other family when b & 0x80
//!             (such a hop must stay silent)
//! 2 bytes     one open UDP port (big endian)
//! rest        the packet, from its IP header on (version 6: IPv6)
//! ```
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use etherparse::{
    icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, NetSlice,
    SlicedPacket, TransportSlice,
};
use libfuzzer_sys::fuzz_target;

// The decision module alone, compiled in from the responder's source: it
// needs only std and etherparse, so the sanitizer build stays small (the
// troll crate as a whole would pull in the cloud SDKs).
#[path = "../../src/responder/decide.rs"]
#[allow(dead_code)]
mod decide;

use decide::{
    decide, pseudo_header_checksum, Decision, ReplyKind, Table, MAX_REPLY, MAX_REPLY_V4,
    MAX_REPLY_V6,
};

// The delay queue and per-line delays (std only), compiled in the same way.
#[path = "../../src/responder/delay.rs"]
#[allow(dead_code)]
mod delay;

// The checksum helpers of the decision's unit tests (std and etherparse).
#[path = "../../src/responder/fixture.rs"]
mod fixture;

use fixture::{icmpv6_sum, ones_complement};

/// The targets when the input does not take the probe's destination.
const TARGET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The target's public address when the input puts it behind a 1:1 NAT.
const PUBLIC_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
const PUBLIC_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x200);
/// IP header (no options or extensions) plus the 8-byte ICMP header.
const REPLY_HEADERS_V4: usize = 28;
const REPLY_HEADERS_V6: usize = 48;

fn hop_v4(b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, b))
}

fn hop_v6(b: u8) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(b)))
}

struct Input<'a> {
    v6: bool,
    target: IpAddr,
    hops: Vec<Option<IpAddr>>,
    all_open: bool,
    second_targets: bool,
    router: bool,
    behind_nat: bool,
    /// Hops per window, when the hops are split into windows.
    window: Option<usize>,
    /// Which window the input's target is.
    window_index: usize,
    open_port: u16,
    packet: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Input<'a>> {
        let (&flags, rest) = data.split_first()?;
        let (&n_byte, rest) = rest.split_first()?;
        let n = usize::from(n_byte % 64);
        if rest.len() < n + 2 {
            return None;
        }
        let (hop_bytes, rest) = rest.split_at(n);
        let (port, packet) = rest.split_at(2);
        let v6 = packet.first().is_some_and(|b| b >> 4 == 6);
        let hops = hop_bytes
            .iter()
            .map(|&b| {
                let (low, other) = (b & 0x7f, b & 0x80 != 0);
                (b != 0).then(|| {
                    if v6 != other {
                        hop_v6(low)
                    } else {
                        hop_v4(low)
                    }
                })
            })
            .collect();
        let own_destination = flags & 1 != 0;
        let target = if v6 {
            match packet.get(24..40) {
                Some(d) if own_destination => {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(d).ok()?))
                }
                _ => IpAddr::V6(TARGET_V6),
            }
        } else {
            match packet.get(16..20) {
                Some(d) if own_destination => IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])),
                _ => IpAddr::V4(TARGET_V4),
            }
        };
        Some(Input {
            v6,
            target,
            hops,
            all_open: flags & 2 != 0,
            second_targets: flags & 4 != 0,
            router: flags & 8 != 0,
            behind_nat: flags & 16 != 0,
            window: (flags & 32 != 0).then_some(usize::from(n_byte >> 6) + 1),
            window_index: usize::from(flags >> 6),
            open_port: u16::from_be_bytes([port[0], port[1]]),
            packet,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let windows = input.windows();
    let mut entries = match &windows {
        Some(windows) => windows.clone(),
        None => vec![(input.target, input.hops.clone())],
    };
    if input.second_targets {
        // Other targets, so lookups must pick the right one.
        entries.push((hop_v4(99), vec![None, Some(hop_v4(98))]));
        entries.push((hop_v6(99), vec![None, Some(hop_v6(98))]));
    }
    let table = if input.router {
        Table::router(entries.clone())
    } else {
        Table::new(entries.clone())
    };
    let table = if input.behind_nat {
        let public = match input.target {
            IpAddr::V4(_) => IpAddr::V4(PUBLIC_V4),
            IpAddr::V6(_) => IpAddr::V6(PUBLIC_V6),
        };
        table.with_public([(input.target, public)])
    } else {
        table
    };
    let (all_open, open_port) = (input.all_open, input.open_port);
    let ports = move |_: IpAddr, port: u16| all_open || port == open_port;
    let mut out = [0u8; MAX_REPLY];
    match decide(input.packet, &table, &ports, &mut out) {
        Decision::Reply {
            len,
            to,
            kind,
            line,
        } => {
            assert!(len <= MAX_REPLY, "reply length {len}");
            let reply = &out[..len];
            check_line_and_delay(&input, &table, reply, kind, line);
            if let Some(windows) = &windows {
                check_window(&input, windows, &entries, reply, kind);
            }
            let (family, check, length): (_, fn(&Answered<'_>), _) = if input.v6 {
                ("v6", check_reply_v6, REPLY_HEADERS_V6..=MAX_REPLY_V6)
            } else {
                ("v4", check_reply_v4, REPLY_HEADERS_V4..=MAX_REPLY_V4)
            };
            assert!(length.contains(&len), "{family} reply length {len}");
            check(&Answered {
                input: &input,
                table: &table,
                ports: &ports,
                reply,
                to,
                kind,
            });
        }
        Decision::Kernel => {
            // Only packets for a target, past its fake hops, go to the kernel.
            let (destination, ttl) = if input.v6 {
                let ip = Ipv6HeaderSlice::from_slice(input.packet).expect("an IPv6 header");
                (IpAddr::V6(ip.destination_addr()), ip.hop_limit())
            } else {
                let ip = Ipv4HeaderSlice::from_slice(input.packet).expect("an IPv4 header");
                (IpAddr::V4(ip.destination_addr()), ip.ttl())
            };
            let hops = table
                .hops(destination)
                .expect("kernel packets are for a target");
            assert!(
                usize::from(ttl) > hops.len(),
                "a fake hop's packet left to the kernel"
            );
            if let Some(windows) = &windows {
                let once = entries.iter().filter(|(t, _)| *t == destination).count() == 1;
                if let Some((_, own)) = windows.iter().find(|(t, _)| once && *t == destination) {
                    assert!(
                        usize::from(ttl) > own.len(),
                        "a window's hop left to the kernel"
                    );
                }
            }
        }
        Decision::Drop(_) => {}
    }
});

impl Input<'_> {
    /// The windows the input's hops make (bit 5), as the planner splits a
    /// message: `(target, hops)` per window, the input's target at
    /// `window_index` (or the last window, if there are fewer).
    fn windows(&self) -> Option<Vec<(IpAddr, Vec<Option<IpAddr>>)>> {
        let per = self.window?;
        let mut chunks: Vec<Vec<Option<IpAddr>>> = self
            .hops
            .chunks(per)
            .map(<[Option<IpAddr>]>::to_vec)
            .collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let own = self.window_index.min(chunks.len() - 1);
        Some(
            chunks
                .into_iter()
                .enumerate()
                .map(|(w, hops)| {
                    let target = if w == own {
                        self.target
                    } else if self.v6 {
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, w as u16))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(198, 18, 1, w as u8))
                    };
                    (target, hops)
                })
                .collect(),
        )
    }
}

/// A reply to a probe for a window's target: Time Exceeded comes from
/// that window's own hop of the probe's TTL (the input's hops split in
/// chunks, not the table's lookup), and nothing else answers below the
/// window's end.
fn check_window(
    input: &Input<'_>,
    windows: &[(IpAddr, Vec<Option<IpAddr>>)],
    entries: &[(IpAddr, Vec<Option<IpAddr>>)],
    reply: &[u8],
    kind: ReplyKind,
) {
    let (destination, ttl, source) = if input.v6 {
        let ip = Ipv6HeaderSlice::from_slice(input.packet).expect("an IPv6 header");
        let reply = Ipv6HeaderSlice::from_slice(reply).expect("the reply parses");
        (
            IpAddr::V6(ip.destination_addr()),
            ip.hop_limit(),
            IpAddr::V6(reply.source_addr()),
        )
    } else {
        let ip = Ipv4HeaderSlice::from_slice(input.packet).expect("an IPv4 header");
        let reply = Ipv4HeaderSlice::from_slice(reply).expect("the reply parses");
        (
            IpAddr::V4(ip.destination_addr()),
            ip.ttl(),
            IpAddr::V4(reply.source_addr()),
        )
    };
    // A target the input made equal to another entry's is that entry's.
    if entries.iter().filter(|(t, _)| *t == destination).count() != 1 {
        return;
    }
    let Some((target, hops)) = windows.iter().find(|(t, _)| *t == destination) else {
        return;
    };
    let t = usize::from(ttl);
    match kind {
        ReplyKind::TimeExceeded => {
            let hop = hops
                .get(t - 1)
                .copied()
                .flatten()
                .expect("time exceeded past the window's hops, or from a silent one");
            assert_eq!(source, hop, "time exceeded from another window's hop");
        }
        ReplyKind::PortUnreachable | ReplyKind::EchoReply => {
            assert!(t > hops.len(), "{kind:?} inside the window");
            assert_eq!(source, *target, "{kind:?} not from the window's target");
        }
    }
}

/// The line a reply is counted for, and what the delay queue does with it:
/// the per-line delay the input's settings give (hop delay from the open
/// port, one line's own from flags and the hop count), never over 2000 ms;
/// a queued reply is kept whole, refused when the queue is full, not
/// released before it is due and released exactly then.
fn check_line_and_delay(input: &Input<'_>, table: &Table, reply: &[u8], kind: ReplyKind, line: u8) {
    let (destination, ttl) = if input.v6 {
        let ip = Ipv6HeaderSlice::from_slice(input.packet).expect("an IPv6 header");
        (IpAddr::V6(ip.destination_addr()), ip.hop_limit())
    } else {
        let ip = Ipv4HeaderSlice::from_slice(input.packet).expect("an IPv4 header");
        (IpAddr::V4(ip.destination_addr()), ip.ttl())
    };
    let hops = table.hops(destination).expect("replies only for targets");
    let expected = match kind {
        ReplyKind::TimeExceeded => ttl,
        _ => u8::try_from(hops.len() + 1).unwrap_or(u8::MAX),
    };
    assert_eq!(line, expected, "reply counted for the wrong line");

    let hop_ms = u32::from(input.open_port);
    let lines = [(
        usize::from(input.hops.len() as u8 & 0x3f),
        u32::from(input.open_port >> 5),
    )];
    let delays = delay::Delays::new(hop_ms, &lines);
    let wait = delays.of_line(line);
    let ms = delay::delay_of_line(hop_ms, &lines, usize::from(line));
    assert!(ms <= delay::MAX_DELAY_MS, "delay {ms} ms over the cap");
    assert_eq!(
        wait,
        Duration::from_millis(ms.into()),
        "per-line table disagrees"
    );

    let t0 = Instant::now();
    let mut queue = delay::DelayQueue::new(1);
    assert!(queue.push(t0 + wait, reply, line));
    assert!(!queue.push(t0, reply, line), "a full queue took a reply");
    if let Some(early) = (t0 + wait).checked_sub(Duration::from_nanos(1)) {
        if !wait.is_zero() {
            assert!(!queue.pop_due(early, |_, _| ()), "released early");
        }
    }
    let mut released = false;
    assert!(queue.pop_due(t0 + wait, |bytes, l| {
        assert_eq!(bytes, reply, "the queue changed the reply");
        assert_eq!(l, line);
        released = true;
    }));
    assert!(released && queue.is_empty());
}

/// The hop that answers arrival TTL `ttl` for `target`, which the reply's
/// kind and source must match.
fn check_who_answers(
    table: &Table,
    ports: &dyn Fn(IpAddr, u16) -> bool,
    target: IpAddr,
    ttl: u8,
    kind: ReplyKind,
    reply_source: IpAddr,
    udp_port: Option<u16>,
) {
    let hops = table.hops(target).expect("replies only for targets");
    let t = usize::from(ttl);
    assert_ne!(t, 0, "answered TTL 0");
    let hop_address = table.is_hop_address(target);
    match kind {
        ReplyKind::TimeExceeded => {
            assert!(t <= hops.len(), "time exceeded past the fake hops");
            let hop = hops[t - 1].expect("silent hops never answer");
            assert_eq!(reply_source, hop, "time exceeded from the wrong hop");
            assert_eq!(hop.is_ipv4(), target.is_ipv4(), "hop of the other family");
        }
        ReplyKind::PortUnreachable => {
            assert!(t > hops.len(), "port unreachable from a fake hop");
            assert_eq!(reply_source, target, "port unreachable not from the target");
            let port = udp_port.expect("port unreachable for UDP only");
            // A hop address has no UDP service: the kernel never sees it.
            assert!(
                hop_address || !ports(target, port),
                "port unreachable for open port {port}"
            );
        }
        ReplyKind::EchoReply => {
            assert!(hop_address, "echo reply from a show's target");
            assert!(t > hops.len(), "echo reply from below the hop address");
            assert_eq!(reply_source, target, "echo reply not from the address");
        }
    }
}

/// A reply `decide` made, and what it was made from.
struct Answered<'a> {
    input: &'a Input<'a>,
    table: &'a Table,
    ports: &'a dyn Fn(IpAddr, u16) -> bool,
    reply: &'a [u8],
    to: IpAddr,
    kind: ReplyKind,
}

fn check_reply_v4(answered: &Answered<'_>) {
    let (input, reply, to, kind) = (answered.input, answered.reply, answered.to, answered.kind);
    let len = reply.len();

    // The probe: a well-formed IPv4 packet the reply may answer.
    let probe_hdr = Ipv4HeaderSlice::from_slice(input.packet).expect("answered probes parse");
    let probe_len = usize::from(probe_hdr.total_len());
    let probe = &input.packet[..probe_len];
    let header_len = probe_hdr.slice().len();
    assert_eq!(
        ones_complement(probe_hdr.slice()),
        0,
        "answered a bad IP checksum"
    );
    assert_eq!(
        probe_hdr.fragments_offset().value(),
        0,
        "answered a later fragment"
    );
    let protocol = probe_hdr.protocol();
    assert!(
        probe_len >= header_len + 8,
        "answered a probe without 8 bytes to quote"
    );
    let src = probe_hdr.source_addr();
    assert!(
        !(src.is_multicast()
            || src.is_loopback()
            || src.octets()[0] == 0
            || src.octets()[0] >= 240),
        "answered a bad source {src}"
    );
    check_addressed(to, IpAddr::V4(src), len, probe_len);

    // The reply parses back and its headers are what we claim.
    let sliced = SlicedPacket::from_ip(reply).expect("the reply parses");
    let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
        panic!("a v4 probe got a non-v4 reply");
    };
    let hdr = ip.header();
    assert_eq!(hdr.ihl(), 5, "reply with IP options");
    assert_eq!(usize::from(hdr.total_len()), len, "reply total length");
    assert_eq!(hdr.protocol(), IpNumber::ICMP);
    assert_eq!(IpAddr::V4(hdr.destination_addr()), to);
    assert_ne!(hdr.ttl(), 0);
    assert!(!hdr.is_fragmenting_payload());
    assert_eq!(ones_complement(&reply[..20]), 0, "IP header checksum");
    assert_eq!(
        hdr.header_checksum(),
        hdr.to_header().calc_header_checksum()
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &sliced.transport else {
        panic!("the reply is not ICMP");
    };
    assert_eq!(ones_complement(&reply[20..]), 0, "ICMP checksum");
    assert_eq!(
        icmp.checksum(),
        icmp.header().icmp_type.calc_checksum(icmp.payload())
    );
    if kind != ReplyKind::EchoReply {
        assert_eq!(&reply[24..28], &[0u8; 4], "ICMP bytes 4..8 must be zero");
    }
    let icmp_type = &icmp.header().icmp_type;
    let as_claimed = match kind {
        ReplyKind::TimeExceeded => matches!(
            icmp_type,
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit)
        ),
        ReplyKind::PortUnreachable => matches!(
            icmp_type,
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
        ),
        ReplyKind::EchoReply => matches!(icmp_type, Icmpv4Type::EchoReply(_)),
    };
    assert!(as_claimed, "{kind:?} sent as {icmp_type:?}");
    let udp_port = match kind {
        ReplyKind::TimeExceeded | ReplyKind::PortUnreachable => {
            // Only probes get answers: echo requests among ICMP messages;
            // TCP with any flags and every other protocol at a fake hop only
            // (a router answers them all; the target leaves them to its
            // kernel).
            let transport = &probe[header_len..];
            match protocol {
                IpNumber::ICMP => assert_eq!(transport[0], 8, "answered an ICMP non-echo"),
                IpNumber::UDP => {}
                other => assert_eq!(
                    kind,
                    ReplyKind::TimeExceeded,
                    "the target answered protocol {other:?}"
                ),
            }
            let public = answered
                .table
                .public(IpAddr::V4(probe_hdr.destination_addr()))
                .map(|public| Translated {
                    public,
                    transport_at: Some((header_len, protocol)),
                });
            check_quote(reply, REPLY_HEADERS_V4, MAX_REPLY_V4, probe, public);
            (protocol == IpNumber::UDP).then(|| u16::from_be_bytes([transport[2], transport[3]]))
        }
        ReplyKind::EchoReply => {
            // The request mirrored whole: identifier, sequence and data,
            // never longer than the request (no amplification).
            assert_eq!(probe_hdr.protocol(), IpNumber::ICMP);
            assert_eq!(len, probe_len, "echo reply of another size");
            assert_eq!(&reply[24..], &probe[header_len + 4..], "echo not mirrored");
            None
        }
    };
    check_who_answers(
        answered.table,
        answered.ports,
        IpAddr::V4(probe_hdr.destination_addr()),
        probe_hdr.ttl(),
        kind,
        IpAddr::V4(hdr.source_addr()),
        udp_port,
    );
}

/// The reply goes to the probe's source, and is at most twice the probe's
/// size (no amplification).
fn check_addressed(to: IpAddr, probe_source: IpAddr, len: usize, probe_len: usize) {
    assert_eq!(to, probe_source, "reply not to the probe's source");
    assert!(
        len <= 2 * probe_len,
        "reply {len} bytes for a {probe_len}-byte probe"
    );
}

/// A probe to a target behind a 1:1 NAT: its quote carries `public`.
struct Translated {
    public: IpAddr,
    /// Where the upper layer starts and its protocol, when the probe shows
    /// it plainly (IPv4; IPv6 without extension headers).
    transport_at: Option<(usize, IpNumber)>,
}

/// The quote behind the reply's `headers` bytes: the probe's first bytes,
/// byte for byte, as many as fit in a reply of `max` bytes. Behind a 1:1
/// NAT (`translated`) it differs in the destination, which is the public
/// address, and in the checksums that cover it: the IPv4 header's, still
/// valid, and one 16-bit word of the upper layer's, where its protocol
/// keeps a pseudo-header checksum (anywhere in it when extension headers
/// hide the protocol).
fn check_quote(
    reply: &[u8],
    headers: usize,
    max: usize,
    probe: &[u8],
    translated: Option<Translated>,
) {
    let quote = &reply[headers..];
    assert_eq!(quote.len(), probe.len().min(max - headers), "quote length");
    let probe = &probe[..quote.len()];
    let Some(translated) = translated else {
        assert_eq!(quote, probe, "the quote differs from the probe");
        return;
    };
    let (public, destination, ip_checksum) = match translated.public {
        IpAddr::V4(a) => (a.octets().to_vec(), 16..20, Some(10..12)),
        IpAddr::V6(a) => (a.octets().to_vec(), 24..40, None),
    };
    assert_eq!(quote[destination.clone()], public[..], "quoted destination");
    if ip_checksum.is_some() {
        let header_len = usize::from(quote[0] & 0x0f) * 4;
        assert_eq!(
            ones_complement(&quote[..header_len]),
            0,
            "quoted IPv4 checksum"
        );
    }
    let transport = translated.transport_at.and_then(|(at, protocol)| {
        pseudo_header_checksum(protocol, translated.public.is_ipv6())
            .map(|(off, zero_is_none)| (at + off, zero_is_none))
    });
    let transport_word = transport.map(|(at, _)| at);
    if let Some((at, zero_is_none)) = transport.filter(|(at, _)| at + 2 <= quote.len()) {
        // RFC 1624: the checksum moves with the address it covers, so
        // ~C' + old address == ~C + new address (ones' complement, where
        // 0 and 0xffff are one value); UDP's "no checksum" stays zero.
        let word = |b: &[u8]| u16::from_be_bytes([b[at], b[at + 1]]);
        let (before, after) = (word(probe), word(quote));
        if zero_is_none && before == 0 {
            assert_eq!(after, 0, "a zero UDP checksum was changed");
        } else {
            let sum = |c: u16, address: &[u8]| {
                let s = ones_complement(&[&(!c).to_be_bytes()[..], address].concat());
                // ones_complement returns the complemented sum; 0 and
                // 0xffff are the same value.
                if s == 0xffff {
                    0
                } else {
                    s
                }
            };
            assert_eq!(
                sum(after, &probe[destination.clone()]),
                sum(before, &public),
                "the quoted transport checksum was not moved with the address"
            );
        }
    }
    // Where extension headers hide the upper layer, one word may differ
    // anywhere after the IPv6 header; elsewhere only the transport's.
    let mut unexplained = 0;
    for i in (0..quote.len()).step_by(2) {
        let word = i..(i + 2).min(quote.len());
        let explained = quote[word.clone()] == probe[word]
            || destination.contains(&i)
            || ip_checksum.as_ref().is_some_and(|c| c.contains(&i))
            || transport_word == Some(i);
        if !explained {
            unexplained += 1;
            assert!(
                translated.transport_at.is_none() && i >= 40,
                "the quote differs from the probe at byte {i}"
            );
        }
    }
    assert!(
        unexplained <= 1,
        "the quote differs from the probe in {unexplained} words"
    );
}

fn check_reply_v6(answered: &Answered<'_>) {
    let (input, reply, to, kind) = (answered.input, answered.reply, answered.to, answered.kind);
    let len = reply.len();

    let probe_hdr = Ipv6HeaderSlice::from_slice(input.packet).expect("answered probes parse");
    let probe_len = 40 + usize::from(probe_hdr.payload_length());
    let probe = &input.packet[..probe_len];
    assert!(probe_len >= 48, "answered a probe without 8 bytes to quote");
    let src = probe_hdr.source_addr();
    assert!(
        !(src.is_unspecified()
            || src.is_loopback()
            || src.is_multicast()
            || src.to_ipv4_mapped().is_some()),
        "answered a bad source {src}"
    );
    assert!(
        !probe_hdr.destination_addr().is_multicast(),
        "answered a multicast destination"
    );
    check_addressed(to, IpAddr::V6(src), len, probe_len);

    let sliced = SlicedPacket::from_ip(reply).expect("the reply parses");
    let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
        panic!("a v6 probe got a non-v6 reply");
    };
    let hdr = ip.header();
    assert_eq!(
        usize::from(hdr.payload_length()) + 40,
        len,
        "reply payload length"
    );
    assert_eq!(
        hdr.next_header(),
        IpNumber::IPV6_ICMP,
        "reply with extension headers"
    );
    assert_eq!(IpAddr::V6(hdr.destination_addr()), to);
    assert_ne!(hdr.hop_limit(), 0);
    let Some(TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
        panic!("the reply is not ICMPv6");
    };
    // The checksum covers the pseudo header (RFC 4443 2.3).
    assert_eq!(
        icmpv6_sum(hdr.source(), hdr.destination(), &reply[40..]),
        0,
        "ICMPv6 checksum"
    );
    let expected = icmp
        .header()
        .icmp_type
        .calc_checksum(hdr.source(), hdr.destination(), icmp.payload())
        .expect("a checksum");
    assert_eq!(icmp.checksum(), expected);
    if kind != ReplyKind::EchoReply {
        assert_eq!(&reply[44..48], &[0u8; 4], "ICMPv6 bytes 4..8 must be zero");
    }
    let icmp_type = &icmp.header().icmp_type;
    let as_claimed = match kind {
        ReplyKind::TimeExceeded => matches!(
            icmp_type,
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded)
        ),
        ReplyKind::PortUnreachable => matches!(
            icmp_type,
            Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port)
        ),
        ReplyKind::EchoReply => matches!(icmp_type, Icmpv6Type::EchoReply(_)),
    };
    assert!(as_claimed, "{kind:?} sent as {icmp_type:?}");
    let udp_port = match kind {
        ReplyKind::TimeExceeded | ReplyKind::PortUnreachable => {
            // Without extension headers the probe kind is plain to see.
            // Behind extension headers the upper layer is decide's to find.
            let next = probe_hdr.next_header();
            let public = answered
                .table
                .public(IpAddr::V6(probe_hdr.destination_addr()))
                .map(|public| Translated {
                    public,
                    transport_at: (!next.is_ipv6_ext_header_value()).then_some((40, next)),
                });
            check_quote(reply, REPLY_HEADERS_V6, MAX_REPLY_V6, probe, public);
            let transport = &probe[40..];
            let next = probe_hdr.next_header();
            match next {
                IpNumber::IPV6_ICMP => {
                    assert_eq!(transport[0], 128, "answered an ICMPv6 non-echo");
                    None
                }
                IpNumber::UDP => Some(u16::from_be_bytes([transport[2], transport[3]])),
                // Behind extension headers the port is not at a fixed
                // place: decide walked the chain, so does this.
                _ if kind == ReplyKind::PortUnreachable => Some(upper_udp_port(next, transport)),
                _ => None,
            }
        }
        ReplyKind::EchoReply => {
            // The request's echo mirrored whole (its upper layer, behind any
            // extension headers), never longer than the request.
            assert!(len <= probe_len, "echo reply longer than the request");
            let echo = &reply[44..];
            assert!(probe.ends_with(echo), "echo not mirrored");
            None
        }
    };
    check_who_answers(
        answered.table,
        answered.ports,
        IpAddr::V6(probe_hdr.destination_addr()),
        probe_hdr.hop_limit(),
        kind,
        IpAddr::V6(hdr.source_addr()),
        udp_port,
    );
}

/// The UDP destination port behind a chain of IPv6 extension headers
/// (hop-by-hop, routing, fragment, destination options, authentication).
fn upper_udp_port(mut next: IpNumber, mut rest: &[u8]) -> u16 {
    loop {
        let len = match next {
            IpNumber::UDP => return u16::from_be_bytes([rest[2], rest[3]]),
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_DESTINATION_OPTIONS
            | IpNumber::IPV6_ROUTE_HEADER => (usize::from(rest[1]) + 1) * 8,
            IpNumber::IPV6_FRAGMENTATION_HEADER => 8,
            IpNumber::AUTHENTICATION_HEADER => (usize::from(rest[1]) + 2) * 4,
            other => panic!("port unreachable for a probe whose upper layer is {other:?}"),
        };
        next = IpNumber(rest[0]);
        rest = &rest[len..];
    }
}
