//! The receive ring (PACKET_RX_RING, TPACKET_V2): [`RING_FRAMES`] frames
//! mapped from the packet socket, which the kernel fills as probes arrive
//! and the responder reads without a system call (see the `Ring` read
//! mode in [`super::socket`]).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::Socket;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::socket::{interval_timer, setsockopt, setsockopt_int};

/// Bytes per ring frame: 80 bytes of frame header, then up to 176 bytes
/// of the packet, which holds the probes of every common client (40 to 80
/// bytes). Longer ones take the socket queue (PACKET_COPY_THRESH); the
/// ring stays small because all of it counts as resident memory.
const RING_FRAME: usize = 256;
/// Frames in the receive ring (512 KiB): the queue probes wait in while the
/// responder is off the CPU, about 10 ms at 200 000 probes/s.
pub const RING_FRAMES: usize = 2048;
/// Bytes per ring block (the kernel's unit of allocation).
const RING_BLOCK: usize = 64 << 10;
/// Bytes of the whole ring, all of it mapped.
const RING_BYTES: usize = RING_FRAMES * RING_FRAME;

/// The receive ring: [`RING_FRAMES`] frames of [`RING_FRAME`] bytes,
/// mapped from the packet socket. Frame `next` is the next the kernel
/// fills.
#[derive(Debug)]
pub(super) struct RxRing {
    map: *mut u8,
    next: usize,
    /// A timerfd that fires every `timeout`, so a wait on an empty ring
    /// ends. `poll` with a timeout would arm and cancel a high-resolution
    /// timer on every wait, which in a virtual machine costs a trap to the
    /// hypervisor each time.
    pub(super) tick: OwnedFd,
}

// SAFETY: the mapping belongs to this value alone; the kernel is the only
// other party and synchronises through each frame's status word.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Sets up and maps the ring on packet socket `fd` (before bind); a
    /// wait on it ends after `timeout`.
    pub(super) fn open(fd: &Socket, timeout: Duration) -> io::Result<RxRing> {
        setsockopt_int(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V2 as i32,
        )?;
        let req = libc::tpacket_req {
            tp_block_size: RING_BLOCK as u32,
            tp_block_nr: (RING_BYTES / RING_BLOCK) as u32,
            tp_frame_size: RING_FRAME as u32,
            tp_frame_nr: RING_FRAMES as u32,
        };
        // SAFETY: PACKET_RX_RING takes a tpacket_req, which is plain data.
        unsafe { setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)? };
        RxRing::map(fd, timeout).inspect_err(|_| {
            // Take the ring down again, so packets go to the socket queue.
            // SAFETY: zeroed is a valid tpacket_req (no blocks: no ring).
            let none: libc::tpacket_req = unsafe { mem::zeroed() };
            // SAFETY: PACKET_RX_RING takes a tpacket_req, which is plain data.
            let _ = unsafe { setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &none) };
        })
    }

    /// Maps the ring just set up on `fd`, with copies of long probes.
    fn map(fd: &Socket, timeout: Duration) -> io::Result<RxRing> {
        // A probe longer than a frame is queued whole on the socket too.
        setsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, 1)?;
        // A zero interval would disarm the timer.
        let tick = interval_timer(timeout.max(Duration::from_millis(1)))?;
        // SAFETY: a fresh shared mapping of the socket's ring, whose size
        // is exactly what was asked for above.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RING_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            map: map.cast(),
            next: 0,
            tick,
        })
    }

    /// The status word of frame `next`, shared with the kernel.
    fn status(&self) -> &AtomicU32 {
        // SAFETY: frame `next` lies inside the mapping and starts with a
        // tpacket2_hdr, whose first field is the 4-byte aligned status
        // word; the kernel writes it only while it is TP_STATUS_KERNEL.
        unsafe {
            let hdr = self
                .map
                .add(self.next * RING_FRAME)
                .cast::<libc::tpacket2_hdr>();
            AtomicU32::from_ptr(&raw mut (*hdr).tp_status)
        }
    }

    /// Frame `next` if the kernel has filled it: its header, link-layer
    /// sender and captured bytes. Valid until [`RxRing::release`].
    pub(super) fn ready(&self) -> Option<(libc::tpacket2_hdr, libc::sockaddr_ll, &[u8])> {
        let status = self.status().load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the frame is ours until released (the Acquire load above
        // orders these reads after the kernel's writes). The kernel puts
        // the sockaddr_ll right after the aligned header and the packet at
        // tp_net, snaplen bytes, inside the frame; both are checked.
        unsafe {
            let frame = self.map.add(self.next * RING_FRAME);
            let mut hdr = frame.cast::<libc::tpacket2_hdr>().read();
            hdr.tp_status = status;
            let sll = frame
                .add(libc::TPACKET_ALIGN(mem::size_of::<libc::tpacket2_hdr>()))
                .cast::<libc::sockaddr_ll>()
                .read_unaligned();
            let start = usize::from(hdr.tp_net).min(RING_FRAME);
            let len = (hdr.tp_snaplen as usize).min(RING_FRAME - start);
            let data = std::slice::from_raw_parts(frame.add(start), len);
            Some((hdr, sll, data))
        }
    }

    /// Gives frame `next` back to the kernel and moves on.
    pub(super) fn release(&mut self) {
        self.status()
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % RING_FRAMES;
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: map and RING_BYTES are exactly what mmap returned and took.
        unsafe { libc::munmap(self.map.cast(), RING_BYTES) };
    }
}
