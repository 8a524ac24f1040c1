//! Round-trip times as the user wants them (DESIGN.md §8): replies held
//! back per message line, from one bounded queue served by one timer.
//!
//! The packet loop never sleeps for a delay. A reply that must wait is
//! copied into a slot of a queue allocated once at start (no allocation
//! per packet); the loop arms one timer (the socket side's timerfd) for
//! the earliest due reply and sends what is due whenever it wakes. When
//! the queue is full the reply is dropped and counted (`delay_queue_full`):
//! the rate limit and the reflection bounds apply before a reply is queued,
//! so a delay never lets more out than an undelayed show would.
//!
//! This module needs only std (the fuzz target compiles it in); the
//! stored settings and their flags are in `settings`.

use super::decide::MAX_REPLY;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Largest delay of any reply, in milliseconds: well under traceroute's
/// default 5-second wait, so a delayed answer is never taken for a loss.
pub const MAX_DELAY_MS: u32 = 2000;

/// Replies that may wait at once. At 4096 slots of 1280 bytes the queue
/// reserves 5 MiB of address space; only the slots used become resident.
pub const QUEUE_SLOTS: usize = 4096;

/// The delays the loop looks up per reply: one entry per line, computed
/// once when the settings change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delays {
    /// `per_line[line - 1]`, for lines 1..=255.
    per_line: Box<[Duration]>,
}

impl Delays {
    /// Hop `t` waits `t × hop_ms`, unless `lines` gives line `t` its own
    /// delay (`(line, ms)`, lines from 1); every delay capped at
    /// [`MAX_DELAY_MS`].
    pub fn new(hop_ms: u32, lines: &[(usize, u32)]) -> Delays {
        if hop_ms == 0 && lines.iter().all(|(_, ms)| *ms == 0) {
            return Delays::default();
        }
        Delays {
            per_line: (1..=usize::from(u8::MAX))
                .map(|line| Duration::from_millis(delay_of_line(hop_ms, lines, line).into()))
                .collect(),
        }
    }

    /// How long the reply of `line` waits (zero: none).
    pub fn of_line(&self, line: u8) -> Duration {
        usize::from(line)
            .checked_sub(1)
            .and_then(|i| self.per_line.get(i))
            .copied()
            .unwrap_or_default()
    }
}

/// The bounded queue of delayed replies: each reply's bytes, and `T`,
/// what the loop needs to send it (destination, link, kind).
#[derive(Debug)]
pub struct DelayQueue<T> {
    data: Box<[u8]>,
    pending: Box<[Option<(usize, T)>]>,
    free: Vec<usize>,
    /// `(due, order, slot)`: the earliest first; `order` keeps replies due
    /// at the same instant in arrival order.
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    order: u64,
}

impl<T: Copy> DelayQueue<T> {
    /// A queue of `slots` replies, all its memory reserved now.
    pub fn new(slots: usize) -> DelayQueue<T> {
        DelayQueue {
            data: vec![0u8; slots * MAX_REPLY].into_boxed_slice(),
            pending: vec![None; slots].into_boxed_slice(),
            free: (0..slots).rev().collect(),
            heap: BinaryHeap::with_capacity(slots),
            order: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Holds `reply` until `due`; false (nothing kept) when the queue is
    /// full.
    pub fn push(&mut self, due: Instant, reply: &[u8], meta: T) -> bool {
        let Some(slot) = self.free.pop() else {
            return false;
        };
        let len = reply.len().min(MAX_REPLY);
        self.data[slot * MAX_REPLY..slot * MAX_REPLY + len].copy_from_slice(&reply[..len]);
        self.pending[slot] = Some((len, meta));
        self.heap.push(Reverse((due, self.order, slot)));
        self.order += 1;
        true
    }

    /// When the earliest reply is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Takes the earliest reply if it is due at `now`: hands its bytes
    /// and details to `emit`, then frees its slot.
    pub fn pop_due(&mut self, now: Instant, emit: impl FnOnce(&[u8], T)) -> bool {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {}
            _ => return false,
        }
        let Some(Reverse((_, _, slot))) = self.heap.pop() else {
            return false;
        };
        if let Some((len, meta)) = self.pending[slot].take() {
            emit(&self.data[slot * MAX_REPLY..slot * MAX_REPLY + len], meta);
        }
        self.free.push(slot);
        true
    }
}

/// The delay of `line` in milliseconds, capped at [`MAX_DELAY_MS`].
pub fn delay_of_line(hop_ms: u32, lines: &[(usize, u32)], line: usize) -> u32 {
    let ms = match lines.iter().find(|(l, _)| *l == line) {
        Some((_, ms)) => *ms,
        None => hop_ms.saturating_mul(u32::try_from(line).unwrap_or(u32::MAX)),
    };
    ms.min(MAX_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn pending() -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 1, 2))
    }

    #[test]
    fn the_queue_releases_in_due_order_and_refuses_when_full() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut q = DelayQueue::new(3);
        assert!(q.push(at(80), &[4; 10], pending()));
        assert!(q.push(at(20), &[1; 20], pending()));
        assert!(q.push(at(20), &[2; 30], pending()));
        assert!(!q.push(at(5), &[9; 5], pending()), "full");
        assert_eq!(q.next_due(), Some(at(20)));
        let mut out = Vec::new();
        while q.pop_due(at(50), |bytes, to| out.push((bytes.to_vec(), to))) {}
        assert_eq!(
            out,
            vec![(vec![1; 20], pending()), (vec![2; 30], pending())]
        );
        assert_eq!(q.len(), 1);
        assert!(!q.pop_due(at(79), |_, _| panic!("not due")));
        assert!(q.push(at(90), &[5; 1], pending()), "a slot is free again");
        assert!(q.pop_due(at(80), |b, _| assert_eq!(b, &[4; 10])));
        assert_eq!(q.next_due(), Some(at(90)));
    }
}
