//! The prober of `troll check`: sends one probe per TTL toward a target,
//! a handful of TTLs at a time, and says who answered each. No external
//! traceroute: sockets with socket2, packets with etherparse.
//!
//! - UDP: one connected datagram socket per TTL with `IP_RECVERR`
//!   (`IPV6_RECVERR`), as Linux traceroute does by default; the kernel
//!   hands each socket the ICMP errors about its own probe. No root.
//! - ICMP: ping sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`) where
//!   `net.ipv4.ping_group_range` admits the user, the same way; else, as
//!   root, one raw socket whose answers are matched by id and sequence.
//! - TCP: SYNs on a raw socket (root), answers matched by source port: a
//!   SYN-ACK or RST from the target, or an ICMP error quoting the SYN.

use etherparse::{IpNumber, Ipv4HeaderSlice, TcpHeader};
use socket2::{Domain, Protocol as SockProto, SockAddr, Socket, Type};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Icmp,
    Tcp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// Who answered one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// ICMP Time Exceeded from this address.
    Hop(IpAddr),
    /// The destination's own answer (echo reply, port unreachable, RST or
    /// SYN-ACK, or a UDP reply), from this address.
    Reached(IpAddr),
    /// Another ICMP error (e.g. host unreachable) from this address.
    Unreachable(IpAddr),
}

impl Answer {
    pub fn address(self) -> IpAddr {
        match self {
            Answer::Hop(a) | Answer::Reached(a) | Answer::Unreachable(a) => a,
        }
    }
}

/// What a trace saw: the answer per TTL, how many probes it sent, and the
/// first TTL the destination answered.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub answers: BTreeMap<u8, Answer>,
    pub probes: usize,
    pub reached: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
pub struct TraceOptions {
    pub target: IpAddr,
    pub max_hops: u8,
    /// TTLs in flight at once.
    pub parallel: usize,
    /// How long to wait for the answers of one batch.
    pub wait: Duration,
    /// UDP: first destination port (one per TTL); TCP: destination port.
    pub port: u16,
}

/// Why a protocol could not be used.
#[derive(Debug)]
pub enum ProbeError {
    /// Not allowed with these privileges: skipped, not failed.
    Permission(String),
    /// The network said no (e.g. no route).
    Io(String),
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Traces `options.target` with `protocol`. `progress` is told each TTL
/// answered.
pub fn trace(
    protocol: Protocol,
    options: &TraceOptions,
    progress: &mut dyn FnMut(u8),
) -> Result<Trace, ProbeError> {
    let mut session: Box<dyn Session> = match protocol {
        Protocol::Udp => Box::new(DgramSession::new(options, false)?),
        Protocol::Icmp => match DgramSession::new(options, true) {
            Ok(s) => Box::new(s),
            Err(ProbeError::Permission(why)) => match RawSession::new(options, false) {
                Ok(s) => Box::new(s),
                Err(ProbeError::Permission(_)) => return Err(ProbeError::Permission(why)),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        },
        Protocol::Tcp => Box::new(RawSession::new(options, true)?),
    };
    let mut trace = Trace::default();
    let mut next: u8 = 1;
    while next <= options.max_hops && trace.reached.is_none() {
        let last =
            (usize::from(next) + options.parallel - 1).min(usize::from(options.max_hops)) as u8;
        let batch: Vec<u8> = (next..=last).collect();
        run_batch(session.as_mut(), &batch, options, &mut trace, progress)?;
        next = last.saturating_add(1);
        if last == options.max_hops {
            break;
        }
    }
    // One more probe for every TTL still unanswered before the end, as
    // traceroute sends three: a probe lost on the way (or queued behind
    // neighbour discovery on a fresh path) is not a verdict.
    let end = trace
        .reached
        .map_or(options.max_hops, |r| r.saturating_sub(1));
    let missing: Vec<u8> = (1..=end)
        .filter(|t| !trace.answers.contains_key(t))
        .collect();
    for batch in missing.chunks(options.parallel.max(1) * 4) {
        run_batch(session.as_mut(), batch, options, &mut trace, progress)?;
    }
    if let Some(reached) = trace.reached {
        trace.answers.retain(|ttl, _| *ttl <= reached);
    }
    Ok(trace)
}

/// Sends one probe per TTL of `batch` and collects answers until all
/// came, the destination answered below them, or the wait is over.
fn run_batch(
    session: &mut dyn Session,
    batch: &[u8],
    options: &TraceOptions,
    trace: &mut Trace,
    progress: &mut dyn FnMut(u8),
) -> Result<(), ProbeError> {
    for &ttl in batch {
        session.send(ttl).map_err(|e| {
            ProbeError::Io(format!("cannot send a probe to {}: {e}", options.target))
        })?;
        trace.probes += 1;
    }
    let deadline = Instant::now() + options.wait;
    let mut pending: Vec<u8> = batch.to_vec();
    while !pending.is_empty() && Instant::now() < deadline {
        // Once the destination answered, later TTLs need no answer.
        if let Some(reached) = trace.reached {
            pending.retain(|t| *t < reached);
            if pending.is_empty() {
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        for (ttl, answer) in session.poll(left.min(Duration::from_millis(50))) {
            if trace.answers.contains_key(&ttl) || ttl > options.max_hops {
                continue;
            }
            trace.answers.insert(ttl, answer);
            pending.retain(|t| *t != ttl);
            progress(ttl);
            if matches!(answer, Answer::Reached(_) | Answer::Unreachable(_)) {
                trace.reached = Some(trace.reached.map_or(ttl, |r| r.min(ttl)));
            }
        }
    }
    Ok(())
}

trait Session {
    fn send(&mut self, ttl: u8) -> io::Result<()>;
    /// Answers that arrived within `wait`, by TTL.
    fn poll(&mut self, wait: Duration) -> Vec<(u8, Answer)>;
}

fn set_ttl(socket: &Socket, v6: bool, ttl: u8) -> io::Result<()> {
    if v6 {
        socket.set_unicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_ttl(u32::from(ttl))
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `wait` for any of `fds` to be readable or have an error.
fn wait_any(fds: &[RawFd], wait: Duration) -> Vec<RawFd> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        })
        .collect();
    // SAFETY: `polls` is a valid array of pollfd of the length given.
    let n = unsafe {
        libc::poll(
            polls.as_mut_ptr(),
            polls.len() as libc::nfds_t,
            wait.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if n <= 0 {
        return Vec::new();
    }
    polls
        .iter()
        .filter(|p| p.revents != 0)
        .map(|p| p.fd)
        .collect()
}

/// One connected datagram socket per TTL (UDP, or ICMP ping sockets), with
/// the kernel's per-socket error queue.
struct DgramSession {
    options: TraceOptions,
    icmp: bool,
    sockets: BTreeMap<u8, Socket>,
}

impl DgramSession {
    fn new(options: &TraceOptions, icmp: bool) -> Result<DgramSession, ProbeError> {
        let session = DgramSession {
            options: *options,
            icmp,
            sockets: BTreeMap::new(),
        };
        // Fail early, before any probe, when the kernel says no.
        session.socket().map_err(|e| {
            if icmp && is_permission(&e) {
                ProbeError::Permission(
                    "ICMP needs ping sockets (your group is outside net.ipv4.ping_group_range) or root; \
                     run as root, or use --protocol udp"
                        .into(),
                )
            } else {
                ProbeError::Io(format!("cannot open a socket: {e}"))
            }
        })?;
        Ok(session)
    }

    fn socket(&self) -> io::Result<Socket> {
        let v6 = self.options.target.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let proto = match (self.icmp, v6) {
            (false, _) => SockProto::UDP,
            (true, false) => SockProto::ICMPV4,
            (true, true) => SockProto::ICMPV6,
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(proto))?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        if v6 {
            setsockopt_int(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, 1)?;
        } else {
            setsockopt_int(fd, libc::SOL_IP, libc::IP_RECVERR, 1)?;
        }
        Ok(socket)
    }
}

impl Session for DgramSession {
    fn send(&mut self, ttl: u8) -> io::Result<()> {
        let socket = self.socket()?;
        let v6 = self.options.target.is_ipv6();
        set_ttl(&socket, v6, ttl)?;
        let port = if self.icmp {
            0
        } else {
            self.options.port.wrapping_add(u16::from(ttl) - 1)
        };
        socket.connect(&SockAddr::from(SocketAddr::new(self.options.target, port)))?;
        let mut payload = vec![0u8; 32];
        if self.icmp {
            // Echo request; the kernel sets the id and the checksum.
            payload[0] = if v6 { 128 } else { 8 };
            payload[6..8].copy_from_slice(&u16::from(ttl).to_be_bytes());
        }
        payload[8..16].copy_from_slice(b"trollchk");
        socket.send(&payload)?;
        self.sockets.insert(ttl, socket);
        Ok(())
    }

    fn poll(&mut self, wait: Duration) -> Vec<(u8, Answer)> {
        let fds: Vec<RawFd> = self.sockets.values().map(AsRawFd::as_raw_fd).collect();
        let ready = wait_any(&fds, wait);
        let mut answers = Vec::new();
        let target = self.options.target;
        for (&ttl, socket) in &self.sockets {
            if !ready.contains(&socket.as_raw_fd()) {
                continue;
            }
            if let Some((origin_type, origin_code, offender)) = read_error_queue(socket.as_raw_fd())
            {
                let v6 = target.is_ipv6();
                let exceeded = if v6 {
                    origin_type == 3
                } else {
                    origin_type == 11
                };
                let port_unreachable = if v6 {
                    origin_type == 1 && origin_code == 4
                } else {
                    origin_type == 3 && origin_code == 3
                };
                let offender = offender.unwrap_or(target);
                let answer = if exceeded {
                    Answer::Hop(offender)
                } else if port_unreachable && offender == target {
                    Answer::Reached(offender)
                } else {
                    Answer::Unreachable(offender)
                };
                answers.push((ttl, answer));
                continue;
            }
            // A datagram: an echo reply, or a UDP service's answer.
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
            if let Ok((_, from)) = socket.recv_from(&mut buf) {
                let from = from.as_socket().map_or(target, |a| a.ip());
                answers.push((ttl, Answer::Reached(from)));
            }
        }
        answers
    }
}

/// Reads one error of the socket's error queue: the ICMP type and code,
/// and the address that sent it.
fn read_error_queue(fd: RawFd) -> Option<(u8, u8, Option<IpAddr>)> {
    let mut data = [0u8; 1500];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the buffers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at valid buffers of the sizes it gives.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    // SAFETY: walking the control messages the kernel wrote into `msg`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` points into `control`, as CMSG_* guarantee.
        let header = unsafe { &*cmsg };
        let is_recverr = (header.cmsg_level == libc::SOL_IP
            && header.cmsg_type == libc::IP_RECVERR)
            || (header.cmsg_level == libc::SOL_IPV6 && header.cmsg_type == libc::IPV6_RECVERR);
        if is_recverr {
            // SAFETY: an IP_RECVERR message holds a sock_extended_err,
            // followed by the offender's address.
            let err = unsafe { &*(libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err) };
            if err.ee_origin != libc::SO_EE_ORIGIN_ICMP && err.ee_origin != libc::SO_EE_ORIGIN_ICMP6
            {
                return None;
            }
            // SAFETY: the offender follows the sock_extended_err.
            let offender = unsafe {
                let addr = (err as *const libc::sock_extended_err).add(1) as *const libc::sockaddr;
                sockaddr_ip(addr)
            };
            return Some((err.ee_type, err.ee_code, offender));
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    None
}

/// # Safety
/// `addr` must point at a sockaddr_in or sockaddr_in6 (or AF_UNSPEC).
unsafe fn sockaddr_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: the caller's promise.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let a = &*(addr as *const libc::sockaddr_in);
                Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let a = &*(addr as *const libc::sockaddr_in6);
                Some(IpAddr::from(a.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// Raw sockets (root): ICMP echo, or TCP SYN with an ICMP socket beside it.
struct RawSession {
    options: TraceOptions,
    tcp: bool,
    /// Sends echo requests (ICMP) or SYNs (TCP), and reads TCP answers.
    send: Socket,
    /// Reads ICMP answers (the same socket as `send` for ICMP).
    icmp: Option<Socket>,
    id: u16,
    source: IpAddr,
    seq_base: u32,
}

impl RawSession {
    fn new(options: &TraceOptions, tcp: bool) -> Result<RawSession, ProbeError> {
        let v6 = options.target.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let icmp_proto = if v6 {
            SockProto::ICMPV6
        } else {
            SockProto::ICMPV4
        };
        let open = |proto: SockProto| {
            Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| {
                if is_permission(&e) {
                    ProbeError::Permission(format!(
                        "{} probes need raw sockets: run as root (or give troll CAP_NET_RAW)",
                        if tcp { "TCP" } else { "ICMP" }
                    ))
                } else {
                    ProbeError::Io(format!("cannot open a raw socket: {e}"))
                }
            })
        };
        let send = open(if tcp { SockProto::TCP } else { icmp_proto })?;
        let icmp = if tcp { Some(open(icmp_proto)?) } else { None };
        for s in std::iter::once(&send).chain(icmp.as_ref()) {
            s.set_nonblocking(true)
                .map_err(|e| ProbeError::Io(e.to_string()))?;
        }
        // The source address the kernel picks toward the target, for the
        // TCP checksum.
        let probe =
            Socket::new(domain, Type::DGRAM, None).map_err(|e| ProbeError::Io(e.to_string()))?;
        probe
            .connect(&SockAddr::from(SocketAddr::new(options.target, 9)))
            .map_err(|e| ProbeError::Io(format!("no route to {}: {e}", options.target)))?;
        let source = probe
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip())
            .ok_or_else(|| ProbeError::Io("no source address".into()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(RawSession {
            options: *options,
            tcp,
            send,
            icmp,
            id: (std::process::id() as u16) ^ (nanos as u16),
            source,
            seq_base: nanos,
        })
    }

    /// The TCP source port of TTL `ttl`.
    fn sport(&self, ttl: u8) -> u16 {
        40000u16
            .wrapping_add(self.id % 8192)
            .wrapping_add(u16::from(ttl))
    }

    fn ttl_of_sport(&self, port: u16) -> Option<u8> {
        let ttl = port.wrapping_sub(40000u16.wrapping_add(self.id % 8192));
        (1..=u16::from(self.options.max_hops))
            .contains(&ttl)
            .then_some(ttl as u8)
    }

    /// Matches a quoted probe (IP header and at least 8 bytes) to a TTL.
    fn match_quote(&self, quoted: &[u8]) -> Option<u8> {
        let v6 = self.options.target.is_ipv6();
        // Like a kernel-matched client (traceroute -I/-T, tracepath), a
        // quote must name the target it was sent to: one that names
        // another address (e.g. a private one behind a NAT that leaves
        // quotes alone) reaches no such client.
        let (proto, transport, destination) = if v6 {
            if quoted.len() < 48 {
                return None;
            }
            let dst: [u8; 16] = quoted[24..40].try_into().ok()?;
            (quoted[6], &quoted[40..], IpAddr::from(dst))
        } else {
            let ip = Ipv4HeaderSlice::from_slice(quoted).ok()?;
            let dst = IpAddr::V4(ip.destination_addr());
            (ip.protocol().0, &quoted[ip.slice().len()..], dst)
        };
        if destination != self.options.target {
            return None;
        }
        if transport.len() < 8 {
            return None;
        }
        if self.tcp {
            (proto == IpNumber::TCP.0)
                .then(|| self.ttl_of_sport(u16::from_be_bytes([transport[0], transport[1]])))
                .flatten()
        } else {
            let icmp_proto = if v6 { 58 } else { 1 };
            let id = u16::from_be_bytes([transport[4], transport[5]]);
            let seq = u16::from_be_bytes([transport[6], transport[7]]);
            (proto == icmp_proto && id == self.id && (1..=255).contains(&seq)).then_some(seq as u8)
        }
    }

    /// Parses one ICMP message (after the IP header for IPv4) from `from`.
    fn icmp_answer(&self, icmp: &[u8], from: IpAddr) -> Option<(u8, Answer)> {
        if icmp.len() < 8 {
            return None;
        }
        let v6 = self.options.target.is_ipv6();
        let (echo_reply, exceeded, unreachable) = if v6 { (129, 3, 1) } else { (0, 11, 3) };
        let kind = icmp[0];
        if kind == echo_reply && !self.tcp {
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            return (id == self.id && (1..=255).contains(&seq))
                .then_some((seq as u8, Answer::Reached(from)));
        }
        if kind != exceeded && kind != unreachable {
            return None;
        }
        let ttl = self.match_quote(&icmp[8..])?;
        let answer = if kind == exceeded {
            Answer::Hop(from)
        } else if from == self.options.target {
            Answer::Reached(from)
        } else {
            Answer::Unreachable(from)
        };
        Some((ttl, answer))
    }

    fn read(&self, socket: &Socket, icmp: bool, answers: &mut Vec<(u8, Answer)>) {
        let v6 = self.options.target.is_ipv6();
        loop {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            // SAFETY: recv_from initialised the first `n` bytes.
            let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
            let Some(from) = from.as_socket().map(|a| a.ip()) else {
                continue;
            };
            // IPv4 raw sockets see the IP header; IPv6 ones do not.
            let payload = if v6 {
                bytes
            } else {
                match Ipv4HeaderSlice::from_slice(bytes) {
                    Ok(ip) => &bytes[ip.slice().len()..],
                    Err(_) => continue,
                }
            };
            if icmp {
                answers.extend(self.icmp_answer(payload, from));
            } else if payload.len() >= 20 && from == self.options.target {
                // TCP from the target: SYN-ACK or RST to one of our ports.
                let dport = u16::from_be_bytes([payload[2], payload[3]]);
                let flags = payload[13];
                if flags & 0x16 != 0 {
                    if let Some(ttl) = self.ttl_of_sport(dport) {
                        answers.push((ttl, Answer::Reached(from)));
                    }
                }
            }
        }
    }
}

impl Session for RawSession {
    fn send(&mut self, ttl: u8) -> io::Result<()> {
        let v6 = self.options.target.is_ipv6();
        set_ttl(&self.send, v6, ttl)?;
        let to = SockAddr::from(SocketAddr::new(self.options.target, 0));
        let packet = if self.tcp {
            let mut tcp = TcpHeader::new(
                self.sport(ttl),
                self.options.port,
                self.seq_base.wrapping_add(u32::from(ttl)),
                5840,
            );
            tcp.syn = true;
            tcp.checksum = match (self.source, self.options.target) {
                (IpAddr::V4(s), IpAddr::V4(d)) => tcp
                    .calc_checksum_ipv4_raw(s.octets(), d.octets(), &[])
                    .map_err(io::Error::other)?,
                (IpAddr::V6(s), IpAddr::V6(d)) => tcp
                    .calc_checksum_ipv6_raw(s.octets(), d.octets(), &[])
                    .map_err(io::Error::other)?,
                _ => return Err(io::Error::other("mixed address families")),
            };
            tcp.to_bytes().to_vec()
        } else {
            let mut echo = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
            echo.extend_from_slice(&self.id.to_be_bytes());
            echo.extend_from_slice(&u16::from(ttl).to_be_bytes());
            echo.extend_from_slice(b"trollchk-trollchk-trollchk");
            if !v6 {
                // The kernel computes ICMPv6 checksums itself, not ICMP's.
                let sum = internet_checksum(&echo);
                echo[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            echo
        };
        self.send.send_to(&packet, &to)?;
        Ok(())
    }

    fn poll(&mut self, wait: Duration) -> Vec<(u8, Answer)> {
        let mut fds = vec![self.send.as_raw_fd()];
        fds.extend(self.icmp.as_ref().map(AsRawFd::as_raw_fd));
        let mut answers = Vec::new();
        if wait_any(&fds, wait).is_empty() {
            return answers;
        }
        self.read(&self.send, !self.tcp, &mut answers);
        if let Some(icmp) = &self.icmp {
            self.read(icmp, true, &mut answers);
        }
        answers
    }
}

fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
