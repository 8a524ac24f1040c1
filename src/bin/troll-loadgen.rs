//! `troll-loadgen`: offers traceroute-like probes at a fixed rate and counts
//! the answers, for the benchmark (`scripts/bench.sh`) and the flood tests.
//!
//! It runs in a lab's client namespace. Probes leave through a raw socket
//! (IPPROTO_RAW, so IP_HDRINCL: we write the TTL and, optionally, a spoofed
//! source) in `sendmmsg` batches, paced to `--rate` packets per second for
//! `--duration` seconds. Every probe carries a 32-bit sequence number where
//! the answer brings it back (UDP and ICMP payload, TCP sequence number), so
//! a receiver thread on raw ICMP (and TCP) sockets counts only answers to
//! this run's probes: Time Exceeded, port unreachable, echo reply, RST or
//! SYN-ACK, and the distinct probes answered. The last line on stdout is
//! one JSON object with everything counted.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use etherparse::{
    icmpv4::DestUnreachableHeader, Icmpv4Slice, Icmpv4Type, IpHeaders, IpNumber, Ipv4Header,
    LaxNetSlice, LaxSlicedPacket, PacketBuilder, TcpSlice, TransportSlice,
};

/// Marks this generator's UDP and ICMP payloads ("TRLG").
const MAGIC: [u8; 4] = *b"TRLG";
/// Most packets one `sendmmsg` or `recvmmsg` call handles.
const MAX_BATCH: usize = 1024;
/// Receive buffer per packet: the biggest answer is 576 bytes (v4 ICMP
/// errors), a TCP answer much less; room for anything up to the MTU.
const RECV_SLOT: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// UDP to closed ports from 33434 up, like traceroute's default.
    Udp,
    /// ICMP echo requests, like traceroute -I and mtr.
    Icmp,
    /// TCP SYN to one port, like traceroute -T.
    TcpSyn,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Udp => "udp",
            Kind::Icmp => "icmp",
            Kind::TcpSyn => "tcp-syn",
        }
    }
}

/// Offers probes at a fixed rate and counts the answers (run as root, in
/// the lab's client namespace).
#[derive(Debug, Parser)]
#[command(name = "troll-loadgen", version)]
struct Args {
    /// Destination of the probes
    #[arg(long)]
    target: Ipv4Addr,
    /// Probe protocol
    #[arg(long, value_enum, default_value = "udp")]
    kind: Kind,
    /// IP TTL of the probes (arrival TTL t selects fake hop t; past the
    /// last hop, the target answers)
    #[arg(long, default_value_t = 64)]
    ttl: u8,
    /// Offered rate in packets per second; 0 sends as fast as possible
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long to send, in seconds
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// How long to keep counting answers after the last probe, in seconds
    #[arg(long, default_value_t = 0.5)]
    wait: f64,
    /// Source address to write into the probes (spoofing; answers only
    /// come back if this namespace owns the address) [default: the
    /// route's source toward --target]
    #[arg(long)]
    source: Option<Ipv4Addr>,
    /// IP total length of UDP and ICMP probes (TCP SYNs are 40 bytes)
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(36..=1500))]
    size: u16,
    /// Destination port: first UDP port (probes cycle over 64 ports from
    /// it), or the TCP port
    #[arg(long)]
    port: Option<u16>,
    /// Probes per sendmmsg call
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(summary) => {
            println!("{}", summary);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("troll-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the receiver counted.
#[derive(Debug, Default, Clone)]
struct Answers {
    packets: u64,
    bytes: u64,
    time_exceeded: u64,
    port_unreachable: u64,
    other_unreachable: u64,
    echo_reply: u64,
    tcp_rst: u64,
    tcp_synack: u64,
    /// Distinct probes answered (a probe answered twice counts once).
    distinct: u64,
    duplicates: u64,
}

/// The probes of one run and how to recognise their answers.
#[derive(Debug, Clone, Copy)]
struct ProbeSpec {
    kind: Kind,
    source: Ipv4Addr,
    target: Ipv4Addr,
    ttl: u8,
    size: usize,
    port: u16,
    /// UDP source port, ICMP identifier, TCP source port: per process.
    ident: u16,
}

fn run(args: &Args) -> io::Result<String> {
    if !args.duration.is_finite() || args.duration <= 0.0 || args.duration > 3600.0 {
        return Err(invalid("--duration must be between 0 and 3600 seconds"));
    }
    if !args.wait.is_finite() || args.wait < 0.0 || args.wait > 60.0 {
        return Err(invalid("--wait must be between 0 and 60 seconds"));
    }
    let source = match args.source {
        Some(s) => s,
        None => route_source(args.target)?,
    };
    let spec = ProbeSpec {
        kind: args.kind,
        source,
        target: args.target,
        ttl: args.ttl,
        size: match args.kind {
            Kind::TcpSyn => 40,
            _ => usize::from(args.size),
        },
        port: args.port.unwrap_or(match args.kind {
            Kind::TcpSyn => 80,
            _ => 33434,
        }),
        // Distinct per process, so two generators never count each other's.
        ident: (std::process::id() as u16) | 0x8000,
    };

    let tx = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
    )?;
    tx.set_send_buffer_size(8 << 20)?;

    // Most probes we may send: the bitmap of answered sequence numbers.
    let max_probes = if args.rate == 0 {
        // Unpaced: bounded by what 2 cores can push, with a wide margin.
        (args.duration * 5_000_000.0) as u64 + MAX_BATCH as u64
    } else {
        (args.duration * args.rate as f64) as u64 + MAX_BATCH as u64
    };
    let rx_sockets = open_receivers(spec.kind)?;
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || receive(rx_sockets, spec, max_probes, &stop))
    };

    let sent = send(&tx, &spec, args, max_probes);
    std::thread::sleep(Duration::from_secs_f64(args.wait));
    stop.store(true, Ordering::Relaxed);
    let answers = receiver
        .join()
        .map_err(|_| io::Error::other("the receiver thread panicked"))??;
    let sent = sent?;
    Ok(summary(args, &spec, &sent, &answers))
}

fn invalid(text: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, text.to_string())
}

/// The source address the kernel would pick toward `target`.
fn route_source(target: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let probe = UdpSocket::bind("0.0.0.0:0")?;
    probe.connect(SocketAddrV4::new(target, 9))?;
    match probe.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(invalid("no IPv4 route source")),
    }
}

/// What the sender did.
#[derive(Debug, Default)]
struct Sent {
    packets: u64,
    bytes: u64,
    errors: u64,
    last_error: Option<String>,
    elapsed: Duration,
}

fn send(tx: &socket2::Socket, spec: &ProbeSpec, args: &Args, max_probes: u64) -> io::Result<Sent> {
    let batch = usize::from(args.batch);
    let mut bufs = vec![[0u8; 1500]; batch];
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut dest: libc::sockaddr_in = unsafe { mem::zeroed() };
    dest.sin_family = libc::AF_INET as libc::sa_family_t;
    dest.sin_addr.s_addr = u32::from_ne_bytes(spec.target.octets());

    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: spec.size,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; zeroed is a valid value.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { mem::zeroed() }).collect();
    for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        msg.msg_hdr.msg_name = (&raw mut dest).cast();
        msg.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }

    let mut out = Sent::default();
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let mut seq: u64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration || seq >= max_probes {
            break;
        }
        let n = if args.rate == 0 {
            batch as u64
        } else {
            let due = (elapsed.as_secs_f64() * args.rate as f64) as u64;
            if due <= seq {
                let next = Duration::from_secs_f64((seq + 1) as f64 / args.rate as f64);
                let wait = next.saturating_sub(elapsed);
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait - Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            (due - seq).min(batch as u64)
        };
        let n = n.min(max_probes - seq) as usize;
        for (i, buf) in bufs.iter_mut().take(n).enumerate() {
            write_probe(spec, (seq + i as u64) as u32, &mut buf[..spec.size]);
        }
        // SAFETY: msgs[..n] point at live iovecs, buffers and `dest`,
        // all of which outlive the call.
        let rc = unsafe { libc::sendmmsg(tx.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // ENOBUFS and the like: count the batch as lost, go on.
            out.errors += n as u64;
            out.last_error = Some(err.to_string());
            seq += n as u64;
            continue;
        }
        let done = rc as u64;
        out.packets += done;
        out.bytes += done * spec.size as u64;
        if done < n as u64 {
            // The first unsent probe failed; skip it so pacing goes on.
            out.errors += 1;
            seq += done + 1;
        } else {
            seq += done;
        }
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// Probe `seq`, `spec.size` bytes: the IPv4 header, then the transport
/// with the sequence number where the answer brings it back.
#[cfg(test)]
fn build_probe(spec: &ProbeSpec, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; spec.size];
    write_probe(spec, seq, &mut p);
    p
}

/// Writes probe `seq` into `out` (`spec.size` bytes), checksums and all.
/// UDP and ICMP payloads are [`MAGIC`], `seq`, then zeros; the TCP SYN's
/// sequence number is `seq`.
fn write_probe(spec: &ProbeSpec, seq: u32, out: &mut [u8]) {
    let ip = Ipv4Header {
        // IP ID: never 0 (the kernel would pick one), varies per probe.
        identification: (seq as u16) | 1,
        dont_fragment: false,
        ..Ipv4Header::new(
            0,
            spec.ttl,
            IpNumber::UDP,
            spec.source.octets(),
            spec.target.octets(),
        )
        .expect("an empty payload fits")
    };
    let builder = PacketBuilder::ip(IpHeaders::Ipv4(ip, Default::default()));
    let mut payload = [0u8; 1500];
    payload[..4].copy_from_slice(&MAGIC);
    payload[4..8].copy_from_slice(&seq.to_be_bytes());
    let payload = &payload[..spec.size.saturating_sub(28)];
    let mut writer = out;
    let written = match spec.kind {
        Kind::Udp => {
            // Closed ports from --port up, like traceroute's default.
            let port = spec.port.wrapping_add((seq % 64) as u16);
            builder.udp(spec.ident, port).write(&mut writer, payload)
        }
        Kind::Icmp => builder
            .icmpv4_echo_request(spec.ident, seq as u16)
            .write(&mut writer, payload),
        Kind::TcpSyn => builder
            .tcp(spec.ident, spec.port, seq, 64240)
            .syn()
            .write(&mut writer, &[]),
    };
    written.expect("a probe fits its buffer (--size is at most 1500)");
}

fn open_receivers(kind: Kind) -> io::Result<Vec<socket2::Socket>> {
    let mut protocols = vec![libc::IPPROTO_ICMP];
    if kind == Kind::TcpSyn {
        protocols.push(libc::IPPROTO_TCP);
    }
    protocols
        .into_iter()
        .map(|protocol| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(protocol)),
            )?;
            // Root may exceed rmem_max: a flood of answers must not
            // overflow the buffer between two reads.
            let size: libc::c_int = 64 << 20;
            // SAFETY: size is a valid c_int and the length matches it.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                s.set_recv_buffer_size(64 << 20)?;
            }
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect()
}

fn receive(
    sockets: Vec<socket2::Socket>,
    spec: ProbeSpec,
    max_probes: u64,
    stop: &AtomicBool,
) -> io::Result<Answers> {
    let mut answers = Answers::default();
    let mut seen = vec![0u64; (max_probes as usize).div_ceil(64)];
    let mut bufs = vec![[0u8; RECV_SLOT]; 256];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: RECV_SLOT,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; zeroed is a valid value.
    let mut msgs: Vec<libc::mmsghdr> = (0..bufs.len()).map(|_| unsafe { mem::zeroed() }).collect();
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // SAFETY: fds is a valid array of pollfd of the given length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for fd in fds.iter().map(|p| p.fd) {
            loop {
                let n = recv_batch(fd, &mut msgs, &mut iovs)?;
                for (msg, buf) in msgs.iter().zip(bufs.iter()).take(n) {
                    let len = (msg.msg_len as usize).min(RECV_SLOT);
                    classify(&buf[..len], &spec, &mut answers, &mut seen);
                }
                if n < msgs.len() {
                    break;
                }
            }
        }
        // One last drain after the stop flag, then leave.
        if stopping {
            break;
        }
    }
    Ok(answers)
}

/// Reads up to `msgs.len()` packets without blocking; 0 when none wait.
fn recv_batch(
    fd: RawFd,
    msgs: &mut [libc::mmsghdr],
    iovs: &mut [libc::iovec],
) -> io::Result<usize> {
    for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        msg.msg_hdr.msg_name = std::ptr::null_mut();
        msg.msg_hdr.msg_namelen = 0;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_len = 0;
    }
    // SAFETY: msgs point at live iovecs over live buffers of iov_len bytes.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let err = io::Error::last_os_error();
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(err),
    }
}

/// Counts `packet` (an IPv4 packet from a raw socket) if it answers one of
/// our probes.
fn classify(packet: &[u8], spec: &ProbeSpec, answers: &mut Answers, seen: &mut [u64]) {
    let Some((what, seq, total)) = answer(packet, spec) else {
        return;
    };
    answers.packets += 1;
    answers.bytes += total as u64;
    match what {
        What::TimeExceeded => answers.time_exceeded += 1,
        What::PortUnreachable => answers.port_unreachable += 1,
        What::OtherUnreachable => answers.other_unreachable += 1,
        What::EchoReply => answers.echo_reply += 1,
        What::Rst => answers.tcp_rst += 1,
        What::SynAck => answers.tcp_synack += 1,
    }
    let seq = seq as usize;
    if let Some(word) = seen.get_mut(seq / 64) {
        let bit = 1u64 << (seq % 64);
        if *word & bit == 0 {
            *word |= bit;
            answers.distinct += 1;
        } else {
            answers.duplicates += 1;
        }
    }
}

/// What `packet` answers, the probe's sequence number and the packet's
/// IP length, if it answers one of our probes.
fn answer(packet: &[u8], spec: &ProbeSpec) -> Option<(What, u32, usize)> {
    let sliced = LaxSlicedPacket::from_ip(packet).ok()?;
    let Some(LaxNetSlice::Ipv4(ip)) = &sliced.net else {
        return None;
    };
    let header = ip.header();
    if header.destination_addr() != spec.source {
        return None;
    }
    let (what, seq) = match sliced.transport.as_ref()? {
        TransportSlice::Icmpv4(icmp) => icmp_answer(icmp, spec)?,
        TransportSlice::Tcp(tcp) if spec.kind == Kind::TcpSyn => {
            tcp_answer(tcp, spec, header.source_addr())?
        }
        _ => return None,
    };
    let total = usize::from(header.total_len()).min(packet.len());
    Some((what, seq, total))
}

#[derive(Debug, Clone, Copy)]
enum What {
    TimeExceeded,
    PortUnreachable,
    OtherUnreachable,
    EchoReply,
    Rst,
    SynAck,
}

fn icmp_answer(icmp: &Icmpv4Slice, spec: &ProbeSpec) -> Option<(What, u32)> {
    let what = match icmp.icmp_type() {
        Icmpv4Type::EchoReply(echo) => {
            // Our identifier and our payload.
            if spec.kind != Kind::Icmp || echo.id != spec.ident {
                return None;
            }
            return Some((What::EchoReply, tagged_seq(icmp.payload())?));
        }
        Icmpv4Type::TimeExceeded(_) | Icmpv4Type::Unknown { type_u8: 11, .. } => What::TimeExceeded,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port) => What::PortUnreachable,
        Icmpv4Type::DestinationUnreachable(_) | Icmpv4Type::Unknown { type_u8: 3, .. } => {
            What::OtherUnreachable
        }
        _ => return None,
    };
    Some((what, quoted_seq(icmp.payload(), spec)?))
}

/// The sequence number after [`MAGIC`] in a UDP or ICMP payload of ours.
fn tagged_seq(payload: &[u8]) -> Option<u32> {
    if payload.get(0..4)? != MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?))
}

/// The sequence number of our probe quoted in an ICMP error, if it is ours.
fn quoted_seq(quoted: &[u8], spec: &ProbeSpec) -> Option<u32> {
    let sliced = LaxSlicedPacket::from_ip(quoted).ok()?;
    let Some(LaxNetSlice::Ipv4(ip)) = &sliced.net else {
        return None;
    };
    if ip.header().source_addr() != spec.source || ip.header().destination_addr() != spec.target {
        return None;
    }
    match (spec.kind, sliced.transport.as_ref()?) {
        (Kind::Udp, TransportSlice::Udp(udp)) if udp.source_port() == spec.ident => {
            tagged_seq(udp.payload())
        }
        (Kind::Icmp, TransportSlice::Icmpv4(icmp)) => match icmp.icmp_type() {
            Icmpv4Type::EchoRequest(echo) if echo.id == spec.ident => tagged_seq(icmp.payload()),
            _ => None,
        },
        (Kind::TcpSyn, TransportSlice::Tcp(tcp)) if tcp.source_port() == spec.ident => {
            Some(tcp.sequence_number())
        }
        _ => None,
    }
}

fn tcp_answer(tcp: &TcpSlice, spec: &ProbeSpec, from: Ipv4Addr) -> Option<(What, u32)> {
    if from != spec.target || tcp.source_port() != spec.port || tcp.destination_port() != spec.ident
    {
        return None;
    }
    let what = if tcp.rst() {
        What::Rst
    } else if tcp.syn() && tcp.ack() {
        What::SynAck
    } else {
        return None;
    };
    Some((what, tcp.acknowledgment_number().wrapping_sub(1)))
}

fn summary(args: &Args, spec: &ProbeSpec, sent: &Sent, answers: &Answers) -> String {
    let secs = sent.elapsed.as_secs_f64().max(1e-9);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let value = serde_json::json!({
        "kind": spec.kind.name(),
        "source": IpAddr::V4(spec.source).to_string(),
        "target": spec.target.to_string(),
        "ttl": spec.ttl,
        "size": spec.size,
        "offered_pps": args.rate,
        "duration_s": round3(secs),
        "sent": sent.packets,
        "sent_bytes": sent.bytes,
        "send_errors": sent.errors,
        "last_send_error": sent.last_error,
        "sent_pps": round3(sent.packets as f64 / secs),
        "answers": answers.packets,
        "answer_bytes": answers.bytes,
        "answered_pps": round3(answers.packets as f64 / secs),
        "distinct": answers.distinct,
        "duplicates": answers.duplicates,
        "time_exceeded": answers.time_exceeded,
        "port_unreachable": answers.port_unreachable,
        "other_unreachable": answers.other_unreachable,
        "echo_reply": answers.echo_reply,
        "tcp_rst": answers.tcp_rst,
        "tcp_synack": answers.tcp_synack,
        "answer_ratio": round3(ratio(answers.packets, sent.packets)),
        "bytes_ratio": round3(ratio(answers.bytes, sent.bytes)),
    });
    value.to_string()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: Kind) -> ProbeSpec {
        ProbeSpec {
            kind,
            source: Ipv4Addr::new(198, 19, 254, 1),
            target: Ipv4Addr::new(198, 19, 0, 1),
            ttl: 3,
            size: if kind == Kind::TcpSyn { 40 } else { 60 },
            port: if kind == Kind::TcpSyn { 80 } else { 33434 },
            ident: 0x8123,
        }
    }

    #[test]
    fn probes_parse_back_with_valid_checksums() {
        for kind in [Kind::Udp, Kind::Icmp, Kind::TcpSyn] {
            let s = spec(kind);
            let p = build_probe(&s, 70_000);
            let sliced = etherparse::SlicedPacket::from_ip(&p).expect("probe parses");
            let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
                panic!("not ipv4");
            };
            assert_eq!(ip.header().ttl(), 3);
            assert_eq!(
                ip.header().header_checksum(),
                ip.header().to_header().calc_header_checksum()
            );
            match sliced.transport {
                Some(etherparse::TransportSlice::Udp(u)) => {
                    let h = u.to_header();
                    assert_eq!(
                        h.checksum,
                        h.calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                            .unwrap()
                    );
                    assert_eq!(h.destination_port, 33434 + (70_000 % 64) as u16);
                }
                Some(etherparse::TransportSlice::Icmpv4(i)) => {
                    assert_eq!(
                        i.checksum(),
                        i.header().icmp_type.calc_checksum(i.payload())
                    );
                }
                Some(etherparse::TransportSlice::Tcp(t)) => {
                    assert!(t.syn() && !t.ack());
                    assert_eq!(t.sequence_number(), 70_000);
                    assert_eq!(
                        t.checksum(),
                        t.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                            .unwrap()
                    );
                }
                other => panic!("unexpected transport {other:?}"),
            }
        }
    }

    /// An ICMP error from `from` quoting probe `seq` of `spec`, as a
    /// router sends it.
    fn icmp_error(icmp_type: Icmpv4Type, from: [u8; 4], spec: &ProbeSpec, seq: u32) -> Vec<u8> {
        let probe = build_probe(spec, seq);
        let builder = PacketBuilder::ipv4(from, spec.source.octets(), 64).icmpv4(icmp_type);
        let mut r = Vec::with_capacity(builder.size(probe.len()));
        builder.write(&mut r, &probe).unwrap();
        r
    }

    const TIME_EXCEEDED: Icmpv4Type =
        Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit);
    const PORT_UNREACHABLE: Icmpv4Type =
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);

    #[test]
    fn answers_to_our_probes_are_counted_once_each() {
        let s = spec(Kind::Udp);
        let mut answers = Answers::default();
        let mut seen = vec![0u64; 4];
        let te = icmp_error(TIME_EXCEEDED, [198, 18, 0, 3], &s, 17);
        classify(&te, &s, &mut answers, &mut seen);
        classify(&te, &s, &mut answers, &mut seen);
        let pu = icmp_error(PORT_UNREACHABLE, [198, 19, 0, 1], &s, 18);
        classify(&pu, &s, &mut answers, &mut seen);
        // Another generator's probe (other ident) is not ours.
        let other = ProbeSpec { ident: 0x8999, ..s };
        let theirs = icmp_error(TIME_EXCEEDED, [198, 18, 0, 3], &other, 19);
        classify(&theirs, &s, &mut answers, &mut seen);
        assert_eq!(
            (
                answers.packets,
                answers.time_exceeded,
                answers.port_unreachable
            ),
            (3, 2, 1)
        );
        assert_eq!((answers.distinct, answers.duplicates), (2, 1));
        assert_eq!(answers.bytes, 3 * 88);
    }

    #[test]
    fn echo_replies_and_tcp_answers_are_recognised() {
        let s = spec(Kind::Icmp);
        // The kernel's echo reply: addresses swapped, the payload echoed.
        let probe = build_probe(&s, 5);
        let builder = PacketBuilder::ipv4(s.target.octets(), s.source.octets(), 64)
            .icmpv4_echo_reply(s.ident, 5);
        let mut reply = Vec::new();
        builder.write(&mut reply, &probe[28..]).unwrap();
        let mut answers = Answers::default();
        let mut seen = vec![0u64; 1];
        classify(&reply, &s, &mut answers, &mut seen);
        assert_eq!((answers.echo_reply, answers.distinct), (1, 1));

        let t = spec(Kind::TcpSyn);
        // The kernel's RST for SYN 8: acknowledges 9.
        let builder = PacketBuilder::ipv4(t.target.octets(), t.source.octets(), 64)
            .tcp(80, t.ident, 0, 0)
            .rst()
            .ack(9);
        let mut rst = Vec::new();
        builder.write(&mut rst, &[]).unwrap();
        let mut answers = Answers::default();
        classify(&rst, &t, &mut answers, &mut seen);
        assert_eq!((answers.tcp_rst, answers.distinct), (1, 1));
    }
}
