//! Per-endpoint limits: deliveries per second and deliveries in flight.
//!
//! Only the node holding an endpoint's partition sends to it, so that node alone keeps the
//! count. The rate is a sliding window — at most `rate_limit` in any [`WINDOW`] — over what
//! the receiver may have seen: a send counts from when it starts until a window after its
//! answer (or after giving up on one). Counting from the start alone is not enough: a request
//! reaches the receiver at any time before its answer, so a batch slowed on its way (a new
//! connection, a loaded machine) lands in the same second of the receiver's clock as the next
//! one, and the receiver sees twice the rate. A token bucket's refill would let twice the rate
//! through across a second's boundary too. A limited endpoint's deliveries are claimed only as
//! far as there is room, so what waits stays in the outbox: unleased, unattempted, not failed.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use freshet_model::webhooks::EndpointId;
use freshet_store::LimitedEndpoint;

/// The window a rate limit counts over, after each answer: the receiver had the request
/// before its answer left, so no second of the receiver's clock holds more than the limit.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The sends of each limited endpoint.
#[derive(Debug, Default)]
pub struct Limits {
    endpoints: Mutex<HashMap<EndpointId, Sends>>,
}

#[derive(Debug, Default)]
struct Sends {
    /// When the sends answered within the window were answered, oldest first.
    answered: VecDeque<Instant>,
    /// Sends started and not answered yet: they count against the rate too.
    in_flight: u32,
}

/// How much an endpoint may take now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Room {
    /// Deliveries that may start now.
    pub now: u32,
    /// When more may start, if sends answered within the window are what hold them back;
    /// `None` when only answers can make room (an answer wakes the claimer).
    pub more_at: Option<Instant>,
}

impl Limits {
    /// The room `endpoint` has at `now` under its limits.
    pub fn room(&self, endpoint: &LimitedEndpoint, now: Instant) -> Room {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let sends = all.entry(endpoint.id).or_default();
        while sends
            .answered
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            sends.answered.pop_front();
        }
        let counted = sends.answered.len() as u32 + sends.in_flight;
        let by_rate = endpoint.rate_limit.map(|r| r.saturating_sub(counted));
        let by_flight = endpoint
            .max_in_flight
            .map(|m| m.saturating_sub(sends.in_flight));
        let n = by_rate
            .unwrap_or(u32::MAX)
            .min(by_flight.unwrap_or(u32::MAX));
        let more_at = (by_rate == Some(0))
            .then(|| sends.answered.front().map(|t| *t + WINDOW))
            .flatten();
        Room { now: n, more_at }
    }

    /// `n` deliveries to `endpoint` start.
    pub fn started(&self, endpoint: EndpointId, n: u32) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(endpoint).or_default().in_flight += n;
    }

    /// A delivery to `endpoint` has its answer (or gave up waiting for it) at `now`.
    pub fn finished(&self, endpoint: EndpointId, now: Instant) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sends) = all.get_mut(&endpoint) {
            sends.in_flight = sends.in_flight.saturating_sub(1);
            sends.answered.push_back(now);
        }
    }

    /// Forgets endpoints with nothing in flight and nothing in the window: they were removed,
    /// lost their limits, or went to another node.
    pub fn forget_idle(&self, now: Instant) {
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, s| {
            s.in_flight > 0
                || s.answered
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
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
    fn the_rate_counts_a_window_after_each_answer() {
        let limits = Limits::default();
        let e = endpoint(Some(100), None);
        let t0 = Instant::now();
        assert_eq!(limits.room(&e, t0).now, 100);
        limits.started(e.id, 60);
        assert_eq!(limits.room(&e, t0).now, 40, "in flight counts");
        for _ in 0..60 {
            limits.finished(e.id, t0);
        }
        let t1 = t0 + Duration::from_millis(600);
        limits.started(e.id, 40);
        for _ in 0..40 {
            limits.finished(e.id, t1);
        }
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
    fn a_slow_answer_holds_its_place_in_the_window() {
        let limits = Limits::default();
        let e = endpoint(Some(2), None);
        let t0 = Instant::now();
        limits.started(e.id, 2);
        // Long after the sends started, they are still unanswered: no room, and only an
        // answer can make some.
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            limits.room(&e, later),
            Room {
                now: 0,
                more_at: None
            }
        );
        limits.finished(e.id, later);
        limits.finished(e.id, later);
        assert_eq!(limits.room(&e, later + Duration::from_millis(999)).now, 0);
        assert_eq!(limits.room(&e, later + WINDOW).now, 2);
    }

    #[test]
    fn in_flight_frees_room_as_answers_come() {
        let limits = Limits::default();
        let e = endpoint(None, Some(2));
        let t = Instant::now();
        limits.started(e.id, 2);
        assert_eq!(
            limits.room(&e, t),
            Room {
                now: 0,
                more_at: None
            }
        );
        limits.finished(e.id, t);
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
