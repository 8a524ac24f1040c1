//! The responder's sockets, behind a small trait so the loop can be tested
//! without root.
//!
//! Probes are read on a packet socket (AF_PACKET, SOCK_DGRAM, all
//! protocols; only IPv4 and IPv6 are passed on): it sees packets before
//! netfilter, so it still sees the probes that the `raw PREROUTING` rules
//! hide from the kernel (DESIGN.md §3). Replies go out on raw sockets, one
//! per family, that take the whole IP header from us (IPPROTO_RAW: the
//! source address is the hop's, which need not be configured anywhere; the
//! kernel checks nothing about it) and carry the fwmark that lets the
//! OUTPUT rules tell the responder's port unreachables from the kernel's.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// What the responder loop needs from the network.
pub trait PacketIo {
    /// One packet starting at its IP header, or `Ok(None)` when the wait
    /// timed out (so the loop can look at its signals).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends a complete IPv4 or IPv6 packet.
    fn send(&mut self, packet: &[u8], to: IpAddr) -> io::Result<()>;
    /// Tells the receiving side which addresses matter (a kernel filter
    /// drops the rest before it is copied); the default takes everything.
    fn set_targets(&mut self, _targets: &[IpAddr]) -> io::Result<()> {
        Ok(())
    }
}

/// The real sockets.
#[derive(Debug)]
pub struct LinkIo {
    rx: OwnedFd,
    tx4: socket2::Socket,
    tx6: socket2::Socket,
}

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

impl LinkIo {
    /// Opens both sockets; `interface` limits receiving to one interface.
    /// Needs CAP_NET_RAW.
    pub fn open(interface: Option<&str>, mark: u32, timeout: Duration) -> io::Result<LinkIo> {
        // SAFETY: plain socket(2) call; the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let rx = unsafe { OwnedFd::from_raw_fd(fd) };
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
        setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        // SAFETY: tv is a valid timeval and the length matches it.
        let rc = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }

        // IPPROTO_RAW implies IP_HDRINCL (and IPV6_HDRINCL).
        let raw = |domain| -> io::Result<socket2::Socket> {
            let tx = socket2::Socket::new(
                domain,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
            )?;
            tx.set_mark(mark)?;
            tx.set_send_buffer_size(4 << 20)?;
            Ok(tx)
        };
        Ok(LinkIo {
            rx,
            tx4: raw(socket2::Domain::IPV4)?,
            tx6: raw(socket2::Domain::IPV6)?,
        })
    }
}

fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: value is a valid i32 and the length matches it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl PacketIo for LinkIo {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf is valid for writes of buf.len() bytes, `from`
            // for from_len bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.rx.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut from).cast::<libc::sockaddr>(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => Ok(None),
                    _ => Err(err),
                };
            }
            // ARP and the like are not ours to judge or count.
            let protocol = u16::from_be(from.sll_protocol);
            if protocol == ETH_P_IP || protocol == ETH_P_IPV6 {
                return Ok(Some(n as usize));
            }
        }
    }

    fn set_targets(&mut self, targets: &[IpAddr]) -> io::Result<()> {
        let Some(mut program) = super::filter::program(targets) else {
            tracing::warn!("too many targets for a kernel filter; reading every packet");
            return Ok(());
        };
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: fprog points at `program`, which lives across the call;
        // the kernel copies it.
        let rc = unsafe {
            libc::setsockopt(
                self.rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn send(&mut self, packet: &[u8], to: IpAddr) -> io::Result<()> {
        let addr = socket2::SockAddr::from(SocketAddr::new(to, 0));
        let tx = match to {
            IpAddr::V4(_) => &self.tx4,
            IpAddr::V6(_) => &self.tx6,
        };
        tx.send_to(packet, &addr).map(|_| ())
    }
}
