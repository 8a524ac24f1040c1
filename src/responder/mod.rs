//! The responder: reads probes from a packet socket, decides with a pure
//! function what to answer, sends the answer on a raw socket.
//!
//! `decide` is bytes in, bytes out, and is what the unit tests and the
//! fuzzer hit; `socket` owns the sockets; this module is the loop between
//! them, with the per-source rate limit and the counters. The loop does not
//! allocate per packet: it reads a batch of probes, writes each reply
//! straight into a send batch, and sends the batch with one call.

pub mod decide;
pub mod delay;
pub mod filter;
#[cfg(test)]
mod fixture;
pub mod local;
pub mod ports;
pub mod ratelimit;
mod ring;
pub mod settings;
pub mod socket;

use decide::{decide, Decision, DropReason, PortTable, ReplyKind, Table};
use delay::{DelayQueue, Delays};
use ratelimit::RateLimiter;
use serde::{Deserialize, Serialize};
use socket::{Link, PacketIo, RxBatch, TxBatch, BATCH};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What happened to every packet the responder read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub received: u64,
    pub time_exceeded: u64,
    pub port_unreachable: u64,
    /// Echo replies from hop addresses (router interfaces).
    #[serde(default)]
    pub echo_reply: u64,
    /// Left to the kernel: final-hop echo and TCP, services on the target.
    pub kernel: u64,
    /// Would have been answered, but the source was over its rate limit.
    pub rate_limited: u64,
    pub send_errors: u64,
    /// Replies held back for their round-trip delay.
    #[serde(default)]
    pub delayed: u64,
    /// Delayed replies dropped because the delay queue was full.
    #[serde(default)]
    pub delay_queue_full: u64,
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
        self.time_exceeded + self.port_unreachable + self.echo_reply
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
            "received={} time_exceeded={} port_unreachable={} echo_reply={} kernel={} rate_limited={} send_errors={} delayed={} delay_queue_full={} dropped: {}",
            s.received,
            s.time_exceeded,
            s.port_unreachable,
            s.echo_reply,
            s.kernel,
            s.rate_limited,
            s.send_errors,
            s.delayed,
            s.delay_queue_full,
            if drops.is_empty() { "none".to_string() } else { drops.join(" ") }
        )
    }
}

/// Interrupt moderation, as a network card does it: under load, the loop
/// lets probes gather for a moment after each batch, so one wake-up (and
/// one send call) serves several of them; a probe arriving alone is read
/// at once. Under load a probe waits at most `window` longer.
#[derive(Debug, Clone)]
pub struct Moderation {
    window: Duration,
    /// When the last batch was read, or its pause ended.
    last: Option<Instant>,
}

impl Moderation {
    /// `window` zero turns moderation off.
    pub fn new(window: Duration) -> Moderation {
        Moderation { window, last: None }
    }

    /// After reading `n` packets at `now`: how long to wait before reading
    /// again. Nothing when the read timed out, when the batch was full
    /// (more is waiting), or when probes come further apart than the window.
    pub fn pause(&mut self, n: usize, now: Instant) -> Option<Duration> {
        if self.window.is_zero() || n == 0 {
            return None;
        }
        let busy = n >= 2
            || self
                .last
                .is_some_and(|last| now.saturating_duration_since(last) < self.window);
        let pause = (busy && n < BATCH).then_some(self.window);
        // Measured from the end of a pause, so the gap is what the next
        // probe took to come, not the pause itself.
        self.last = Some(now + pause.unwrap_or_default());
        pause
    }
}

/// What a delayed reply needs besides its bytes.
#[derive(Debug, Clone, Copy)]
struct Pending {
    to: IpAddr,
    link: Link,
    kind: ReplyKind,
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
/// and the two batches.
#[derive(Debug)]
pub struct Responder<P: PortTable> {
    pub table: Table,
    ports: P,
    limiter: RateLimiter,
    pub counters: Counters,
    /// The broadcast addresses of the host's subnets (see `local`):
    /// never answered, refreshed at every tick.
    pub no_reply: Vec<IpAddr>,
    /// Round-trip delay per line; replaced on reload.
    pub delays: Delays,
    queue: DelayQueue<Pending>,
    rx: RxBatch,
    tx: TxBatch,
    kinds: [ReplyKind; BATCH],
}

impl<P: PortTable> Responder<P> {
    pub fn new(table: Table, ports: P, limiter: RateLimiter) -> Responder<P> {
        Responder {
            table,
            ports,
            limiter,
            counters: Counters::default(),
            no_reply: local::broadcasts(),
            delays: Delays::default(),
            queue: DelayQueue::new(delay::QUEUE_SLOTS),
            rx: RxBatch::default(),
            tx: TxBatch::default(),
            kinds: [ReplyKind::TimeExceeded; BATCH],
        }
    }

    /// Decides on received packet `i`; a reply goes into the send batch.
    fn handle(&mut self, i: usize, now: Instant) {
        self.counters.received += 1;
        let packet = self.rx.packet(i);
        let link: Link = *self.rx.link(i);
        match decide(packet, &self.table, &self.ports, self.tx.next_slot()) {
            Decision::Kernel => self.counters.kernel += 1,
            Decision::Drop(reason) => self.counters.count_drop(reason),
            Decision::Reply {
                len,
                to,
                kind,
                line,
            } => {
                if self.no_reply.binary_search(&to).is_ok() {
                    self.counters.count_drop(DropReason::BadSource);
                    return;
                }
                if !self.limiter.allow(to, now) {
                    self.counters.rate_limited += 1;
                    return;
                }
                let wait = self.delays.of_line(line);
                if wait.is_zero() {
                    self.kinds[self.tx.len()] = kind;
                    self.tx.push(len, to, link);
                    return;
                }
                // The reply was written into the next send slot; the
                // queue keeps a copy, and the slot is reused.
                let reply = &self.tx.next_slot()[..len];
                let pending = Pending { to, link, kind };
                if self.queue.push(now + wait, reply, pending) {
                    self.counters.delayed += 1;
                } else {
                    self.counters.delay_queue_full += 1;
                }
            }
        }
    }

    /// Moves the delayed replies due at `now` into the send batch, sending
    /// whenever it fills.
    fn release_due(&mut self, io: &mut impl PacketIo, now: Instant) {
        loop {
            if self.tx.len() == BATCH {
                self.flush(io);
            }
            let (tx, kinds) = (&mut self.tx, &mut self.kinds);
            let released = self.queue.pop_due(now, |bytes, pending| {
                tx.next_slot()[..bytes.len()].copy_from_slice(bytes);
                kinds[tx.len()] = pending.kind;
                tx.push(bytes.len(), pending.to, pending.link);
            });
            if !released {
                break;
            }
        }
    }

    /// Sends the batched replies, counting each by kind or as an error.
    fn flush(&mut self, io: &mut impl PacketIo) {
        let mut at = 0;
        while at < self.tx.len() {
            match io.send(&self.tx, at) {
                Ok(sent) => {
                    let sent = sent.clamp(1, self.tx.len() - at);
                    for kind in &self.kinds[at..at + sent] {
                        match kind {
                            ReplyKind::TimeExceeded => self.counters.time_exceeded += 1,
                            ReplyKind::PortUnreachable => self.counters.port_unreachable += 1,
                            ReplyKind::EchoReply => self.counters.echo_reply += 1,
                        }
                    }
                    at += sent;
                }
                Err(e) => {
                    self.counters.send_errors += 1;
                    tracing::debug!("cannot send a reply to {}: {e}", self.tx.to(at));
                    at += 1;
                }
            }
        }
        self.tx.clear();
    }

    /// Answers packets until `control.stop` is set. `tick` runs at least
    /// every `every` (and right after a signal), to reload the show, log or
    /// save counters; it may replace the table.
    pub fn run(
        &mut self,
        io: &mut impl PacketIo,
        control: &Control,
        every: Duration,
        mut moderation: Moderation,
        mut tick: impl FnMut(&mut Responder<P>),
    ) -> std::io::Result<()> {
        let mut last_tick = Instant::now();
        let mut targets: Vec<IpAddr> = self.table.targets().collect();
        io.set_targets(&targets)?;
        while !control.stop.load(Ordering::Relaxed) {
            let received = io.recv(&mut self.rx)?;
            let now = Instant::now();
            for i in 0..received {
                self.handle(i, now);
            }
            if !self.queue.is_empty() {
                self.release_due(io, Instant::now());
                // One timer for the whole queue: the earliest due reply.
                io.wake_at(self.queue.next_due())?;
            }
            self.flush(io);
            if let Some(pause) = moderation.pause(received, now) {
                std::thread::sleep(pause);
            }
            let signalled =
                control.reload.load(Ordering::Relaxed) || control.dump.load(Ordering::Relaxed);
            if signalled || now.duration_since(last_tick) >= every {
                self.no_reply = local::broadcasts();
                tick(self);
                last_tick = now;
                let now_targets: Vec<IpAddr> = self.table.targets().collect();
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
        /// Three packets at a time, so batches of more than one are seen.
        fn recv(&mut self, batch: &mut RxBatch) -> std::io::Result<usize> {
            let mut n = 0;
            while n < 3 {
                let Some(p) = self.incoming.pop_front() else {
                    break;
                };
                assert!(batch.set(n, &p, Link::default()));
                n += 1;
            }
            if n == 0 {
                self.stop.store(true, Ordering::Relaxed);
            }
            Ok(n)
        }
        /// Sends two at a time, and fails every reply to 198.18.1.9.
        fn send(&mut self, batch: &TxBatch, from: usize) -> std::io::Result<usize> {
            let mut n = 0;
            while from + n < batch.len() && n < 2 {
                let to = batch.to(from + n);
                if to == IpAddr::V4(Ipv4Addr::new(198, 18, 1, 9)) {
                    if n == 0 {
                        return Err(std::io::Error::other("unreachable"));
                    }
                    break;
                }
                self.sent.push((batch.packet(from + n).to_vec(), to));
                n += 1;
            }
            Ok(n)
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
    fn moderation_waits_only_under_load() {
        let window = Duration::from_micros(50);
        let t0 = Instant::now();
        let at = |us| t0 + Duration::from_micros(us);
        let mut m = Moderation::new(window);
        // Probes 100 us apart, one per read: each is read at once.
        assert_eq!(m.pause(1, at(0)), None);
        assert_eq!(m.pause(1, at(100)), None);
        assert_eq!(m.pause(1, at(200)), None);
        // A timeout is not a batch.
        assert_eq!(m.pause(0, at(210)), None);
        // Two in one read, or one soon after the last: under load.
        assert_eq!(m.pause(2, at(300)), Some(window));
        // One probe 10 us after that pause ended: still under load.
        assert_eq!(m.pause(1, at(360)), Some(window));
        // A full batch: more is waiting, read again at once.
        assert_eq!(m.pause(BATCH, at(420)), None);
        // Quiet again.
        assert_eq!(m.pause(1, at(1000)), None);
        // Off.
        let mut off = Moderation::new(Duration::ZERO);
        assert_eq!(off.pause(5, at(0)), None);
        assert_eq!(off.pause(5, at(1)), None);
    }

    #[test]
    fn answers_counts_and_rate_limits_per_source() {
        let hop = Ipv4Addr::new(198, 18, 0, 1);
        let table = Table::new([(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            vec![Some(IpAddr::V4(hop)), None],
        )]);
        let mut responder = Responder::new(table, NoPorts, RateLimiter::new(1, 3));
        // A broadcast source: dropped before the limiter sees it.
        responder.no_reply = vec![IpAddr::V4(Ipv4Addr::new(198, 18, 1, 255))];
        let a = Ipv4Addr::new(198, 18, 1, 1);
        let b = Ipv4Addr::new(198, 18, 1, 2);
        let mut incoming: VecDeque<Vec<u8>> = (0..5).map(|_| udp_probe(a, 1)).collect();
        incoming.push_back(udp_probe(b, 1)); // another source: still answered
        incoming.push_back(udp_probe(b, 2)); // silent hop
        incoming.push_back(udp_probe(b, 3)); // past the show: port unreachable
        incoming.push_back(vec![0x45, 0, 0]); // garbage
        incoming.push_back(udp_probe(Ipv4Addr::new(198, 18, 1, 9), 1)); // send fails
        incoming.push_back(udp_probe(Ipv4Addr::new(198, 18, 1, 255), 1)); // no_reply
        let control = Control::default();
        let mut io = FakeIo {
            incoming,
            sent: Vec::new(),
            stop: control.stop.clone(),
        };
        responder
            .run(
                &mut io,
                &control,
                Duration::from_secs(60),
                Moderation::new(Duration::from_micros(20)),
                |_| {},
            )
            .unwrap();
        let c = responder.counters.snapshot();
        assert_eq!(c.received, 11);
        assert_eq!(c.dropped.get("bad_source"), Some(&1));
        assert_eq!(c.time_exceeded, 4, "3 from a (burst), 1 from b");
        assert_eq!(c.rate_limited, 2);
        assert_eq!(c.port_unreachable, 1);
        assert_eq!(c.send_errors, 1);
        assert_eq!(c.dropped.values().sum::<u64>(), 3, "{:?}", c.dropped);
        assert_eq!(io.sent.len(), 5);
        assert!(io.sent[..3]
            .iter()
            .all(|(p, to)| *to == a && p[12..16] == hop.octets()));
        assert!(c.summary().starts_with("received=11 time_exceeded=4"));
    }

    #[test]
    fn delayed_replies_wait_in_the_queue_and_leave_when_due() {
        let hop = Ipv4Addr::new(198, 18, 0, 1);
        let table = Table::new([(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            vec![Some(IpAddr::V4(hop)), Some(IpAddr::V4(hop))],
        )]);
        let mut responder = Responder::new(table, NoPorts, RateLimiter::new(0, 0));
        responder.no_reply.clear();
        responder.delays = Delays::new(20, &[(2, 0)]);
        let control = Control::default();
        let mut io = FakeIo {
            incoming: VecDeque::new(),
            sent: Vec::new(),
            stop: control.stop.clone(),
        };
        let src = Ipv4Addr::new(198, 18, 1, 1);
        let t0 = Instant::now();
        // Hop 1 waits 20 ms; hop 2 has its own delay of 0; the target
        // (line 3) waits 60 ms.
        for (i, ttl) in [1u8, 2, 3].into_iter().enumerate() {
            assert!(responder.rx.set(i, &udp_probe(src, ttl), Link::default()));
            responder.handle(i, t0);
        }
        responder.flush(&mut io);
        assert_eq!(io.sent.len(), 1, "only hop 2 at once");
        assert_eq!(responder.counters.delayed, 2);
        assert_eq!(
            responder.queue.next_due(),
            Some(t0 + Duration::from_millis(20))
        );
        responder.release_due(&mut io, t0 + Duration::from_millis(19));
        assert_eq!(responder.tx.len(), 0);
        responder.release_due(&mut io, t0 + Duration::from_millis(20));
        responder.flush(&mut io);
        assert_eq!(io.sent.len(), 2);
        assert_eq!(io.sent[1].0[20], 11, "hop 1's time exceeded");
        responder.release_due(&mut io, t0 + Duration::from_millis(60));
        responder.flush(&mut io);
        assert_eq!(io.sent.len(), 3);
        assert_eq!(io.sent[2].0[20], 3, "the target's port unreachable");
        let c = responder.counters.snapshot();
        assert_eq!((c.time_exceeded, c.port_unreachable), (2, 1));
        // A full queue drops and counts the excess.
        let mut small = Responder::new(Table::default(), NoPorts, RateLimiter::new(0, 0));
        small.queue = DelayQueue::new(1);
        small.table = responder.table.clone();
        small.no_reply.clear();
        small.delays = responder.delays.clone();
        for i in 0..3 {
            assert!(small.rx.set(i, &udp_probe(src, 1), Link::default()));
            small.handle(i, t0);
        }
        assert_eq!(
            (small.counters.delayed, small.counters.delay_queue_full),
            (1, 2)
        );
    }
}
