//! The responder's sockets, behind a small trait so the loop can be tested
//! without root.
//!
//! Probes are read on a packet socket (AF_PACKET, SOCK_DGRAM, all
//! protocols; only IPv4 and IPv6 are passed on): it sees packets before
//! netfilter, so it still sees the probes that the `raw PREROUTING` rules
//! hide from the kernel (DESIGN.md §3). A classic BPF filter lets only
//! packets to a target through. They are read one of two ways
//! ([`RxMode`]):
//! - `Ring` (the default): the kernel writes each probe into a ring of
//!   [`RING_FRAMES`] frames shared with us (PACKET_RX_RING, TPACKET_V2) as
//!   it arrives, and we read it there: no system call and no socket buffer
//!   per packet, only a `poll` when the ring is empty. A probe too long for
//!   a frame is also queued whole on the socket (PACKET_COPY_THRESH) and
//!   read from there.
//! - `Queue`: from the socket's queue, up to [`BATCH`] per `recvmmsg`.
//!
//! Replies go out one of two ways ([`TxMode`]):
//! - `Link` (the default): on a second packet socket, straight back to the
//!   link-layer address the probe came from, out of the interface it came
//!   in on, up to [`BATCH`] per `sendmmsg`. This skips the route lookup and
//!   the netfilter OUTPUT path for each reply, which cost most of the
//!   responder's time, and answers along the path the probe took.
//! - `Routed`: on raw sockets, one per family, that take the whole IP
//!   header from us (IPPROTO_RAW) and go through the routing table and
//!   OUTPUT like any local packet, for hosts whose replies must follow
//!   policy routing.
//!
//! Either way the source address is the hop's, which need not be
//! configured anywhere. Routed replies carry the fwmark that lets the
//! OUTPUT rules tell the responder's port unreachables from the kernel's;
//! link replies never pass OUTPUT.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, Socket, Type};
use std::time::Duration;

use super::decide::MAX_REPLY;
use super::ring::RxRing;
pub use super::ring::RING_FRAMES;

/// Packets read or written per system call.
pub const BATCH: usize = 32;
/// Bytes kept of each received packet: a jumbo frame. A longer packet is
/// cut short and judged `truncated` (only loopback carries such frames).
pub const SLOT: usize = 9216;

/// Where a received packet came from on the link: enough to send the
/// answer straight back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: i32,
    /// EtherType of the packet (host order).
    pub protocol: u16,
    pub halen: u8,
    /// The sender's link-layer address (first `halen` bytes).
    pub addr: [u8; 8],
}

/// Received packets, each starting at its IP header.
#[derive(Debug)]
pub struct RxBatch {
    data: Box<[u8]>,
    len: [usize; BATCH],
    link: [Link; BATCH],
}

impl Default for RxBatch {
    fn default() -> RxBatch {
        RxBatch {
            data: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            len: [0; BATCH],
            link: [Link::default(); BATCH],
        }
    }
}

impl RxBatch {
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.data[i * SLOT..i * SLOT + self.len[i].min(SLOT)]
    }

    pub fn link(&self, i: usize) -> &Link {
        &self.link[i]
    }

    /// Stores packet `i` (for tests and fakes); returns false when it does
    /// not fit.
    pub fn set(&mut self, i: usize, packet: &[u8], link: Link) -> bool {
        if i >= BATCH || packet.len() > SLOT {
            return false;
        }
        self.data[i * SLOT..i * SLOT + packet.len()].copy_from_slice(packet);
        self.len[i] = packet.len();
        self.link[i] = link;
        true
    }
}

/// Replies waiting to be sent: each a complete IPv4 or IPv6 packet, its
/// destination and the link the probe came in on.
#[derive(Debug)]
pub struct TxBatch {
    data: Box<[u8]>,
    len: [usize; BATCH],
    to: [IpAddr; BATCH],
    link: [Link; BATCH],
    count: usize,
}

impl Default for TxBatch {
    fn default() -> TxBatch {
        TxBatch {
            data: vec![0u8; BATCH * MAX_REPLY].into_boxed_slice(),
            len: [0; BATCH],
            to: [IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED); BATCH],
            link: [Link::default(); BATCH],
            count: 0,
        }
    }
}

impl TxBatch {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The buffer the next reply is written into.
    pub fn next_slot(&mut self) -> &mut [u8; MAX_REPLY] {
        let at = self.count * MAX_REPLY;
        (&mut self.data[at..at + MAX_REPLY])
            .try_into()
            .expect("a slot is MAX_REPLY bytes")
    }

    /// Takes the `len` bytes just written into `next_slot` as a reply.
    pub fn push(&mut self, len: usize, to: IpAddr, link: Link) {
        assert!(self.count < BATCH && len <= MAX_REPLY);
        self.len[self.count] = len;
        self.to[self.count] = to;
        self.link[self.count] = link;
        self.count += 1;
    }

    pub fn packet(&self, i: usize) -> &[u8] {
        &self.data[i * MAX_REPLY..i * MAX_REPLY + self.len[i]]
    }

    pub fn to(&self, i: usize) -> IpAddr {
        self.to[i]
    }

    pub fn link(&self, i: usize) -> &Link {
        &self.link[i]
    }
}

/// What the responder loop needs from the network.
pub trait PacketIo {
    /// Reads up to [`BATCH`] IPv4 or IPv6 packets into `batch`, waiting
    /// only for the first; returns how many, 0 when the wait timed out (so
    /// the loop can look at its signals).
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize>;
    /// Sends replies `from..` of `batch`; returns how many were sent
    /// (at least one), or the error of reply `from`.
    fn send(&mut self, batch: &TxBatch, from: usize) -> io::Result<usize>;
    /// Tells the receiving side which addresses matter (a kernel filter
    /// drops the rest before it is copied); the default takes everything.
    fn set_targets(&mut self, _targets: &[IpAddr]) -> io::Result<()> {
        Ok(())
    }
    /// Makes `recv` return (with 0 packets) at `at` at the latest, for
    /// the delayed replies due then; `None` cancels. The default does
    /// nothing (`recv` returns often enough in tests).
    fn wake_at(&mut self, _at: Option<std::time::Instant>) -> io::Result<()> {
        Ok(())
    }
}

/// How probes are read (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RxMode {
    /// From a ring of frames shared with the kernel: the fast path.
    #[default]
    Ring,
    /// From the socket's queue, a batch per system call.
    Queue,
}

/// How replies leave the host (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TxMode {
    /// Back to the probe's link-layer sender, batched: the fast path.
    #[default]
    Link,
    /// Through the routing table and netfilter OUTPUT, one per call.
    Routed,
}

/// The real sockets.
#[derive(Debug)]
pub struct LinkIo {
    rx: Socket,
    /// The receive ring (`RxMode::Ring`).
    ring: Option<RxRing>,
    /// The link-layer sending socket (`TxMode::Link`).
    tx_link: Option<Socket>,
    /// The loopback interface: the host probing itself is answered through
    /// the routing table, as the kernel would.
    loopback: i32,
    tx4: Socket,
    tx6: Socket,
    /// One-shot timerfd for the delay queue's earliest reply; `recv`
    /// waits on it beside the socket.
    delay_timer: OwnedFd,
    /// What `delay_timer` is armed for.
    armed: Option<std::time::Instant>,
}

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

impl LinkIo {
    /// Opens both sockets; `interface` limits receiving to one interface.
    /// Needs CAP_NET_RAW.
    pub fn open(
        interface: Option<&str>,
        mark: u32,
        timeout: Duration,
        rx_mode: RxMode,
        mode: TxMode,
    ) -> io::Result<LinkIo> {
        // Protocol 0: nothing is received before the bind below, so no
        // packet is queued ahead of the ring.
        let rx = Socket::new(Domain::PACKET, Type::DGRAM, None)?;
        let ifindex = match interface {
            Some(name) => {
                let cname = std::ffi::CString::new(name).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "bad interface name")
                })?;
                // SAFETY: cname is a valid NUL-terminated string.
                let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
                if index == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no interface named {name}"),
                    ));
                }
                index as i32
            }
            None => 0,
        };
        // The ring goes in before bind: the copies of long probes must be
        // the only packets on the socket's queue.
        let ring = match rx_mode {
            RxMode::Ring => match RxRing::open(&rx, timeout) {
                Ok(ring) => Some(ring),
                Err(e) => {
                    tracing::warn!("no receive ring ({e}); reading probes from the socket queue");
                    None
                }
            },
            RxMode::Queue => None,
        };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                rx.as_raw_fd(),
                (&raw const sll).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Our own replies must not come back to us.
        setsockopt_int(&rx, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        // A deep queue rides out the moments the responder is off the CPU
        // under a flood; FORCE (CAP_NET_ADMIN) goes past net.core.rmem_max,
        // which is 208 KiB on many hosts (a few milliseconds of a flood).
        buffer_size(&rx, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 4 << 20)?;
        if ring.is_none() {
            // `recvmmsg` waits at most this long (the ring has its timer).
            rx.set_read_timeout(Some(timeout))?;
        }

        // IPPROTO_RAW implies IP_HDRINCL (and IPV6_HDRINCL).
        let sender = |domain, kind, protocol| -> io::Result<Socket> {
            let tx = Socket::new(domain, kind, protocol)?;
            tx.set_mark(mark)?;
            buffer_size(&tx, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, 4 << 20)?;
            Ok(tx)
        };
        let raw = |domain| sender(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)));
        let tx_link = match mode {
            TxMode::Routed => None,
            // Protocol 0: this socket sends and never receives.
            TxMode::Link => Some(sender(Domain::PACKET, Type::DGRAM, None)?),
        };
        // SAFETY: a valid NUL-terminated string.
        let loopback = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
        Ok(LinkIo {
            rx,
            ring,
            tx_link,
            loopback,
            tx4: raw(socket2::Domain::IPV4)?,
            tx6: raw(socket2::Domain::IPV6)?,
            delay_timer: one_shot_timer()?,
            armed: None,
        })
    }
}

/// Reads the whole copy of a probe too long for its ring frame into
/// `slot`; `len` is the probe's length the frame gives. Returns the
/// length read, 0 when no copy is there. A copy of another length is one
/// an earlier frame left behind (its read failed): it is dropped.
fn read_copy(fd: i32, slot: &mut [u8], len: usize) -> usize {
    for _ in 0..4 {
        // MSG_TRUNC: the packet's own length, even past the slot.
        // SAFETY: slot is slot.len() writable bytes.
        let n = unsafe {
            libc::recv(
                fd,
                slot.as_mut_ptr().cast(),
                slot.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        match usize::try_from(n) {
            Ok(n) if n == len => return n,
            Ok(_) => continue,
            // EAGAIN: no copy. Another error was pending on the socket and
            // is cleared by this read: try once more.
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => return 0,
            Err(_) => continue,
        }
    }
    0
}

/// An error from reading: the interface going down (the kernel reports
/// it once, and the socket reads again when it comes back) is logged and
/// read as "nothing came"; anything else ends the loop.
fn transient(err: io::Error) -> io::Result<usize> {
    if err.raw_os_error() == Some(libc::ENETDOWN) {
        tracing::warn!("the interface went down; probes are read again when it comes back up");
        Ok(0)
    } else {
        Err(err)
    }
}

/// A non-blocking timerfd that fires every `every`.
pub(super) fn interval_timer(every: Duration) -> io::Result<OwnedFd> {
    let fd = one_shot_timer()?;
    set_timer(&fd, every, every)?;
    Ok(fd)
}

/// A non-blocking one-shot timerfd, disarmed.
fn one_shot_timer() -> io::Result<OwnedFd> {
    // SAFETY: plain timerfd_create(2) call; the fd is owned right away.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms `timer` to fire once after `after` (at least 1 ns: zero disarms),
/// or disarms it.
fn arm(timer: &OwnedFd, after: Option<Duration>) -> io::Result<()> {
    let value = after.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1)));
    set_timer(timer, Duration::ZERO, value)
}

/// Sets `timer` to fire first after `value` (zero disarms it), then every
/// `interval` (zero: only once).
fn set_timer(timer: &OwnedFd, interval: Duration, value: Duration) -> io::Result<()> {
    let timespec = |d: Duration| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    };
    let spec = libc::itimerspec {
        it_interval: timespec(interval),
        it_value: timespec(value),
    };
    // SAFETY: spec is a valid itimerspec; the old value is not wanted.
    let rc = unsafe {
        libc::timerfd_settime(timer.as_raw_fd(), 0, &raw const spec, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pollfd that waits for `fd` to be readable.
fn pollin(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reads a fired timerfd's count, so it stops being readable.
fn drain_timer(fd: i32) {
    let mut expirations = 0u64;
    // SAFETY: reads the 8-byte expiration count into a u64.
    unsafe { libc::read(fd, (&raw mut expirations).cast(), 8) };
}

/// Sets a socket buffer size with `force` (past the sysctl maximum; needs
/// CAP_NET_ADMIN), or `plain` (capped at the maximum) when that is refused.
fn buffer_size(fd: &impl AsRawFd, force: i32, plain: i32, bytes: i32) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, force, bytes)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes))
}

/// setsockopt(2) with an int: the options socket2 has no setter for.
pub(super) fn setsockopt_int(
    fd: &impl AsRawFd,
    level: i32,
    name: i32,
    value: i32,
) -> io::Result<()> {
    // SAFETY: every option passed here takes an int.
    unsafe { setsockopt(fd, level, name, &value) }
}

/// setsockopt(2) with a plain C value.
///
/// # Safety
///
/// `T` must be the type option `name` at `level` takes (an int, a
/// tpacket_req), and it must hold no pointer the kernel would follow:
/// the kernel reads `size_of::<T>()` bytes from `value` and nothing else.
pub(super) unsafe fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: i32,
    name: i32,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points at a live T and the length is T's size; the
    // kernel copies what it reads, and the caller vouches that T is what
    // the option takes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl LinkIo {
    /// `recv` from the ring: takes the filled frames, up to [`BATCH`];
    /// waits in `poll` only when there are none.
    fn recv_ring(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let fd = self.rx.as_raw_fd();
        let Some(ring) = self.ring.as_mut() else {
            return Ok(0);
        };
        loop {
            let mut kept = 0;
            let mut taken = 0;
            while taken < BATCH {
                let Some((hdr, sll, data)) = ring.ready() else {
                    break;
                };
                taken += 1;
                let protocol = u16::from_be(sll.sll_protocol);
                let ours = protocol == ETH_P_IP || protocol == ETH_P_IPV6;
                let slot = &mut batch.data[kept * SLOT..(kept + 1) * SLOT];
                let len = if hdr.tp_status & libc::TP_STATUS_COPY != 0 {
                    read_copy(fd, slot, hdr.tp_len as usize)
                } else {
                    0
                };
                if ours {
                    let len = if len > 0 {
                        len
                    } else {
                        slot[..data.len()].copy_from_slice(data);
                        // A packet cut to the frame looks truncated to
                        // `decide`, as it should.
                        data.len()
                    };
                    batch.len[kept] = len;
                    batch.link[kept] = Link {
                        ifindex: sll.sll_ifindex,
                        protocol,
                        halen: sll.sll_halen.min(8),
                        addr: sll.sll_addr,
                    };
                    kept += 1;
                }
                ring.release();
            }
            if kept > 0 {
                return Ok(kept);
            }
            if taken > 0 {
                continue;
            }
            let tick = ring.tick.as_raw_fd();
            let delay = self.delay_timer.as_raw_fd();
            let mut pfd = [pollin(fd), pollin(tick), pollin(delay)];
            // No timeout: the tick timer ends the wait, the delay timer
            // when a delayed reply is due (a signal does too).
            // SAFETY: pfd is three valid pollfds.
            let rc = unsafe { libc::poll(pfd.as_mut_ptr(), 3, -1) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::Interrupted => Ok(0),
                    _ => Err(err),
                };
            }
            if pfd[0].revents & libc::POLLERR != 0 {
                // A pending socket error would wake every poll at once;
                // reading it clears it.
                return match self.rx.take_error() {
                    Ok(None) => Ok(0),
                    Ok(Some(err)) | Err(err) => transient(err),
                };
            }
            if pfd[2].revents & libc::POLLIN != 0 {
                drain_timer(delay);
                self.armed = None;
                return Ok(0);
            }
            if pfd[1].revents & libc::POLLIN != 0 {
                drain_timer(tick);
                return Ok(0);
            }
        }
    }
}

impl PacketIo for LinkIo {
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        if self.ring.is_some() {
            return self.recv_ring(batch);
        }
        if self.armed.is_some() {
            // recvmmsg cannot wait on the timer: poll both first, at most
            // as long as the socket's read timeout.
            let delay = self.delay_timer.as_raw_fd();
            let mut pfd = [pollin(self.rx.as_raw_fd()), pollin(delay)];
            // SAFETY: pfd is two valid pollfds.
            let rc = unsafe { libc::poll(pfd.as_mut_ptr(), 2, 200) };
            if rc <= 0 || pfd[0].revents & libc::POLLIN == 0 {
                if pfd[1].revents & libc::POLLIN != 0 {
                    drain_timer(delay);
                    self.armed = None;
                }
                return Ok(0);
            }
        }
        loop {
            // SAFETY: all of these are plain data; zeroed is a valid value.
            let mut from: [libc::sockaddr_ll; BATCH] = unsafe { mem::zeroed() };
            // SAFETY: iovec is plain data (a null pointer and a length).
            let mut iov: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
            // SAFETY: mmsghdr is plain data (pointers and lengths).
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            let base = batch.data.as_mut_ptr();
            for i in 0..BATCH {
                iov[i] = libc::iovec {
                    // SAFETY: slot i lies inside data (BATCH * SLOT bytes).
                    iov_base: unsafe { base.add(i * SLOT) }.cast(),
                    iov_len: SLOT,
                };
                msgs[i].msg_hdr.msg_name = (&raw mut from[i]).cast();
                msgs[i].msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
                msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // MSG_WAITFORONE: wait (up to SO_RCVTIMEO) for the first packet
            // only, then take what is queued.
            // SAFETY: every mmsghdr points at a live iovec over its own
            // SLOT bytes of batch.data and at its own sockaddr_ll.
            let n = unsafe {
                libc::recvmmsg(
                    self.rx.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => Ok(0),
                    _ => transient(err),
                };
            }
            // Keep IPv4 and IPv6, packed to the front; ARP and the like
            // are not ours to judge or count.
            let mut kept = 0;
            for i in 0..n as usize {
                let protocol = u16::from_be(from[i].sll_protocol);
                if protocol != ETH_P_IP && protocol != ETH_P_IPV6 {
                    continue;
                }
                if kept != i {
                    batch.data.copy_within(
                        i * SLOT..i * SLOT + (msgs[i].msg_len as usize).min(SLOT),
                        kept * SLOT,
                    );
                }
                batch.len[kept] = msgs[i].msg_len as usize;
                batch.link[kept] = Link {
                    ifindex: from[i].sll_ifindex,
                    protocol,
                    halen: from[i].sll_halen.min(8),
                    addr: from[i].sll_addr,
                };
                kept += 1;
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }

    fn send(&mut self, batch: &TxBatch, from: usize) -> io::Result<usize> {
        let routed = |link: &Link| link.ifindex == self.loopback;
        let tx = match &self.tx_link {
            Some(tx) if !routed(batch.link(from)) => tx,
            _ => {
                // Routed: one sendto per reply, through the family's raw socket.
                let to = batch.to(from);
                let addr = socket2::SockAddr::from(SocketAddr::new(to, 0));
                let tx = match to {
                    IpAddr::V4(_) => &self.tx4,
                    IpAddr::V6(_) => &self.tx6,
                };
                return tx.send_to(batch.packet(from), &addr).map(|_| 1);
            }
        };
        // Up to the next reply that goes out routed.
        let count = (from..batch.len())
            .take_while(|&i| !routed(batch.link(i)))
            .count();
        // SAFETY: plain data; zeroed is a valid value.
        let mut dest: [libc::sockaddr_ll; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: iovec is plain data (a null pointer and a length).
        let mut iov: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is plain data (pointers and lengths).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for i in 0..count {
            let link = batch.link(from + i);
            let packet = batch.packet(from + i);
            let protocol = match batch.to(from + i) {
                IpAddr::V4(_) => ETH_P_IP,
                IpAddr::V6(_) => ETH_P_IPV6,
            };
            dest[i].sll_family = libc::AF_PACKET as u16;
            dest[i].sll_protocol = protocol.to_be();
            dest[i].sll_ifindex = link.ifindex;
            dest[i].sll_halen = link.halen;
            dest[i].sll_addr = link.addr;
            iov[i] = libc::iovec {
                iov_base: packet.as_ptr().cast_mut().cast(),
                iov_len: packet.len(),
            };
            msgs[i].msg_hdr.msg_name = (&raw mut dest[i]).cast();
            msgs[i].msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every mmsghdr points at a live iovec over a reply in
        // `batch` (only read) and at its own sockaddr_ll.
        let n = unsafe { libc::sendmmsg(tx.as_raw_fd(), msgs.as_mut_ptr(), count as u32, 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn wake_at(&mut self, at: Option<std::time::Instant>) -> io::Result<()> {
        if at == self.armed {
            return Ok(());
        }
        let now = std::time::Instant::now();
        arm(
            &self.delay_timer,
            at.map(|at| at.saturating_duration_since(now)),
        )?;
        self.armed = at;
        Ok(())
    }

    fn set_targets(&mut self, targets: &[IpAddr]) -> io::Result<()> {
        let Some(program) = super::filter::program(targets) else {
            tracing::warn!("too many targets for a kernel filter; reading every packet");
            return Ok(());
        };
        self.rx.attach_filter(&program)
    }
}
