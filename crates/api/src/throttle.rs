//! Throttling failed authentication per client address.
//!
//! Without it a client could try API keys or admin tokens as fast as the server answers: 2,000
//! wrong keys in 2 s met no limit (issue 17). Each client address has a bucket of failures that
//! refills at a steady rate; an address whose bucket is empty is answered 429 with
//! `Retry-After` before its credential is even looked at, so a correct guess cannot be told
//! from a wrong one while throttled. Successful requests cost nothing. IPv6 clients are
//! grouped by their /64, which one host usually owns whole. Memory is bounded: at most
//! [`MAX_TRACKED`] addresses are remembered, and a full bucket is forgotten.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Addresses remembered at most.
pub const MAX_TRACKED: usize = 16_384;

/// Failed authentications allowed per address and their refill.
#[derive(Debug)]
pub struct AuthThrottle {
    /// `false`: every check passes and nothing is remembered.
    on: bool,
    /// Failures an address may make in a burst.
    burst: f64,
    /// Failures an address regains per second.
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Failed authentications per address and minute by default.
pub const DEFAULT_PER_MINUTE: u32 = 30;

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::per_minute(DEFAULT_PER_MINUTE)
    }
}

impl AuthThrottle {
    /// A throttle allowing `burst` failures at once and `per_second` more each second.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            on: burst > 0,
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.001),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `n` failures at once, then `n` a minute; 0 switches throttling off (for a node behind a
    /// proxy that does not pass client addresses on, where all clients share one address).
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, f64::from(n) / 60.0)
    }

    /// `Err(wait)` when `ip` has used up its failures: it may try again after `wait`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(client_key(ip), Instant::now())
    }

    /// Records a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(client_key(ip), Instant::now());
    }

    fn check_at(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.on {
            return Ok(());
        }
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get(&key).map(|b| self.refilled(b, now)) {
            Some(tokens) if tokens < 1.0 => {
                Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
            }
            _ => Ok(()),
        }
    }

    fn failed_at(&self, key: IpAddr, now: Instant) {
        if !self.on {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            // Full buckets say nothing worth keeping. If that frees too little, forget a
            // quarter more, so the cost of the sweep is shared by many failures to come.
            buckets.retain(|_, b| self.refilled(b, now) < self.burst);
            let keep = MAX_TRACKED * 3 / 4;
            if buckets.len() > keep {
                let extra: Vec<IpAddr> =
                    buckets.keys().take(buckets.len() - keep).copied().collect();
                for k in extra {
                    buckets.remove(&k);
                }
            }
        }
        let tokens = buckets
            .get(&key)
            .map_or(self.burst, |b| self.refilled(b, now));
        buckets.insert(
            key,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                updated: now,
            },
        );
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        (b.tokens + elapsed * self.per_second).min(self.burst)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// The address a client is known by: itself for IPv4, its /64 for IPv6 (an IPv4 address
/// written as IPv6 counts as that IPv4 address).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_throttled_after_its_burst_and_recovers_at_the_rate() {
        let t = AuthThrottle::new(3, 0.5);
        let a = client_key(ip("192.0.2.1"));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(t.check_at(a, start).is_ok());
            t.failed_at(a, start);
        }
        let wait = t.check_at(a, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2), "one failure back every 2 s");
        assert!(t.check_at(a, start + Duration::from_millis(1900)).is_err());
        assert!(t.check_at(a, start + Duration::from_secs(2)).is_ok());
        assert!(
            t.check_at(client_key(ip("192.0.2.2")), start).is_ok(),
            "per address"
        );
    }

    #[test]
    fn zero_per_minute_switches_throttling_off() {
        let t = AuthThrottle::per_minute(0);
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            t.failed(a);
        }
        assert!(t.check(a).is_ok());
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let t = AuthThrottle::new(1, 1.0);
        let now = Instant::now();
        t.failed_at(client_key(ip("2001:db8:1:2::1")), now);
        assert!(
            t.check_at(client_key(ip("2001:db8:1:2::ffff")), now)
                .is_err()
        );
        assert!(t.check_at(client_key(ip("2001:db8:1:3::1")), now).is_ok());
        t.failed_at(client_key(ip("::ffff:192.0.2.9")), now);
        assert!(t.check_at(client_key(ip("192.0.2.9")), now).is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let t = AuthThrottle::new(2, 1.0);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            t.failed_at(IpAddr::V4(i.into()), now);
        }
        assert!(t.tracked() <= MAX_TRACKED);
        // The latest offender is still remembered.
        let last = IpAddr::V4((MAX_TRACKED as u32 + 499).into());
        t.failed_at(last, now);
        assert!(t.check_at(last, now).is_err());
    }
}
