//! When to try a failed delivery again.
//!
//! The default schedule (DESIGN.md section 4) spreads eight attempts over about a day and a
//! half: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later; after the last,
//! the delivery is dead. Each wait gets ±10 % jitter so a receiver that comes back is not hit
//! by every retry at the same instant. A `Retry-After` from the receiver (429/503) is honoured:
//! the wait is never shorter than it asks, up to a day.

use std::time::Duration;

/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A retry schedule: the wait before each attempt after the first.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    waits: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_seconds(&[5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600])
    }
}

impl RetryPolicy {
    /// A schedule of waits in seconds (an endpoint's override).
    pub fn from_seconds(waits: &[u32]) -> Self {
        Self {
            waits: waits
                .iter()
                .map(|s| Duration::from_secs(u64::from(*s)))
                .collect(),
        }
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.waits.len() as u32 + 1
    }

    /// The wait before the next attempt after `attempts_made` attempts all failed; `None` when
    /// the delivery is dead. `jitter` in `[-1, 1]` scales the ±10 % spread (pass a random
    /// value; tests pass fixed ones).
    pub fn next_wait(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        let scheduled = *self.waits.get(attempts_made.checked_sub(1)? as usize)?;
        let jittered = scheduled.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

impl RetryPolicy {
    /// A schedule of waits in milliseconds (a vendor's, finer than an endpoint's seconds).
    pub fn from_millis(waits: &[u64]) -> Self {
        Self {
            waits: waits.iter().map(|ms| Duration::from_millis(*ms)).collect(),
        }
    }

    /// The waits, in order.
    pub fn waits(&self) -> &[Duration] {
        &self.waits
    }
}

/// How deliveries to an endpoint are retried and timed: its own schedule when it has one,
/// else its dialect's vendor's where the vendor documents one, else freshet's.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryPolicy {
    pub retries: RetryPolicy,
    /// The vendor's time to answer; `None`: the node's `--delivery-timeout-seconds`.
    pub timeout: Option<Duration>,
    /// Whose schedule it is: `endpoint`, `freshet`, or the vendor dialect's name.
    pub source: &'static str,
}

/// Yodlee retries a notification after 10, 20, 40, 80, 160, 320, 640 and 1280 minutes, then
/// discards it (its webhooks' retry logic); a receiver that was down polls for the rest.
const YODLEE_WAITS_MS: &[u64] = &[
    600_000, 1_200_000, 2_400_000, 4_800_000, 9_600_000, 19_200_000, 38_400_000, 76_800_000,
];
/// Klavi retries 5 times with an exponential backoff from 250 ms, and waits 10 s for an
/// answer (its webhooks' default retry configuration).
const KLAVI_WAITS_MS: &[u64] = &[250, 500, 1_000, 2_000, 4_000];
const KLAVI_TIMEOUT: Duration = Duration::from_secs(10);

/// The delivery policy in force for an endpoint of `dialect` with its own schedule `own`.
pub fn policy_for(dialect: &str, own: Option<&[u32]>) -> DeliveryPolicy {
    let timeout = (dialect == "klavi").then_some(KLAVI_TIMEOUT);
    let (retries, source) = match (own, dialect) {
        (Some(waits), _) => (RetryPolicy::from_seconds(waits), "endpoint"),
        (None, "yodlee") => (RetryPolicy::from_millis(YODLEE_WAITS_MS), "yodlee"),
        (None, "klavi") => (RetryPolicy::from_millis(KLAVI_WAITS_MS), "klavi"),
        (None, _) => (RetryPolicy::default(), "freshet"),
    };
    DeliveryPolicy {
        retries,
        timeout,
        source,
    }
}

/// Validates an endpoint's own schedule.
pub fn validate_schedule(waits: &[u32]) -> Result<(), String> {
    if waits.is_empty() || waits.len() > 20 {
        return Err("must list between 1 and 20 waits, in seconds".into());
    }
    if waits.iter().any(|w| *w == 0 || *w > 7 * 24 * 3600) {
        return Err("each wait must be between 1 second and 7 days".into());
    }
    Ok(())
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    Some((at - now).try_into().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;

    #[test]
    fn default_schedule_is_the_documented_one() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7)
            .map(|n| p.next_wait(n, None, 0.0).unwrap().as_secs())
            .collect();
        assert_eq!(
            waits,
            [
                5,
                5 * MIN,
                30 * MIN,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR
            ]
        );
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(
            p.next_wait(8, None, 0.0),
            None,
            "dead after the eighth attempt"
        );
        assert_eq!(p.next_wait(0, None, 0.0), None);
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens() {
        let p = RetryPolicy::default();
        let long = p.next_wait(1, Some(Duration::from_secs(120)), 0.0).unwrap();
        assert_eq!(long, Duration::from_secs(120));
        let short = p.next_wait(3, Some(Duration::from_secs(1)), 0.0).unwrap();
        assert_eq!(short, Duration::from_secs(30 * MIN));
        let huge = p
            .next_wait(1, Some(Duration::from_secs(10 * 24 * HOUR)), 0.0)
            .unwrap();
        assert_eq!(huge, MAX_RETRY_AFTER);
    }

    #[test]
    fn retry_after_parses_both_forms() {
        let now = time::macros::datetime!(2026-11-24 12:00:00 UTC);
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 12:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn vendors_that_document_retries_get_theirs() {
        let yodlee = policy_for("yodlee", None);
        let minutes: Vec<u64> = yodlee
            .retries
            .waits()
            .iter()
            .map(|w| w.as_secs() / 60)
            .collect();
        assert_eq!(minutes, [10, 20, 40, 80, 160, 320, 640, 1280]);
        assert_eq!((yodlee.source, yodlee.timeout), ("yodlee", None));
        let klavi = policy_for("klavi", None);
        assert_eq!(
            klavi.retries.max_attempts(),
            6,
            "the first and five retries"
        );
        assert_eq!(klavi.retries.waits()[0], Duration::from_millis(250));
        assert_eq!(klavi.timeout, Some(Duration::from_secs(10)));
        for d in ["standard", "bud", "tatra"] {
            assert_eq!(policy_for(d, None).retries, RetryPolicy::default(), "{d}");
        }
        let own = policy_for("yodlee", Some(&[1, 2]));
        assert_eq!((own.source, own.retries.max_attempts()), ("endpoint", 3));
    }

    #[test]
    fn schedules_are_validated() {
        assert!(validate_schedule(&[1, 60]).is_ok());
        assert!(validate_schedule(&[]).is_err());
        assert!(validate_schedule(&[0]).is_err());
        assert!(validate_schedule(&[8 * 24 * 3600]).is_err());
    }

    proptest! {
        #[test]
        fn jitter_stays_within_ten_percent(n in 1u32..8, jitter in -1.0f64..=1.0) {
            let p = RetryPolicy::default();
            let base = p.next_wait(n, None, 0.0).unwrap().as_secs_f64();
            let got = p.next_wait(n, None, jitter).unwrap().as_secs_f64();
            prop_assert!(got >= base * 0.9 - 1e-9 && got <= base * 1.1 + 1e-9);
        }

        #[test]
        fn custom_schedules_end_after_their_length(waits in proptest::collection::vec(1u32..100_000, 1..10)) {
            let p = RetryPolicy::from_seconds(&waits);
            for (i, w) in waits.iter().enumerate() {
                prop_assert_eq!(p.next_wait(i as u32 + 1, None, 0.0), Some(Duration::from_secs(u64::from(*w))));
            }
            prop_assert_eq!(p.next_wait(waits.len() as u32 + 1, None, 0.0), None);
        }
    }
}
