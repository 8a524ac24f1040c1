//! A token bucket per source address.
//!
//! Clients send bursts (traceroute keeps 16 probes in flight, mtr probes
//! every hop at once), so the limit is per source and generous: by default
//! enough for 8 concurrent traceroutes from one address. Excess from one
//! source is dropped and counted without affecting any other source. The
//! table is bounded: when it is full, sources whose bucket has refilled
//! (idle ones) are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Default sustained probes per second from one source.
pub const DEFAULT_RATE: u32 = 2000;
/// Default burst from one source: 8 traceroutes of 30 hops x 3 probes, and
/// room for the probes that land past the target.
pub const DEFAULT_BURST: u32 = 1000;
/// Most sources tracked at once.
pub const MAX_SOURCES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up; a rate of 0
    /// means no limit.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::with_capacity(1024),
        }
    }

    /// Takes one token for `source`; false means drop.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            self.forget_idle(now);
            if self.buckets.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < burst
        });
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn excess_from_one_source_does_not_touch_another() {
        let mut rl = RateLimiter::new(10, 5);
        let t0 = Instant::now();
        let a: IpAddr = "198.18.1.1".parse().unwrap();
        let b: IpAddr = "198.18.1.2".parse().unwrap();
        let allowed = (0..20).filter(|_| rl.allow(a, t0)).count();
        assert_eq!(allowed, 5);
        assert!(rl.allow(b, t0));
        // 0.5 s later, 5 more tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| rl.allow(a, t1)).count(), 5);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut rl = RateLimiter::new(0, 0);
        let a: IpAddr = "198.18.1.1".parse().unwrap();
        assert!((0..10_000).all(|_| rl.allow(a, Instant::now())));
    }

    #[test]
    fn idle_sources_are_forgotten_when_full() {
        let mut rl = RateLimiter::new(1000, 2);
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            assert!(rl.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        let later = t0 + Duration::from_secs(1);
        assert!(rl.allow("10.255.255.255".parse().unwrap(), later));
        assert!(rl.sources() < MAX_SOURCES);
    }
}
