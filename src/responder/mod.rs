//! The responder: reads probes from a packet socket, decides with a pure
//! function what to answer, sends the answer on a raw socket.
//!
//! `decide` is bytes in, bytes out, and is what the unit tests and the
//! fuzzer hit; `socket` owns the sockets; this module is the loop between
//! them, with the per-source rate limit and the counters. The loop does not
//! allocate per packet: one receive buffer and one reply buffer are reused.

pub mod decide;
pub mod filter;
pub mod ports;
pub mod ratelimit;
pub mod socket;

use decide::{decide, Decision, DropReason, PortTable, ReplyKind, Table, MAX_REPLY};
use ratelimit::RateLimiter;
use serde::{Deserialize, Serialize};
use socket::PacketIo;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What happened to every packet the responder read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub received: u64,
    pub time_exceeded: u64,
    pub port_unreachable: u64,
    /// Left to the kernel: final-hop echo and TCP, services on the target.
    pub kernel: u64,
    /// Would have been answered, but the source was over its rate limit.
    pub rate_limited: u64,
    pub send_errors: u64,
    /// Dropped without an answer, by reason.
    pub dropped: BTreeMap<String, u64>,
    #[serde(skip)]
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Fills `dropped` from the fast per-reason array, for printing.
    pub fn snapshot(&self) -> Counters {
        let mut out = self.clone();
        out.dropped = DropReason::ALL
            .iter()
            .filter(|r| self.drops[r.index()] > 0)
            .map(|r| (r.name().to_string(), self.drops[r.index()]))
            .collect();
        out
    }

    pub fn answered(&self) -> u64 {
        self.time_exceeded + self.port_unreachable
    }

    /// One log line.
    pub fn summary(&self) -> String {
        // A snapshot read back from a file has `dropped` filled already.
        let s = if self.dropped.is_empty() {
            self.snapshot()
        } else {
            self.clone()
        };
        let drops: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "received={} time_exceeded={} port_unreachable={} kernel={} rate_limited={} send_errors={} dropped: {}",
            s.received,
            s.time_exceeded,
            s.port_unreachable,
            s.kernel,
            s.rate_limited,
            s.send_errors,
            if drops.is_empty() { "none".to_string() } else { drops.join(" ") }
        )
    }
}

/// Flags set from signal handlers and read by the loop.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// SIGINT, SIGTERM: leave the loop.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reload the show.
    pub reload: Arc<AtomicBool>,
    /// SIGUSR1: log the counters.
    pub dump: Arc<AtomicBool>,
}

/// The loop's state: the show table, port lookups, rate limit, counters
/// and the two buffers.
#[derive(Debug)]
pub struct Responder<P: PortTable> {
    pub table: Table,
    ports: P,
    limiter: RateLimiter,
    pub counters: Counters,
    buf: Box<[u8]>,
    out: Box<[u8; MAX_REPLY]>,
}

impl<P: PortTable> Responder<P> {
    pub fn new(table: Table, ports: P, limiter: RateLimiter) -> Responder<P> {
        Responder {
            table,
            ports,
            limiter,
            counters: Counters::default(),
            // Any IPv4 packet fits, so none is cut short and misjudged.
            buf: vec![0u8; 65_536].into_boxed_slice(),
            out: Box::new([0u8; MAX_REPLY]),
        }
    }

    /// Decides on and answers one received packet of `len` bytes.
    fn handle(&mut self, len: usize, io: &mut impl PacketIo, now: Instant) {
        self.counters.received += 1;
        let packet = &self.buf[..len];
        match decide(packet, &self.table, &self.ports, &mut self.out) {
            Decision::Kernel => self.counters.kernel += 1,
            Decision::Drop(reason) => self.counters.count_drop(reason),
            Decision::Reply { len, to, kind } => {
                if !self.limiter.allow(to, now) {
                    self.counters.rate_limited += 1;
                    return;
                }
                match io.send(&self.out[..len], to) {
                    Ok(()) => match kind {
                        ReplyKind::TimeExceeded => self.counters.time_exceeded += 1,
                        ReplyKind::PortUnreachable => self.counters.port_unreachable += 1,
                    },
                    Err(e) => {
                        self.counters.send_errors += 1;
                        tracing::debug!("cannot send a reply to {to}: {e}");
                    }
                }
            }
        }
    }

    /// Answers packets until `control.stop` is set. `tick` runs at least
    /// every `every` (and right after a signal), to reload the show, log or
    /// save counters; it may replace the table.
    pub fn run(
        &mut self,
        io: &mut impl PacketIo,
        control: &Control,
        every: Duration,
        mut tick: impl FnMut(&mut Responder<P>),
    ) -> std::io::Result<()> {
        let mut last_tick = Instant::now();
        let mut targets: Vec<std::net::IpAddr> = self.table.targets().collect();
        io.set_targets(&targets)?;
        while !control.stop.load(Ordering::Relaxed) {
            let received = io.recv(&mut self.buf)?;
            let now = Instant::now();
            if let Some(len) = received {
                self.handle(len, io, now);
            }
            let signalled =
                control.reload.load(Ordering::Relaxed) || control.dump.load(Ordering::Relaxed);
            if signalled || now.duration_since(last_tick) >= every {
                tick(self);
                last_tick = now;
                let now_targets: Vec<std::net::IpAddr> = self.table.targets().collect();
                if now_targets != targets {
                    targets = now_targets;
                    io.set_targets(&targets)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::net::{IpAddr, Ipv4Addr};

    /// Packets in from a queue, packets out to a list: the loop without
    /// root.
    struct FakeIo {
        incoming: VecDeque<Vec<u8>>,
        sent: Vec<(Vec<u8>, IpAddr)>,
        stop: Arc<AtomicBool>,
    }

    impl PacketIo for FakeIo {
        fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
            match self.incoming.pop_front() {
                Some(p) => {
                    buf[..p.len()].copy_from_slice(&p);
                    Ok(Some(p.len()))
                }
                None => {
                    self.stop.store(true, Ordering::Relaxed);
                    Ok(None)
                }
            }
        }
        fn send(&mut self, packet: &[u8], to: IpAddr) -> std::io::Result<()> {
            self.sent.push((packet.to_vec(), to));
            Ok(())
        }
    }

    struct NoPorts;
    impl PortTable for NoPorts {
        fn udp_open(&self, _: IpAddr, _: u16) -> bool {
            false
        }
    }

    fn udp_probe(src: Ipv4Addr, ttl: u8) -> Vec<u8> {
        let builder =
            etherparse::PacketBuilder::ipv4(src.octets(), [198, 18, 0, 100], ttl).udp(40000, 33434);
        let mut out = Vec::new();
        builder.write(&mut out, &[0u8; 32]).unwrap();
        out
    }

    #[test]
    fn answers_counts_and_rate_limits_per_source() {
        let hop = Ipv4Addr::new(198, 18, 0, 1);
        let table = Table::new([(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            vec![Some(IpAddr::V4(hop)), None],
        )]);
        let mut responder = Responder::new(table, NoPorts, RateLimiter::new(1, 3));
        let a = Ipv4Addr::new(198, 18, 1, 1);
        let b = Ipv4Addr::new(198, 18, 1, 2);
        let mut incoming: VecDeque<Vec<u8>> = (0..5).map(|_| udp_probe(a, 1)).collect();
        incoming.push_back(udp_probe(b, 1)); // another source: still answered
        incoming.push_back(udp_probe(b, 2)); // silent hop
        incoming.push_back(udp_probe(b, 3)); // past the show: port unreachable
        incoming.push_back(vec![0x45, 0, 0]); // garbage
        let control = Control::default();
        let mut io = FakeIo {
            incoming,
            sent: Vec::new(),
            stop: control.stop.clone(),
        };
        responder
            .run(&mut io, &control, Duration::from_secs(60), |_| {})
            .unwrap();
        let c = responder.counters.snapshot();
        assert_eq!(c.received, 9);
        assert_eq!(c.time_exceeded, 4, "3 from a (burst), 1 from b");
        assert_eq!(c.rate_limited, 2);
        assert_eq!(c.port_unreachable, 1);
        assert_eq!(c.dropped.values().sum::<u64>(), 2, "{:?}", c.dropped);
        assert_eq!(io.sent.len(), 5);
        assert!(io.sent[..3]
            .iter()
            .all(|(p, to)| *to == a && p[12..16] == hop.octets()));
        assert!(c.summary().starts_with("received=9 time_exceeded=4"));
    }
}
