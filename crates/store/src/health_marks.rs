//! What this node wrote about each endpoint's health a moment ago.
//!
//! Recording a batch of attempts updates the health of every endpoint in it (its last success)
//! and, after a success, looks for its waiting retries to bring forward
//! ([`catch_up`](crate::catch_up)). Both statements ran for every endpoint of every batch,
//! although a busy, healthy endpoint changes nothing: the success is not rewritten within a
//! second, and there are no retries to find. With six endpoints they were half the statements
//! of three nodes delivering 20,000 events.
//!
//! A node now skips the search for retries when it found none less than [`FRESH`] ago and
//! recorded no failure for the endpoint since: retries another node left are found by the next
//! search, a second later at most while successes keep coming (without them, retries keep
//! their schedule, as they would anyway). The success itself is skipped the same way only on
//! SQLite, whose one node writes all of an endpoint's health: on PostgreSQL a failure another
//! node marked meanwhile must be cleared by this success, or a stale start of failures could
//! later disable an endpoint whose last attempt succeeded.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use freshet_model::webhooks::EndpointId;

/// How long what this node wrote stands for the database's state.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// Past this many endpoints, marks older than [`FRESH`] are dropped.
const PRUNE_AT: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct HealthMarks {
    marks: Mutex<HashMap<EndpointId, Mark>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    success_written: Option<Instant>,
    nothing_to_catch_up: Option<Instant>,
}

/// What a committed batch did for one endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Wrote {
    /// A failure was recorded: the next success is written and caught up after, whatever
    /// the marks said.
    Failure,
    /// The endpoint's success was written.
    Success,
    /// Its retries were looked for; `found` were brought forward.
    CaughtUp { found: u64 },
}

fn fresh(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now.saturating_duration_since(at) < FRESH)
}

impl HealthMarks {
    /// Whether a success for `endpoint` must be written.
    pub(crate) fn success_unwritten(&self, endpoint: EndpointId, now: Instant) -> bool {
        !fresh(self.mark(endpoint).success_written, now)
    }

    /// Whether `endpoint`'s waiting retries must be looked for.
    pub(crate) fn may_have_retries(&self, endpoint: EndpointId, now: Instant) -> bool {
        !fresh(self.mark(endpoint).nothing_to_catch_up, now)
    }

    /// Takes in what a batch wrote, once its transaction committed.
    pub(crate) fn committed(&self, wrote: &[(EndpointId, Wrote)], now: Instant) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if marks.len() > PRUNE_AT {
            marks.retain(|_, m| fresh(m.success_written, now) || fresh(m.nothing_to_catch_up, now));
        }
        for &(endpoint, w) in wrote {
            let mark = marks.entry(endpoint).or_default();
            match w {
                Wrote::Failure => *mark = Mark::default(),
                Wrote::Success => mark.success_written = Some(now),
                Wrote::CaughtUp { found: 0 } => mark.nothing_to_catch_up = Some(now),
                Wrote::CaughtUp { .. } => mark.nothing_to_catch_up = None,
            }
        }
    }

    fn mark(&self, endpoint: EndpointId) -> Mark {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.get(&endpoint).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_success_and_an_empty_catch_up_are_not_repeated() {
        let marks = HealthMarks::default();
        let (e, t0) = (EndpointId::new(), Instant::now());
        assert!(marks.success_unwritten(e, t0));
        assert!(marks.may_have_retries(e, t0));
        marks.committed(
            &[(e, Wrote::Success), (e, Wrote::CaughtUp { found: 0 })],
            t0,
        );
        let soon = t0 + Duration::from_millis(900);
        assert!(!marks.success_unwritten(e, soon));
        assert!(!marks.may_have_retries(e, soon));
        let later = t0 + FRESH;
        assert!(marks.success_unwritten(e, later));
        assert!(marks.may_have_retries(e, later));
    }

    #[test]
    fn retries_found_keep_the_catch_up_going() {
        let marks = HealthMarks::default();
        let (e, t0) = (EndpointId::new(), Instant::now());
        marks.committed(&[(e, Wrote::CaughtUp { found: 50 })], t0);
        assert!(marks.may_have_retries(e, t0));
    }

    #[test]
    fn a_failure_forgets_what_was_written() {
        let marks = HealthMarks::default();
        let (e, other, t0) = (EndpointId::new(), EndpointId::new(), Instant::now());
        marks.committed(
            &[
                (e, Wrote::Success),
                (e, Wrote::CaughtUp { found: 0 }),
                (other, Wrote::Success),
            ],
            t0,
        );
        marks.committed(&[(e, Wrote::Failure)], t0);
        assert!(marks.success_unwritten(e, t0));
        assert!(marks.may_have_retries(e, t0));
        assert!(!marks.success_unwritten(other, t0), "only its own endpoint");
    }
}
