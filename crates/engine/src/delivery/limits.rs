//! Per-endpoint limits: deliveries per second and deliveries in flight.
//!
//! Only the node holding an endpoint's partition sends to it, so that node alone keeps the
//! count. The rate is a sliding window over when sends started — at most `rate_limit` in any
//! [`WINDOW`] — rather than a token bucket, whose refill lets through up to twice the rate
//! across a second's boundary. A limited endpoint's deliveries are claimed only as far as
//! there is room, so what waits stays in the outbox: unleased, unattempted, not failed.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use freshet_model::webhooks::EndpointId;
use freshet_store::LimitedEndpoint;

/// The window a rate limit counts over: a second, and a little more for the time a request
/// takes to reach the receiver, so that the receiver too never sees more than the limit in
/// a second.
pub const WINDOW: Duration = Duration::from_millis(1_050);

/// The sends of each limited endpoint.
#[derive(Debug, Default)]
pub struct Limits {
    endpoints: Mutex<HashMap<EndpointId, Sends>>,
}

#[derive(Debug, Default)]
struct Sends {
    /// When the sends within the window started, oldest first.
    started: VecDeque<Instant>,
    in_flight: u32,
}

/// How much an endpoint may take now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Room {
    /// Deliveries that may start now.
    pub now: u32,
    /// When more may start, if the rate is what holds them back.
    pub more_at: Option<Instant>,
}

impl Limits {
    /// The room `endpoint` has at `now` under its limits.
    pub fn room(&self, endpoint: &LimitedEndpoint, now: Instant) -> Room {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let sends = all.entry(endpoint.id).or_default();
        while sends
            .started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            sends.started.pop_front();
        }
        let by_rate = endpoint
            .rate_limit
            .map(|r| r.saturating_sub(sends.started.len() as u32));
        let by_flight = endpoint
            .max_in_flight
            .map(|m| m.saturating_sub(sends.in_flight));
        let n = by_rate
            .unwrap_or(u32::MAX)
            .min(by_flight.unwrap_or(u32::MAX));
        let more_at = (by_rate == Some(0))
            .then(|| sends.started.front().map(|t| *t + WINDOW))
            .flatten();
        Room { now: n, more_at }
    }

    /// `n` deliveries to `endpoint` start at `now`.
    pub fn started(&self, endpoint: EndpointId, n: u32, now: Instant) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let sends = all.entry(endpoint).or_default();
        sends.started.extend(std::iter::repeat_n(now, n as usize));
        sends.in_flight += n;
    }

    /// A delivery to `endpoint` has its answer (or gave up waiting for it).
    pub fn finished(&self, endpoint: EndpointId) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sends) = all.get_mut(&endpoint) {
            sends.in_flight = sends.in_flight.saturating_sub(1);
        }
    }

    /// Forgets endpoints with nothing in flight and nothing in the window: they were removed,
    /// lost their limits, or went to another node.
    pub fn forget_idle(&self, now: Instant) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, s| {
            s.in_flight > 0
                || s.started
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(rate: Option<u32>, flight: Option<u32>) -> LimitedEndpoint {
        LimitedEndpoint {
            id: EndpointId::new(),
            rate_limit: rate,
            max_in_flight: flight,
        }
    }

    #[test]
    fn the_rate_counts_a_sliding_window() {
        let limits = Limits::default();
        let e = endpoint(Some(100), None);
        let t0 = Instant::now();
        assert_eq!(limits.room(&e, t0).now, 100);
        limits.started(e.id, 60, t0);
        let t1 = t0 + Duration::from_millis(600);
        limits.started(e.id, 40, t1);
        let full = limits.room(&e, t1 + Duration::from_millis(300));
        assert_eq!(
            full,
            Room {
                now: 0,
                more_at: Some(t0 + WINDOW)
            }
        );
        // Across the second's boundary only the first 60 have left the window.
        assert_eq!(limits.room(&e, t0 + WINDOW).now, 60);
        assert_eq!(limits.room(&e, t1 + WINDOW).now, 100);
    }

    #[test]
    fn in_flight_frees_room_as_answers_come() {
        let limits = Limits::default();
        let e = endpoint(None, Some(2));
        let t = Instant::now();
        limits.started(e.id, 2, t);
        assert_eq!(
            limits.room(&e, t),
            Room {
                now: 0,
                more_at: None
            }
        );
        limits.finished(e.id);
        assert_eq!(limits.room(&e, t).now, 1);
    }

    #[test]
    fn the_tighter_limit_holds() {
        let limits = Limits::default();
        let e = endpoint(Some(10), Some(3));
        assert_eq!(limits.room(&e, Instant::now()).now, 3);
        limits.forget_idle(Instant::now());
    }
}
